"""The dense path of the dot-product attention layers (SDPA on complete,
causal and bipartite blocks): path choice and its reasons, forced paths,
structure and adjacency inputs, the block kernel's dropout, long sequences.

That the dense path equals the message path (forward, backward, second
order and attention weights on equal, ragged, causal and bipartite blocks,
every dot-product score and relative positions, NaN isolation, bfloat16,
empty and edgeless blocks, torch.compile of a structure) is the conformance
suite's (tests/conformance_cases.py: the attention-*, mha-* and
transformer-* cases)."""
import pytest
import torch

from pyg_relational import complete_graph
from pyg_relational.nn import (AttentionConv, MultiheadAttentionConv,
                               TransformerDecoderLayer,
                               TransformerEncoderLayer)
from pyg_relational.nn._dense import block_attention
from pyg_relational.structure import (BipartiteBlocks, Chains,
                                      CompleteBlocks, register)

from .helpers import assert_close


def test_block_attention_dropout_is_a_valid_dropout():
    structure = CompleteBlocks((6, 6))
    q, k, v = (torch.randn(12, 2, 4) for _ in range(3))
    out, alpha = block_attention(q, k, v, structure, dropout_p=0.5,
                                 training=True, need_weights=True)
    kept = alpha[alpha != 0]
    assert (alpha == 0).any() and kept.numel() > 0
    # kept weights are the softmax weights scaled by 1 / (1 - p)
    _, plain = block_attention(q, k, v, structure, need_weights=True)
    assert_close(kept, 2 * plain[alpha != 0])
    out2, _ = block_attention(q, k, v, structure, dropout_p=0.5,
                              training=True)
    assert out2.shape == out.shape and torch.isfinite(out2).all()


def test_path_choice_and_reasons():
    x = torch.randn(7, 5)
    conv = AttentionConv(5, 3, heads=2, score='scaled_dot')
    conv(x, complete_graph([4, 3]))
    assert conv.last_path == 'dense' and conv.why_not_faster is None
    # an empty batch, and a block without sources, are blocks too
    conv(torch.randn(0, 5), CompleteBlocks(()))
    assert conv.last_path == 'dense'
    pair = AttentionConv((5, 4), 3, heads=2, score='dot')
    pair((torch.randn(2, 5), torch.randn(5, 4)),
         BipartiteBlocks((0, 2), (3, 2)))
    assert pair.last_path == 'dense'
    random = torch.tensor([[0, 3, 5, 6], [1, 1, 2, 6]])
    conv(x, random)
    assert conv.last_path == 'sparse'
    assert 'no known block structure' in conv.why_not_faster['dense']
    # a multigraph: a repeated edge is two messages, on the sparse path too
    doubled = torch.cat([random, random], 1)
    out = conv(x, doubled)
    assert conv.last_path == 'sparse'
    conv.path = 'message'
    assert_close(out, conv(x, doubled))
    conv.path = 'auto'
    gat = AttentionConv(5, 3, heads=2)  # no dot product: sparse
    gat(x, complete_graph(7))
    assert gat.last_path == 'sparse'
    assert 'not a dot product' in gat.why_not_faster['dense']
    rel = AttentionConv(5, 3, score='scaled_dot', num_edge_types=3)
    rel(x, complete_graph(7), edge_type=torch.zeros(49, dtype=torch.long))
    assert rel.last_path == 'dense'
    rel(x, random, edge_type=torch.zeros(4, dtype=torch.long))
    assert rel.last_path == 'sparse'
    # fused= was removed: refused with the name of path=
    with pytest.raises(TypeError, match="path='message'"):
        AttentionConv(5, 3, score='dot', fused=False)
    with pytest.raises(TypeError, match='path='):
        conv.fused = False


@pytest.mark.parametrize('path, graph, match', [
    ('dense', torch.tensor([[0, 3, 5], [1, 1, 2]]), 'no known block structure'),
    ('dense', Chains((7, )), 'Chains graphs have no dense'),
    ('dense', CompleteBlocks((4, 3), self_loops=False), 'without self-loops'),
])
def test_forced_path_errors(path, graph, match):
    conv = AttentionConv(5, 3, heads=2, score='scaled_dot', path=path)
    with pytest.raises(ValueError, match=match):
        conv(torch.randn(7, 5), graph)
    if path == 'dense':
        with pytest.raises(ValueError, match='not a dot product'):
            AttentionConv(5, 3, path=path)(torch.randn(7, 5),
                                           complete_graph(7))
    with pytest.raises(ValueError, match="Unknown path='fast'"):
        AttentionConv(5, 3, path='fast')


def test_structure_input_checks_node_counts():
    conv = AttentionConv(5, 3, score='scaled_dot')
    with pytest.raises(ValueError, match='describes 6 source nodes'):
        conv(torch.randn(7, 5), CompleteBlocks((3, 3)))


def test_plain_edge_index_is_recognised():
    """An unregistered complete graph (a copy) is recognised exactly and
    takes the dense path; a near-complete one is not."""
    conv = AttentionConv(5, 3, heads=2, score='scaled_dot')
    x = torch.randn(7, 5)
    copy = complete_graph([4, 3]).clone()
    assert_close(conv(x, copy), conv(x, CompleteBlocks((4, 3))))
    assert conv.last_path == 'dense'
    conv(x, copy[:, 1:])
    assert conv.last_path == 'sparse'


def test_sparse_adjacency_inputs():
    conv = AttentionConv(5, 3, heads=2, score='scaled_dot').double()
    x = torch.randn(7, 5, dtype=torch.float64)
    edge_index = complete_graph([4, 3], causal=True)
    expected = conv(x, edge_index)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0),
                                    torch.ones(edge_index.size(1)), (7, 7),
                                    check_invariants=True)
    assert_close(conv(x, adj_t), expected)
    assert_close(conv(x, adj_t.to_sparse_csr()), expected)
    weighted = torch.sparse_coo_tensor(edge_index.flip(0),
                                       torch.rand(edge_index.size(1)), (7, 7),
                                       check_invariants=True)
    with pytest.raises(ValueError, match='values of the adj_t'):
        conv(x, weighted)


def test_edge_index_class_input():
    from torch_geometric import EdgeIndex
    conv = AttentionConv(5, 3, heads=2, score='dot')
    x, edge_index = torch.randn(7, 5), complete_graph(7)
    out = conv(x, EdgeIndex(edge_index, sparse_size=(7, 7)))
    assert_close(out, conv(x, edge_index))


def test_size_is_keyword_only_and_checked():
    conv = AttentionConv(5, 3, heads=2, score='scaled_dot')
    x = torch.randn(10, 5)
    edge_index = torch.tensor([[9, 8, 0], [0, 4, 4]])
    # PyG order (x, edge_index, edge_attr, size) never lands in edge_type
    with pytest.raises(TypeError, match='positional'):
        conv(x, edge_index, None, (10, 5))
    # a single x with size=(N, M): the first M nodes are the targets
    out = conv(x, edge_index, size=(10, 5))
    assert out.shape == (5, 6)
    assert_close(out, conv((x, x[:5]), edge_index))
    with pytest.raises(ValueError, match=r'size=\(9, 5\) does not match'):
        conv(x, edge_index, size=(9, 5))


def test_transformer_layers_take_the_dense_path():
    T, B, d = 5, 3, 8
    enc = TransformerEncoderLayer(d, 2, 16, dropout=0.)
    dec = TransformerDecoderLayer(d, 2, 16, dropout=0.)
    x, memory = torch.randn(T * B, d), torch.randn(4 * B, d)
    out = enc(x, CompleteBlocks((T, ) * B))
    assert enc.self_attn.last_path == 'dense'
    assert_close(out, enc(x, complete_graph([T] * B)))
    self_graph = CompleteBlocks((T, ) * B, causal=True)
    cross_graph = BipartiteBlocks((4, ) * B, (T, ) * B)
    out = dec(x, memory, self_graph, cross_graph)
    assert dec.self_attn.last_path == 'dense'
    assert dec.multihead_attn.last_path == 'dense'
    dec.self_attn.path = dec.multihead_attn.path = 'message'
    assert_close(out, dec(x, memory, self_graph.edge_index(),
                          cross_graph.edge_index()))


def test_long_sequence_never_builds_edges():
    """A 2048-token complete graph given as a structure: forward+backward
    without an [E]-sized tensor (E = 4M; the largest tensor is [T, d])."""
    T, d = 2048, 16
    conv = MultiheadAttentionConv(d, 2)
    x = torch.randn(T, d, requires_grad=True)
    largest = []

    def pack(t):
        largest.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = conv(x, CompleteBlocks((T, )))
    out.sum().backward()
    assert conv.last_path == 'dense'
    assert max(largest) < T * T
    assert torch.isfinite(x.grad).all()


def test_registered_graph_skips_edge_checks():
    """A graph registered with a structure is trusted to be that structure
    (the builders register theirs); a structure that does not fit the
    node counts is not used."""
    conv = AttentionConv(5, 3, score='scaled_dot')
    edge_index = register(complete_graph(4).clone(), CompleteBlocks((4, )))
    conv(torch.randn(4, 5), edge_index)
    assert conv.last_path == 'dense'
    with pytest.raises(IndexError):
        conv(torch.randn(3, 5), edge_index)
