r"""The non-CPU branches of the dense attention path, run on ``meta`` tensors
(issue 20).

``meta`` tensors have shapes and autograd but no data, and every branch of
:mod:`pyg_relational.nn._dense` that is not the CPU one runs on them. To make
them meet what CUDA would give them, :func:`cuda_like_sdpa` stands in for
:func:`torch.nn.functional.scaled_dot_product_attention` the way CUDA's
dispatcher does: the flash kernel when it is enabled and there is no mask,
the memory-efficient kernel when there is one (both real ATen ops with
``meta`` kernels, whose backward ops have no derivative), the math kernel
otherwise. The varlen path is reached by telling :mod:`_dense` that ``meta``
is CUDA (``_on_cuda``, ``_capability``); each of its preconditions then has
a test that fails if the kernel is called without it.
"""
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from pyg_relational.nn import (AttentionConv, MultiheadAttentionConv,
                               NonLocalBlock, TransformerEncoderLayer)
from pyg_relational.nn import _dense
from pyg_relational.nn._dense import block_attention, varlen_reason
from pyg_relational.structure import BipartiteBlocks, CompleteBlocks

META = torch.device('meta')
REAL_SDPA = F.scaled_dot_product_attention


def cuda_like_sdpa(q, k, v, attn_mask=None, dropout_p=0., is_causal=False,
                   scale=None, enable_gqa=False):
    """SDPA choosing its kernel on ``meta`` as CUDA would: flash for half
    precision without a mask and equal head sizes, memory-efficient when
    query and key heads agree, math when those are disabled."""
    if q.device.type != 'meta':
        return REAL_SDPA(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                         is_causal=is_causal, scale=scale)
    heads = (q.size(-1), k.size(-1), v.size(-1))
    if attn_mask is None and q.dtype in (torch.float16, torch.bfloat16) \
            and len(set(heads)) == 1 \
            and torch.backends.cuda.flash_sdp_enabled():
        return torch.ops.aten._scaled_dot_product_flash_attention(
            q, k, v, dropout_p, is_causal, False, scale=scale)[0]
    if heads[0] == heads[1] and \
            torch.backends.cuda.mem_efficient_sdp_enabled():
        bias = None
        if attn_mask is not None:
            shape = q.shape[:-1] + k.shape[-2:-1]  # [B, H, n, m]
            bias = torch.zeros(attn_mask.shape, dtype=q.dtype, device=META)
            bias = bias.expand(shape)
        grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in (q, k, v))
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, bias, grad, dropout_p, is_causal, scale=scale)[0]
    return REAL_SDPA(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                     is_causal=is_causal, scale=scale)


@pytest.fixture
def cuda_dispatch(monkeypatch):
    monkeypatch.setattr(F, 'scaled_dot_product_attention', cuda_like_sdpa)


def test_the_stand_in_reproduces_the_missing_double_backward(cuda_dispatch):
    """The stand-in is faithful: PyTorch's fused kernels, called as CUDA
    calls them, have no double backward (what the fixes below avoid)."""
    for dtype, mask in ((torch.float16, None),
                        (torch.float32, None),
                        (torch.float32, torch.ones(2, 1, 1, 5,
                                                   dtype=torch.bool,
                                                   device=META))):
        q = torch.randn(2, 2, 5, 8, device=META, dtype=dtype,
                        requires_grad=True)
        out = F.scaled_dot_product_attention(q, q, q, attn_mask=mask,
                                             dropout_p=0.1)
        grad, = torch.autograd.grad(out.sum(), q, create_graph=True)
        with pytest.raises(RuntimeError, match='not implemented'):
            torch.autograd.grad(grad.sum(), q)


STRUCTURES = {
    'equal': CompleteBlocks((3, 3)),
    'ragged': CompleteBlocks((3, 4, 2)),
    'causal-ragged': CompleteBlocks((3, 4, 2), causal=True),
    'causal-equal': CompleteBlocks((4, 4), causal=True),
    'bipartite-empty-block': BipartiteBlocks((3, 0, 2), (2, 2, 1)),
}


def _num_edges(structure) -> int:
    if isinstance(structure, CompleteBlocks):
        return sum(n * (n + 1) // 2 if structure.causal else n * n
                   for n in structure.sizes)
    return sum(s * d for s, d in zip(structure.src_sizes,
                                     structure.dst_sizes))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize('dropout', [0., 0.1], ids=['no-dropout', 'dropout'])
@pytest.mark.parametrize('need_weights', [False, True],
                         ids=['fused', 'weights'])
@pytest.mark.parametrize('name', list(STRUCTURES))
def test_dense_path_on_meta_to_second_order(cuda_dispatch, name,
                                            need_weights, dropout, dtype):
    structure = STRUCTURES[name]
    H, C = 2, 8
    C_v = 16 if dtype == torch.float32 else 8  # flash: equal head sizes
    q = torch.randn(structure.num_dst_nodes, H, C, device=META,
                    dtype=dtype, requires_grad=True)
    k = torch.randn(structure.num_src_nodes, H, C, device=META,
                    dtype=dtype, requires_grad=True)
    v = torch.randn(structure.num_src_nodes, H, C_v, device=META,
                    dtype=dtype, requires_grad=True)
    out, alpha = block_attention(q, k, v, structure, dropout_p=dropout,
                                 training=True, need_weights=need_weights)
    assert out.device == META
    assert out.shape == (structure.num_dst_nodes, H, C_v)
    if need_weights:
        assert alpha.shape == (_num_edges(structure), H)
    first = torch.autograd.grad(out.sum(), (q, k, v), create_graph=True)
    assert [g.shape for g in first] == [q.shape, k.shape, v.shape]
    second = torch.autograd.grad(sum(g.sum() for g in first), (q, k, v),
                                 allow_unused=True, materialize_grads=True)
    assert [g.shape for g in second] == [q.shape, k.shape, v.shape]


def test_autocast_query_is_guarded_on_meta():
    """torch.is_autocast_enabled('meta') raises; the one guarded helper
    answers False (no autocast there)."""
    from pyg_relational._torch import autocast_on
    from pyg_relational.nn._csr import autocast_float32
    assert autocast_float32(META) is False and autocast_on('meta') is False
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert autocast_on('cpu') and autocast_on(torch.device('cpu'))


LAYERS = {
    'mha': lambda: MultiheadAttentionConv(8, 2),
    'attention': lambda: AttentionConv(8, 4, heads=2, score='scaled_dot'),
    'nonlocal': lambda: NonLocalBlock(8, 4),
    'transformer-dropout': lambda: TransformerEncoderLayer(8, 2, 16,
                                                           dropout=0.1),
}


@pytest.mark.parametrize('layer', list(LAYERS))
def test_layers_dense_path_on_meta(cuda_dispatch, layer):
    conv = LAYERS[layer]().to(META).train()
    conv.path = 'dense'
    x = torch.randn(9, 8, device=META, requires_grad=True)
    out = conv(x, CompleteBlocks((3, 4, 2)))
    out = out[0] if isinstance(out, tuple) else out
    assert conv.last_path == 'dense' and out.shape[0] == 9
    grad, = torch.autograd.grad(out.sum(), x, create_graph=True)
    second, = torch.autograd.grad(grad.sum(), x)
    assert second.shape == x.shape


def test_fused_attention_releases_its_graph(cuda_dispatch):
    """The non-CPU branch of ``_FusedAttention`` keeps the kernel's graph
    only until the first backward, which frees it; a second backward
    (``retain_graph=True`` outside) still works by recomputing."""
    q, k, v = (torch.randn(2, 2, 5, 8, device=META, requires_grad=True)
               for _ in range(3))
    out = _dense._FusedAttention.apply(q, k, v, None, False, 0.3)
    node = out.grad_fn
    inner = weakref.ref(node.graph[1])
    assert inner() is not None
    first = torch.autograd.grad(out.sum(), (q, k, v), retain_graph=True)
    gc.collect()
    assert node.graph is None and inner() is None, \
        'the kernel graph outlived the backward'
    again = torch.autograd.grad(out.sum(), (q, k, v))
    assert [g.shape for g in again] == [g.shape for g in first]


# --------------------------------------------------------------------------
# The varlen path: one test per precondition.
# --------------------------------------------------------------------------
class _Spy:
    def __init__(self):
        self.calls = 0
        self.kernel = _dense._varlen_kernel()

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.kernel(*args, **kwargs)


@pytest.fixture
def fake_cuda(monkeypatch):
    """``meta`` tensors are on an Ampere GPU as far as ``_dense`` knows;
    the varlen kernel is spied on (its ``meta`` kernel runs)."""
    spy = _Spy()
    state = {'capability': (8, 0)}
    monkeypatch.setattr(_dense, '_on_cuda',
                        lambda t: t.device.type in ('cuda', 'meta'))
    monkeypatch.setattr(_dense, '_capability',
                        lambda device: state['capability'])
    monkeypatch.setattr(_dense, '_varlen_kernel', lambda: spy)
    monkeypatch.setattr(torch.backends.cuda, 'flash_sdp_enabled',
                        lambda: state.get('flash', True))
    spy.state = state
    return spy


def _qkv(structure, C=8, C_v=8, C_k=None, dtype=torch.float16, H=2,
         grad=False):
    def make(n, c):
        return torch.randn(n, H, c, device=META, dtype=dtype,
                           requires_grad=grad)
    return (make(structure.num_dst_nodes, C),
            make(structure.num_src_nodes, C if C_k is None else C_k),
            make(structure.num_src_nodes, C_v))


RAGGED = CompleteBlocks((3, 4, 2))


def _run(q, k, v, structure=RAGGED):
    out, _ = block_attention(q, k, v, structure)
    assert out.shape == (q.size(0), q.size(1), v.size(-1))
    return out


@pytest.mark.parametrize('structure', [RAGGED, CompleteBlocks(
    (3, 4, 2), causal=True), BipartiteBlocks((3, 2), (2, 5))], ids=str)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
def test_varlen_runs_when_every_precondition_holds(fake_cuda, structure,
                                                   dtype):
    q, k, v = _qkv(structure, dtype=dtype)
    layout = _dense._layout(structure, str(META))
    assert varlen_reason(q, k, v, layout) is None
    _run(q, k, v, structure)
    assert fake_cuda.calls == 1


def _declines(spy, q, k, v, words, structure=RAGGED):
    layout = _dense._layout(structure, str(META))
    reason = varlen_reason(q, k, v, layout)
    assert reason is not None and words in reason, reason
    _run(q, k, v, structure)
    assert spy.calls == 0, f'varlen ran although: {reason}'


def test_varlen_needs_cuda(monkeypatch, fake_cuda):
    monkeypatch.setattr(_dense, '_on_cuda', lambda t: False)
    _declines(fake_cuda, *_qkv(RAGGED), 'CUDA')


def test_varlen_needs_ragged_blocks(fake_cuda):
    equal = CompleteBlocks((3, 3))
    _declines(fake_cuda, *_qkv(equal), 'equal', equal)


def test_varlen_needs_half_precision(fake_cuda):
    _declines(fake_cuda, *_qkv(RAGGED, dtype=torch.float32), 'float32')


def test_varlen_needs_nonempty_blocks(fake_cuda):
    blocks = BipartiteBlocks((3, 0, 2), (2, 2, 1))
    _declines(fake_cuda, *_qkv(blocks), 'no target or no source', blocks)


def test_varlen_needs_no_recorded_gradient(fake_cuda):
    _declines(fake_cuda, *_qkv(RAGGED, grad=True), 'gradient')


@pytest.mark.parametrize('sizes', [dict(C_v=16), dict(C_v=4)],
                         ids=['value-wider', 'value-narrower'])
def test_varlen_needs_equal_head_sizes(fake_cuda, sizes):
    # NonLocalBlock(pairwise='gaussian') has value heads != query heads
    _declines(fake_cuda, *_qkv(RAGGED, **sizes), 'head sizes differ')


@pytest.mark.parametrize('head', [4, 12, 264])
def test_varlen_needs_head_size_multiple_of_8_up_to_256(fake_cuda, head):
    # NonLocalBlock(8) has inter channels 4; AttentionConv(out_channels=4)
    _declines(fake_cuda, *_qkv(RAGGED, C=head, C_v=head), f'head size {head}')


def test_varlen_largest_head_size_runs(fake_cuda):
    _run(*_qkv(RAGGED, C=256, C_v=256))
    assert fake_cuda.calls == 1


def test_varlen_needs_ampere(fake_cuda):
    fake_cuda.state['capability'] = (7, 5)
    _declines(fake_cuda, *_qkv(RAGGED), 'capability 7.5')


def test_varlen_needs_flash_enabled(fake_cuda):
    fake_cuda.state['flash'] = False
    _declines(fake_cuda, *_qkv(RAGGED), 'flash attention is disabled')


def test_varlen_reads_sdpa_kernel_context(monkeypatch):
    """``sdpa_kernel`` without flash turns the varlen path off (the real
    ``flash_sdp_enabled``, not a patched one)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    monkeypatch.setattr(_dense, '_on_cuda',
                        lambda t: t.device.type == 'meta')
    monkeypatch.setattr(_dense, '_capability', lambda device: (9, 0))
    q, k, v = _qkv(RAGGED)
    layout = _dense._layout(RAGGED, str(META))
    assert varlen_reason(q, k, v, layout) is None
    with sdpa_kernel([SDPBackend.MATH]):
        assert 'disabled' in varlen_reason(q, k, v, layout)


@pytest.mark.parametrize('layer', [
    lambda: NonLocalBlock(8),  # inter channels 4
    lambda: NonLocalBlock(16, 8, pairwise='gaussian'),  # value != query
    lambda: AttentionConv(8, 4, heads=2, score='scaled_dot'),  # head 4
], ids=['nonlocal-inter-4', 'nonlocal-gaussian', 'attention-head-4'])
def test_layers_of_the_issue_fall_back_from_varlen(fake_cuda,
                                                   layer):
    conv = layer().to(META, torch.float16).eval()
    conv.path = 'dense'
    x = torch.randn(9, conv.in_channels if isinstance(
        conv.in_channels, int) else 8, device=META, dtype=torch.float16)
    with torch.no_grad():
        out = conv(x, RAGGED)
    assert out.shape[0] == 9 and conv.last_path == 'dense'
    assert fake_cuda.calls == 0
