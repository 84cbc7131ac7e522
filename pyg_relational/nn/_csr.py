r"""The package's one SDDMM / SpMM implementation: per-edge dot products and
weighted sums over an ``edge_index`` as CSR sparse products, without
``[E, C]`` per-edge rows. Used by the fused paths of
:class:`~pyg_relational.nn.AttentionConv` (dot-product scores) and
:class:`~pyg_relational.nn.NonLocalBlock`.
"""
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor


class EdgePattern:
    r"""The edges as a CSR sparsity pattern ``[N_dst, N_src]`` (rows =
    targets, columns = sources, sorted) and, built on first use (backward),
    its transpose. Per-edge values live in CSR order; ``perm`` maps it to
    the order of ``edge_index`` (``values_in_edge_order[perm] = values``).
    Build it with :meth:`build`."""

    def __init__(self, src: Tensor, dst: Tensor, perm: Optional[Tensor],
                 num_src: int, num_dst: int):
        self.perm = perm
        self.target = dst
        self.col = src
        self.shape = (num_dst, num_src)
        self.ptr = _ptr(dst, num_dst)
        # int32 CSR indices when they fit: the sparse-dense product is ~2.4x
        # faster (MKL otherwise converts the int64 indices on every call)
        small = max(num_src, num_dst, src.numel()) < 2**31
        self._index_dtype = torch.int32 if small else torch.long
        self._csr_index = (self.ptr.to(self._index_dtype),
                           src.to(self._index_dtype))
        self._transpose = None
        self._zeros = None

    @classmethod
    def build(cls, edge_index: Tensor, num_src: int,
              num_dst: int) -> Optional['EdgePattern']:
        """The pattern, or :obj:`None` when CSR does not apply (no edge, or
        a repeated edge ``j -> i``)."""
        if edge_index.size(1) == 0:
            return None
        src, dst = edge_index
        key = dst * num_src + src
        if bool((key[1:] > key[:-1]).all()):  # the builders' order
            return cls(src, dst, None, num_src, num_dst)
        key, perm = key.sort()
        if bool((key[1:] == key[:-1]).any()):
            return None
        return cls(src[perm], dst[perm], perm, num_src, num_dst)

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

    def matrix(self, values: Tensor) -> Tensor:  # [N_dst, N_src]
        return _csr(*self._csr_index, values, self.shape)

    def matrix_t(self, values: Tensor) -> Tensor:  # [N_src, N_dst]
        perm_t, ptr_t, col_t = self.transpose()
        return _csr(ptr_t, col_t, values.index_select(0, perm_t),
                    self.shape[::-1])  # index_select: ~1.4x faster than []

    def sddmm(self, a: Tensor, b: Tensor) -> Tensor:
        """``(a @ b.T)[i, j]`` for every edge ``j -> i`` (CSR order)."""
        if self._zeros is None or self._zeros.dtype != a.dtype \
                or self._zeros.device != a.device:
            self._zeros = a.new_zeros(self.col.numel())  # never written to
        pattern = self.matrix(self._zeros)
        return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.).values()


def _csr(ptr: Tensor, col: Tensor, values: Tensor, shape) -> Tensor:
    with warnings.catch_warnings():  # "CSR support is in beta state"
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(ptr, col, values, shape,
                                       check_invariants=False)


def _ptr(index: Tensor, num: int) -> Tensor:
    count = torch.bincount(index, minlength=num)
    return torch.cat([count.new_zeros(1), count.cumsum(0)])


class EdgeDot(torch.autograd.Function):
    r""":math:`q_i^\top k_j` for every edge (CSR order) without gathering
    ``[E, C]`` rows: a sampled dense-dense product (SDDMM); backward is
    two sparse-dense products."""

    @staticmethod
    def forward(ctx, pattern: EdgePattern, query: Tensor, key: Tensor):
        ctx.pattern = pattern
        ctx.save_for_backward(query, key)
        return pattern.sddmm(query, key)  # [E]

    @staticmethod
    def backward(ctx, grad: Tensor):
        query, key = ctx.saved_tensors
        pattern = ctx.pattern
        grad = grad.contiguous()
        grad_query = pattern.matrix(grad) @ key \
            if ctx.needs_input_grad[1] else None
        grad_key = pattern.matrix_t(grad) @ query \
            if ctx.needs_input_grad[2] else None
        return None, grad_query, grad_key


class EdgeSum(torch.autograd.Function):
    r""":math:`\sum_j \alpha_{ji} v_j` (``alpha`` in CSR order) as one
    sparse-dense product (SpMM) instead of ``[E, C]`` messages; the gradient
    of ``alpha`` is an SDDMM."""

    @staticmethod
    def forward(ctx, pattern: EdgePattern, alpha: Tensor, value: Tensor):
        ctx.pattern = pattern
        ctx.save_for_backward(alpha, value)
        return pattern.matrix(alpha) @ value  # [N_dst, C]

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, value = ctx.saved_tensors
        pattern = ctx.pattern
        grad = grad.contiguous()
        grad_alpha = pattern.sddmm(grad, value) \
            if ctx.needs_input_grad[1] else None
        grad_value = pattern.matrix_t(alpha) @ grad \
            if ctx.needs_input_grad[2] else None
        return None, grad_alpha, grad_value
