"""No layer ignores part of its input silently: the values of a weighted
``adj_t`` are either used exactly as PyG's layers use them (equal to the
same weights passed explicitly, and different from the unweighted result)
or refused by a ValueError that says so. One case per graph layer."""
import warnings

import pytest
import torch
from torch_geometric.utils import to_torch_csc_tensor

from pyg_relational import chain_graph, grid_graph
from pyg_relational import nn as R

warnings.filterwarnings('ignore', message='Sparse')

N = 6
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 5, 0, 3]])


def _adj_t(edge_index, values=None, size=(N, N)):
    return to_torch_csc_tensor(edge_index, values, size=size).t()


def _weights(edge_index):
    return torch.rand(edge_index.size(1), dtype=torch.float64) + 2.


def _honoured(layer, run_adj, run_explicit, edge_index):
    w = _weights(edge_index)
    weighted = run_adj(_adj_t(edge_index, w))
    assert torch.allclose(weighted, run_explicit(w))
    # other values, another result: the values are read
    assert not torch.allclose(weighted, run_adj(_adj_t(edge_index, 3 * w)))


def _refused(run_adj, edge_index, size=(N, N)):
    run_adj(_adj_t(edge_index, size=size))  # a bare pattern is accepted
    with pytest.raises(ValueError, match='values'):
        run_adj(_adj_t(edge_index, _weights(edge_index), size=size))


def x(features=4, n=N):
    return torch.randn(n, features, dtype=torch.float64)


REFUSING = {
    'AttentionConv': lambda: R.AttentionConv(4, 3, score='scaled_dot'),
    'GATConv': lambda: R.GATConv(4, 3),
    'GATv2Conv': lambda: R.GATv2Conv(4, 3),
    'MultiheadAttentionConv': lambda: R.MultiheadAttentionConv(4, 2),
    'TransformerEncoderLayer': lambda: R.TransformerEncoderLayer(
        4, 2, 8, dropout=0.),
    'NonLocalBlock': lambda: R.NonLocalBlock(4),
}


@pytest.mark.parametrize('name', sorted(REFUSING))
def test_layers_that_infer_their_weights_refuse_values(name):
    layer = REFUSING[name]().double().eval()
    inputs = x()
    _refused(lambda adj: layer(inputs, adj), EDGE_INDEX)


def test_recurrent_conv_refuses_values():
    layer = R.RecurrentConv(4, 3).double()
    chain = chain_graph(N)
    _refused(lambda adj: layer(x(), adj), chain)


def test_lattice_conv_refuses_values():
    layer = R.LatticeConv(4, 3, kernel_size=3).double()
    edge_index, edge_type, _ = grid_graph(N, 3, padding=1)  # sorted
    _refused(lambda adj: layer(x(), adj, edge_type), edge_index)


def test_fully_connected_conv_refuses_values():
    from pyg_relational import bipartite_graph
    graph = bipartite_graph(4, 3)
    R.FullyConnectedConv(4, 3, edge_index=_adj_t(graph, size=(4, 3)))
    with pytest.raises(ValueError, match='values'):
        R.FullyConnectedConv(4, 3, edge_index=_adj_t(
            graph, _weights(graph), size=(4, 3)))


@pytest.mark.parametrize('name', ['MPNNConv', 'GatedGraphConv'])
def test_gated_layers_use_the_weights(name):
    layer = (R.MPNNConv(4, 8) if name == 'MPNNConv'
             else R.GatedGraphConv(8, 2)).double()
    inputs = x()
    explicit = (lambda w: layer(inputs, EDGE_INDEX, edge_weight=w)) \
        if name == 'MPNNConv' else (lambda w: layer(inputs, EDGE_INDEX, w))
    _honoured(layer, lambda adj: layer(inputs, adj), explicit, EDGE_INDEX)


def test_interaction_network_takes_weights_as_edge_features():
    layer = R.InteractionNetwork(4, 3, edge_channels=1).double()
    inputs = x()
    _honoured(layer, lambda adj: layer(inputs, adj),
              lambda w: layer(inputs, EDGE_INDEX, w.view(-1, 1)), EDGE_INDEX)
    bare = R.InteractionNetwork(4, 3).double()  # no edge features: refused
    with pytest.raises(ValueError, match="edge_attr"):
        bare(inputs, _adj_t(EDGE_INDEX, _weights(EDGE_INDEX)))
    with pytest.raises(ValueError, match='pass the edge features once'):
        layer(inputs, _adj_t(EDGE_INDEX, _weights(EDGE_INDEX)),
              torch.randn(7, 1, dtype=torch.float64))


def test_non_local_block_returns_weights_in_the_input_adjacency_type():
    block = R.NonLocalBlock(4).double().eval()
    inputs = x()
    out, (edge_index, alpha) = block(inputs, EDGE_INDEX,
                                     return_attention_weights=True)
    out_adj, (adj, alpha_adj) = block(inputs, _adj_t(EDGE_INDEX),
                                      return_attention_weights=True)
    assert torch.allclose(out_adj, out)
    assert adj.layout == torch.sparse_csr and adj.shape == (N, N)
    dense = adj.to_dense()
    assert torch.allclose(dense[EDGE_INDEX[1], EDGE_INDEX[0]], alpha)


def test_graph_network_refuses_an_edge_between_graphs():
    net = R.GraphNetwork.from_sizes(4, 2, 1, 3).double()
    inputs = x(n=4)
    batch = torch.tensor([0, 0, 1, 1])
    u = torch.randn(2, 1, dtype=torch.float64)
    e = torch.randn(2, 2, dtype=torch.float64)
    inside = torch.tensor([[0, 2], [1, 3]])
    net(inputs, inside, e, u, batch)  # edges inside their graphs
    with pytest.raises(ValueError, match='between two graphs'):
        net(inputs, torch.tensor([[0, 1], [1, 2]]), e, u, batch)
    block = R.EdgeBlock.from_sizes(2, 4, 1, 3).double()
    with pytest.raises(ValueError, match='between two graphs'):
        block(inputs, torch.tensor([[0, 1], [1, 2]]), e, u, batch)


@pytest.mark.parametrize('cell', ['gru', 'lstm'])
def test_recurrent_conv_names_a_state_of_another_dtype(cell):
    layer = R.RecurrentConv(4, 3, cell=cell)
    inputs = torch.randn(N, 4)
    h = torch.zeros(1, 1, 3, dtype=torch.float64)
    h_0 = (h, h.float()) if cell == 'lstm' else h
    for path in ('dense', 'message'):
        layer.path = path
        with pytest.raises(ValueError, match="'h_0' has dtype"):
            layer(inputs, chain_graph(N), h_0)
