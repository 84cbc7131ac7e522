"""A tour of the graph builders: the inductive bias of each classic operator
as an edge_index. Run: python examples/graphs_tour.py"""
import torch
from torch_geometric.data import Data

from pyg_relational import (ImageToGraph, SequenceToGraph, bipartite_graph,
                            chain_graph, complete_graph, grid_graph,
                            window_graph)


def main():
    rows = [
        ('fully connected (4 -> 3 units)', bipartite_graph(4, 3)),
        ('recurrence (chain, T=6)', chain_graph(6)),
        ('self-attention (complete, T=6)', complete_graph(6)),
        ('causal self-attention (T=6)', complete_graph(6, causal=True)),
        ('local attention (window r=1, T=6)', window_graph(6, 6, 1)),
        ('convolution 3x3 on 8x8 (same)',
         grid_graph((8, 8), 3, padding='same')[0]),
        ('convolution 3x3 stride 2 on 8x8',
         grid_graph((8, 8), 3, stride=2, padding=1)[0]),
    ]
    print(f"{'operator':40s} {'edges':>6s}")
    for name, edge_index in rows:
        print(f'{name:40s} {edge_index.size(1):6d}')
    data = ImageToGraph('grid')(torch.randn(3, 8, 8))
    print('ImageToGraph:', data)
    data = SequenceToGraph('causal', relative_clip=2)(Data(x=torch.randn(6, 4)))
    print('SequenceToGraph:', data)


if __name__ == '__main__':
    main()
