"""The drop-in PyG layers (GATConv, GATv2Conv, GatedGraphConv) against
PyG's own layers of the same name: same seed -> same parameters (names
included) and the same numbers, forward and backward, on every path; PyG's
return conventions and errors. Our own tests of the contracts PyG's tests
hold (../shared/peer/run-pyg-tests runs PyG's)."""
import warnings

import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor

from pyg_relational.nn import (AttentionConv, GatedGraphConv, GATConv,
                               GATv2Conv, MPNNConv)

from .helpers import device  # noqa: F401 (fixture: every available device)
from .helpers import assert_close, assert_twin

warnings.filterwarnings('ignore', message='Sparse')

try:
    from torch_sparse import SparseTensor
except ImportError:  # the optional full extra: its cases are not collected
    SparseTensor = None
# adjacency kinds: torch_sparse's SparseTensor only with the full extra
SPARSE_TENSOR = ['SparseTensor'] if SparseTensor is not None else []


def _pair(name, *args, seed=0, **kwargs):
    """(ours, theirs) built from the same seed, float64."""
    torch.manual_seed(seed)
    theirs = getattr(pyg_nn, name)(*args, **kwargs).double()
    torch.manual_seed(seed)
    ours = globals()[name](*args, **kwargs).double()
    return ours, theirs


def _grads(ours, theirs):
    """Gradient pairs of the parameters of the same name."""
    mine = dict(ours.named_parameters())
    return [(lambda p=mine[name]: p.grad, lambda q=q: q.grad)
            for name, q in theirs.named_parameters()]


def _multigraph(num_nodes=9, num_edges=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    return torch.cat([edge_index, edge_index[:, :5]], dim=1)  # 5 repeats


GAT_CONFIGS = [
    ('GATConv', (8, 4), dict(heads=3)),
    ('GATConv', (8, 4), dict(heads=2, concat=False, residual=True)),
    ('GATConv', (8, 4), dict(heads=2, edge_dim=3, fill_value=0.5)),
    ('GATConv', (8, 4), dict(heads=2, add_self_loops=False, bias=False)),
    ('GATv2Conv', (8, 4), dict(heads=3)),
    ('GATv2Conv', (8, 4), dict(heads=2, share_weights=True, residual=True)),
    ('GATv2Conv', (8, 4), dict(heads=2, edge_dim=3, fill_value='mean')),
    ('GATv2Conv', (8, 4), dict(heads=2, concat=False, bias=False)),
]


@pytest.mark.parametrize('path', ['sparse', 'message'])
@pytest.mark.parametrize('name,args,kwargs', GAT_CONFIGS,
                         ids=lambda c: str(c))
def test_same_seed_same_layer(name, args, kwargs, path, device):
    """One import line changed: same parameters (names and values), same
    outputs, attention weights and gradients, on a multigraph."""
    ours, theirs = _pair(name, *args, **kwargs)
    ours.path = path
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert repr(ours) == repr(theirs)
    ours, theirs = ours.to(device), theirs.to(device)
    x = torch.randn(9, 8, dtype=torch.float64).to(device)
    edge_index = _multigraph().to(device)
    edge_attr = torch.randn(edge_index.size(1), 3, dtype=torch.float64).to(
        device) if kwargs.get('edge_dim') else None

    def run(conv):
        return lambda x: conv(x, edge_index, edge_attr,
                              return_attention_weights=True)

    assert_twin(run(ours), run(theirs), [x],
                params=_grads(ours, theirs))
    assert ours.last_path == path


@pytest.mark.parametrize('name', ['GATConv', 'GATv2Conv'])
def test_bipartite_and_no_target_features(name):
    kwargs = dict(heads=2, residual=True)
    ours, theirs = _pair(name, (8, 6), 4, **kwargs)
    x_src = torch.randn(5, 8, dtype=torch.float64)
    x_dst = torch.randn(3, 6, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 4], [0, 0, 1, 2, 2, 1]])
    assert_close(ours((x_src, x_dst), edge_index),
                 theirs((x_src, x_dst), edge_index))
    if name == 'GATConv':  # PyG's GATv2Conv asserts on (x_src, None)
        assert_close(ours((x_src, None), edge_index, size=(5, 3)),
                     theirs((x_src, None), edge_index, size=(5, 3)))
    # no target features: the a_t term is absent, the target count from
    # size or the adj_t's shape, else a clear error
    out = ours((x_src, None), edge_index, size=(5, 3))
    adj_t = to_torch_csc_tensor(edge_index, size=(5, 3)).t()
    assert_close(ours((x_src, None), adj_t), out)
    with pytest.raises(ValueError, match='size'):
        ours((x_src, None), edge_index)
    with pytest.raises(ValueError, match='target features'):
        AttentionConv((8, 6), 4, score='scaled_dot')((x_src, None),
                                                    edge_index, size=(5, 3))


@pytest.mark.parametrize('name', ['GATConv', 'GATv2Conv'])
@pytest.mark.parametrize('layout', ['coo', 'csr', 'csc'] + SPARSE_TENSOR)
def test_attention_weights_in_the_input_adjacency_type(name, layout):
    ours, theirs = _pair(name, 8, 4, heads=2)
    x = torch.randn(6, 8, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 3]])
    if layout == 'SparseTensor':
        adj_t = SparseTensor.from_edge_index(edge_index,
                                             sparse_sizes=(6, 6)).t()
    else:
        adj = to_torch_coo_tensor(edge_index, size=(6, 6)).t().coalesce()
        adj_t = {'coo': adj, 'csr': adj.to_sparse_csr(),
                 'csc': adj.to_sparse_csc()}[layout]
    out, weights = ours(x, adj_t, return_attention_weights=True)
    # PyG's add_self_loops raises on a CSC adj_t: its reference is the CSR
    ref_adj = adj_t.to_sparse_csr() if layout == 'csc' else adj_t
    ref_out, ref_weights = theirs(x, ref_adj, return_attention_weights=True)
    assert_close(out, ref_out)
    if layout == 'SparseTensor':  # a SparseTensor [N, N] with [E, H] values
        assert isinstance(weights, SparseTensor)
        assert weights.sizes() == [6, 6, 2] and weights.nnz() == 13
        assert_close(weights.to_dense(), ref_weights.to_dense())
    else:  # (adj [N, N, H], alpha [E, H]) in the input's layout
        adj, alpha = weights
        assert adj.layout == adj_t.layout
        assert adj.shape == (6, 6, 2) and adj._nnz() == 13
        assert_close(adj.to_dense(), ref_weights[0].to_dense())
        assert alpha.shape == (13, 2)


def test_pyg_errors_for_the_same_misuse():
    conv = GATConv(8, 4, edge_dim=2)  # add_self_loops=True
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 1, 1]])
    if SparseTensor is not None:
        adj = SparseTensor.from_edge_index(edge_index, torch.randn(4, 2),
                                           (4, 4))
        with pytest.raises(NotImplementedError, match='SparseTensor'):
            conv(x, adj.t())
    # values of an adj_t are not GAT's weights: refused, never ignored
    weighted = to_torch_csc_tensor(edge_index, torch.rand(4) + 2,
                                   size=(4, 4)).t()
    with pytest.raises(ValueError, match='values'):
        GATConv(8, 4)(x, weighted)
    with pytest.raises(ValueError, match='GatedGraphConv'):
        GatedGraphConv.from_module(pyg_nn.GATConv(8, 4))
    with pytest.raises(ValueError, match='input channels'):
        GatedGraphConv(4, 2)(torch.randn(3, 5), edge_index[:, :2])
    with pytest.raises(ValueError, match="aggr='add'"):
        GATConv(8, 4, aggr='mean')


def test_from_module_loads_pyg_state():
    torch.manual_seed(3)
    for theirs, cls in ((pyg_nn.GATConv((5, 6), 4, heads=2, edge_dim=2),
                         GATConv),
                        (pyg_nn.GATv2Conv(5, 4, share_weights=True),
                         GATv2Conv),
                        (pyg_nn.GatedGraphConv(8, 3), GatedGraphConv)):
        ours = cls.from_module(theirs)
        assert repr(ours) == repr(theirs)
        for (k1, a), (k2, b) in zip(ours.state_dict().items(),
                                    theirs.state_dict().items()):
            assert k1 == k2 and torch.equal(a, b)


@pytest.mark.parametrize('path', ['sparse', 'message'])
@pytest.mark.parametrize('graph', ['edge_index', 'torch.sparse']
                         + SPARSE_TENSOR)
def test_gated_graph_conv_weights_honoured(graph, path):
    """Edge weights from ``edge_weight`` or an adj_t's values, as PyG's
    GatedGraphConv uses them, on both paths; 16 features zero-padded to
    32."""
    ours, theirs = _pair('GatedGraphConv', 32, 3)
    ours.path = path
    x = torch.randn(7, 16, dtype=torch.float64)
    edge_index = torch.unique(torch.randint(0, 7, (2, 25)), dim=1)
    weight = torch.rand(edge_index.size(1), dtype=torch.float64) + 0.5
    expected = theirs(x, edge_index, weight)
    if graph == 'edge_index':
        out = ours(x, edge_index, weight)
    elif graph == 'torch.sparse':
        out = ours(x, to_torch_csc_tensor(edge_index, weight,
                                          size=(7, 7)).t())
    else:
        out = ours(x, SparseTensor.from_edge_index(edge_index, weight,
                                                   (7, 7)).t())
    assert ours.last_path == path
    assert_close(out, expected)
    unweighted = ours(x, edge_index)
    assert (unweighted - out).abs().max() > 1e-3  # the weights matter
    with pytest.raises(ValueError, match='pass one'):
        ours(x, to_torch_csc_tensor(edge_index, weight, size=(7, 7)).t(),
             weight)


def test_gated_graph_conv_multigraph_and_gradients(device):
    ours, theirs = (m.to(device) for m in _pair('GatedGraphConv', 6, 2))
    edge_index = _multigraph(num_nodes=9).to(device)
    weight = torch.rand(edge_index.size(1), dtype=torch.float64).to(device)
    x = torch.randn(9, 4, dtype=torch.float64).to(device)
    for path in ('sparse', 'message'):
        ours.path = path
        assert_twin(lambda x, w: ours(x, edge_index, w),
                    lambda x, w: theirs(x, edge_index, w), [x, weight],
                    params=_grads(ours, theirs))
        assert ours.last_path == path
    ours.path = 'auto'
    ours(x, edge_index)
    assert ours.last_path == 'sparse' and ours.why_not_faster is None
    mean = GatedGraphConv(6, 2, aggr='mean').to(device)
    mean(x.float(), edge_index)
    assert mean.last_path == 'message' and 'aggr' in \
        mean.why_not_faster['sparse']


def test_mpnn_weighted_adjacency_is_honoured_or_refused():
    """MPNNConv used to drop the values of a weighted adj_t silently."""
    theirs = pyg_nn.GatedGraphConv(8, 2).double()
    ours = MPNNConv.from_module(theirs)
    x = torch.randn(6, 5, dtype=torch.float64)  # zero-padded, as PyG
    edge_index = torch.unique(torch.randint(0, 6, (2, 18)), dim=1)
    weight = torch.rand(edge_index.size(1), dtype=torch.float64) + 0.5
    expected = theirs(x, edge_index, weight)
    assert_close(ours(x, edge_index, edge_weight=weight), expected)
    adj_t = to_torch_csc_tensor(edge_index, weight, size=(6, 6)).t()
    assert_close(ours(x, adj_t), expected)
    with pytest.raises(ValueError, match="'edge_attr' would be ignored"):
        ours(x, edge_index, torch.randn(edge_index.size(1), 2,
                                        dtype=torch.float64))
    values = torch.randn(edge_index.size(1), 2, dtype=torch.float64)
    hybrid = torch.sparse_coo_tensor(edge_index.flip(0), values, (6, 6, 2))
    with pytest.raises(ValueError, match='must be 2-D'):
        ours(x, hybrid)
    if SparseTensor is not None:  # [E, 2] values: features, not weights
        features = SparseTensor.from_edge_index(edge_index, values, (6, 6))
        with pytest.raises(ValueError, match='values of the adj_t'):
            ours(x, features.t())
    net = MPNNConv(5, 8, message='edge_network', edge_dim=2).double()
    with pytest.raises(ValueError, match='rows'):
        net(x, edge_index, torch.randn(3, 2, dtype=torch.float64))


def test_gat_multigraph_auto_takes_the_sparse_path():
    """A repeated edge (``torch.randint`` graphs have some) no longer sends
    attention to the message path."""
    conv = GATConv(8, 4, heads=2)
    conv(torch.randn(9, 8), _multigraph())
    assert conv.last_path == 'sparse'
    assert conv.why_not_faster == {'dense': "score='gat' is not a dot "
                                            "product"}
