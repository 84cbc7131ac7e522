import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv

from pyg_relational import bipartite_graph, complete_graph, window_graph
from pyg_relational.nn import (AttentionConv, BahdanauAttention,
                               LuongAttention, attention_score, edge_softmax)
from pyg_relational.nn.attention import SCORES

from .helpers import device  # noqa: F401 (fixture: every available device)
from .helpers import graph_to
from .helpers import (assert_close, assert_edge_order_invariant, assert_twin,
                      dtypes, empty_graph)

SCORE_NAMES = ['dot', 'scaled_dot', 'general', 'additive', 'concat', 'gat',
               'gatv2', 'location']


def _conv(score, in_channels=5, out_channels=3, heads=2, **kwargs):
    if score == 'location':
        kwargs.setdefault('num_types', 7)
    return AttentionConv(in_channels, out_channels, heads=heads, score=score,
                         **kwargs)


def _types(score, edge_index):
    """Edge types for the scores that read them (source position < 7)."""
    return edge_index[0] % 7 if score == 'location' else None


# --- twin: GATConv ---------------------------------------------------------

GAT_CONFIGS = [
    dict(heads=1),
    dict(heads=3),
    dict(heads=2, concat=False),
    dict(heads=2, add_self_loops=False),
    dict(heads=2, edge_dim=3),
    dict(heads=2, bias=False, negative_slope=0.1),
]


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('config', GAT_CONFIGS, ids=str)
def test_gat_twin(config, dtype, device):
    gat = GATConv(5, 4, **config).to(device, dtype)
    conv = AttentionConv.from_module(gat)
    edge_index = torch.randint(0, 6, (2, 20)).to(device)
    inputs = [torch.randn(6, 5, dtype=dtype).to(device)]
    if config.get('edge_dim'):
        inputs.append(torch.randn(20, 3, dtype=dtype).to(device))
    params = [(lambda: conv.lin_src.weight.grad, lambda: gat.lin.weight.grad),
              (lambda: conv.score.att_src.grad, lambda: gat.att_src.grad),
              (lambda: conv.score.att_dst.grad, lambda: gat.att_dst.grad)]
    if gat.bias is not None:
        params.append((lambda: conv.bias.grad, lambda: gat.bias.grad))
    if config.get('edge_dim'):
        params.append((lambda: conv.lin_edge.weight.grad,
                       lambda: gat.lin_edge.weight.grad))
    assert_twin(lambda *a: conv(a[0], edge_index, *a[1:]),
                lambda *a: gat(a[0], edge_index, *a[1:]), inputs, params)



@pytest.mark.parametrize('dtype', dtypes())
def test_gat_twin_in_training_mode(dtype):
    """Dropout on alpha in training mode draws the same mask as GATConv
    under the same seed (graph with existing self-loops, as on Planetoid)."""
    gat = GATConv(5, 4, heads=3, dropout=0.6).to(dtype).train()
    conv = AttentionConv.from_module(gat).train()
    edge_index = torch.cat([torch.randint(0, 6, (2, 20)),
                            torch.arange(3).repeat(2, 1)], dim=1)
    x = torch.randn(6, 5, dtype=dtype)

    def seeded(layer):
        def run(x):
            torch.manual_seed(123)
            return layer(x, edge_index)
        return run

    assert_twin(seeded(conv), seeded(gat), [x],
                [(lambda: conv.lin_src.weight.grad,
                  lambda: gat.lin.weight.grad),
                 (lambda: conv.score.att_src.grad,
                  lambda: gat.att_src.grad)])

@pytest.mark.parametrize('kwargs', [
    dict(in_channels=7, heads=3),
    dict(in_channels=(7, 5), heads=2),
    dict(in_channels=7, heads=2, edge_dim=3, concat=False),
])
def test_gat_same_seed_same_start(kwargs):
    """score='gat' draws its parameters in GATConv's order: one seed gives
    GATConv's initial weights and leaves the random stream where GATConv
    leaves it (so a training run is GATConv's run)."""
    torch.manual_seed(11)
    gat = GATConv(out_channels=4, **kwargs)
    after_gat = torch.rand(5)
    torch.manual_seed(11)
    conv = AttentionConv(out_channels=4, score='gat', add_self_loops=True,
                         **kwargs)
    after_conv = torch.rand(5)
    expected = AttentionConv.from_module(gat).state_dict()
    got = conv.state_dict()
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    assert torch.equal(after_conv, after_gat)


@pytest.mark.parametrize('dtype', dtypes())
def test_gat_twin_bipartite(dtype):
    gat = GATConv((5, 3), 4, heads=2, add_self_loops=False).to(dtype)
    conv = AttentionConv.from_module(gat)
    edge_index = torch.stack([torch.randint(0, 6, (15, )),
                              torch.randint(0, 4, (15, ))])
    inputs = [torch.randn(6, 5, dtype=dtype), torch.randn(4, 3, dtype=dtype)]
    params = [(lambda: conv.lin_src.weight.grad,
               lambda: gat.lin_src.weight.grad),
              (lambda: conv.lin_dst.weight.grad,
               lambda: gat.lin_dst.weight.grad)]
    assert_twin(lambda xs, xd: conv((xs, xd), edge_index),
                lambda xs, xd: gat((xs, xd), edge_index), inputs, params)


def test_gat_attention_weights_match():
    gat = GATConv(5, 4, heads=2).double()
    conv = AttentionConv.from_module(gat)
    x, edge_index = torch.randn(6, 5).double(), torch.randint(0, 6, (2, 12))
    _, (ei_a, alpha_a) = conv(x, edge_index, return_attention_weights=True)
    _, (ei_b, alpha_b) = gat(x, edge_index, return_attention_weights=True)
    assert torch.equal(ei_a, ei_b)
    assert_close(alpha_a, alpha_b)


# --- score functions against their formulas --------------------------------


def _dense_logit(name, score, q, k, t):
    """Logit of one edge from the formulas in the module docstring: q [H, C_q],
    k [H, C_k], t the edge type."""
    if name == 'dot':
        return (q * k).sum(-1)
    if name == 'scaled_dot':
        return (q * k).sum(-1) / math.sqrt(k.size(-1))
    if name == 'general':
        return torch.stack([q[h] @ score.weight[h] @ k[h]
                            for h in range(q.size(0))])
    if name == 'additive':
        return torch.stack([
            score.att[h] @ torch.tanh(q[h] @ score.weight_query[h] +
                                      k[h] @ score.weight_key[h])
            for h in range(q.size(0))
        ])
    if name in ('concat', 'gat'):
        a = torch.cat([score.att_dst[0], score.att_src[0]], dim=-1)  # [H, 2C]
        return F.leaky_relu((a * torch.cat([q, k], -1)).sum(-1), 0.2)
    if name == 'gatv2':  # a^T LeakyReLU(q_i + k_j), per head
        return (score.att[0] * F.leaky_relu(q + k, 0.2)).sum(-1)
    if name == 'location':
        return torch.stack([(q[h] @ score.weight[h] + score.bias[h])[t]
                            for h in range(q.size(0))])
    raise AssertionError(name)


@pytest.mark.parametrize('name', SCORE_NAMES)
def test_score_matches_formula(name):
    kwargs = {'num_types': 4} if name == 'location' else {}
    score = attention_score(name, 2, 3, 3, **kwargs).double()
    q, k = torch.randn(4, 2, 3).double(), torch.randn(5, 2, 3).double()
    edge_index = bipartite_graph(5, 4)
    edge_type = edge_index[0] % 4
    logits = score(q, k, edge_index, edge_type)
    assert logits.shape == (20, 2)
    for e in range(20):
        j, i = edge_index[:, e].tolist()
        assert_close(logits[e], _dense_logit(name, score, q[i], k[j],
                                             int(edge_type[e])))


def test_score_registry_and_repr():
    assert set(SCORE_NAMES) == set(SCORES)
    assert SCORES['gat'] is SCORES['concat']
    assert repr(attention_score('dot', 2, 3, 3)) == \
        'DotScore(heads=2, query_channels=3, key_channels=3)'


def test_edge_softmax_large_logits_and_empty():
    index = torch.tensor([0, 0, 1, 1, 1])
    logits = torch.tensor([1e4, -1e4, 3e4, 3e4, 0.])
    alpha = edge_softmax(logits, index, num_nodes=3)  # target 2: no edges
    assert torch.isfinite(alpha).all()
    assert_close(alpha, torch.tensor([1., 0., .5, .5, 0.]))
    empty = edge_softmax(torch.empty(0, 2), torch.empty(0, dtype=torch.long),
                         num_nodes=4)
    assert empty.shape == (0, 2)


# --- AttentionConv properties, every score ---------------------------------


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('score', SCORE_NAMES)
def test_attention_conv_against_dense(score, dtype):
    """out_i = || sum_j softmax_j(score(W_Q x_i, W_K x_j)) W_V x_j + b,
    computed densely per target."""
    conv = _conv(score).to(dtype)
    x = torch.randn(6, 5, dtype=dtype)
    edge_index = torch.randint(0, 6, (2, 14))
    edge_type = _types(score, edge_index)
    out, (_, alpha) = conv(x, edge_index, edge_type=edge_type,
                           return_attention_weights=True)
    q, k, v = conv._project(x, x)
    H, C = 2, 3
    for i in range(6):
        mask = edge_index[1] == i
        if not mask.any():
            assert_close(out[i], conv.bias)
            continue
        src = edge_index[0, mask]
        t = edge_type[mask] if edge_type is not None else [0] * len(src)
        logits = torch.stack([
            _dense_logit(score, conv.score, q[i], k[j], int(tt))
            for j, tt in zip(src.tolist(), t)
        ])  # [deg, H]
        a = torch.softmax(logits, dim=0)
        assert_close(alpha[mask], a)
        expected = (a.unsqueeze(-1) * v[src]).sum(0).reshape(H * C)
        assert_close(out[i], expected + conv.bias)


@pytest.mark.parametrize('score', SCORE_NAMES)
def test_attention_conv_edge_order_invariant(score):
    conv = _conv(score)
    x = torch.randn(6, 5)
    edge_index = torch.randint(0, 6, (2, 20))
    assert_edge_order_invariant(
        lambda ei, et: conv(x, ei, edge_type=et), edge_index,
        _types(score, edge_index))


@pytest.mark.parametrize('score', SCORE_NAMES)
def test_attention_conv_permutation_equivariant(score):
    """Complete graph: permuting the nodes permutes the output."""
    conv = _conv(score).double()
    x = torch.randn(7, 5).double()
    edge_index = complete_graph(7)
    perm = torch.randperm(7)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(7)
    # location reads the edge type; the source's identity moves with it.
    types = (lambda ei, relabel: relabel[ei[0]] % 7) \
        if score == 'location' else (lambda ei, relabel: None)
    out = conv(x, edge_index, edge_type=types(edge_index, torch.arange(7)))
    # node n of the permuted graph is old node perm[n]
    out_perm = conv(x[perm], edge_index,
                    edge_type=types(edge_index, perm))
    assert_close(out_perm, out[perm])


@pytest.mark.parametrize('score', SCORE_NAMES)
def test_attention_conv_empty_and_isolated(score):
    conv = _conv(score, bias=False)
    # 0 nodes, 0 edges
    out = conv(torch.randn(0, 5), empty_graph(),
               edge_type=torch.empty(0, dtype=torch.long)
               if score == 'location' else None)
    assert out.shape == (0, 6)
    # nodes without incoming edges: zeros, never NaN; gradients finite
    x = torch.randn(4, 5, requires_grad=True)
    edge_index = torch.tensor([[0, 1], [1, 1]])
    out = conv(x, edge_index, edge_type=_types(score, edge_index))
    assert torch.equal(out[[0, 2, 3]], torch.zeros(3, 6))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('score', SCORE_NAMES)
def test_attention_conv_one_node(score):
    """One node with its self-loop: alpha = 1, out = W_V x + b."""
    conv = _conv(score)
    x, edge_index = torch.randn(1, 5), complete_graph(1)
    out, (_, alpha) = conv(x, edge_index, edge_type=_types(score, edge_index),
                           return_attention_weights=True)
    assert torch.equal(alpha, torch.ones(1, 2))
    _, _, value = conv._project(x, x)
    assert_close(out, value.reshape(1, 6) + conv.bias)


@pytest.mark.parametrize('score', ['dot', 'scaled_dot', 'gat'])
def test_attention_conv_large_logits_finite(score):
    conv = _conv(score)
    x = 1e4 * torch.randn(5, 5)
    with torch.no_grad():  # make the logits ~1e4 and above
        for p in conv.parameters():
            p.mul_(10.)
    out, (_, alpha) = conv(x, complete_graph(5),
                           return_attention_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(alpha).all()
    sums = torch.zeros(5, 2).index_add_(0, complete_graph(5)[1], alpha)
    assert_close(sums, torch.ones(5, 2))


@pytest.mark.parametrize('score', SCORE_NAMES)
def test_attention_conv_batch_equals_separate_graphs(score):
    conv = _conv(score, concat=False)
    x = torch.randn(7, 5)
    edge_index = complete_graph([4, 3])
    edge_type = _types(score, edge_index)
    out = conv(x, edge_index, edge_type=edge_type)
    first = complete_graph(4)
    assert_close(out[:4], conv(x[:4], first, edge_type=_types(score, first)))
    second = complete_graph(3)
    types2 = None if edge_type is None else (second[0] + 4) % 7
    assert_close(out[4:], conv(x[4:], second, edge_type=types2))


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('score, num_edge_types, graph', [
    ('dot', None, 'random'), ('scaled_dot', None, 'random'),
    ('general', None, 'random'), ('scaled_dot', 5, 'random'),
    ('dot', 5, 'sorted'), ('scaled_dot', None, 'duplicates'),
    ('scaled_dot', None, 'bipartite'),
])
def test_fused_path_equals_message_path(score, num_edge_types, graph, dtype):
    """The CSR (SDDMM + SpMM) path and the message path: same outputs,
    weights and gradients (nanoGPT's fast path vs slow path)."""
    fast = _conv(score, num_edge_types=num_edge_types).to(dtype)
    if num_edge_types:
        with torch.no_grad():
            fast.rel_value.normal_()
    slow = _conv(score, num_edge_types=num_edge_types,
                 path='message').to(dtype)
    slow.load_state_dict(fast.state_dict())
    x_src, x_dst = torch.randn(7, 5, dtype=dtype), None
    edge_index = torch.unique(torch.randint(0, 7, (2, 30)), dim=1)
    if graph == 'random':
        edge_index = edge_index[:, torch.randperm(edge_index.size(1))]
    elif graph == 'duplicates':  # a repeated edge: two messages, CSR too
        edge_index = torch.cat([edge_index, edge_index[:, :3]], dim=1)
    elif graph == 'bipartite':
        x_dst = torch.randn(4, 5, dtype=dtype)
        edge_index = bipartite_graph(7, 4)
    edge_type = None if num_edge_types is None else \
        torch.randint(0, num_edge_types, (edge_index.size(1), ))

    def run(conv):
        def fn(*x):
            return conv(x if len(x) == 2 else x[0], edge_index,
                        edge_type=edge_type, return_attention_weights=True)
        return fn

    inputs = [x_src] if x_dst is None else [x_src, x_dst]
    assert_twin(run(fast), run(slow), inputs,
                [(lambda: fast.lin_query.weight.grad,
                  lambda: slow.lin_query.weight.grad),
                 (lambda: fast.lin_value.weight.grad,
                  lambda: slow.lin_value.weight.grad)])


def test_attention_conv_bipartite_and_edge_features():
    conv = AttentionConv((5, 3), 4, heads=2, score='additive', edge_dim=2)
    x_src, x_dst = torch.randn(6, 5), torch.randn(3, 3)
    edge_index = bipartite_graph(6, 3)
    out = conv((x_src, x_dst), edge_index, torch.randn(18, 2))
    assert out.shape == (3, 8)
    # the edge features change the weights
    out2 = conv((x_src, x_dst), edge_index, torch.randn(18, 2))
    assert not torch.allclose(out, out2)


def test_attention_conv_dropout():
    conv = _conv('scaled_dot', dropout=0.5)
    x, edge_index = torch.randn(6, 5), complete_graph(6)
    conv.eval()
    assert torch.equal(conv(x, edge_index), conv(x, edge_index))
    conv.train()
    _, (_, alpha) = conv(x, edge_index, return_attention_weights=True)
    assert (alpha == 0).any()


def test_attention_conv_repr():
    assert repr(AttentionConv(8, 4, heads=2, score='gat')) == \
        "AttentionConv(8, 4, heads=2, score='gat')"
    assert repr(AttentionConv((8, 3), 4)) == \
        "AttentionConv((8, 3), 4, heads=1, score='gat')"


@pytest.mark.parametrize('make, call, match', [
    (lambda: AttentionConv(5, 3, score='cosine'), None, "Unknown score"),
    (lambda: AttentionConv(5, 3, score='gat', num_edge_types=3), None,
     'linear in the key'),
    (lambda: AttentionConv(5, 3, score='location'), None, 'num_types'),
    (lambda: attention_score('dot', 1, 3, 4), None, 'query_channels =='),
    (lambda: _conv('gat'), lambda c: c(torch.randn(4, 6), complete_graph(4)),
     "'x' must have 5 features"),
    (lambda: _conv('gat'),
     lambda c: c(torch.randn(4, 5), complete_graph(4).t()),
     r'shape \[2, E\]'),
    (lambda: _conv('gat'), lambda c: c(torch.randn(4, 5), complete_graph(4)
                                        .float()), 'torch.long'),
    (lambda: _conv('gat'), lambda c: c(torch.randn(4, 5), torch.tensor(
        [[-1], [0]])), 'negative node index'),
    (lambda: _conv('location'), lambda c: c(torch.randn(4, 5),
                                            complete_graph(4)), 'edge_type'),
    (lambda: _conv('location'), lambda c: c(
        torch.randn(4, 5), complete_graph(4),
        edge_type=torch.full((16, ), 9)), r'\[0, 7\)'),
    (lambda: _conv('gat'), lambda c: c(torch.randn(4, 5), complete_graph(4),
                                       torch.randn(16, 2)), 'edge_dim'),
    (lambda: _conv('gat'), lambda c: c(torch.randn(4, 5), complete_graph(4),
                                       edge_type=torch.zeros(16).long()),
     'does not use it'),
    (lambda: _conv('gat', edge_dim=2), lambda c: c(
        torch.randn(4, 5), complete_graph(4), torch.randn(15, 2)),
     '15 rows but there are 16 edges'),
    (lambda: attention_score('dot', 2, 3, 3),
     lambda s: s(torch.randn(4, 3), torch.randn(4, 2, 3), complete_graph(4)),
     r"'query' of DotScore must have shape \[N, 2, 3\]"),
    (lambda: AttentionConv, lambda c: c.from_module(torch.nn.Linear(2, 2)),
     'expects a torch_geometric.nn.GATConv'),
])
def test_attention_conv_bad_input(make, call, match):
    with pytest.raises((ValueError, IndexError), match=match):
        obj = make()
        call(obj)


def test_attention_conv_index_out_of_range():
    with pytest.raises(IndexError, match='source index 9'):
        _conv('gat')(torch.randn(4, 5), torch.tensor([[9], [0]]))


# --- Bahdanau and Luong against the papers' formulas -----------------------


@pytest.mark.parametrize('dtype', dtypes())
def test_bahdanau_against_paper(dtype):
    attn = BahdanauAttention(4, 3, attention_channels=5).to(dtype)
    h = torch.randn(7, 3, dtype=dtype, requires_grad=True)  # encoder
    s = torch.randn(5, 4, dtype=dtype, requires_grad=True)  # decoder
    src_sizes, dst_sizes = [4, 3], [2, 3]
    context, (edge_index, alpha) = attn(s, h,
                                        bipartite_graph(src_sizes, dst_sizes))
    W, U = attn.score.weight_query[0], attn.score.weight_key[0]
    v = attn.score.att[0]
    expected, expected_alpha = [], []
    for b, (src0, dst0) in enumerate([(0, 0), (4, 2)]):
        enc = h[src0:src0 + src_sizes[b]]
        for t in range(dst0, dst0 + dst_sizes[b]):
            # e_tj = v^T tanh(W s_t + U h_j)
            e = torch.tanh(s[t] @ W + enc @ U) @ v
            a = torch.softmax(e, 0)
            expected_alpha.append(a)
            expected.append(a @ enc)
    assert_close(context, torch.stack(expected))
    assert_close(alpha, torch.cat(expected_alpha))
    assert repr(attn) == 'BahdanauAttention(4, 3, attention_channels=5)'


def _luong_reference(attn, h_dec, h_enc, src_sizes, dst_sizes):
    """Luong et al. 2015, eq. (7)-(10), per target, written densely."""
    D = attn.window
    out, src0, dst0 = [], 0, 0
    for S, T in zip(src_sizes, dst_sizes):
        enc = h_enc[src0:src0 + S]
        for t in range(T):
            ht = h_dec[dst0 + t]
            if attn.score_name == 'dot':
                score = enc @ ht
            elif attn.score_name == 'general':
                score = enc @ (ht @ attn.score.weight[0])
            elif attn.score_name == 'concat':
                sc = attn.score
                score = torch.tanh(ht @ sc.weight_query[0] +
                                   enc @ sc.weight_key[0]) @ sc.att[0]
            else:  # location: a_t = softmax(W_a h_t), first S positions
                sc = attn.score
                score = (ht @ sc.weight[0] + sc.bias[0])[:S]
            s = torch.arange(S, dtype=h_enc.dtype)
            if attn.mode == 'global':
                keep, gauss, p = torch.ones(S, dtype=torch.bool), 1., None
            else:
                if attn.mode == 'local-m':
                    p = torch.tensor(float(t), dtype=h_enc.dtype)
                else:
                    p = S * torch.sigmoid(
                        attn.att_position @ torch.tanh(
                            attn.lin_position.weight @ ht))
                keep = (s - p).abs() <= D + 1e-9 if attn.mode == 'local-p' \
                    else (s - p).abs() <= D
                gauss = torch.exp(-(s - p)**2 / (2 * (D / 2)**2)) \
                    if attn.mode == 'local-p' else 1.
            if not keep.any():
                out.append(torch.zeros_like(enc[0]))
                continue
            a = torch.zeros(S, dtype=h_enc.dtype)
            a[keep] = torch.softmax(score[keep], 0)
            a = a * gauss
            out.append(a @ enc)
        src0, dst0 = src0 + S, dst0 + T
    return torch.stack(out)


@pytest.mark.parametrize('mode', ['global', 'local-m', 'local-p'])
@pytest.mark.parametrize('score', ['dot', 'general', 'concat', 'location'])
def test_luong_against_paper(score, mode):
    attn = LuongAttention(4, score=score, mode=mode,
                          window=None if mode == 'global' else 2,
                          max_source_length=8).double()
    h_enc, h_dec = torch.randn(13, 4).double(), torch.randn(6, 4).double()
    src_sizes, dst_sizes = [8, 5], [4, 2]
    context, (edge_index, alpha) = attn(h_dec, h_enc, src_sizes, dst_sizes)
    assert alpha.shape == (edge_index.size(1), )
    assert_close(context, _luong_reference(attn, h_dec, h_enc, src_sizes,
                                           dst_sizes))


def test_luong_local_p_learns_position():
    attn = LuongAttention(4, score='dot', mode='local-p', window=2)
    h_dec = torch.randn(3, 4)
    context, _ = attn(h_dec, torch.randn(6, 4), 6, 3)
    context.sum().backward()
    assert attn.att_position.grad is not None
    assert attn.att_position.grad.abs().sum() > 0
    assert repr(attn) == \
        "LuongAttention(4, 4, score='dot', mode='local-p', window=2)"


def test_luong_local_p_nan_query_stays_in_its_target():
    attn = LuongAttention(4, score='dot', mode='local-p', window=2)
    h_dec = torch.randn(4, 4)
    h_dec[1] = float('nan')  # its p_t is NaN
    context, _ = attn(h_dec, torch.randn(11, 4), [6, 5], [2, 2])
    assert torch.isnan(context[1]).all()
    assert torch.isfinite(context[[0, 2, 3]]).all()


def test_luong_local_m_is_window_graph():
    attn = LuongAttention(4, score='dot', mode='local-m', window=1)
    _, (edge_index, _) = attn(torch.randn(3, 4), torch.randn(5, 4), 5, 3)
    assert torch.equal(edge_index, window_graph(5, 3, radius=1))


@pytest.mark.parametrize('make, call, match', [
    (lambda: LuongAttention(4, score='cosine'), None, 'Unknown score'),
    (lambda: LuongAttention(4, mode='local'), None, 'Unknown mode'),
    (lambda: LuongAttention(4, mode='local-m'), None, "needs 'window'"),
    (lambda: LuongAttention(4, score='location'), None, 'max_source_length'),
    (lambda: LuongAttention(4, score='location', max_source_length=3),
     lambda a: a(torch.randn(2, 4), torch.randn(5, 4), 5, 2),
     'exceeds max_source_length=3'),
    (lambda: LuongAttention(4), lambda a: a(torch.randn(2, 4),
                                            torch.randn(5, 4), 4, 2),
     "'src_sizes' adds up to 4 but there are 5"),
    (lambda: LuongAttention(4), lambda a: a(torch.randn(2, 3),
                                            torch.randn(5, 4), 5, 2),
     "'query' must have 4 features"),
    (lambda: BahdanauAttention(4, 3),
     lambda a: a(torch.randn(2, 4), torch.randn(5, 3), bipartite_graph(5, 2),
                 value=torch.randn(4, 3)), "one row per key"),
    (lambda: BahdanauAttention(4, 3),
     lambda a: a(torch.randn(2, 4), torch.randn(5, 3), bipartite_graph(6, 2)),
     'source index 5'),
])
def test_luong_bahdanau_bad_input(make, call, match):
    with pytest.raises((ValueError, IndexError), match=match):
        obj = make()
        call(obj)


# --- benchmark functions (quick sizes) -------------------------------------


def test_bench_twin_cases_pass():
    from pyg_relational.bench.attention import twin_cases
    results = twin_cases(quick=True)
    assert {r.twin for r in results} >= {
        'GATConv', 'nn.MultiheadAttention', 'nn.TransformerEncoderLayer',
        'nn.TransformerDecoderLayer'}
    assert all(r.passed for r in results), [r for r in results
                                            if not r.passed]


def test_bench_speed_and_seq2seq_rows():
    from pyg_relational.bench.attention import run_seq2seq, speed_cases
    seen = []
    speed = speed_cases(quick=True, progress=seen.append, repeat=1,
                        memory=False)
    assert len(speed) == len(seen) == 7
    assert all(r.graph_s > 0 and r.baseline_s > 0 for r in speed)
    rows = run_seq2seq(quick=True, steps=1, test_size=2, lengths=(3, 4),
                       models=('bahdanau', 'luong-local-p'))
    assert len(rows) == 2 * 2
    assert all(0. <= r['accuracy'] <= 1. for r in rows)
    with pytest.raises(ValueError, match="Unknown model 'lstm'"):
        run_seq2seq(quick=True, models=['lstm'])


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('score, kwargs', [
    ('gat', {}), ('gat', dict(edge_dim=3, add_self_loops=True)),
    ('concat', dict(negative_slope=0.)), ('additive', {}),
    ('location', {}), ('scaled_dot', dict(edge_dim=3)),
])
def test_sparse_path_every_score(score, kwargs, dtype):
    """Every score runs on the sparse path (logits from the per-node
    projections, the sum as SpMM per head): the message path's outputs,
    weights and gradients of the inputs and of every parameter."""
    fast = _conv(score, **kwargs).to(dtype)
    slow = _conv(score, path='message', **kwargs).to(dtype)
    slow.load_state_dict(fast.state_dict())
    edge_index = torch.unique(torch.randint(0, 7, (2, 30)), dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1))]
    edge_type = _types(score, edge_index)
    inputs = [torch.randn(7, 5, dtype=dtype)]
    if kwargs.get('edge_dim'):
        inputs.append(torch.randn(edge_index.size(1), 3, dtype=dtype))

    def run(conv):
        def fn(x, *edge_attr):
            out, (_, alpha) = conv(x, edge_index, *edge_attr,
                                   edge_type=edge_type,
                                   return_attention_weights=True)
            return out, alpha
        return fn

    run(slow)(*inputs)[0].sum().backward()  # the parameters that are used
    used = [n for n, p in slow.named_parameters() if p.grad is not None]
    slow.zero_grad(set_to_none=True)
    fast_p, slow_p = dict(fast.named_parameters()), dict(
        slow.named_parameters())
    params = [(lambda n=n: fast_p[n].grad, lambda n=n: slow_p[n].grad)
              for n in used]
    assert_twin(run(fast), run(slow), inputs, params)
    assert fast.last_path == 'sparse' and slow.last_path == 'message'


def test_gat_self_loops_kept_per_graph():
    """add_self_loops=True: the looped graph is kept per edge_index tensor
    (so its CSR pattern is built once); an in-place change of the graph is
    seen."""
    gat = GATConv(5, 4, heads=2).double()
    conv = AttentionConv.from_module(gat)
    x = torch.randn(6, 5, dtype=torch.float64)
    edge_index = torch.unique(torch.randint(0, 6, (2, 20)), dim=1)
    for _ in range(2):
        assert_close(conv(x, edge_index), gat(x, edge_index))
        assert conv.last_path == 'sparse'
    edge_index[0, :5] = (edge_index[0, :5] + 1) % 6  # may repeat edges
    assert_close(conv(x, edge_index), gat(x, edge_index))


def _second_order(conv, x, graph, **kwargs):
    x = x.detach().clone().requires_grad_()
    out = conv(x, graph, **kwargs)
    cotangent = torch.arange(out.numel(), dtype=out.dtype).view_as(out)
    grad, = torch.autograd.grad((out * cotangent).sum(), x,
                                create_graph=True)
    return torch.autograd.grad((grad**2).sum(), [x, *conv.parameters()],
                               allow_unused=True)


@pytest.mark.parametrize('score, num_edge_types', [
    ('gat', None), ('additive', None), ('scaled_dot', 3), ('general', None),
])
def test_sparse_path_second_order(score, num_edge_types):
    """Gradients of gradients on the sparse path equal the message path's
    (issue 12: they were off by 61 against values of 94)."""
    conv = _conv(score, num_edge_types=num_edge_types).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    edge_index = torch.unique(torch.randint(0, 7, (2, 30)), dim=1)
    kwargs = {}
    if num_edge_types:
        kwargs['edge_type'] = torch.randint(0, 3, (edge_index.size(1), ))
    conv.path = 'sparse'
    fast = _second_order(conv, x, edge_index, **kwargs)
    conv.path = 'message'
    slow = _second_order(conv, x, edge_index, **kwargs)
    for a, b in zip(fast, slow):
        assert (a is None) == (b is None)
        if b is not None:
            assert_close(a, b)


def test_edge_softmax_with_ptr_second_order():
    """edge_softmax with a CSR ptr (PyG's EdgeIndex input passes one) has
    exact gradients of gradients."""
    from torch_geometric import EdgeIndex
    conv = _conv('scaled_dot', path='message').double()
    x = torch.randn(7, 5, dtype=torch.float64)
    edge_index = torch.unique(torch.randint(0, 7, (2, 30)), dim=1)
    edge_index = edge_index[:, edge_index[1].argsort(stable=True)]
    sorted_index = EdgeIndex(edge_index, sparse_size=(7, 7),
                             sort_order='col')
    for a, b in zip(_second_order(conv, x, sorted_index),
                    _second_order(conv, x, edge_index)):
        if b is not None:
            assert_close(a, b)


@pytest.mark.parametrize('score', ['scaled_dot', 'gat'])
def test_sparse_path_under_cpu_autocast(score):
    """CPU bfloat16 autocast: the sparse path runs (its products in
    float32) and is as close to float32 as the message path under the same
    autocast (bfloat16 rounding: 8 bits of mantissa)."""
    conv = _conv(score)
    x = torch.randn(7, 5)
    edge_index = torch.tensor([[0, 3, 5, 6], [1, 1, 2, 6]])
    exact = conv(x, edge_index)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x, edge_index)
        assert conv.last_path == 'sparse'
        conv.path = 'message'
        message = conv(x, edge_index)
    for result in (out, message):
        torch.testing.assert_close(result.float(), exact, atol=5e-2,
                                   rtol=5e-2)
    out.float().sum().backward()


@pytest.mark.parametrize('score', ['gat', 'scaled_dot'])
def test_lazy_in_channels_and_to_hetero(score):
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import to_hetero
    torch.manual_seed(0)
    lazy = AttentionConv(-1, 4, heads=2, score=score)
    x, edge_index = torch.randn(5, 3), complete_graph(5)
    out = lazy(x, edge_index)  # sized by its first input
    sized = AttentionConv(3, 4, heads=2, score=score)
    sized.load_state_dict(lazy.state_dict())
    assert_close(out, sized(x, edge_index))
    with pytest.raises(ValueError, match="'in_channels'"):
        AttentionConv(-2, 4)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = AttentionConv((-1, -1), 8, score=score)

        def forward(self, x, edge_index):
            return self.conv(x, edge_index)

    data = HeteroData()
    data['a'].x, data['b'].x = torch.randn(4, 3), torch.randn(3, 5)
    data['a', 'to', 'b'].edge_index = torch.tensor([[0, 1, 3], [0, 1, 2]])
    data['b', 'to', 'a'].edge_index = torch.tensor([[0, 2], [1, 3]])
    model = to_hetero(Net(), data.metadata(), aggr='sum')
    out = model(data.x_dict, data.edge_index_dict)
    assert out['a'].shape == (4, 8) and out['b'].shape == (3, 8)
    assert out['a'][[0, 2]].abs().sum() == 0  # no incoming edge: zeros


def _twin_graph(bipartite: bool):
    """Inputs of the GAT-family twin tests: two complete graphs without
    self-loops (the layers add them), or two bipartite blocks."""
    if bipartite:
        return ((torch.randn(6, 5, dtype=torch.float64, requires_grad=True),
                 torch.randn(4, 3, dtype=torch.float64, requires_grad=True)),
                bipartite_graph([3, 3], [2, 2]))
    return (torch.randn(6, 5, dtype=torch.float64, requires_grad=True),
            complete_graph([4, 2], self_loops=False))


@pytest.mark.parametrize('concat', [True, False])
@pytest.mark.parametrize('bipartite', [False, True])
def test_gat_residual_twin(concat, bipartite):
    in_channels = (5, 3) if bipartite else 5
    torch.manual_seed(0)
    gat = GATConv(in_channels, 4, heads=2, concat=concat, residual=True,
                  add_self_loops=not bipartite).double()
    torch.manual_seed(0)  # one seed, the same start (residual map included)
    fresh = AttentionConv(in_channels, 4, heads=2, concat=concat,
                          residual=True,
                          add_self_loops=not bipartite).double()
    assert torch.equal(fresh.res.weight, gat.res.weight)
    conv = AttentionConv.from_module(gat)
    x, edge_index = _twin_graph(bipartite)
    out, ref = conv(x, edge_index), gat(x, edge_index)
    assert_close(out, ref)
    inputs = list(x) if bipartite else [x]
    grads = torch.autograd.grad(out.sum(), inputs + [conv.res.weight])
    ref_grads = torch.autograd.grad(ref.sum(), inputs + [gat.res.weight])
    for a, b in zip(grads, ref_grads):
        assert_close(a, b)


@pytest.mark.parametrize('score', ['gat', 'scaled_dot', 'additive'])
def test_edge_weight_scales_alpha_on_every_path(score):
    torch.manual_seed(0)
    edge_index = torch.tensor([[0, 3, 1, 2, 4, 0, 2], [1, 1, 0, 4, 2, 2, 2]])
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(7, dtype=torch.float64, requires_grad=True)
    conv = AttentionConv(4, 3, heads=2, score=score).double()
    # reference: alpha of the unweighted layer times the weight (DGL's
    # GATConv(edge_weight=...)), summed over the sources' values
    _, (_, alpha) = conv(x, edge_index, return_attention_weights=True)
    _, key, value = conv._project(x, x)
    expected = torch.zeros(5, 2, 3, dtype=torch.float64).index_add_(
        0, edge_index[1], (alpha * weight.unsqueeze(-1)).unsqueeze(-1)
        * value[edge_index[0]]).reshape(5, 6) + conv.bias
    results = []
    for path in ('sparse', 'message'):
        conv.path = path
        out, (_, got) = conv(x, edge_index, edge_weight=weight,
                             return_attention_weights=True)
        assert conv.last_path == path
        assert_close(out, expected)
        assert_close(got, alpha * weight.unsqueeze(-1))
        results.append(torch.autograd.grad(out.pow(2).sum(), (x, weight)))
    for a, b in zip(*results):
        assert_close(a, b)
    conv.path = 'auto'  # a complete graph with weights: no SDPA form
    conv(x, complete_graph(5), edge_weight=torch.ones(25).double())
    if score == 'scaled_dot':
        assert conv.last_path == 'sparse'
        assert 'edge_weight' in conv.why_not_faster['dense']


@pytest.mark.parametrize('weight, match', [
    (torch.ones(3), "'edge_weight' must be a 1-D floating tensor"),
    (torch.ones(6, 1), "'edge_weight' must be a 1-D floating tensor"),
    (torch.ones(6, dtype=torch.long), "'edge_weight' must be a 1-D"),
])
def test_edge_weight_is_checked(weight, match):
    conv = AttentionConv(4, 3)
    x, edge_index = torch.randn(4, 4), torch.randint(0, 4, (2, 6))
    with pytest.raises(ValueError, match=match):
        conv(x, edge_index, edge_weight=weight)
    with pytest.raises(ValueError, match='add_self_loops'):
        AttentionConv(4, 3, add_self_loops=True)(x, edge_index,
                                                 edge_weight=torch.ones(6))


@pytest.mark.parametrize('residual', [False, True])
@pytest.mark.parametrize('bipartite', [False, True])
def test_gatv2_twin(residual, bipartite, device):
    from torch_geometric.nn import GATv2Conv
    in_channels = (5, 3) if bipartite else 5
    torch.manual_seed(0)
    ref_conv = GATv2Conv(in_channels, 4, heads=2, residual=residual,
                         add_self_loops=not bipartite).double()
    torch.manual_seed(0)  # one seed, the same start
    fresh = AttentionConv(in_channels, 4, heads=2, score='gatv2',
                          qkv_bias=True, residual=residual,
                          add_self_loops=not bipartite).double()
    assert torch.equal(fresh.score.att, ref_conv.att)
    assert torch.equal(fresh.lin_dst.weight, ref_conv.lin_r.weight)
    ref_conv = ref_conv.to(device)
    conv = AttentionConv.from_module(ref_conv)
    x, edge_index = _twin_graph(bipartite)
    x = tuple(t.to(device) for t in x) if bipartite else x.to(device)
    edge_index = graph_to(edge_index, device)
    inputs = list(x) if bipartite else [x]
    for path in ('sparse', 'message'):
        conv.path = path
        out, ref = conv(x, edge_index), ref_conv(x, edge_index)
        assert conv.last_path == path
        assert_close(out, ref)
        grads = torch.autograd.grad(out.pow(2).sum(),
                                    inputs + [conv.score.att])
        ref_grads = torch.autograd.grad(ref.pow(2).sum(),
                                        inputs + [ref_conv.att])
        for a, b in zip(grads, ref_grads):
            assert_close(a, b)


def test_gatv2_refuses_what_it_cannot_twin():
    from torch_geometric.nn import GATv2Conv
    with pytest.raises(ValueError, match='share_weights=False'):
        AttentionConv.from_module(GATv2Conv(4, 3, share_weights=True))


def test_gatv2_edge_features_twin():
    """GATv2 with edge_dim: W_e e_ij inside the LeakyReLU, as GATv2Conv,
    on every path, forward and backward."""
    from torch_geometric.nn import GATv2Conv
    torch.manual_seed(0)
    theirs = GATv2Conv(4, 3, heads=2, edge_dim=2).double()
    ours = AttentionConv.from_module(theirs)
    x = torch.randn(6, 4, dtype=torch.float64)
    edge_index = torch.randint(0, 6, (2, 15))
    edge_attr = torch.randn(15, 2, dtype=torch.float64)
    for path in ('sparse', 'message'):
        ours.path = path
        assert_twin(lambda x: ours(x, edge_index, edge_attr),
                    lambda x: theirs(x, edge_index, edge_attr), [x])
        assert ours.last_path == path
