"""NonLocalBlock against the paper's formulas written densely, here."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from pyg_relational import complete_graph, window_graph
from pyg_relational.nn import NonLocalBlock
from pyg_relational.structure import CompleteBlocks

from .helpers import (assert_close, assert_edge_order_invariant, assert_twin,
                      dtypes, empty_graph)
from .helpers import device  # noqa: F401 (fixture: every available device)

PAIRWISE = NonLocalBlock.PAIRWISE


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """The inputs are tiny: a second intra-op thread only waits on a busy
    machine (44 s instead of 6 s for this file on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------
# Dense reference: Wang et al. (2018), Eq. (1)-(6), written from the paper.
def _lin(module, x):
    return x @ module.weight.t() + module.bias


def paper_y(block, x_dst, key, value, mask):
    r""":math:`y_i = \frac{1}{C_i} \sum_j f(x_i, x_j) g(x_j)` over the pairs
    of ``mask [N_dst, N_src]``; ``key`` is :math:`\phi(x_j)` (or
    :math:`x_j`), ``value`` :math:`g(x_j)`."""
    query = x_dst if block.pairwise == 'gaussian' else _lin(block.theta, x_dst)
    mask = mask.to(x_dst.dtype)
    count = mask.sum(1, keepdim=True)  # |N(i)|
    if block.pairwise in ('gaussian', 'embedded_gaussian'):
        f = torch.exp(query @ key.t()) * mask  # exp(theta_i^T phi_j)
        weight = f / f.sum(1, keepdim=True).where(count > 0,
                                                  torch.ones_like(count))
    else:
        if block.pairwise == 'dot':
            f = query @ key.t()  # theta_i^T phi_j
        else:  # ReLU(w_f^T [theta_i, phi_j]), the concatenation built
            w_f = torch.cat([block.score.att_dst.view(-1),
                             block.score.att_src.view(-1)])
            pairs = torch.cat([
                query.unsqueeze(1).expand(-1, key.size(0), -1),
                key.unsqueeze(0).expand(query.size(0), -1, -1)
            ], dim=-1)  # [N_dst, N_src, 2C']
            f = F.relu(pairs @ w_f)
        weight = f * mask / count.clamp(min=1)  # C(x) = number of inputs
    return weight @ value, weight


def paper_z(block, x_dst, y):
    """:math:`z_i = BN(W_z y_i) + x_i`, BatchNorm written out (training:
    batch statistics over all nodes; eval: running statistics)."""
    if block.W_z is None:
        return y
    z = _lin(block.W_z, y)
    if block.bn is not None:
        if block.training:
            mean, var = z.mean(0), z.var(0, unbiased=False)
        else:
            mean, var = block.bn.running_mean, block.bn.running_var
        z = (z - mean) / torch.sqrt(var + block.bn.eps) * block.bn.weight \
            + block.bn.bias
    return z + x_dst


def paper_graph(block, x_src, x_dst, edge_index):
    mask = torch.zeros(x_dst.size(0), x_src.size(0), dtype=torch.bool,
                       device=x_dst.device)
    mask[edge_index[1], edge_index[0]] = True
    key = x_src if block.pairwise == 'gaussian' else _lin(block.phi, x_src)
    y, _ = paper_y(block, x_dst, key, _lin(block.g, x_src), mask)
    return paper_z(block, x_dst, y)


def _pool_dense(h, spatial):
    """Max over non-overlapping windows 2 / 2x2 / 1x2x2 by reshaping
    (``h [B, *S, C]``, odd sizes cropped as in PyTorch)."""
    b, c = h.size(0), h.size(-1)
    if len(spatial) == 1:
        (t, ) = spatial
        h = h[:, :t // 2 * 2].reshape(b, t // 2, 2, c).amax(2)
    elif len(spatial) == 2:
        hh, ww = spatial
        h = h[:, :hh // 2 * 2, :ww // 2 * 2]
        h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).amax((2, 4))
    else:
        t, hh, ww = spatial
        h = h[:, :, :hh // 2 * 2, :ww // 2 * 2]
        h = h.reshape(b, t, hh // 2, 2, ww // 2, 2, c).amax((3, 5))
    return h.reshape(b, -1, c)


def paper_dense(block, x):
    """The block on a dense batch ``[B, C, *S]``: every example attends over
    all its (pooled) positions."""
    b, c, *spatial = x.shape
    nodes = x.movedim(1, -1)  # [B, *S, C]
    key = nodes if block.pairwise == 'gaussian' else _lin(block.phi, nodes)
    value = _lin(block.g, nodes)
    if block.sub_sample:
        key, value = _pool_dense(key, spatial), _pool_dense(value, spatial)
    else:
        key, value = key.reshape(b, -1, key.size(-1)), value.reshape(
            b, -1, value.size(-1))
    nodes = nodes.reshape(b, -1, c)  # [B, P, C]
    ys = []
    for k in range(b):
        mask = torch.ones(nodes.size(1), key.size(1), dtype=torch.bool,
                          device=x.device)
        ys.append(paper_y(block, nodes[k], key[k], value[k], mask)[0])
    y = torch.cat(ys)  # [B * P, C']
    z = paper_z(block, nodes.reshape(-1, c), y)
    return z.view(b, *spatial, -1).movedim(-1, 1)


# ---------------------------------------------------------------------------
def _randomised(block, dtype):
    """A copy pair with random BN affine and statistics (zero-init BN
    would hide W_z). float64 runs BN in training mode, float32 in eval mode:
    with batch statistics some float32 gradients are zero up to rounding
    (BN removes the mean, so g's bias has no effect)."""
    block = block.to(dtype)
    if block.bn is not None:
        with torch.no_grad():
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(-0.5, 0.5)
            block.bn.running_mean.uniform_(-0.5, 0.5)
            block.bn.running_var.uniform_(0.5, 1.5)
    block.train(dtype == torch.float64)
    return block, copy.deepcopy(block)


def _param_pairs(a, b):
    return [((lambda p=p: p.grad), (lambda q=q: q.grad))
            for p, q in zip(a.parameters(), b.parameters())]


def _graph():
    """Two graphs of 3 and 4 nodes with random edges; node 2 has none."""
    edge_index = torch.tensor([[0, 1, 1, 0, 3, 4, 5, 6, 3, 6, 4],
                               [0, 0, 1, 1, 3, 3, 3, 4, 5, 5, 6]])
    return edge_index


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('pairwise', PAIRWISE)
@pytest.mark.parametrize('options', [{}, {'output_projection': False},
                                     {'batch_norm': False}, {'path': 'message'}])
def test_graph_matches_paper(pairwise, dtype, options, device):
    a, b = _randomised(NonLocalBlock(6, pairwise=pairwise,
                                     **options).to(device), dtype)
    edge_index = _graph().to(device)
    x = torch.randn(7, 6, dtype=dtype).to(device)
    assert_twin(lambda x: a(x, edge_index),
                lambda x: paper_graph(b, x, x, edge_index), [x],
                params=_param_pairs(a, b))


@pytest.mark.parametrize('path', ['auto', 'message'])
@pytest.mark.parametrize('pairwise', PAIRWISE)
def test_bipartite_matches_paper(pairwise, path):
    a, b = _randomised(NonLocalBlock(4, 3, pairwise=pairwise, path=path),
                       torch.float64)
    x_src = torch.randn(5, 4, dtype=torch.float64)
    x_dst = torch.randn(3, 4, dtype=torch.float64)
    edge_index = torch.tensor([[0, 4, 2, 3, 1, 0], [0, 0, 1, 1, 1, 2]])
    assert_twin(lambda s, d: a((s, d), edge_index),
                lambda s, d: paper_graph(b, s, d, edge_index),
                [x_src, x_dst], params=_param_pairs(a, b))


DENSE = [
    ((2, 6, 5), False),
    ((2, 6, 3, 4), False),
    ((2, 6, 2, 3, 2), False),
    ((2, 6, 7), True),  # odd length: last step dropped by the pooling
    ((2, 6, 4, 5), True),
    ((1, 6, 2, 4, 4), True),
]


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('pairwise', PAIRWISE)
@pytest.mark.parametrize('shape,sub_sample', DENSE)
def test_dense_matches_paper(pairwise, dtype, shape, sub_sample, device):
    a, b = _randomised(NonLocalBlock(6, pairwise=pairwise,
                                     sub_sample=sub_sample).to(device),
                       dtype)
    x = torch.randn(*shape, dtype=dtype).to(device)
    assert_twin(a, lambda x: paper_dense(b, x), [x],
                params=_param_pairs(a, b))
    # the cached graph of the same shape gives the same numbers again
    assert_close(a(x), paper_dense(b, x))


@pytest.mark.parametrize('pairwise', PAIRWISE)
def test_attention_weights(pairwise):
    """The returned weights are f / C_i of the reference, per edge."""
    block = NonLocalBlock(4, pairwise=pairwise, output_projection=False)
    block = block.double()
    x = torch.randn(7, 4, dtype=torch.float64)
    edge_index = _graph()
    out, (ei, alpha) = block(x, edge_index, return_attention_weights=True)
    assert ei is edge_index and alpha.shape == (edge_index.size(1), )
    mask = torch.zeros(7, 7, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    y, weight = paper_y(block, x, block.phi(x) if block.phi is not None
                        else x, block.g(x), mask)
    assert_close(alpha, weight[edge_index[1], edge_index[0]])
    assert_close(out, y)


def test_embedded_gaussian_is_softmax_self_attention():
    """Sec. 3.2: y = softmax(x^T W_theta^T W_phi x) g(x) -- unscaled
    self-attention: F.scaled_dot_product_attention with scale=1, and
    nn.MultiheadAttention (one head, which divides by sqrt(d): its query
    weights are multiplied by sqrt(d)) plus the residual for the whole block
    without BN."""
    c = 6
    block = NonLocalBlock(c, c, batch_norm=False).double()
    x = torch.randn(2, c, 3, 3, dtype=torch.float64)
    seq = x.flatten(2).transpose(1, 2)  # [B, P, C]

    y = NonLocalBlock(c, c, output_projection=False).double()
    y.load_state_dict(block.state_dict(), strict=False)
    q, k, v = block.theta(seq), block.phi(seq), block.g(seq)
    expected = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    assert_close(y(x).flatten(2).transpose(1, 2), expected)

    mha = torch.nn.MultiheadAttention(c, 1, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([
            block.theta.weight * math.sqrt(c), block.phi.weight,
            block.g.weight]))
        mha.in_proj_bias.copy_(torch.cat([
            block.theta.bias * math.sqrt(c), block.phi.bias, block.g.bias]))
        mha.out_proj.weight.copy_(block.W_z.weight)
        mha.out_proj.bias.copy_(block.W_z.bias)
    a = block
    assert_twin(lambda s: a(s.transpose(1, 2).reshape(x.shape)).flatten(
        2).transpose(1, 2), lambda s: mha(s, s, s, need_weights=False)[0] + s,
                [seq])


def test_embedded_gaussian_is_multihead_attention_conv():
    """The same on a graph: z = x + MultiheadAttentionConv(C, 1 head)(x)
    with W_Q = sqrt(C) W_theta (it divides by sqrt(d)), W_K = W_phi,
    W_V = W_g, W_O = W_z, on the complete graph of two sets."""
    from pyg_relational.nn import MultiheadAttentionConv
    c = 6
    block = NonLocalBlock(c, c, batch_norm=False).double()
    attn = MultiheadAttentionConv(c, num_heads=1).double()
    with torch.no_grad():
        for mine, theirs, scale in (
                (block.theta, attn.lin_query, math.sqrt(c)),
                (block.phi, attn.lin_key, 1.), (block.g, attn.lin_value, 1.),
                (block.W_z, attn.out_proj, 1.)):
            theirs.weight.copy_(mine.weight * scale)
            theirs.bias.copy_(mine.bias * scale)
    edge_index = complete_graph([3, 4])
    x = torch.randn(7, c, dtype=torch.float64)
    assert_twin(lambda x: block(x, edge_index),
                lambda x: attn(x, edge_index) + x, [x])


@pytest.mark.parametrize('pairwise', PAIRWISE)
@pytest.mark.parametrize('sub_sample', [False, True])
def test_identity_at_initialisation(pairwise, sub_sample):
    block = NonLocalBlock(4, pairwise=pairwise, sub_sample=sub_sample)
    x = torch.randn(3, 4, 4, 6)
    assert torch.equal(block(x), x)
    block.eval()
    assert torch.equal(block(x), x)
    if not sub_sample:
        nodes = torch.randn(5, 4)
        assert torch.equal(block(nodes, complete_graph([2, 3])), nodes)


@pytest.mark.parametrize('shape,pooled', [((2, 3, 9), 4), ((2, 3, 4, 5), 4),
                                          ((2, 3, 3, 5, 4), 12)])
def test_sub_sample_shapes(shape, pooled):
    block = NonLocalBlock(3, sub_sample=True)
    x = torch.randn(*shape)
    out, (edge_index, alpha) = block(x, return_attention_weights=True)
    positions = math.prod(shape[2:])
    assert out.shape == x.shape
    assert edge_index.size(1) == alpha.numel() == 2 * positions * pooled
    assert int(edge_index[0].max()) == 2 * pooled - 1  # pooled sources
    assert int(edge_index[1].max()) == 2 * positions - 1  # all targets
    # every example attends to its own pooled positions only
    assert torch.equal(edge_index[0] // pooled, edge_index[1] // positions)
    # softmax weights of every target sum to 1
    total = torch.zeros(2 * positions).index_add_(0, edge_index[1], alpha)
    assert_close(total, torch.ones(2 * positions))


@pytest.mark.parametrize('pairwise', PAIRWISE)
def test_window_graph_on_dense_input(pairwise):
    """A custom graph over the positions of a dense batch: a local block."""
    a, b = _randomised(NonLocalBlock(4, pairwise=pairwise), torch.float64)
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    edge_index = window_graph([6, 6], [6, 6], radius=1)
    nodes = x.transpose(1, 2).reshape(-1, 4)
    expected = paper_graph(b, nodes, nodes, edge_index)
    assert_close(a(x, edge_index).transpose(1, 2).reshape(-1, 4), expected)


@pytest.mark.parametrize('pairwise', PAIRWISE)
def test_edge_order_invariant(pairwise):
    block = NonLocalBlock(4, pairwise=pairwise).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    assert_edge_order_invariant(lambda ei: block(x, ei), _graph())


@pytest.mark.parametrize('pairwise', PAIRWISE)
def test_empty_and_isolated(pairwise):
    block = NonLocalBlock(4, pairwise=pairwise)
    assert block(torch.randn(0, 4), empty_graph()).shape == (0, 4)
    assert block(torch.randn(0, 4, 3, 3)).shape == (0, 4, 3, 3)
    y = NonLocalBlock(4, pairwise=pairwise, output_projection=False)
    x = torch.randn(3, 4, requires_grad=True)
    out = y(x, empty_graph())
    assert torch.equal(out, torch.zeros(3, 2))
    out = y(x, torch.tensor([[0, 1], [1, 1]]))  # nodes 0, 2 receive nothing
    assert not out.isnan().any() and torch.equal(out[[0, 2]],
                                                 torch.zeros(2, 2))
    out.sum().backward()
    assert not x.grad.isnan().any()


def test_repr():
    assert repr(NonLocalBlock(8)) == \
        "NonLocalBlock(8, inter_channels=4, pairwise='embedded_gaussian')"
    assert repr(NonLocalBlock(8, 2, 'concat', sub_sample=True,
                              batch_norm=False)) == \
        ("NonLocalBlock(8, inter_channels=2, pairwise='concat', "
         "sub_sample=True, batch_norm=False)")


@pytest.mark.parametrize('make,call,error,match', [
    (lambda: NonLocalBlock(4, pairwise='cosine'), None, ValueError,
     "Unknown pairwise='cosine'"),
    (lambda: NonLocalBlock(4, inter_channels=0), None, ValueError,
     "'inter_channels' must be >= 1"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(5, 3),
                                           complete_graph(5)),
     ValueError, "'x' must have 4 features"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(5, 4)), ValueError,
     "'edge_index' is required"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(2, 4), complete_graph(
        3)), IndexError, "source index 2 but there are only 2"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(2, 4, 3), torch.tensor(
        [[0, 9], [0, 1]])), IndexError, "source index 9"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(1, 3, 3)), ValueError,
     "'x' must have 4 features in dimension 1"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(1, 4, 2, 2, 2, 2)),
     ValueError, r"\[B, C, T, H, W\]"),
    (lambda: NonLocalBlock(4, sub_sample=True), lambda m: m(
        torch.randn(3, 4), complete_graph(3)), ValueError,
     "sub_sample=True pools the dense layout"),
    (lambda: NonLocalBlock(4, sub_sample=True), lambda m: m(
        torch.randn(1, 4, 1, 5)), ValueError, "spatial size is"),
    (lambda: NonLocalBlock(4), lambda m: m(
        (torch.randn(2, 4), ) * 3, complete_graph(2)), ValueError,
     "pair"),
    (lambda: NonLocalBlock(4), lambda m: m(
        (torch.randn(2, 4), torch.randn(3, 5)), complete_graph(2)),
     ValueError, "'x_dst' must have 4 features"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(4), complete_graph(1)),
     ValueError, "'x' must be node features"),
    (lambda: NonLocalBlock(4), lambda m: m(torch.randn(2, 4), torch.tensor(
        [0, 1])), ValueError, r"'edge_index' must have shape \[2, E\]"),
])
def test_bad_input(make, call, error, match):
    with pytest.raises(error, match=match):
        call(make()) if call is not None else make()


def test_bench_cases():
    """The benchmark functions run quickly and report passing twins."""
    from pyg_relational.bench.non_local import (DigitsNet, run_digits,
                                                speed_cases, twin_cases)
    twins = twin_cases(quick=True)
    assert len(twins) == 16 and all(t.passed for t in twins)
    speed = speed_cases(quick=True)
    assert len(speed) == 3 and all(s.graph_s > 0 and s.baseline_s > 0
                                   for s in speed)
    rows = run_digits(quick=True, seeds=1, epochs=1)
    assert [r['model'].endswith('NonLocalBlock(embedded_gaussian)')
            for r in rows] == [False, True]
    assert all(0 <= r['test_acc'] <= 1 for r in rows)
    with pytest.raises(ValueError, match="'at' must be 1 or 2"):
        DigitsNet(at=3)



# ---------------------------------------------------------------------------
# Execution paths: which one runs, and why not a faster one. That every path
# computes the message path's numbers (forward, backward, second order, NaN
# isolation, low precision, torch.compile) is the conformance suite's
# (tests/conformance_cases.py: the nonlocal-* cases).
def _random_graph():
    """Unsorted, no repeats, node 2 without incoming edges, 7 nodes."""
    return torch.tensor([[3, 0, 2, 1, 4, 0, 2, 6, 5, 1],
                         [1, 0, 4, 2, 5, 3, 1, 6, 6, 0]])


@pytest.mark.parametrize('pairwise', PAIRWISE)
def test_auto_path_choice(pairwise):
    """'auto' runs the fastest path that applies and says why not the
    others."""
    block = NonLocalBlock(4, pairwise=pairwise)
    x = torch.randn(7, 4)
    softmax = pairwise in NonLocalBlock.SOFTMAX
    cases = [
        (complete_graph([3, 4]), 'dense' if softmax else 'sparse'),
        (complete_graph([3, 4], causal=True), 'dense' if softmax
         else 'sparse'),
        (complete_graph(7), 'dense'),
        (_random_graph(), 'sparse'),
        # a repeated edge: two messages, CSR holds both
        (torch.cat([_random_graph(), _random_graph()[:, :1]], 1), 'sparse'),
        (empty_graph(), 'message'),
    ]
    for edge_index, path in cases:
        block(x, edge_index)
        assert block.last_path == path, edge_index
        assert (block.why_not_faster is None) == (path == 'dense')
    block(torch.randn(2, 4, 3, 3))
    assert block.last_path == 'dense'
    low = copy.deepcopy(block).bfloat16()
    low(x.bfloat16(), _random_graph())  # no bf16 CSR product
    assert low.last_path == 'message'
    assert 'float32 / float64' in low.why_not_faster['sparse']
    with torch.autocast('cpu', dtype=torch.bfloat16):  # products in float32
        block(x, _random_graph())
    assert block.last_path == 'sparse'
    block.path = 'message'
    block(torch.randn(2, 4, 3, 3))
    assert block.last_path == 'message'


def test_forced_path_that_cannot_run():
    block = NonLocalBlock(4, path='dense')
    with pytest.raises(ValueError, match="path='dense'.*no known block"):
        block(torch.randn(7, 4), _random_graph())
    block = NonLocalBlock(4, pairwise='dot', path='dense')
    with pytest.raises(ValueError, match='equal blocks'):
        block(torch.randn(7, 4), complete_graph([3, 4]))
    block = NonLocalBlock(4, path='sparse')
    with pytest.raises(ValueError, match='no edge'):
        block(torch.randn(2, 4), torch.empty(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match='float32 / float64'):
        block.bfloat16()(torch.randn(7, 4).bfloat16(), _random_graph())


def test_explain_and_hooks_take_the_message_path():
    block = NonLocalBlock(4)
    x, edge_index = torch.randn(7, 4), complete_graph(7)
    handle = block.register_message_forward_hook(lambda *args: None)
    block(x, edge_index)
    assert block.last_path == 'message'
    handle.remove()
    block(x, edge_index)
    assert block.last_path == 'dense'


def test_fused_is_removed():
    """The old switch is refused with the name of its replacement."""
    with pytest.raises(TypeError, match="path='message'"):
        NonLocalBlock(4, fused=False)
    block = NonLocalBlock(4, path='message')
    with pytest.raises(TypeError, match='path='):
        block.fused = True
    assert repr(block).endswith("path='message')")


def test_pattern_built_once_per_graph(monkeypatch):
    """The sparse path sorts and builds the CSR pattern on the first call
    on a graph only."""
    from pyg_relational.nn._csr import EdgePattern
    built = []
    original = EdgePattern._build.__func__
    monkeypatch.setattr(EdgePattern, '_build', classmethod(
        lambda cls, *args: built.append(1) or original(cls, *args)))
    block = NonLocalBlock(4, path='sparse')
    x, edge_index = torch.randn(7, 4), _random_graph()
    for _ in range(3):
        block(x, edge_index)
    assert len(built) == 1
    for _ in range(2):  # the block's own graph (a size no other test
        block(torch.randn(3, 4, 5, 7))  # uses): cached too
    assert len(built) == 2


def test_aggr_other_than_add_refused():
    with pytest.raises(ValueError, match="'aggr' must be 'add'.*'mean'"):
        NonLocalBlock(4, aggr='mean')
    assert NonLocalBlock(4, aggr='add').path == 'auto'


@pytest.mark.filterwarnings('ignore:Sparse CSR tensor support')
def test_graph_forms():
    """An adj_t (torch.sparse, [N_dst, N_src]), PyG's EdgeIndex and a
    GraphStructure give the edge_index result."""
    from torch_geometric import EdgeIndex
    block = NonLocalBlock(4, output_projection=False).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    for edge_index in (complete_graph([3, 4]), _random_graph()):
        expected = block(x, edge_index)
        path = block.last_path
        adj_t = torch.sparse_coo_tensor(
            edge_index.flip(0), torch.ones(edge_index.size(1)), (7, 7),
            check_invariants=True).to_sparse_csr()
        for graph in (adj_t, EdgeIndex(edge_index, sparse_size=(7, 7))):
            assert_close(block(x, graph), expected)
            assert block.last_path == path
    assert_close(block(x, CompleteBlocks((3, 4))),
                 block(x, complete_graph([3, 4])))
