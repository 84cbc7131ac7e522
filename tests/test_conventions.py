"""PyG conventions on the graph-network family (issue 13 part 2, issue 14):
``adj_t`` / ``EdgeIndex`` inputs, lazy sizes and ``to_hetero``, ``aggr=``
(MultiAggregation widens the next model), PyG argument order with ``size``
by keyword, sent edges, attention logits, and clear errors for wrong
widths, a negative ``batch`` and a too-small ``num_graphs``."""
import copy
import inspect

import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.data import HeteroData
from torch_geometric.nn import to_hetero

from pyg_relational.nn import (EdgeBlock, FullyConnectedConv, GlobalBlock,
                               GraphNetwork, InteractionNetwork, MPNNConv,
                               NodeBlock)
import pyg_relational.nn as R
from pyg_relational.nn.graph_network import mlp

from .helpers import assert_close

pytestmark = pytest.mark.filterwarnings(
    'ignore:Sparse CSR tensor support is in beta state')

N, F_V, F_E, F_U = 5, 3, 2, 4
# Unsorted, no repeated edge; node 4 receives nothing, node 3 sends nothing.
# adjacency forms of the graph; torch_sparse's SparseTensor only when the
# optional `full` extra is installed (the torch.sparse forms always run)
try:
    import torch_sparse
    ADJ_KINDS = ['coo', 'csr', 'csc', 'SparseTensor', 'EdgeIndex']
except ImportError:
    ADJ_KINDS = ['coo', 'csr', 'csc', 'EdgeIndex']
EDGE_INDEX = torch.tensor([[2, 0, 1, 4, 0, 2], [1, 1, 0, 2, 3, 0]])


def _graph(dtype=torch.float64):
    torch.manual_seed(0)
    x = torch.randn(N, F_V, dtype=dtype)
    e = torch.randn(EDGE_INDEX.size(1), F_E, dtype=dtype)
    u = torch.randn(1, F_U, dtype=dtype)
    return x, e, u


def _adj_order():
    """Permutation putting the edges in adj_t order (target, then
    source)."""
    src, dst = EDGE_INDEX
    return torch.argsort(dst * N + src)


def _adj(kind, e):
    """``(graph, edge_attr to pass, edge permutation of the outputs)``."""
    src, dst = EDGE_INDEX
    if kind == 'EdgeIndex':
        return EdgeIndex(EDGE_INDEX, sparse_size=(N, N)), e, None
    perm = _adj_order()
    if kind == 'SparseTensor':  # its [E, F] values are the edge features
        adj = torch_sparse.SparseTensor(row=dst, col=src, value=e,
                                        sparse_sizes=(N, N))
        return adj, None, perm
    coo = torch.sparse_coo_tensor(torch.stack([dst, src]),
                                  torch.ones(src.numel(), dtype=e.dtype),
                                  (N, N), check_invariants=True)
    adj = {'coo': coo, 'csr': coo.to_sparse_csr(),
           'csc': coo.to_sparse_csc()}[kind]
    return adj, e[perm], perm


def _layers():
    """``name -> (layer, call(layer, x, graph, e, u) -> (nodes, edges))``."""
    return {
        'EdgeBlock': (EdgeBlock.from_sizes(F_E, F_V, F_U, 4),
                      lambda m, x, g, e, u: (None, m(x, g, e, u))),
        'NodeBlock': (NodeBlock.from_sizes(F_E, F_V, F_U, 4, aggr='mean',
                                           use_sent_edges=True),
                      lambda m, x, g, e, u: (m(x, g, e, u), None)),
        'GlobalBlock': (GlobalBlock.from_sizes(F_E, F_V, F_U, 4),
                        lambda m, x, g, e, u: (m(x, g, e, u), None)),
        'GraphNetwork': (GraphNetwork.from_sizes(F_V, F_E, F_U, 4),
                         lambda m, x, g, e, u: (
                             torch.cat([m(x, g, e, u)[0].flatten(),
                                        m(x, g, e, u)[2].flatten()]),
                             m(x, g, e, u)[1])),
        'InteractionNetwork': (InteractionNetwork(F_V, 3, edge_channels=F_E,
                                                  effect_channels=4),
                               lambda m, x, g, e, u: m(
                                   x, g, e, return_effects=True)),
        'MPNNConv': (MPNNConv(F_V, 4, num_steps=2),
                     lambda m, x, g, e, u: (m(x, g), None)),
        'MPNNConv-edge_network': (
            MPNNConv(F_V, 4, num_steps=2, message='edge_network',
                     edge_dim=F_E),
            lambda m, x, g, e, u: (m(x, g, e), None)),
    }


@pytest.mark.parametrize('kind', ADJ_KINDS)
@pytest.mark.parametrize('name', ['EdgeBlock', 'NodeBlock', 'GlobalBlock',
                                  'GraphNetwork', 'InteractionNetwork',
                                  'MPNNConv', 'MPNNConv-edge_network'])
def test_adj_t_equals_edge_index(name, kind):
    layer, call = _layers()[name]
    layer = layer.double()
    x, e, u = _graph()
    nodes, edges = call(layer, x, EDGE_INDEX, e, u)
    graph, e_in, perm = _adj(kind, e)
    if name == 'MPNNConv' and kind == 'SparseTensor':
        # [E, F] values are edge features, which a linear message has no
        # use for: refused by name, never dropped
        with pytest.raises(ValueError, match="values of the adj_t"):
            call(layer, x, graph, e_in, u)
        return
    nodes_adj, edges_adj = call(layer, x, graph, e_in, u)
    if nodes is not None:
        assert_close(nodes_adj, nodes, msg=f'{name} nodes with {kind}')
    if edges is not None:
        assert_close(edges_adj, edges if perm is None else edges[perm],
                     msg=f'{name} edges with {kind}')


def test_adj_t_without_edges():
    block = NodeBlock.from_sizes(F_E, F_V, 0, 4).double()
    x, _, _ = _graph()
    adj = torch.sparse_coo_tensor(torch.empty(2, 0, dtype=torch.long),
                                  torch.empty(0, dtype=x.dtype), (N, N),
                                  check_invariants=True)
    out = block(x, adj.to_sparse_csr(), torch.empty(0, F_E,
                                                    dtype=x.dtype))
    expected = block.node_model(torch.cat([x.new_zeros(N, F_E), x], -1))
    assert_close(out, expected)


# --------------------------------------------------------------------------
# Lazy sizes and to_hetero.
# --------------------------------------------------------------------------
@pytest.mark.parametrize('make_lazy,make_sized', [
    (lambda: EdgeBlock.from_sizes(-1, (-1, -1), 0, 4),
     lambda: EdgeBlock.from_sizes(F_E, (F_V, F_V), 0, 4)),
    (lambda: NodeBlock.from_sizes(-1, -1, -1, 4, aggr=['sum', 'max']),
     lambda: NodeBlock.from_sizes(F_E, F_V, F_U, 4, aggr=['sum', 'max'])),
    (lambda: GlobalBlock.from_sizes(-1, -1, -1, 4),
     lambda: GlobalBlock.from_sizes(F_E, F_V, F_U, 4)),
    (lambda: GraphNetwork.from_sizes(-1, -1, -1, 4),
     lambda: GraphNetwork.from_sizes(F_V, F_E, F_U, 4)),
    (lambda: InteractionNetwork(-1, 3, edge_channels=F_E),
     lambda: InteractionNetwork(F_V, 3, edge_channels=F_E)),
])
def test_lazy_sizes_equal_given_sizes(make_lazy, make_sized):
    x, e, u = _graph(torch.float32)
    lazy, sized = make_lazy(), make_sized()
    args = (x, EDGE_INDEX, e) if isinstance(lazy, InteractionNetwork) else \
        (x, EDGE_INDEX, e, u)
    out = lazy(*args)  # sizes the layer
    sized.load_state_dict(lazy.state_dict())
    for a, b in zip(out if isinstance(out, tuple) else (out, ),
                    sized(*args) if isinstance(out, tuple) else (
                        sized(*args), )):
        assert_close(a, b)


def test_lazy_in_channels_mpnn_and_fully_connected():
    x = torch.randn(N, F_V)
    conv = MPNNConv(-1, 4, num_steps=2)
    sized = MPNNConv(F_V, 4, num_steps=2)
    sized.load_state_dict(conv.state_dict())
    assert_close(conv(x, EDGE_INDEX), sized(x, EDGE_INDEX))
    with pytest.raises(ValueError, match=r"'x' has 6 features but at most "
                                         r"out_channels=4"):
        conv(torch.randn(N, 6), EDGE_INDEX)
    linear = FullyConnectedConv(-1, 3)
    assert repr(linear) == 'FullyConnectedConv(-1, 3)'
    out = linear(x)
    assert linear.in_features == F_V and out.shape == (N, 3)
    reloaded = FullyConnectedConv(-1, 3)
    reloaded.load_state_dict(linear.state_dict())
    assert_close(reloaded(x), out)
    twin = torch.nn.Linear(F_V, 3)
    twin.weight.data = linear.weight.detach().view(3, F_V)
    twin.bias.data = linear.bias.detach()
    assert_close(out, twin(x))
    with pytest.raises(ValueError, match='lazy'):
        FullyConnectedConv(-1, 3, edge_index=EDGE_INDEX)


def _hetero():
    torch.manual_seed(0)
    data = HeteroData()
    data['a'].x = torch.randn(4, 3)
    data['b'].x = torch.randn(3, 2)
    data['a', 'to', 'b'].edge_index = torch.tensor([[0, 1, 3, 3],
                                                    [0, 1, 2, 0]])
    data['b', 'to', 'a'].edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    data['a', 'near', 'a'].edge_index = torch.tensor([[0, 1], [1, 2]])
    return data


class _OneLayer(torch.nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, edge_index):
        return self.conv(x, edge_index)


@pytest.mark.parametrize('make', [
    lambda: MPNNConv((-1, -1), 8, num_steps=2, aggr=['sum', 'mean']),
    lambda: MPNNConv(-1, 8, num_steps=1),
    lambda: NodeBlock(mlp(-1, 8), use_received_edges=False,
                      use_globals=False),
])
def test_to_hetero_without_sizes(make):
    data = _hetero()
    model = to_hetero(_OneLayer(make()), data.metadata(), aggr='sum')
    out = model(data.x_dict, data.edge_index_dict)  # sizes every copy
    assert out['a'].shape == (4, 8) and out['b'].shape == (3, 8)
    # 'b' only receives 'a' -> 'b': the bipartite call of that copy.
    conv = model.conv['a__to__b']
    assert_close(out['b'], conv((data['a'].x, data['b'].x),
                                data['a', 'to', 'b'].edge_index))


# --------------------------------------------------------------------------
# aggr=: accepted and used, MultiAggregation widens the next model.
# --------------------------------------------------------------------------
def _by_target(values, index, size):
    """Dense sum / mean / max per target (zeros where nothing arrives)."""
    onehot = torch.zeros(size, index.numel(), dtype=values.dtype)
    onehot[index, torch.arange(index.numel())] = 1.
    total = onehot @ values
    mean = total / onehot.sum(1, keepdim=True).clamp(min=1)
    masked = torch.where(onehot.bool()[..., None], values[None],
                         torch.full_like(values[None], -float('inf')))
    top = masked.max(1).values
    top = torch.where(torch.isinf(top), torch.zeros_like(top), top)
    return {'sum': total, 'mean': mean, 'max': top}


AGGRS = ['sum', 'mean', 'max']


def test_multi_aggr_node_block_with_sent_edges():
    block = NodeBlock.from_sizes(F_E, F_V, 0, 4, aggr=AGGRS,
                                 use_sent_edges=True).double()
    assert block.node_model.lins[0].in_channels == 6 * F_E + F_V
    assert repr(block) == ("NodeBlock(inputs=[received_edges, sent_edges, "
                           "nodes], aggr=['sum', 'mean', 'max'])")
    x, e, _ = _graph()
    src, dst = EDGE_INDEX
    recv, sent = _by_target(e, dst, N), _by_target(e, src, N)
    expected = block.node_model(torch.cat([recv[a] for a in AGGRS] +
                                          [sent[a] for a in AGGRS] + [x], -1))
    assert_close(block(x, EDGE_INDEX, e), expected)
    with pytest.raises(ValueError, match='use_sent_edges'):
        block((x, x[:2]), EDGE_INDEX[:, :1], e[:1])
    with pytest.raises(ValueError, match='edge_channels=0'):
        NodeBlock.from_sizes(0, F_V, 0, 4, use_sent_edges=True)


def test_multi_aggr_global_block():
    block = GlobalBlock.from_sizes(F_E, F_V, F_U, 4, edge_aggr=AGGRS,
                                   node_aggr='max').double()
    x, e, _ = _graph()
    batch = torch.tensor([0, 0, 1, 1, 1])
    u = torch.randn(2, F_U, dtype=x.dtype)
    edges = _by_target(e, batch[EDGE_INDEX[1]], 2)
    nodes = _by_target(x, batch, 2)
    expected = block.global_model(torch.cat(
        [edges[a] for a in AGGRS] + [nodes['max'], u], -1))
    assert_close(block(x, EDGE_INDEX, e, u, batch), expected)


@pytest.mark.parametrize('aggr', ['mean', AGGRS])
def test_mpnn_aggr_is_used(aggr):
    conv = MPNNConv(F_V, 4, num_steps=1, aggr=aggr).double()
    x, _, _ = _graph()
    h = torch.cat([x, x.new_zeros(N, 4 - F_V)], -1)
    messages = conv.message_blocks[0].edge_model(h)[EDGE_INDEX[0]]
    by = _by_target(messages, EDGE_INDEX[1], N)
    m = torch.cat([by[a] for a in ([aggr] if isinstance(aggr, str)
                                   else aggr)], -1)
    assert_close(conv(x, EDGE_INDEX),
                 conv.update_block.node_model.gru(m, h))


def test_interaction_network_multi_aggr():
    net = InteractionNetwork(F_V, 3, edge_channels=F_E, effect_channels=4,
                             aggr=AGGRS).double()
    x, e, _ = _graph()
    out, effects = net(x, EDGE_INDEX, e, return_effects=True)
    by = _by_target(effects, EDGE_INDEX[1], N)
    expected = net.object_block.node_model(
        torch.cat([by[a] for a in AGGRS] + [x], -1))
    assert_close(out, expected)


def test_unknown_aggr_is_refused():
    with pytest.raises(ValueError, match='foo'):
        NodeBlock.from_sizes(F_E, F_V, 0, 4, aggr='foo')
    with pytest.raises(ValueError, match='foo'):
        MPNNConv(F_V, 4, aggr='foo')


# --------------------------------------------------------------------------
# PyG argument order: size by keyword, never taken for another argument.
# --------------------------------------------------------------------------
def test_size_keyword_and_positional_size_refused():
    x, e, u = _graph()
    edge_block = EdgeBlock.from_sizes(F_E, F_V, 0, 4).double()
    node_block = NodeBlock.from_sizes(F_E, F_V, 0, 4).double()
    for call in (lambda: edge_block(x, EDGE_INDEX, e, (N, N)),
                 lambda: node_block(x, EDGE_INDEX, e, None, (N, N)),
                 lambda: MPNNConv(F_V, 4)(x, EDGE_INDEX, (N, N))):
        with pytest.raises(TypeError, match=r'size=\(5, 5\)'):
            call()
    assert_close(edge_block(x, EDGE_INDEX, e, size=(N, N)),
                 edge_block(x, EDGE_INDEX, e))
    with pytest.raises(ValueError, match="'size' is"):
        node_block(x, EDGE_INDEX, e, size=(N, N + 1))
    # Without node features the size comes from 'size' alone.
    edges_only = EdgeBlock(torch.nn.Linear(F_E, 4), use_sender_nodes=False,
                           use_receiver_nodes=False, use_globals=False)
    assert edges_only(None, EDGE_INDEX, e.float(), size=(N, N)).shape == (6, 4)


# --------------------------------------------------------------------------
# GraphNetwork attention (jraph's attention_logit_fn).
# --------------------------------------------------------------------------
def _softmax_by_receiver(logits, dst):
    """Dense reference: softmax over the edges of each receiver."""
    out = torch.empty_like(logits)
    for i in dst.unique():
        mask = dst == i
        out[mask] = torch.softmax(logits[mask], dim=0)
    return out


@pytest.mark.parametrize('heads', [None, 2])
def test_graph_network_attention(heads):
    torch.manual_seed(1)
    out = 4
    width = 2 * F_E + 2 * F_V + F_U if heads else F_E + 2 * F_V + F_U
    score = torch.nn.Linear(width, heads or 1).double()

    def logits(edge_attr, x_j, x_i, u_k):
        if heads:  # also sees the edges it weights, twice
            return score(torch.cat([edge_attr, x_j, x_i, u_k], -1))
        return score(torch.cat([edge_attr[:, :F_E], x_j, x_i, u_k],
                               -1)).squeeze(-1)

    plain = GraphNetwork.from_sizes(F_V, F_E, F_U, out,
                                    aggr='sum').double()
    gn = GraphNetwork(plain.edge_block, plain.node_block, plain.global_block,
                      attention_logit_fn=logits)
    assert repr(gn) == 'GraphNetwork(blocks=[edge, node, global], ' \
                       'attention=True)'
    x, e, u = _graph()
    src, dst = EDGE_INDEX
    e_new = plain.edge_block(x, EDGE_INDEX, e, u)
    raw = logits(e_new, x[src], x[dst], u.expand(src.numel(), -1))
    alpha = _softmax_by_receiver(raw.view(src.numel(), -1), dst)
    weighted = (e_new.view(-1, heads or 1, out // (heads or 1)) *
                alpha.unsqueeze(-1)).view(-1, out)
    x_new = plain.node_block(x, EDGE_INDEX, weighted, u)
    u_new = plain.global_block(x_new, EDGE_INDEX, weighted, u)
    for got, want in zip(gn(x, EDGE_INDEX, e, u), (x_new, weighted, u_new)):
        assert_close(got, want)
    # an EdgeIndex / adj_t input gives the same nodes and globals
    graph, e_in, _ = _adj('csr', e)
    got = gn(x, graph, e_in, u)
    assert_close(got[0], x_new)
    assert_close(got[2], u_new)


def test_graph_network_attention_bad_logits():
    gn = GraphNetwork.from_sizes(F_V, F_E, 0, 4).double()
    gn.attention_logit_fn = lambda e, x_j, x_i, u: e[:, :3]  # 3 ∤ 4
    x, e, _ = _graph()
    with pytest.raises(ValueError, match=r"logits \[E\] or \[E, H\]"):
        gn(x, EDGE_INDEX, e)
    with pytest.raises(ValueError, match='callable'):
        GraphNetwork(attention_logit_fn=3)


# --------------------------------------------------------------------------
# Issue 14: clear errors naming the argument.
# --------------------------------------------------------------------------
def test_wrong_widths_name_the_argument():
    x, e, u = _graph()
    gn = GraphNetwork.from_sizes(F_V, F_E, F_U, 4).double()
    with pytest.raises(ValueError, match=r"'x' has 4 features but the block "
                                         r"was built with node_channels=3"):
        gn(torch.randn(N, 4, dtype=x.dtype), EDGE_INDEX, e, u)
    with pytest.raises(ValueError, match=r"'edge_attr' has 3 features .* "
                                         r"edge_channels=2"):
        gn(x, EDGE_INDEX, torch.randn(6, 3, dtype=x.dtype), u)
    with pytest.raises(ValueError, match=r"'u' has 1 features .* "
                                         r"global_channels=4"):
        gn(x, EDGE_INDEX, e, u[:, :1])
    # A model given by the user: the first linear layer's width is checked.
    node = NodeBlock(torch.nn.Sequential(torch.nn.Linear(F_E + F_V, 4)),
                     use_globals=False)
    with pytest.raises(ValueError, match=r"'node_model' takes 5 input "
                                         r"features but the inputs give 6"):
        node(torch.randn(N, 4), EDGE_INDEX, e.float())
    glob = GlobalBlock(torch.nn.Linear(F_V, 2), use_edges=False,
                       use_globals=False)
    with pytest.raises(ValueError, match=r"'global_model' takes 3 .*"
                                         r"\(aggregated x 4\)"):
        glob(torch.randn(N, 4), EDGE_INDEX)


def test_bad_batch_and_num_graphs():
    x, e, u = _graph()
    gn = GraphNetwork.from_sizes(F_V, F_E, F_U, 4).double()
    u2 = torch.randn(2, F_U, dtype=x.dtype)
    with pytest.raises(ValueError, match=r"'batch' contains the negative "
                                         r"graph index -1"):
        gn(x, EDGE_INDEX, e, u2, torch.tensor([0, 0, -1, 1, 1]))
    no_u = GraphNetwork.from_sizes(F_V, F_E, 0, 4).double()
    batch = torch.tensor([0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"'num_graphs' is 2 but 'batch' "
                                         r"refers to graph 2"):
        no_u(x, EDGE_INDEX, e, batch=batch, num_graphs=2)
    with pytest.raises(ValueError, match=r"'num_graphs' is 3 but 'u' has 2"):
        gn(x, EDGE_INDEX, e, u2, torch.tensor([0, 0, 1, 1, 1]),
           num_graphs=3)
    # num_graphs above batch.max() + 1 gives empty graphs (zeros in); the
    # edges stay inside graph 0 (an edge between graphs is refused)
    out = no_u(x, EDGE_INDEX, e, batch=torch.zeros(5, dtype=torch.long),
               num_graphs=4)[2]
    assert out.shape == (4, 4)


# --------------------------------------------------------------------------
# FullyConnectedConv: execution-path API and adj_t connectivity.
# --------------------------------------------------------------------------
def test_fully_connected_paths_and_adj_t():
    layer = FullyConnectedConv(4, 3).double()
    x = torch.randn(2, 4, dtype=torch.double)
    out = layer(x)
    assert layer.last_path == 'dense'
    handle = layer.register_message_forward_hook(lambda *args: None)
    assert_close(layer(x), out)
    assert layer.last_path == 'message'  # hooks need the messages
    handle.remove()
    with pytest.raises(ValueError, match='sparse'):
        FullyConnectedConv(4, 3, path='sparse')(x.float())
    # The connectivity of a sparse adj_t [out, in] equals its edge_index.
    edge_index = torch.tensor([[0, 3, 1], [0, 0, 2]])
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(3),
                                    (3, 4),
                                    check_invariants=True).to_sparse_csr()
    sparse = FullyConnectedConv(4, 3, edge_index=adj_t).double()
    ordered = edge_index[:, torch.argsort(edge_index[1] * 4 + edge_index[0])]
    reference = FullyConnectedConv(4, 3, edge_index=ordered).double()
    reference.load_state_dict(sparse.state_dict())
    assert torch.equal(sparse.edge_index, ordered)
    assert_close(sparse(x), reference(x))


# --------------------------------------------------------------------------
# One path mechanism: every layer with execution paths takes ``path=``; the
# removed ``fused`` switch is refused by name, in the constructor and as an
# attribute (issue 21).
# --------------------------------------------------------------------------
PATH_LAYERS = {  # a small instance of every exported layer with paths
    'AttentionConv': lambda **kw: R.AttentionConv(5, 3, **kw),
    'FullyConnectedConv': lambda **kw: R.FullyConnectedConv(4, 3, **kw),
    'GATConv': lambda **kw: R.GATConv(4, 3, **kw),
    'GATv2Conv': lambda **kw: R.GATv2Conv(4, 3, **kw),
    'GatedGraphConv': lambda **kw: R.GatedGraphConv(8, 2, **kw),
    'LatticeConv': lambda **kw: R.LatticeConv(3, 4, 3, **kw),
    'MultiheadAttentionConv': lambda **kw: R.MultiheadAttentionConv(8, 2,
                                                                    **kw),
    'NonLocalBlock': lambda **kw: R.NonLocalBlock(4, **kw),
    'RecurrentConv': lambda **kw: R.RecurrentConv(3, 4, **kw),
    'TransformerDecoderLayer': lambda **kw: R.TransformerDecoderLayer(8, 2,
                                                                      **kw),
    'TransformerEncoderLayer': lambda **kw: R.TransformerEncoderLayer(8, 2,
                                                                      **kw),
}


def test_every_layer_with_paths_is_checked():
    with_paths = {name for name, obj in vars(R).items()
                  if inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
                  and 'path' in inspect.signature(obj.__init__).parameters}
    assert with_paths == set(PATH_LAYERS)


@pytest.mark.parametrize('name', sorted(PATH_LAYERS))
def test_removed_fused_is_refused_naming_path(name):
    make = PATH_LAYERS[name]
    for value in (False, True):
        with pytest.raises(TypeError, match="path="):
            make(fused=value)
    layer = make(path='message')
    assert layer.path == 'message'
    with pytest.raises(TypeError, match="path="):
        layer.fused = True
    assert layer.path == 'message'


@pytest.mark.parametrize('make', [
    lambda **kw: R.FullyConnectedConv.from_module(torch.nn.Linear(4, 3),
                                                  **kw),
    lambda **kw: R.LatticeConv.from_module(torch.nn.Conv2d(3, 4, 3), **kw),
], ids=['FullyConnectedConv', 'LatticeConv'])
def test_from_module_refuses_fused_naming_path(make):
    with pytest.raises(TypeError, match="path="):
        make(fused=False)
    assert make(path='message').path == 'message'
