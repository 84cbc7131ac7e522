import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from pyg_relational.graphs import chain_graph
from pyg_relational.nn.recurrent import RecurrentConv
from pyg_relational.structure import Chains, structure_of
from pyg_relational.transforms import SequenceToGraph

from .helpers import (assert_close, assert_edge_order_invariant, assert_twin,
                      empty_graph, graph_to)
from .helpers import device  # noqa: F401 (fixture: every available device)

MODULES = {'rnn': torch.nn.RNN, 'gru': torch.nn.GRU, 'lstm': torch.nn.LSTM}


def param_pairs(layer, module):
    return [(lambda n=name: getattr(layer, n).grad,
             lambda p=p: p.grad) for name, p in module.named_parameters()]


@pytest.mark.parametrize('cell', list(MODULES))
@pytest.mark.parametrize('num_layers,bidirectional', [(1, False), (2, True)])
@pytest.mark.parametrize('lengths,initial', [([4, 4], False),
                                             ([5, 2, 4, 1], True)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_twin_rnn(cell, num_layers, bidirectional, lengths, initial, dtype,
                  device):
    extra = {'nonlinearity': 'relu'} if cell == 'rnn' and initial else {}
    module = MODULES[cell](3, 4, num_layers=num_layers, batch_first=True,
                           bidirectional=bidirectional, **extra).to(device,
                                                                    dtype)
    layer = RecurrentConv.from_module(module)
    lengths = torch.tensor(lengths)  # on the CPU, as packing takes them
    batch, steps = lengths.numel(), int(lengths.max())
    keep = (torch.arange(steps).view(1, -1) < lengths.view(-1, 1)).to(
        device)  # [B, T]
    edge_index = graph_to(chain_graph(lengths), device)
    x = torch.randn(batch, steps, 3, dtype=dtype).to(device)
    states = layer.num_layers * layer.num_directions
    inputs = [x]
    if initial:
        inputs += [torch.randn(states, batch, 4, dtype=dtype).to(device)
                   for _ in range(2 if cell == 'lstm' else 1)]

    def hidden(h):
        return None if not h else (tuple(h) if cell == 'lstm' else h[0])

    def graph_fn(x, *h):
        out, h_n = layer(x[keep], edge_index, hidden(h))
        padded = x.new_zeros(batch, steps, out.size(-1))
        padded[keep] = out
        return padded, h_n

    def twin_fn(x, *h):
        packed = pack_padded_sequence(x, lengths, batch_first=True,
                                      enforce_sorted=False)
        out, h_n = module(packed, hidden(h))
        return pad_packed_sequence(out, batch_first=True)[0], h_n

    assert_twin(graph_fn, twin_fn, inputs,
                params=param_pairs(layer, module))


def tree_reference(layer, x, children):
    """Child-sum tree-RNN written with torch.nn.*Cell, node by node."""
    cell_cls = {'rnn': torch.nn.RNNCell, 'gru': torch.nn.GRUCell,
                'lstm': torch.nn.LSTMCell}[layer.cell]
    cell = cell_cls(layer.input_size, layer.hidden_size).to(x.dtype)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    h, c = {}, {}
    zeros = x.new_zeros(layer.hidden_size)
    for i in sorted(children, key=lambda i: depth(i, children)):
        h_sum = sum((h[j] for j in children[i]), zeros)
        if layer.cell == 'lstm':
            c_sum = sum((c[j] for j in children[i]), zeros)
            h[i], c[i] = cell(x[i:i + 1], (h_sum[None], c_sum[None]))
        else:
            h[i] = cell(x[i:i + 1], h_sum[None])
        h[i] = h[i][0]
        if layer.cell == 'lstm':
            c[i] = c[i][0]
    return torch.stack([h[i] for i in range(x.size(0))])


def depth(i, children):
    return 1 + max((depth(j, children) for j in children[i]), default=0)


# Two trees in one batch: 0 <- (1, 2), 2 <- (3, 4, 5), 4 <- 6 ; 7 <- 8.
TREE = torch.tensor([[1, 2, 3, 4, 5, 6, 8], [0, 0, 2, 2, 2, 4, 7]])


# A DAG: the tree plus nodes 9..11 reached by paths of different lengths.
DAG = torch.cat([TREE, torch.tensor([[1, 9, 10, 3], [9, 10, 11, 11]])], dim=1)


@pytest.mark.parametrize('cell', list(MODULES))
@pytest.mark.parametrize('graph', ['tree', 'dag'])
def test_tree_and_dag_rnn(cell, graph):
    edge_index = TREE if graph == 'tree' else DAG
    num_nodes = int(edge_index.max()) + 1
    layer = RecurrentConv(3, 4, cell=cell).double()
    x = torch.randn(num_nodes, 3, dtype=torch.double)
    children = {i: edge_index[0][edge_index[1] == i].tolist()
                for i in range(num_nodes)}
    out, h_n = layer(x, edge_index)
    assert_close(out, tree_reference(layer, x, children))
    h_n = h_n[0] if cell == 'lstm' else h_n
    sinks = [0, 7] if graph == 'tree' else [0, 7, 11]
    assert_close(h_n[0], out[sinks])  # nodes without successors, node order


def test_tree_bidirectional_lists_states():
    # Leaves (5) and roots (2) differ: per-direction states come as lists.
    layer = RecurrentConv(3, 4, cell='gru', bidirectional=True).double()
    x = torch.randn(9, 3, dtype=torch.double)
    h_0 = [torch.randn(5, 4, dtype=torch.double),
           torch.randn(2, 4, dtype=torch.double)]
    out, h_n = layer(x, TREE, h_0)
    assert out.shape == (9, 8)
    assert [h.shape for h in h_n] == [(2, 4), (5, 4)]
    assert_close(h_n[0], out[[0, 7], :4])  # forward ends at the roots
    assert_close(h_n[1], out[[1, 3, 5, 6, 8], 4:])  # reverse at the leaves


def test_edge_order_invariant():
    layer = RecurrentConv(3, 4, cell='lstm', num_layers=2,
                          bidirectional=True).double()
    x = torch.randn(12, 3, dtype=torch.double)
    assert_edge_order_invariant(lambda ei: layer(x, ei)[0], DAG)


@pytest.mark.parametrize('cell', list(MODULES))
def test_empty_and_isolated(cell):
    layer = RecurrentConv(3, 4, cell=cell, num_layers=2)
    out, h_n = layer(torch.randn(0, 3), empty_graph())
    assert out.shape == (0, 4)
    h_n = h_n[0] if cell == 'lstm' else h_n
    assert h_n.shape == (2, 0, 4)
    # no edges: every node is a sequence of length 1
    module = MODULES[cell](3, 4, num_layers=2, batch_first=True)
    layer = RecurrentConv.from_module(module)
    x = torch.randn(5, 3)
    out, _ = layer(x, empty_graph())
    assert not torch.isnan(out).any()
    assert_close(out, module(x.view(5, 1, 3))[0].view(5, 4))


def test_repr():
    assert repr(RecurrentConv(3, 4)) == "RecurrentConv(3, 4, cell='gru')"
    assert repr(RecurrentConv(3, 4, 2, 'lstm', bidirectional=True)) == \
        "RecurrentConv(3, 4, cell='lstm', num_layers=2, bidirectional=True)"


def test_dropout_only_in_training():
    layer = RecurrentConv(3, 4, num_layers=2, dropout=0.5)
    x, edge_index = torch.randn(6, 3), chain_graph([3, 3])
    layer.eval()
    assert torch.equal(layer(x, edge_index)[0], layer(x, edge_index)[0])
    layer.train()
    assert not torch.equal(layer(x, edge_index)[0], layer(x, edge_index)[0])


def test_bad_input():
    layer = RecurrentConv(3, 4)
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match='has a cycle'):
        layer(x, torch.tensor([[0, 1, 2], [1, 2, 0]]))
    with pytest.raises(ValueError, match='has a cycle'):
        layer(x, torch.tensor([[0, 2], [1, 2]]))  # self-loop
    with pytest.raises(ValueError, match='3 features'):
        layer(torch.randn(4, 2), chain_graph(4))
    with pytest.raises(ValueError, match='sequence_to_nodes'):
        layer(torch.randn(1, 4, 3), chain_graph(4))
    with pytest.raises(IndexError, match='index 4'):
        layer(x, torch.tensor([[0], [4]]))
    with pytest.raises(ValueError, match=r"'h_0'\[0\] must have shape "
                       r"\[2, 4\]"):
        layer(x, chain_graph([2, 2]), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match='num_layers'):
        layer(x, chain_graph([2, 2]), torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match='pair'):
        RecurrentConv(3, 4, cell='lstm')(x, chain_graph(4), torch.zeros(
            1, 1, 4))
    with pytest.raises(ValueError, match="Unknown cell='transformer'"):
        RecurrentConv(3, 4, cell='transformer')
    with pytest.raises(ValueError, match='proj_size'):
        RecurrentConv.from_module(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match='nn.RNN, nn.GRU or nn.LSTM'):
        RecurrentConv.from_module(torch.nn.Linear(3, 4))


# --------------------------------------------------------------------------
# Execution paths: that the fused kernels on chains give the level
# schedule's numbers (every cell, layers, directions, initial states,
# ragged / empty / one-node chains, NaN isolation, bfloat16,
# torch.compile of Chains) is the conformance suite's
# (tests/conformance_cases.py: the recurrent-* cases). Here: graph forms,
# path choice, cuDNN's eval-mode rule, caching.
# --------------------------------------------------------------------------
@pytest.mark.parametrize('path', ['dense', 'message'])
def test_chains_value_equals_edge_index(path):
    layer = RecurrentConv(3, 4, cell='lstm', bidirectional=True, path=path)
    x = torch.randn(9, 3)
    expected = layer(x, chain_graph([4, 2, 3]))
    actual = layer(x, Chains((4, 2, 3)))
    assert layer.last_path == path
    for a, b in zip(actual[1] + (actual[0], ), expected[1] + (expected[0], )):
        assert_close(a, b)
    # a plain edge_index is recognised as chains
    layer(x, chain_graph([4, 2, 3]).clone())
    assert layer.last_path == path


def test_last_path_and_reasons():
    layer = RecurrentConv(3, 4)
    layer(torch.randn(12, 3), DAG)
    assert layer.last_path == 'message'
    assert 'not a set of chains' in layer.why_not_faster['dense']
    layer(torch.randn(5, 3), chain_graph(5, reverse=True))
    assert layer.last_path == 'dense' and layer.why_not_faster is None
    # an empty batch and one-node chains are chains too
    for cell in MODULES:
        other = RecurrentConv(3, 4, cell=cell, num_layers=2)
        other(torch.randn(0, 3), Chains((0, 0)))
        assert other.last_path == 'dense'
        other(torch.randn(5, 3), Chains((1, ) * 5))
        assert other.last_path == 'dense'
    with pytest.raises(ValueError, match="path='auto'"):
        RecurrentConv(3, 4, path='dense')(torch.randn(9, 3), TREE)
    with pytest.raises(ValueError, match="no 'sparse' path"):
        RecurrentConv(3, 4, path='sparse')(torch.randn(5, 3), chain_graph(5))
    with pytest.raises(ValueError, match='Unknown path'):
        RecurrentConv(3, 4, path='fast')
    with pytest.raises(ValueError, match=r"'h_0'\[0\] must have shape "
                       r"\[2, 4\]"):
        layer(torch.randn(4, 3), Chains((2, 2)), torch.zeros(1, 3, 4))


def test_sequence_to_graph_structure_survives_batching():
    transform = SequenceToGraph('chain')
    data = [transform(Data(x=torch.randn(n, 3))) for n in (4, 1, 3)]
    assert data[0].structure == Chains((4, ))
    batch = Batch.from_data_list(data)
    assert batch[2].structure == Chains((3, ))
    assert batch.to('cpu')[0].structure == Chains((4, ))
    assert structure_of(batch) == Chains((4, 1, 3))
    loaded = next(iter(DataLoader(data, batch_size=2)))
    assert structure_of(loaded) == Chains((4, 1))
    layer = RecurrentConv(3, 4)
    out, _ = layer(batch.x, batch.edge_index)
    assert layer.last_path == 'dense'
    assert_close(out[:4], layer(data[0].x, data[0].edge_index)[0])


class _CudnnRule:
    """Stands in for a fused RNN kernel of ``torch._VF`` and applies cuDNN's
    rule: a forward run with ``train=False`` has no backward ("cudnn RNN
    backward can only be called in training mode"). Records the flags."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __call__(self, *args):
        # (x, hx, weights, has_biases, ...) or packed
        # (x, batch_sizes, hx, weights, has_biases, ...)
        packed = not isinstance(args[3], bool)
        dropout, train = args[6:8] if packed else args[5:7]
        self.calls.append((dropout, train))
        out = self.kernel(*args)
        if not train and out[0].requires_grad:
            def refuse(grad):
                raise RuntimeError('cudnn RNN backward can only be called '
                                   'in training mode')
            out[0].register_hook(refuse)
        return out


@pytest.mark.parametrize('lengths', [[4, 4], [4, 2, 3]],
                         ids=['equal', 'packed'])
@pytest.mark.parametrize('cell', list(MODULES))
def test_dense_path_backward_in_eval_mode_under_cudnn_rule(
        monkeypatch, cell, lengths):
    """Eval mode with a gradient: the fused kernel runs in training mode
    with dropout 0 (cuDNN can then run its backward), the numbers are the
    eval-mode numbers (no dropout) and equal the message path's."""
    kernel = 'rnn_tanh' if cell == 'rnn' else cell
    rule = _CudnnRule(getattr(torch._VF, kernel))
    monkeypatch.setattr(torch._VF, kernel, rule)
    layer = RecurrentConv(3, 4, num_layers=2, cell=cell, dropout=0.5,
                          bidirectional=True).double().eval()
    edge_index = chain_graph(lengths)
    x = torch.randn(sum(lengths), 3, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x, edge_index)
    assert layer.last_path == 'dense' and rule.calls[-1] == (0., True)
    grad, = torch.autograd.grad(out.sum(), x)  # raises under the old flag
    layer.path = 'message'
    x_ref = x.detach().requires_grad_()
    ref, _ = layer(x_ref, edge_index)
    assert_close(out, ref)
    assert_close(grad, torch.autograd.grad(ref.sum(), x_ref)[0])
    # without a gradient the kernel keeps inference mode
    layer.path = 'auto'
    with torch.no_grad():
        layer(x, edge_index)
    assert rule.calls[-1][1] is False
    # training mode: dropout as given
    layer.train()
    layer(x, edge_index)
    assert rule.calls[-1] == (0.5, True)


def test_packings_kept_in_the_shared_bounded_cache():
    # Chains of unequal lengths run as a packed sequence; its index plan is
    # kept in a BoundedCache, so clear_cache() forgets it with the rest.
    from pyg_relational import _cache
    from pyg_relational.nn import _recurrent_kernels as kernels
    layer = RecurrentConv(3, 4)
    layer(torch.randn(5, 3), chain_graph([2, 3]))
    assert layer.last_path == 'dense'
    assert ((2, 3), False, 'cpu') in kernels._PACKINGS
    assert kernels._PACKINGS in set(_cache._CACHES)


@pytest.mark.parametrize('lengths', [[4, 4], [4, 2, 3]],
                         ids=['equal', 'packed'])
def test_lstm_under_cpu_autocast_without_onednn_bf16(monkeypatch, lengths):
    """On a CPU whose oneDNN has no bf16 LSTM primitive (AVX2 only),
    ``nn.LSTM`` under CPU autocast fails; the dense path then casts by hand
    as autocast would, with autocast off. The CPU's answer is replaced here,
    so the branch runs on every CPU (on one with the primitive, the
    conformance suite's autocast cases run the other)."""
    from pyg_relational import _torch
    monkeypatch.setitem(_torch._ONEDNN_LSTM, torch.bfloat16, False)
    calls = []
    lstm = torch._VF.lstm

    def spy(*args):  # the dtype the kernel gets, and autocast's state
        calls.append((args[0].dtype, torch.is_autocast_enabled('cpu')))
        return lstm(*args)
    monkeypatch.setattr(torch._VF, 'lstm', spy)
    layer = RecurrentConv(3, 4, num_layers=2, cell='lstm',
                          bidirectional=True)
    edge_index = chain_graph(lengths)
    x = torch.randn(sum(lengths), 3)
    ref, (h_ref, c_ref) = layer(x, edge_index)
    assert layer.last_path == 'dense' and calls[-1] == (torch.float32, False)
    x_low = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, (h, c) = layer(x_low, edge_index)
    assert calls[-1] == (torch.bfloat16, False)
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16
    for a, b in [(out, ref), (h, h_ref), (c, c_ref)]:  # bf16 rounding
        torch.testing.assert_close(a.float(), b, atol=0.05, rtol=0.05)
    out.float().sum().backward()  # gradients reach the float32 weights
    assert x_low.grad.dtype == torch.float32
    assert layer.weight_ih_l0.grad.dtype == torch.float32
    assert layer.weight_ih_l0.grad.abs().sum() > 0
