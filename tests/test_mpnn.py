import copy

import pytest
import torch
from torch_geometric.nn import GatedGraphConv, NNConv

from pyg_relational.nn import EdgeBlock, MPNNConv
from tests.helpers import device  # noqa: F401 (every available device)
from tests.helpers import (assert_close, assert_edge_order_invariant,
                           assert_twin, dtypes, empty_graph)

EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0, 4, 4],
                           [1, 2, 0, 0, 2, 1, 3]])  # node 4 receives nothing


def _grad_pairs(a, b):
    return [(lambda p=p: p.grad, lambda q=q: q.grad)
            for p, q in zip(a.parameters(), b.parameters())]


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('aggr', ['add', 'mean', 'max'])
def test_twin_gated_graph_conv(aggr, dtype, device):
    ggc = GatedGraphConv(6, num_layers=3, aggr=aggr).to(device, dtype)
    conv = MPNNConv.from_module(ggc)
    assert not conv.share_weights
    x = torch.randn(5, 6, dtype=dtype).to(device)
    edge_index = EDGE_INDEX.to(device)
    # GatedGraphConv keeps its weights in one [T, C, C] tensor.
    params = [(lambda: torch.stack([b.edge_model.weight.grad.t()
                                    for b in conv.message_blocks]),
               lambda: ggc.weight.grad),
              (lambda: conv.update_block.node_model.gru.weight_ih.grad,
               lambda: ggc.rnn.weight_ih.grad),
              (lambda: conv.update_block.node_model.gru.bias_hh.grad,
               lambda: ggc.rnn.bias_hh.grad)]
    assert_twin(lambda x: conv(x, edge_index), lambda x: ggc(x, edge_index),
                [x], params=params, dtype=dtype)


@pytest.mark.parametrize('dtype', dtypes())
def test_edge_network_matches_nnconv_and_gru(dtype):
    conv = MPNNConv(4, 4, num_steps=2, message='edge_network', edge_dim=3,
                    edge_hidden_channels=8).to(dtype)
    twin_nn = copy.deepcopy(conv.message_blocks[0].edge_model.nn)
    gru = copy.deepcopy(conv.update_block.node_model.gru)
    nnconv = NNConv(4, 4, twin_nn, aggr='add', root_weight=False,
                    bias=False).to(dtype)
    # NNConv re-initialises its nn: copy the weights back.
    twin_nn.load_state_dict(conv.message_blocks[0].edge_model.nn.state_dict())

    def twin(x, e):
        for _ in range(2):
            x = gru(nnconv(x, EDGE_INDEX, e), x)
        return x

    params = _grad_pairs(conv.message_blocks[0].edge_model.nn, twin_nn) + \
        _grad_pairs(conv.update_block.node_model.gru, gru)
    assert_twin(lambda x, e: conv(x, EDGE_INDEX, e), twin,
                [torch.randn(5, 4, dtype=dtype),
                 torch.randn(7, 3, dtype=dtype)], params=params, dtype=dtype)


def test_zero_padding_and_no_incoming_edge():
    conv = MPNNConv(2, 5, num_steps=1).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    out = conv(x, EDGE_INDEX)
    h = torch.cat([x, torch.zeros(5, 3, dtype=x.dtype)], -1)
    gru = conv.update_block.node_model.gru
    # Node 4 has no incoming edge: its message is 0.
    assert_close(out[4:], gru(torch.zeros(1, 5, dtype=x.dtype), h[4:]))
    assert not torch.isnan(out).any()


def test_shared_weights_are_reused():
    shared = MPNNConv(4, 4, num_steps=3)
    unshared = MPNNConv(4, 4, num_steps=3, share_weights=False)
    assert len(shared.message_blocks) == 1
    assert len(unshared.message_blocks) == 3
    n = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in unshared.parameters()) == n + 2 * 16


def test_node_first_fast_path_equals_slow_path():
    lin = torch.nn.Linear(4, 3).double()
    fast = EdgeBlock(lin, use_edges=False, use_receiver_nodes=False,
                     use_globals=False, node_first=True)
    slow = EdgeBlock(lin, use_edges=False, use_receiver_nodes=False,
                     use_globals=False)
    recv = EdgeBlock(lin, use_edges=False, use_sender_nodes=False,
                     use_globals=False, node_first=True)
    x = torch.randn(5, 4, dtype=torch.float64)
    assert_close(fast(x, EDGE_INDEX), slow(x, EDGE_INDEX))
    assert_close(recv(x, EDGE_INDEX), lin(x)[EDGE_INDEX[1]])


@pytest.mark.parametrize('message', ['linear', 'edge_network'])
def test_edge_order_and_empty_graphs(message):
    conv = MPNNConv(3, 4, message=message, edge_dim=2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    if message == 'linear':  # per-edge input: scalar weights
        e, empty_e = (torch.rand(n, dtype=torch.float64) for n in (7, 0))

        def run(ei, ew):
            return conv(x, ei, edge_weight=ew)
    else:  # edge features
        e, empty_e = (torch.randn(n, 2, dtype=torch.float64) for n in (7, 0))

        def run(ei, ea):
            return conv(x, ei, ea)
    assert_edge_order_invariant(run, EDGE_INDEX, e)
    kwargs = {'edge_weight' if message == 'linear' else 'edge_attr': empty_e}
    assert conv(x[:0], empty_graph(), **kwargs).shape == (0, 4)
    out = conv(x, empty_graph(), **kwargs)
    assert out.shape == (5, 4) and not torch.isnan(out).any()


@pytest.mark.parametrize('dtype', dtypes())
def test_batched_graphs_equal_separate(dtype):
    conv = MPNNConv(3, 4, num_steps=2).to(dtype)
    x = torch.randn(10, 3, dtype=dtype)
    batched = torch.cat([EDGE_INDEX, EDGE_INDEX + 5], 1)
    out = conv(x, batched)
    assert_close(out[:5], conv(x[:5], EDGE_INDEX))
    assert_close(out[5:], conv(x[5:], EDGE_INDEX))


def test_repr():
    assert repr(MPNNConv(3, 8, num_steps=2)) == \
        "MPNNConv(3, 8, num_steps=2, message='linear')"
    assert repr(MPNNConv(3, 8, message='edge_network', edge_dim=2)) == \
        "MPNNConv(3, 8, num_steps=3, message='edge_network')"


def test_bad_input_errors():
    with pytest.raises(ValueError, match="'in_channels' \\(9\\) must be <="):
        MPNNConv(9, 4)
    with pytest.raises(ValueError, match="needs 'edge_dim'"):
        MPNNConv(3, 4, message='edge_network')
    with pytest.raises(ValueError, match="Unknown message='gru'"):
        MPNNConv(3, 4, message='gru')
    with pytest.raises(ValueError, match="'num_steps' must be >= 1"):
        MPNNConv(3, 4, num_steps=0)
    with pytest.raises(ValueError, match="from_module expects a "
                       "GatedGraphConv"):
        MPNNConv.from_module(torch.nn.Linear(2, 2))
    conv = MPNNConv(3, 4, message='edge_network', edge_dim=2)
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="'x' must have 3 features"):
        conv(torch.randn(5, 2), EDGE_INDEX, torch.randn(7, 2))
    with pytest.raises(ValueError, match="needs 'edge_attr'"):
        conv(x, EDGE_INDEX)
    with pytest.raises(ValueError, match="'edge_attr' must have 2 features"):
        conv(x, EDGE_INDEX, torch.randn(7, 5))
    with pytest.raises(IndexError, match="source index 7"):
        MPNNConv(3, 4)(x, torch.tensor([[7], [0]]))


def test_bench_twin_cases_quick():
    from pyg_relational.bench.graph import twin_cases
    results = twin_cases(quick=True)
    assert len(results) == 6
    assert all(r.passed for r in results), [r for r in results
                                            if not r.passed]
