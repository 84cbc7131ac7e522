import pytest
import torch

from pyg_relational.graphs import bipartite_graph
from pyg_relational.nn.linear import FullyConnectedConv

from .helpers import assert_close, assert_edge_order_invariant, assert_twin
from .helpers import device  # noqa: F401 (fixture: every available device)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('path', ['auto', 'message'])
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('batch_shape', [(5, ), (2, 3), ()])
def test_twin_linear(dtype, path, bias, batch_shape, device):
    linear = torch.nn.Linear(7, 4, bias=bias).to(device, dtype)
    layer = FullyConnectedConv.from_module(linear, path=path)
    params = [(lambda: layer.weight.grad,
               lambda: linear.weight.grad.reshape(-1))]
    if bias:
        params.append((lambda: layer.bias.grad, lambda: linear.bias.grad))
    x = torch.randn(*batch_shape, 7, dtype=dtype).to(device)
    assert_twin(layer, linear, [x], params=params)


def test_message_is_edge_weight_times_source():
    # The message path really sends w_ji * x_j along every edge.
    layer = FullyConnectedConv(3, 2, bias=False, path='message')
    x = torch.randn(4, 3)
    seen = {}
    layer.register_message_forward_hook(
        lambda module, inputs, out: seen.update(msg=out))
    layer(x)
    j, i = layer.edge_index
    expected = layer.weight.view(-1, 1) * x.t()[j]  # [E, B]
    assert seen['msg'].shape == (6, 4)
    assert_close(seen['msg'], expected)


def sparse_reference(edge_index, weight, bias, x, out_features):
    dense = torch.zeros(out_features, x.size(-1), dtype=x.dtype)
    dense = dense.index_put((edge_index[1], edge_index[0]), weight,
                            accumulate=True)
    return x @ dense.t() + (0 if bias is None else bias)


@pytest.mark.parametrize('path', ['auto', 'message'])
def test_sparse_connectivity(path):
    # Output unit 2 has no incoming edge (bias only, no NaN); (0 -> 1) twice.
    edge_index = torch.tensor([[0, 3, 1, 0, 0], [0, 0, 1, 1, 1]])
    layer = FullyConnectedConv(4, 3, edge_index=edge_index,
                               path=path).double()
    assert repr(layer) == 'FullyConnectedConv(4, 3, num_edges=5)'
    x = torch.randn(6, 4, dtype=torch.double)
    out = layer(x)
    assert_close(out, sparse_reference(edge_index, layer.weight, layer.bias,
                                       x, 3))
    assert_close(out[:, 2], layer.bias[2].expand(6))


def test_dense_equals_message_path_with_grads():
    torch.manual_seed(1)
    edge_index = bipartite_graph(5, 3)[:, torch.randperm(15)[:9]]
    dense = FullyConnectedConv(5, 3, edge_index=edge_index).double()
    slow = FullyConnectedConv(5, 3, edge_index=edge_index,
                              path='message').double()
    slow.load_state_dict(dense.state_dict())
    params = [(lambda: dense.weight.grad, lambda: slow.weight.grad),
              (lambda: dense.bias.grad, lambda: slow.bias.grad)]
    assert_twin(dense, slow, [torch.randn(4, 5, dtype=torch.double)],
                params=params)


def test_edge_order_invariant():
    x = torch.randn(3, 6, dtype=torch.double)
    weight = torch.randn(12, dtype=torch.double)

    def run(edge_index, w):
        layer = FullyConnectedConv(6, 2, edge_index=edge_index).double()
        with torch.no_grad():
            layer.weight.copy_(w)
            layer.bias.zero_()
        return layer(x)

    assert_edge_order_invariant(run, bipartite_graph(6, 2), weight)


def test_empty_batch():
    layer = FullyConnectedConv(3, 2)
    out = layer(torch.randn(0, 3))
    assert out.shape == (0, 2)
    out.sum().backward()
    assert torch.equal(layer.weight.grad, torch.zeros(6))


def test_repr_and_init():
    layer = FullyConnectedConv(16, 8)
    assert repr(layer) == 'FullyConnectedConv(16, 8)'
    assert layer.weight.shape == (128, )
    assert layer.weight.abs().max() <= 0.25  # 1 / sqrt(16)


def test_bad_input():
    layer = FullyConnectedConv(3, 2)
    with pytest.raises(ValueError, match='3 features'):
        layer(torch.randn(4, 5))
    with pytest.raises(IndexError, match='source index 3'):
        FullyConnectedConv(3, 2, edge_index=torch.tensor([[3], [0]]))
    with pytest.raises(IndexError, match='target index 2'):
        FullyConnectedConv(3, 2, edge_index=torch.tensor([[0], [2]]))
    with pytest.raises(ValueError, match='nn.Linear'):
        FullyConnectedConv.from_module(torch.nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="'in_features' must be >= 1"):
        FullyConnectedConv(0, 2)


def test_classic_bench_quick():
    # The benchmark suite of all three classic layers (bench/classic.py).
    from pyg_relational.bench.classic import speed_cases, twin_cases
    twins = twin_cases(quick=True)
    assert {r.layer for r in twins} == {'FullyConnectedConv', 'LatticeConv',
                                        'RecurrentConv'}
    assert all(r.passed for r in twins), [r for r in twins if not r.passed]
    speeds = speed_cases(quick=True, repeat=1)
    assert [r.baseline for r in speeds] == ['nn.Linear', 'nn.Conv2d',
                                            'nn.GRU']
    assert all(r.graph_s > 0 and r.baseline_s > 0 for r in speeds)
