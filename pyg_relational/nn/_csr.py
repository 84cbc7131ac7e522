r"""The package's one SDDMM / SpMM implementation: per-edge dot products and
weighted sums over an ``edge_index`` as CSR sparse products, without
``[E, C]`` per-edge rows. Used by the sparse paths of
:class:`~pyg_relational.nn.AttentionConv` (dot-product scores) and
:class:`~pyg_relational.nn.NonLocalBlock`.

Three products on a pattern of ``E`` edges :math:`j \to i` (``N_dst`` targets
:math:`i`, ``N_src`` sources :math:`j`), one head (``[N, C]`` features,
``[E]`` edge values) or ``H`` heads at once (``[N, H, C]``, ``[E, H]``):

==================  ======================================================
:class:`EdgeDot`    SDDMM :math:`e_{ji} = a_i^\top b_j` per edge
:class:`EdgeSum`    SpMM :math:`o_i = \sum_{j \to i} w_{ji} v_j` (targets)
:class:`EdgeSumT`   transposed SpMM :math:`o_j = \sum_{i: j \to i} w_{ji}
                    u_i` (sources)
==================  ======================================================

The gradient of each is made of the other two (e.g. :math:`\partial
o / \partial w` of :class:`EdgeSum` is an :class:`EdgeDot`), and every
backward calls the autograd Functions themselves, so gradients of every
order are exact (``torch.autograd.grad(..., create_graph=True)`` builds a
differentiable graph of the same products).

The CSR pattern of a graph (sort, pointers, transpose, the block-diagonal
copies for heads) is built once per ``edge_index`` tensor and reused while
the tensor lives and is not modified in place (:meth:`EdgePattern.build`).

CSR products exist in PyTorch for float32 and float64 only: under autocast
(CPU bfloat16, CUDA float16) the products run in float32, as autocast runs
softmax; other dtypes outside autocast raise a :class:`TypeError` (layers
check the dtype first and take the message path).
"""
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .._edges import ptr_of
from .._torch import autocast_on, plain_tensor
from ..structure import tensor_cache

__all__ = ['EdgePattern', 'EdgeDot', 'EdgeSum', 'EdgeSumT', 'CSR_DTYPES',
           'autocast_float32']

#: dtypes PyTorch's CSR products support (on CPU: MKL / native kernels)
CSR_DTYPES = (torch.float32, torch.float64)

#: Several heads as one product on a block-diagonal pattern (``True``) or a
#: Python loop of one product per head (``False``). SDDMM + edge softmax +
#: SpMM, forward+backward, 1 thread of a loaded machine (to be measured
#: again on a quiet one): one product 0.71x the loop at
#: N=2000/E=20k/H=8, 0.92x at N=20k/E=200k/H=8, 1.10x at H=2, 0.77x on
#: complete 64x64 (H=8, C=32), 1.32x on complete 16x256 (which the dense
#: path takes); the cost left is the [E, H] <-> head-major copy.
HEADS_IN_ONE_PRODUCT = True


class EdgePattern:
    r"""The edges as a CSR sparsity pattern ``[N_dst, N_src]`` (rows =
    targets, columns = sources, sorted) and, built on first use, its
    transpose and its block-diagonal copies for several heads. Per-edge
    values live in CSR order; ``perm`` maps it to the order of
    ``edge_index`` (``values_in_edge_order[perm] = values``), :obj:`None`
    when the two orders agree. Get it with :meth:`build` (cached per
    graph)."""

    def __init__(self, src: Tensor, dst: Tensor, perm: Optional[Tensor],
                 num_src: int, num_dst: int):
        self.perm = perm
        self.target = dst  # [E] int64, sorted
        self.col = src  # [E] int64
        self.shape = (num_dst, num_src)
        self.num_edges = src.numel()
        self.ptr = _ptr(dst, num_dst)
        # int32 CSR indices when they fit: the sparse-dense product is ~2.4x
        # faster (MKL otherwise converts the int64 indices on every call)
        small = max(num_src, num_dst, src.numel()) < 2**31
        self._index_dtype = torch.int32 if small else torch.long
        self._csr_index = (self.ptr.to(self._index_dtype),
                           src.to(self._index_dtype))
        self._transpose = None
        self._zeros: Dict[tuple, Tensor] = {}
        self._heads: Dict[int, 'EdgePattern'] = {}

    @classmethod
    def build(cls, edge_index: Tensor, num_src: int,
              num_dst: int) -> Optional['EdgePattern']:
        """The pattern of ``edge_index`` (``[2, E]``, sources first), or
        :obj:`None` when the graph has no edge. A repeated edge ``j -> i``
        is two entries of the pattern (two messages, as on the message
        path and in PyG's layers): CSR rows may hold a column twice, and
        every product treats the two entries as separate edges. Cached per tensor and sizes: the same ``edge_index``
        (not modified in place) gets the same pattern back without sorting
        or building again."""
        key = (int(num_src), int(num_dst))
        patterns = tensor_cache(edge_index)
        if key not in patterns:
            patterns[key] = cls._build(edge_index, *key)
        return patterns[key]

    @classmethod
    def _build(cls, edge_index: Tensor, num_src: int,
               num_dst: int) -> Optional['EdgePattern']:
        if edge_index.size(1) == 0:
            return None
        edge_index = plain_tensor(edge_index)  # e.g. PyG's EdgeIndex
        src, dst = edge_index
        key = dst * num_src + src
        if bool((key[1:] >= key[:-1]).all()):  # the builders' order
            # copies: a view would keep edge_index alive through the cache
            return cls(src.clone(), dst.clone(), None, num_src, num_dst)
        perm = key.sort(stable=True).indices  # repeats keep their order
        return cls(src[perm], dst[perm], perm, num_src, num_dst)

    # -- index structures, built on first use ---------------------------
    def transpose(self) -> Tuple[Tensor, Tensor, Tensor]:
        """``(perm_t, ptr_t, col_t)``: CSR order -> sorted by source (CSR
        indices of the transpose in the pattern's index dtype)."""
        if self._transpose is None:
            col = self._csr_index[1]
            perm_t = torch.sort(col, stable=True).indices  # rows stay sorted
            ptr_t = _ptr(self.col, self.shape[1]).to(self._index_dtype)
            col_t = self.target.index_select(0, perm_t).to(self._index_dtype)
            self._transpose = (perm_t, ptr_t, col_t)
        return self._transpose

    def heads(self, num_heads: int) -> 'EdgePattern':
        r"""``num_heads`` copies of the pattern on the block diagonal of an
        ``[H N_dst, H N_src]`` pattern (head-major rows, columns and
        values), so that all heads are one product."""
        if num_heads == 1:
            return self
        out = self._heads.get(num_heads)
        if out is None:
            steps = torch.arange(num_heads, device=self.col.device)
            dst = (self.target + steps.view(-1, 1) * self.shape[0])
            src = (self.col + steps.view(-1, 1) * self.shape[1])
            out = EdgePattern(src.view(-1), dst.view(-1), None,
                              num_heads * self.shape[1],
                              num_heads * self.shape[0])
            self._heads[num_heads] = out
        return out

    def matrix(self, values: Tensor) -> Tensor:  # [N_dst, N_src]
        return _csr(*self._csr_index, values, self.shape)

    def matrix_t(self, values: Tensor) -> Tensor:  # [N_src, N_dst]
        perm_t, ptr_t, col_t = self.transpose()
        return _csr(ptr_t, col_t, values.index_select(0, perm_t),
                    self.shape[::-1])  # index_select: ~1.4x faster than []

    # -- the products, one head, no autograd ----------------------------
    def sddmm(self, a: Tensor, b: Tensor) -> Tensor:
        """``(a @ b.T)[i, j]`` for every edge ``j -> i`` (CSR order): ``a
        [N_dst, C]``, ``b [N_src, C]`` -> ``[E]``."""
        if self.num_edges > self.shape[0] * self.shape[1]:
            # more entries than the matrix has places (repeated edges):
            # sampled_addmm refuses such a pattern, gather the rows instead
            return (a.index_select(0, self.target)
                    * b.index_select(0, self.col)).sum(-1)
        key = (a.dtype, a.device)
        zeros = self._zeros.get(key)
        if zeros is None:  # the pattern's values, never written to
            zeros = self._zeros[key] = a.new_zeros(self.num_edges)
        return torch.sparse.sampled_addmm(self.matrix(zeros), a, b.t(),
                                          beta=0.).values()

    def spmm(self, w: Tensor, v: Tensor) -> Tensor:
        """``sum_j w_ji v_j`` per target: ``w [E]``, ``v [N_src, C]`` ->
        ``[N_dst, C]``."""
        return self.matrix(w) @ v

    def spmm_t(self, w: Tensor, u: Tensor) -> Tensor:
        """``sum_i w_ji u_i`` per source: ``w [E]``, ``u [N_dst, C]`` ->
        ``[N_src, C]``."""
        return self.matrix_t(w) @ u


def _csr(ptr: Tensor, col: Tensor, values: Tensor, shape) -> Tensor:
    with warnings.catch_warnings():  # "CSR support is in beta state"
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(ptr, col, values, shape,
                                       check_invariants=False)


def _ptr(index: Tensor, num: int) -> Tensor:
    """CSR pointer of a sorted ``index`` over ``num`` rows."""
    return ptr_of(torch.bincount(index, minlength=num))


# -- autograd Functions ---------------------------------------------------
def _check(name: str, *tensors: Tensor):
    dtype = tensors[0].dtype
    for t in tensors:
        if t.dtype not in CSR_DTYPES or t.dtype != dtype:
            got = sorted({str(s.dtype) for s in tensors})
            raise TypeError(
                f"{name}: CSR products support float32 and float64 only, "
                f"all inputs of one dtype (got {', '.join(got)}); cast the "
                f"inputs, or run the layer with path='message' (path='auto' "
                f"does so for other dtypes)")


def dtype_reason(x: Tensor) -> Optional[str]:
    """Why the CSR products cannot take ``x`` (its dtype, autocast off),
    or None: the one dtype check of every sparse path."""
    if x.dtype in CSR_DTYPES or autocast_float32(x.device):
        return None
    return (f'CSR products support float32 / float64 only (got {x.dtype}, '
            f'autocast off)')


def autocast_float32(device) -> bool:
    """Whether autocast is on for ``device``: the products then run in
    float32 (as autocast runs softmax), whatever the inputs' dtype."""
    return autocast_on(device)


def _run(ctx, name: str, product: str, pattern: EdgePattern, x: Tensor,
         y: Tensor) -> Tensor:
    """The forward of the three Functions: autocast casts to float32 (and
    is off inside), dtypes checked, inputs saved, the product run."""
    if autocast_float32(x.device):
        x, y = (t.float() if t.dtype not in CSR_DTYPES else t
                for t in (x, y))
    _check(name, x, y)
    ctx.pattern = pattern
    ctx.save_for_backward(x, y)
    with torch.autocast(x.device.type, enabled=False):
        return _per_head(pattern, product, x, y)


def _backward(ctx, grad: Tensor, grad_x, grad_y):
    """The backward of the three Functions: the gradients of the inputs
    that need one, each a product of the same family (differentiable
    again), ``grad_x(pattern, x, y, grad)``."""
    x, y = ctx.saved_tensors
    grad = grad.to(x.dtype)  # autocast: the float32 of forward
    return (None, ) + tuple(
        rule(ctx.pattern, x, y, grad) if ctx.needs_input_grad[i] else None
        for i, rule in ((1, grad_x), (2, grad_y)))


def _per_head(pattern: EdgePattern, product: str, w_or_a: Tensor,
              b: Tensor) -> Tensor:
    r"""Run ``pattern.<product>`` on ``H`` heads: inputs ``[E, H]`` or
    ``[N, H, C]`` (a 2-D / 1-D input means one head). One product on the
    block-diagonal pattern, or a loop over heads
    (:data:`HEADS_IN_ONE_PRODUCT`)."""
    one_head = b.dim() == 2
    if one_head:
        return getattr(pattern, product)(w_or_a.contiguous(),
                                         b.contiguous())
    H = b.size(1)
    if HEADS_IN_ONE_PRODUCT:
        big = pattern.heads(H)

        def head_major(t: Tensor) -> Tensor:
            if t.dim() == 2:  # [E, H] -> [H * E]
                return t.t().reshape(-1)
            return t.transpose(0, 1).reshape(-1, t.size(-1))  # [H * N, C]

        out = getattr(big, product)(head_major(w_or_a), head_major(b))
        if product == 'sddmm':
            return out.view(H, -1).t()  # [E, H]
        return out.view(H, -1, out.size(-1)).transpose(0, 1)  # [N, H, C]
    outs = [getattr(pattern, product)(w_or_a[:, h].contiguous(),
                                      b[:, h].contiguous()) for h in range(H)]
    return torch.stack(outs, dim=1)  # [E, H] or [N, H, C]


def _product(name: str, product: str, doc: str, grad_x, grad_y):
    """One of the three products as a :class:`torch.autograd.Function`:
    ``apply(pattern, x, y)`` runs ``pattern.<product>`` (:func:`_run`), its
    backward :func:`_backward` with the two gradient rules."""
    def forward(ctx, pattern: EdgePattern, x: Tensor, y: Tensor):
        return _run(ctx, name, product, pattern, x, y)

    def backward(ctx, grad: Tensor):
        return _backward(ctx, grad, grad_x, grad_y)

    return type(name, (torch.autograd.Function, ),
                dict(__doc__=doc, __module__=__name__,
                     forward=staticmethod(forward),
                     backward=staticmethod(backward)))


EdgeDot = _product(
    'EdgeDot', 'sddmm',
    r""":math:`a_i^\top b_j` for every edge :math:`j \to i` (CSR order)
    without gathering ``[E, C]`` rows: a sampled dense-dense product
    (SDDMM). ``a [N_dst, C]``, ``b [N_src, C]`` -> ``[E]``, or per head
    ``[N_dst, H, C]``, ``[N_src, H, C]`` -> ``[E, H]``. Backward:
    :class:`EdgeSum` and :class:`EdgeSumT` (differentiable again).""",
    lambda p, a, b, g: EdgeSum.apply(p, g, b),
    lambda p, a, b, g: EdgeSumT.apply(p, g, a))

EdgeSum = _product(
    'EdgeSum', 'spmm',
    r""":math:`\sum_{j \to i} w_{ji} v_j` (``w`` in CSR order) as one
    sparse-dense product (SpMM) instead of ``[E, C]`` messages: ``w [E]``,
    ``v [N_src, C]`` -> ``[N_dst, C]``, or per head ``[E, H]``,
    ``[N_src, H, C]`` -> ``[N_dst, H, C]``. Backward: :class:`EdgeDot` and
    :class:`EdgeSumT`.""",
    lambda p, w, v, g: EdgeDot.apply(p, g, v),
    lambda p, w, v, g: EdgeSumT.apply(p, w, g))

EdgeSumT = _product(
    'EdgeSumT', 'spmm_t',
    r""":math:`\sum_{i: j \to i} w_{ji} u_i` per *source* (``w`` in CSR
    order), the transposed SpMM: ``w [E]``, ``u [N_dst, C]`` ->
    ``[N_src, C]``, or per head ``[E, H]``, ``[N_dst, H, C]`` ->
    ``[N_src, H, C]``. Backward: :class:`EdgeDot` and :class:`EdgeSum`.""",
    lambda p, w, u, g: EdgeDot.apply(p, u, g),
    lambda p, w, u, g: EdgeSum.apply(p, w, g))
