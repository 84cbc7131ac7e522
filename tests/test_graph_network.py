import copy

import pytest
import torch

from pyg_relational.nn import EdgeBlock, GlobalBlock, GraphNetwork, NodeBlock
from pyg_relational.nn.graph_network import mlp
from tests.helpers import (assert_close, assert_edge_order_invariant,
                           assert_twin, dtypes, empty_graph)

F_V, F_E, F_U, OUT = 3, 2, 4, 5


def _batched_graph(dtype=torch.float64):
    """Two graphs (4 + 3 nodes); node 3 and node 6 receive no edge."""
    edge_index = torch.tensor([[0, 1, 2, 0, 1, 4, 5, 5],
                               [1, 2, 0, 2, 0, 5, 4, 4]])
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    x = torch.randn(7, F_V, dtype=dtype)
    e = torch.randn(edge_index.size(1), F_E, dtype=dtype)
    u = torch.randn(2, F_U, dtype=dtype)
    return x, edge_index, e, u, batch


def _gn(aggr='sum', dtype=torch.float64):
    return GraphNetwork.from_sizes(F_V, F_E, F_U, OUT, hidden_channels=8,
                                   aggr=aggr).to(dtype)


def _dense_reduce(values, index, size, aggr):
    """Dense (one-hot) reference of sum / mean / max aggregation."""
    onehot = torch.zeros(size, index.numel(), dtype=values.dtype)
    onehot[index, torch.arange(index.numel())] = 1.
    if aggr == 'sum':
        return onehot @ values
    if aggr == 'mean':
        return onehot @ values / onehot.sum(1, keepdim=True).clamp(min=1)
    masked = torch.where(onehot.bool()[..., None], values[None],
                         torch.full_like(values[None], -float('inf')))
    out = masked.max(1).values
    return torch.where(torch.isinf(out), torch.zeros_like(out), out)


def _reference(gn, aggr):
    """The GN block written out by hand, without MessagePassing."""
    def run(x, e, u, edge_index, batch):
        src, dst = edge_index
        e_new = gn.edge_block.edge_model(
            torch.cat([e, x[src], x[dst], u[batch[dst]]], -1))
        agg = _dense_reduce(e_new, dst, x.size(0), aggr)
        x_new = gn.node_block.node_model(torch.cat([agg, x, u[batch]], -1))
        e_bar = _dense_reduce(e_new, batch[dst], u.size(0), aggr)
        v_bar = _dense_reduce(x_new, batch, u.size(0), aggr)
        u_new = gn.global_block.global_model(torch.cat([e_bar, v_bar, u],
                                                       -1))
        return x_new, e_new, u_new
    return run


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('aggr', ['sum', 'mean', 'max'])
def test_graph_network_matches_dense_reference(aggr, dtype):
    x, edge_index, e, u, batch = _batched_graph(dtype)
    gn = _gn(aggr, dtype)
    twin = copy.deepcopy(gn)
    ref = _reference(twin, aggr)
    params = [(lambda p=p: p.grad, lambda q=q: q.grad)
              for p, q in zip(gn.parameters(), twin.parameters())]
    assert_twin(lambda x, e, u: gn(x, edge_index, e, u, batch),
                lambda x, e, u: ref(x, e, u, edge_index, batch), [x, e, u],
                params=params, dtype=dtype)


def test_graph_network_equals_blocks_chained_by_hand():
    x, edge_index, e, u, batch = _batched_graph()
    gn = _gn()
    e1 = gn.edge_block(x, edge_index, e, u, batch)
    x1 = gn.node_block(x, edge_index, e1, u, batch)
    u1 = gn.global_block(x1, edge_index, e1, u, batch)
    for a, b in zip(gn(x, edge_index, e, u, batch), (x1, e1, u1)):
        assert torch.equal(a, b)


def test_permutation_equivariance_and_global_invariance():
    x, edge_index, e, u, batch = _batched_graph()
    gn = _gn()
    x1, e1, u1 = gn(x, edge_index, e, u, batch)
    perm = torch.tensor([2, 0, 3, 1, 6, 4, 5])  # stays within each graph
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    eperm = torch.randperm(edge_index.size(1))
    x2, e2, u2 = gn(x[perm], inv[edge_index][:, eperm], e[eperm], u,
                    batch[perm])
    assert_close(x2, x1[perm])
    assert_close(e2, e1[eperm])
    assert_close(u2, u1)


def test_edge_order_invariant():
    x, edge_index, e, u, batch = _batched_graph()
    gn = _gn('max')
    # Node and global outputs (edge outputs follow the edge order).
    assert_edge_order_invariant(
        lambda ei, ea: gn(x, ei, ea, u, batch)[::2], edge_index, e)


def test_batch_equals_separate_graphs():
    x, edge_index, e, u, batch = _batched_graph()
    gn = _gn('mean')
    x1, e1, u1 = gn(x, edge_index, e, u, batch)
    for g, (lo, hi, elo, ehi) in enumerate([(0, 4, 0, 5), (4, 7, 5, 8)]):
        xg, eg, ug = gn(x[lo:hi], edge_index[:, elo:ehi] - lo, e[elo:ehi],
                        u[g:g + 1])
        assert_close(xg, x1[lo:hi])
        assert_close(eg, e1[elo:ehi])
        assert_close(ug, u1[g:g + 1])


@pytest.mark.parametrize('aggr', ['sum', 'mean', 'max'])
def test_node_without_incoming_edge_aggregates_zeros(aggr):
    x, edge_index, e, u, batch = _batched_graph()
    block = NodeBlock(torch.nn.Identity(), aggr=aggr, use_nodes=False,
                      use_globals=False)
    out = block(x, edge_index, e)
    assert torch.equal(out[3], torch.zeros(F_E, dtype=out.dtype))
    assert torch.equal(out[6], torch.zeros(F_E, dtype=out.dtype))
    assert not torch.isnan(out).any()


@pytest.mark.parametrize('dtype', dtypes())
def test_empty_graphs(dtype):
    gn = _gn(dtype=dtype)
    # 0 nodes, 0 edges (one graph of size 0).
    x = torch.zeros(0, F_V, dtype=dtype)
    e = torch.zeros(0, F_E, dtype=dtype)
    u = torch.randn(1, F_U, dtype=dtype)
    x1, e1, u1 = gn(x, empty_graph(), e, u)
    assert x1.shape == (0, OUT) and e1.shape == (0, OUT)
    assert u1.shape == (1, OUT) and not torch.isnan(u1).any()
    # Nodes but 0 edges: aggregated edges are zeros.
    x = torch.randn(3, F_V, dtype=dtype)
    x1, e1, u1 = gn(x, empty_graph(), e, u)
    assert x1.shape == (3, OUT) and not torch.isnan(x1).any()
    node_in = torch.cat([torch.zeros(3, OUT, dtype=dtype), x,
                         u.expand(3, -1)], -1)
    assert_close(x1, gn.node_block.node_model(node_in))


def test_bipartite_blocks():
    x_src, x_dst = torch.randn(4, 3), torch.randn(2, 6)
    edge_index = torch.tensor([[0, 1, 2, 3, 3], [0, 0, 1, 1, 0]])
    e = torch.randn(5, 2)
    u = torch.randn(1, 4)
    edge = EdgeBlock.from_sizes(2, (3, 6), 4, 7)
    e1 = edge((x_src, x_dst), edge_index, e, u)
    ref = edge.edge_model(torch.cat(
        [e, x_src[edge_index[0]], x_dst[edge_index[1]], u.expand(5, -1)], -1))
    assert_close(e1, ref)
    node = NodeBlock.from_sizes(7, 6, 4, 3)
    x1 = node((x_src, x_dst), edge_index, e1, u)
    agg = torch.zeros(2, 7).index_add_(0, edge_index[1], e1)
    assert_close(x1, node.node_model(torch.cat([agg, x_dst, u.expand(2, -1)],
                                               -1)))


def test_parts_switched_off_and_user_models():
    x, edge_index, e, u, batch = _batched_graph()
    edge = EdgeBlock(torch.nn.Identity(), use_edges=False,
                     use_receiver_nodes=False, use_globals=False)
    assert torch.equal(edge(x, edge_index), x[edge_index[0]])
    only_u = EdgeBlock(torch.nn.Identity(), False, False, False, True)
    assert torch.equal(only_u(x, edge_index, u=u, batch=batch),
                       u[batch[edge_index[1]]])
    glob = GlobalBlock(torch.nn.Identity(), node_aggr='max', use_edges=False,
                       use_globals=False)
    expected = torch.stack([x[:4].max(0).values, x[4:].max(0).values])
    assert torch.equal(glob(x, edge_index, batch=batch), expected)
    gn = GraphNetwork(node_block=NodeBlock(torch.nn.Identity(),
                                           use_received_edges=False,
                                           use_globals=False))
    x1, e1, u1 = gn(x, edge_index, e)
    assert torch.equal(x1, x) and e1 is e and u1 is None


def test_mlp_sizes():
    assert isinstance(mlp(3, 4, num_layers=1), torch.nn.Linear)
    m = mlp(3, 4, hidden_channels=9, num_layers=3)
    assert m(torch.randn(2, 3)).shape == (2, 4)
    with pytest.raises(ValueError, match="'num_layers' must be >= 1"):
        mlp(3, 4, num_layers=0)


def test_reset_parameters_changes_weights():
    gn = _gn()
    before = [p.clone() for p in gn.parameters()]
    gn.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, gn.parameters()))


def test_repr():
    gn = GraphNetwork.from_sizes(3, 0, 0, (4, 4, 0))
    assert repr(gn) == 'GraphNetwork(blocks=[edge, node])'
    assert repr(gn.edge_block) == 'EdgeBlock(inputs=[senders, receivers])'
    assert repr(gn.node_block) == \
        "NodeBlock(inputs=[received_edges, nodes], aggr='sum')"
    assert repr(GlobalBlock.from_sizes(1, 2, 0, 3, edge_aggr='mean')) == \
        ("GlobalBlock(inputs=[edges, nodes], edge_aggr='mean', "
         "node_aggr='sum')")


def test_bad_input_errors():
    x, edge_index, e, u, batch = _batched_graph()
    gn = _gn()
    with pytest.raises(ValueError, match="'edge_attr' is None but "
                       "use_edges=True"):
        gn(x, edge_index, None, u, batch)
    with pytest.raises(ValueError, match="'u' is None but use_globals=True"):
        gn(x, edge_index, e, None, batch)
    with pytest.raises(ValueError, match=r"'edge_attr' must have shape "
                       r"\[E=8, F\]"):
        gn(x, edge_index, e[:3], u, batch)
    with pytest.raises(IndexError, match="target index 9"):
        gn(x, torch.tensor([[0], [9]]), e[:1], u, batch)
    with pytest.raises(ValueError, match="'u' has 2 graphs but 'batch' is "
                       "None"):
        gn(x, edge_index, e, u)
    with pytest.raises(ValueError, match="'u' must be a 2-D tensor"):
        gn(x, edge_index, e, u[0], batch)
    with pytest.raises(IndexError, match="'batch' refers to graph 1"):
        gn(x, edge_index, e, u[:1], batch)
    with pytest.raises(ValueError, match="'batch' must be a 1-D long"):
        gn(x, edge_index, e, u, batch[:3])
    with pytest.raises(ValueError, match="one node set"):
        gn((x, x), edge_index, e, u, batch)
    with pytest.raises(ValueError, match="'x' .* must be a 2-D tensor"):
        gn.edge_block(x[0], edge_index, e, u, batch)
    with pytest.raises(ValueError, match="'x' is None"):
        gn.edge_block(None, edge_index, e, u, batch)
    with pytest.raises(ValueError, match="at least one input"):
        EdgeBlock(torch.nn.Identity(), False, False, False, False)
    with pytest.raises(ValueError, match="at least one input"):
        NodeBlock(torch.nn.Identity(), 'sum', False, False, False)
    with pytest.raises(ValueError, match="at least one input"):
        GlobalBlock(torch.nn.Identity(), 'sum', 'sum', False, False, False)
    glob = GlobalBlock(torch.nn.Identity(), use_globals=False)
    with pytest.raises(ValueError, match="'num_graphs' must be >= 1"):
        glob(x, edge_index, e, batch=batch, num_graphs=0)


def test_equals_pyg_meta_layer_and_speed_cases():
    from pyg_relational.bench.graph import _meta_layer, speed_cases
    x, edge_index, e, u, batch = _batched_graph()
    gn = _gn()
    meta = _meta_layer(gn)
    params = [(lambda p=p: p.grad, lambda q=q: q.grad)
              for p, q in zip(gn.parameters(), meta.parameters())]
    assert_twin(lambda x, e, u: gn(x, edge_index, e, u, batch),
                lambda x, e, u: meta(x, edge_index, e, u, batch), [x, e, u],
                params=params)
    results = speed_cases(quick=True)
    assert [r.operator for r in results] == ['MPNNConv', 'GraphNetwork']
    assert all(r.graph_s > 0 and r.baseline_s > 0 for r in results)


def test_node_block_two_steps_and_their_errors():
    x, edge_index, e, u, batch = _batched_graph()
    block = NodeBlock.from_sizes(F_E, F_V, F_U, OUT).double()
    received = block.receive(x, edge_index, e)
    assert torch.equal(block.node_update(x, received, u, batch),
                       block(x, edge_index, e, u, batch))
    with pytest.raises(ValueError, match="'received' must be the"):
        block.node_update(x, None, u, batch)
    with pytest.raises(ValueError, match="'edge_attr' is None but "
                       "use_received_edges=True"):
        block.receive(x, edge_index, None)


def _edge_model(in_channels, dtype):
    # batch norm in training mode: rows interact, so only an exact split
    # of the first layer (not node-wise evaluation) keeps the numbers
    return torch.nn.Sequential(torch.nn.Linear(in_channels, 6),
                               torch.nn.ReLU(), torch.nn.BatchNorm1d(6),
                               torch.nn.Linear(6, OUT)).to(dtype).train()


@pytest.mark.parametrize('dtype', dtypes())
def test_node_first_split_equals_plain_edge_block(dtype):
    x, edge_index, e, u, batch = _batched_graph(dtype)
    plain = EdgeBlock(_edge_model(F_E + 2 * F_V + F_U, dtype))
    split = copy.deepcopy(plain)  # the blocks reset their models
    split.node_first = True
    first = (lambda b: lambda: b.edge_model[0].weight.grad)
    assert_twin(lambda *a: split(a[0], edge_index, *a[1:], batch=batch),
                lambda *a: plain(a[0], edge_index, *a[1:], batch=batch),
                [x, e, u], [(first(split), first(plain))])


@pytest.mark.parametrize('model', ['linear', 'pyg_linear', 'custom'])
def test_node_first_split_models_and_bipartite(model):
    dtype = torch.float64
    x_src, x_dst = torch.randn(5, 3, dtype=dtype), torch.randn(4, 2,
                                                               dtype=dtype)
    edge_index = torch.tensor([[0, 1, 4, 4, 2], [0, 0, 1, 3, 3]])
    e = torch.randn(5, F_E, dtype=dtype)
    if model == 'linear':
        edge_model = torch.nn.Linear(F_E + 5, OUT)
    elif model == 'pyg_linear':
        from torch_geometric.nn import Linear
        edge_model = Linear(F_E + 5, OUT)
    else:
        class Custom(torch.nn.Module):  # the split_first_linear protocol
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(F_E + 5, OUT)

            def split_first_linear(self):
                return self.lin, torch.tanh

            def forward(self, v):
                return torch.tanh(self.lin(v))
        edge_model = Custom()
    plain = EdgeBlock(edge_model.to(dtype), use_globals=False)
    split = copy.deepcopy(plain)  # the blocks reset their models
    split.node_first = True
    assert_twin(lambda *a: split((a[0], a[1]), edge_index, a[2]),
                lambda *a: plain((a[0], a[1]), edge_index, a[2]),
                [x_src, x_dst, e])
    # empty graph: no edge, no row
    empty = torch.empty(2, 0, dtype=torch.long)
    out = split((x_src, x_dst), empty, e[:0])
    assert out.shape == (0, OUT)


def test_split_first_linear_recognises_only_linear_heads():
    from torch_geometric.nn import MLP
    from pyg_relational.nn.graph_network import split_first_linear
    assert split_first_linear(torch.nn.ReLU()) is None
    assert split_first_linear(torch.nn.Sequential()) is None
    assert split_first_linear(torch.nn.Sequential(torch.nn.ReLU(),
                                                  torch.nn.Linear(2, 2))) \
        is None
    assert split_first_linear(torch.nn.LazyLinear(3)) is None
    assert split_first_linear(MLP([-1, 8, 2])) is None  # lazy first layer
    nested = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 3),
                                                     torch.nn.Tanh()),
                                 torch.nn.ReLU())
    lin, rest = split_first_linear(nested)
    v = torch.randn(2, 4)
    assert lin is nested[0][0]
    assert torch.equal(rest(lin(v)), nested(v))


def test_node_first_split_bad_width_raises():
    x, edge_index, e, u, batch = _batched_graph(torch.float32)
    block = EdgeBlock(torch.nn.Linear(F_E + 2 * F_V + F_U + 1, OUT),
                      node_first=True)
    with pytest.raises(ValueError, match=r'takes 13 input features but the inputs give 12 '
                       r'\(edge_attr 2 \+ x 3 \+ x 3 \+ u 4\)'):
        block(x, edge_index, e, u, batch)


def test_node_first_split_globals_first_without_batch():
    """The broadcast globals come first and must not be summed into in
    place."""
    dtype = torch.float64
    x, edge_index = torch.randn(6, F_V, dtype=dtype), torch.tensor(
        [[0, 1, 2, 3], [1, 2, 3, 4]])
    u = torch.randn(1, F_U, dtype=dtype)
    plain = EdgeBlock(torch.nn.Linear(F_U + F_V, OUT).to(dtype),
                      use_edges=False, use_sender_nodes=False)
    split = copy.deepcopy(plain)
    split.node_first = True
    assert_twin(lambda x, u: split(x, edge_index, u=u),
                lambda x, u: plain(x, edge_index, u=u), [x, u],
                [(lambda: split.edge_model.weight.grad,
                  lambda: plain.edge_model.weight.grad)])


@pytest.mark.parametrize('kwargs', [
    dict(channel_list=[F_E + 2 * F_V, 8, 8, OUT], norm='batch_norm'),
    dict(channel_list=[F_E + 2 * F_V, 8, OUT], act='elu', act_first=True,
         norm='layer_norm'),
    dict(channel_list=[F_E + 2 * F_V, 8, OUT], plain_last=False),
    dict(channel_list=[F_E + 2 * F_V, OUT]),
])
@pytest.mark.parametrize('training', [True, False])
def test_node_first_split_pyg_mlp(kwargs, training):
    """PyG MLPs (the default block model) are split too; dropout only in
    eval mode, where it is off, so both sides draw no random numbers."""
    from torch_geometric.nn import MLP
    dtype = torch.float64
    x, edge_index, e, _, _ = _batched_graph(dtype)
    model = MLP(dropout=0. if training else 0.5, **kwargs).to(dtype)
    plain = EdgeBlock(model, use_globals=False).train(training)
    from pyg_relational.nn.graph_network import split_first_linear
    lin, rest = split_first_linear(plain.edge_model)  # the split is taken
    v = torch.randn(6, kwargs['channel_list'][0], dtype=dtype)
    assert lin is plain.edge_model.lins[0]
    assert_close(rest(lin(v)), plain.edge_model(v))
    split = copy.deepcopy(plain)
    split.node_first = True
    assert_twin(lambda *a: split(a[0], edge_index, a[1]),
                lambda *a: plain(a[0], edge_index, a[1]), [x, e],
                [(lambda: split.edge_model.lins[0].weight.grad,
                  lambda: plain.edge_model.lins[0].weight.grad)])


def test_from_sizes_node_first():
    x, edge_index, e, u, batch = _batched_graph()
    block = EdgeBlock.from_sizes(F_E, F_V, F_U, OUT,
                                 node_first=True).double()
    plain = copy.deepcopy(block)
    plain.node_first = False
    assert block.node_first
    assert_close(block(x, edge_index, e, u, batch),
                 plain(x, edge_index, e, u, batch))


def test_graph_network_from_sizes_node_first():
    x, edge_index, e, u, batch = _batched_graph()
    gn = GraphNetwork.from_sizes(F_V, F_E, F_U, OUT, hidden_channels=8,
                                 node_first=True).double()
    plain = copy.deepcopy(gn)
    plain.edge_block.node_first = False
    assert gn.edge_block.node_first
    for a, b in zip(gn(x, edge_index, e, u, batch),
                    plain(x, edge_index, e, u, batch)):
        assert_close(a, b)


def test_structure_edges_built_on_the_features_device():
    """A graph given as a structure is built where the features are
    (``_resolve_graph`` names the device; CUDA features must not meet a
    CPU ``edge_index``)."""
    from pyg_relational.nn.graph_network import _resolve_graph
    from pyg_relational.structure import CompleteBlocks
    structure = CompleteBlocks((3, 4))
    for device in ('meta', torch.device('meta')):
        edge_index, _ = _resolve_graph(structure, None, 7, 7, device=device)
        assert edge_index.device.type == 'meta'
        assert edge_index.shape == (2, 25)
    e = torch.randn(25, 2, device='meta')  # no x (EdgeBlock): edge_attr's
    assert _resolve_graph(structure, e, 7, 7)[0].device.type == 'meta'


@pytest.mark.parametrize('block', ['edge', 'node', 'global', 'network'])
def test_blocks_ask_for_structure_edges_on_the_features_device(
        monkeypatch, block):
    from pyg_relational.structure import CompleteBlocks, GraphStructure
    asked = []
    build = GraphStructure.edge_index

    def spy(self, device=None):
        asked.append(device)
        return build(self, device)

    monkeypatch.setattr(GraphStructure, 'edge_index', spy)
    structure = CompleteBlocks((3, 4))
    x = torch.randn(7, F_V, dtype=torch.float64)
    e = torch.randn(25, F_E, dtype=torch.float64)
    u = torch.randn(2, F_U, dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    gn = _gn()
    if block == 'edge':
        out = gn.edge_block(x, structure, e, u, batch)
    elif block == 'node':  # takes the new edges [E, OUT]
        out = gn.node_block(x, structure, e.new_ones(25, OUT), u, batch)
    elif block == 'global':  # the new edges and nodes
        out = gn.global_block(x.new_ones(7, OUT), structure,
                              e.new_ones(25, OUT), u, batch)
    else:
        out = gn(x, structure, e, u, batch)[0]
    assert torch.isfinite(out).all()
    assert asked and all(d is not None and torch.device(d) == x.device
                         for d in asked), asked
