"""The CSR products (SDDMM / SpMM / transposed SpMM) against the plain
gather / scatter formulas: values, gradients of first and second order,
heads, the per-graph pattern cache and dtype refusal."""
import gc

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from pyg_relational import _cache, complete_graph
from pyg_relational.nn import _csr
from pyg_relational.nn._csr import EdgeDot, EdgePattern, EdgeSum, EdgeSumT

from .helpers import assert_close


pytestmark = pytest.mark.usefixtures('one_thread')


def _edges(seed=0, num_src=6, num_dst=5, num_edges=14):
    """Random edges without repeats, unsorted; target 4 gets none."""
    gen = torch.Generator().manual_seed(seed)
    pairs = torch.randperm(num_src * (num_dst - 1), generator=gen)[:num_edges]
    return torch.stack([pairs % num_src, pairs // num_src]), num_src, num_dst


def _gather(edge_index, num_src, num_dst):
    """The reference formulas, per edge, with gathers and a scatter-add."""
    src, dst = edge_index

    def dot(a, b):  # [E] or [E, H]
        return (a[dst] * b[src]).sum(-1)

    def edge_sum(w, v):  # sum_j w_ji v_j per target
        msg = w.unsqueeze(-1) * v[src]
        return msg.new_zeros((num_dst, ) + msg.shape[1:]).index_add(
            0, dst, msg)

    def edge_sum_t(w, u):  # sum_i w_ji u_i per source
        msg = w.unsqueeze(-1) * u[dst]
        return msg.new_zeros((num_src, ) + msg.shape[1:]).index_add(
            0, src, msg)

    return dot, edge_sum, edge_sum_t


def _functions(pattern, edge_index, num_src, num_dst):
    """(CSR function, reference, shapes of its two inputs) per product;
    the CSR ones take and return per-edge values in edge_index order."""
    perm = pattern.perm
    to_csr = (lambda w: w) if perm is None else (lambda w: w[perm])

    def from_csr(w):
        return w if perm is None else torch.zeros_like(w).index_copy(
            0, perm, w)

    dot, edge_sum, edge_sum_t = _gather(edge_index, num_src, num_dst)
    return {
        'EdgeDot': (lambda a, b: from_csr(EdgeDot.apply(pattern, a, b)), dot,
                    ('dst', 'src')),
        'EdgeSum': (lambda w, v: EdgeSum.apply(pattern, to_csr(w), v),
                    edge_sum, ('edge', 'src')),
        'EdgeSumT': (lambda w, u: EdgeSumT.apply(pattern, to_csr(w), u),
                     edge_sum_t, ('edge', 'dst')),
    }


def _inputs(kinds, heads, dtype, num_src, num_dst, num_edges, seed=1):
    gen = torch.Generator().manual_seed(seed)
    rows = {'src': num_src, 'dst': num_dst, 'edge': num_edges}
    out = []
    for kind in kinds:
        shape = (rows[kind], ) + ((heads, ) if heads else ())
        if kind != 'edge':
            shape += (3, )
        out.append(torch.randn(shape, generator=gen, dtype=dtype)
                   .requires_grad_())
    return out


PRODUCTS = ['EdgeDot', 'EdgeSum', 'EdgeSumT']


@pytest.mark.parametrize('one_product', [True, False])
@pytest.mark.parametrize('heads', [None, 1, 3])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('product', PRODUCTS)
def test_products_equal_gather_scatter(product, dtype, heads, one_product,
                                       monkeypatch):
    """Values, gradients and second-order gradients equal the gather /
    scatter formula (unsorted edges, a target without edges)."""
    monkeypatch.setattr(_csr, 'HEADS_IN_ONE_PRODUCT', one_product)
    edge_index, num_src, num_dst = _edges()
    pattern = EdgePattern.build(edge_index, num_src, num_dst)
    assert pattern.perm is not None
    fn, ref, kinds = _functions(pattern, edge_index, num_src,
                                num_dst)[product]
    inputs = _inputs(kinds, heads, dtype, num_src, num_dst,
                     edge_index.size(1))
    copies = [t.detach().clone().requires_grad_() for t in inputs]
    out, expected = fn(*inputs), ref(*copies)
    assert_close(out, expected)
    gen = torch.Generator().manual_seed(2)
    cot = torch.randn(out.shape, generator=gen, dtype=dtype)
    # first order, with a graph: then the gradient of a function of it
    grads = torch.autograd.grad((out * cot).sum(), inputs, create_graph=True)
    grads_ref = torch.autograd.grad((expected * cot).sum(), copies,
                                    create_graph=True)
    for g, r in zip(grads, grads_ref):
        assert_close(g, r)
    second = torch.autograd.grad(sum((g ** 2).sum() for g in grads), inputs)
    second_ref = torch.autograd.grad(sum((r ** 2).sum() for r in grads_ref),
                                     copies)
    for g, r in zip(second, second_ref):
        assert_close(g, r)


@pytest.mark.parametrize('heads', [None, 2])
@pytest.mark.parametrize('product', PRODUCTS)
def test_gradgradcheck(product, heads):
    edge_index, num_src, num_dst = _edges(seed=3, num_src=4, num_dst=4,
                                          num_edges=7)
    pattern = EdgePattern.build(edge_index, num_src, num_dst)
    fn, _, kinds = _functions(pattern, edge_index, num_src, num_dst)[product]
    inputs = _inputs(kinds, heads, torch.float64, num_src, num_dst,
                     edge_index.size(1))
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_nan_stays_in_its_graph():
    """Products touch only the pattern's entries: a NaN source of one graph
    reaches nothing of another, forward or backward."""
    edge_index = complete_graph([3, 4])
    pattern = EdgePattern.build(edge_index, 7, 7)
    v = torch.randn(7, 2, dtype=torch.float64)
    v[5, 0] = float('nan')
    v.requires_grad_()
    w = torch.rand(edge_index.size(1), dtype=torch.float64,
                   requires_grad=True)
    out = EdgeSum.apply(pattern, w, v)
    assert not out[:3].isnan().any() and out[3:, 0].isnan().all()
    logits = EdgeDot.apply(pattern, v, v)
    assert not logits[:9].isnan().any()
    (out.nansum() + logits.nansum()).backward()
    assert not w.grad[:9].isnan().any() and not v.grad[:3].isnan().any()


def test_pattern_cached_per_tensor():
    edge_index, num_src, num_dst = _edges()
    first = EdgePattern.build(edge_index, num_src, num_dst)
    assert EdgePattern.build(edge_index, num_src, num_dst) is first
    # a different size or an equal but different tensor: built anew
    assert EdgePattern.build(edge_index, num_src + 1, num_dst) is not first
    assert EdgePattern.build(edge_index.clone(), num_src, num_dst) \
        is not first
    edge_index[:, 0] = edge_index[:, 1]  # in place: a repeated edge now
    again = EdgePattern.build(edge_index, num_src, num_dst)
    assert again is not first and again.num_edges == edge_index.size(1)
    # freed with its tensor (the pattern holds no view of it)
    before = len(_cache._PER_TENSOR)
    del edge_index, first
    gc.collect()
    assert len(_cache._PER_TENSOR) < before


def test_no_edges_and_repeated_edges():
    assert EdgePattern.build(torch.empty(2, 0, dtype=torch.long), 3, 3) \
        is None
    # a repeated edge is two entries (two messages): 1 -> 1 twice here
    pattern = EdgePattern.build(torch.tensor([[0, 1, 1, 1], [1, 1, 1, 0]]),
                                2, 2)
    assert pattern.num_edges == 4
    assert pattern.perm.tolist() == [3, 0, 1, 2]
    w = torch.tensor([1., 2., 3., 4.], dtype=torch.float64)
    v = torch.tensor([[10.], [100.]], dtype=torch.float64)
    # w in CSR order (1 -> 0, 0 -> 1, 1 -> 1, 1 -> 1):
    # target 0: 1 * v_1; target 1: 2 * v_0 + (3 + 4) * v_1
    assert pattern.spmm(w, v).flatten().tolist() == [100., 720.]
    assert pattern.sddmm(v[:2] * 0 + 1, v).tolist() == [100., 10., 100.,
                                                         100.]
    # more entries than the [1, 1] matrix has places: still every product
    crowded = EdgePattern.build(torch.zeros(2, 3, dtype=torch.long), 1, 1)
    a = torch.tensor([[2.], ], dtype=torch.float64)
    assert crowded.sddmm(a, a).tolist() == [4., 4., 4.]
    assert crowded.spmm(torch.ones(3, dtype=torch.float64), a).item() == 6.
    assert crowded.spmm_t(torch.ones(3, dtype=torch.float64), a).item() == 6.


def test_heads_pattern_is_block_diagonal():
    edge_index, num_src, num_dst = _edges()
    pattern = EdgePattern.build(edge_index, num_src, num_dst)
    big = pattern.heads(3)
    assert big is pattern.heads(3) and pattern.heads(1) is pattern
    assert big.shape == (3 * num_dst, 3 * num_src)
    dense = big.matrix(torch.ones(big.num_edges, dtype=torch.float64))
    block = pattern.matrix(torch.ones(pattern.num_edges,
                                      dtype=torch.float64)).to_dense()
    assert torch.equal(dense.to_dense(), torch.block_diag(block, block,
                                                          block))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('product', PRODUCTS)
def test_other_dtypes_refused(product, dtype):
    edge_index, num_src, num_dst = _edges()
    pattern = EdgePattern.build(edge_index, num_src, num_dst)
    fn, _, kinds = _functions(pattern, edge_index, num_src, num_dst)[product]
    inputs = _inputs(kinds, None, dtype, num_src, num_dst,
                     edge_index.size(1))
    with pytest.raises(TypeError, match="float32 and float64 only.*"
                       "path='message'"):
        fn(*inputs)
    mixed = [inputs[0].double(), inputs[1].float()]
    with pytest.raises(TypeError, match='one dtype'):
        fn(*mixed)


@pytest.mark.parametrize('product', PRODUCTS)
def test_autocast_runs_in_float32(product):
    """Under CPU bfloat16 autocast the products run in float32 (as
    autocast runs softmax); gradients come back in the inputs' dtypes."""
    edge_index, num_src, num_dst = _edges()
    pattern = EdgePattern.build(edge_index, num_src, num_dst)
    fn, ref, kinds = _functions(pattern, edge_index, num_src,
                                num_dst)[product]
    inputs = _inputs(kinds, 2, torch.float32, num_src, num_dst,
                     edge_index.size(1))
    low = [inputs[0].detach().bfloat16().requires_grad_(), inputs[1]]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = fn(*low)
    assert out.dtype == torch.float32
    assert_close(out, ref(low[0].detach().float(), inputs[1].detach()))
    out.sum().backward()
    assert low[0].grad.dtype == torch.bfloat16
    assert inputs[1].grad.dtype == torch.float32
