"""Cost of recognising a plain edge_index (once per tensor) against one
forward+backward of the layer it serves; prints a markdown table.

    OMP_NUM_THREADS=1 python benchmarks/scripts/recognition_cost.py
"""
import time

import torch

from pyg_relational import complete_graph
from pyg_relational.nn import MultiheadAttentionConv
from pyg_relational.structure import CompleteBlocks, recognise


def median_time(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeat // 2]


def main():
    torch.set_num_threads(1)
    print('| graph | edges | recognise (ms) | MultiheadAttentionConv fwd+bwd '
          '(ms) | share |')
    print('|---|---|---|---|---|')
    for causal in (False, True):
        for T, B in ((64, 64), (256, 16), (1024, 4), (2048, 1)):
            edge_index = complete_graph([T] * B, causal=causal).clone()
            x = torch.randn(T * B, 256, requires_grad=True)
            conv = MultiheadAttentionConv(256, 8)
            assert recognise(edge_index) == CompleteBlocks([T] * B,
                                                           causal=causal)
            rec = median_time(lambda: recognise(edge_index))

            def step():
                conv(x, edge_index).sum().backward()

            step()
            layer = median_time(step)
            kind = 'causal' if causal else 'complete'
            print(f'| {kind} T={T} B={B} | {edge_index.size(1)} | '
                  f'{rec * 1e3:.1f} | {layer * 1e3:.0f} | '
                  f'{100 * rec / layer:.1f}% |')


if __name__ == '__main__':
    main()
