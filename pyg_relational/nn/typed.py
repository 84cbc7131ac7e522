r"""Typed edges, written once.

Kernel offsets (:class:`LatticeConv`), clipped relative positions
(:class:`MultiheadAttentionConv` with ``relative_clip``) and latent edge types
(:mod:`~pyg_relational.nn.nri`) are the same mechanism: every edge carries a
type :math:`t_{ji}` and its message uses the weights of that type. The weights
are never materialised per edge: :func:`typed_transform` applies every type's
weight to every *node* once (one matmul), and :func:`gather_typed` picks, per
edge, the row of its source and type.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._checks import check_edge_vector

__all__ = ['typed_transform', 'gather_typed', 'typed_aggregate']


def typed_transform(x: Tensor, weight: Tensor,
                    bias: Optional[Tensor] = None) -> Tensor:
    r"""Apply every type's linear map to every node.

    Args:
        x (Tensor): node features ``[N, F_in]``.
        weight (Tensor): ``[T, F_in, F_out]``, one matrix per type.
        bias (Tensor, optional): ``[T, F_out]``. (default: :obj:`None`)

    Returns:
        ``[N, T, F_out]`` with ``out[n, t] = x[n] @ weight[t] (+ bias[t])``.
    """
    num_types, f_in, f_out = weight.shape
    w = weight.permute(1, 0, 2).reshape(f_in, num_types * f_out)  # [F_in, T*F_out]
    out = (x @ w).view(-1, num_types, f_out)  # [N, T, F_out]
    if bias is not None:
        out = out + bias
    return out


def gather_typed(h: Tensor, index: Tensor,
                 edge_type: Optional[Tensor] = None) -> Tensor:
    r"""Per-edge rows of a typed node transform.

    Args:
        h (Tensor): ``[N, T, F]`` from :func:`typed_transform`.
        index (LongTensor): ``[E]`` node of every edge (usually the source
            ``edge_index[0]``).
        edge_type (LongTensor, optional): ``[E]`` type of every edge. Without
            it all types are returned (soft / latent types).

    Returns:
        ``[E, F]`` (``h[index, edge_type]``), or ``[E, T, F]`` without
        ``edge_type``.
    """
    if edge_type is None:
        return h.index_select(0, index)  # [E, T, F]
    flat = h.reshape(-1, h.size(-1))  # [N*T, F]
    return flat.index_select(0, index * h.size(1) + edge_type)  # [E, F]


def typed_aggregate(x: Tensor, weight: Tensor, edge_index: Tensor,
                    edge_type: Tensor, num_dst: int,
                    groups: int = 1) -> Tensor:
    r"""Sum of typed linear messages, fused:
    :math:`\mathbf{o}_i = \sum_{j \to i} \mathbf{x}_j \mathbf{W}_{t_{ji}}`.

    Equal to ``scatter(gather_typed(typed_transform(x, weight),
    edge_index[0], edge_type), edge_index[1], reduce='sum')`` but never
    stores ``[N, T, F_out]`` or per-edge tensors for backward: edges are
    grouped by type once, then per type the source rows are gathered,
    multiplied by :math:`\mathbf{W}_t` and added to their targets; backward
    recomputes the gathers. Peak memory is a few ``[E_t, F]`` buffers of
    the largest type instead of ``[E, F]`` plus ``[N, T, F]``.

    A type whose edges are a *translation* — ``src = dst + delta_t`` with
    one ``delta_t`` and each target at most once, e.g. every kernel offset
    of a stride-1 ``'same'``-padded :func:`~pyg_relational.graphs.grid_graph`
    — needs no gather or scatter: its targets form a range of rows, so the
    shifted slice of ``x`` (rows without that edge masked to zero) is
    multiplied straight into that range. When every type is a translation
    (and ``groups == 1``) the types are handled together, a block of target
    rows at a time: the shifted, masked slices of the block are laid side
    by side (``[rows, T * F_in]``, about 2 MB, kept in cache) and multiplied
    by all weights at once. All paths give the same numbers; the choice is
    made per call from the indices.

    Args:
        x (Tensor): source node features ``[N_src, F_in]``.
        weight (Tensor): ``[T, F_in / groups, F_out]``; with ``groups > 1``
            input channel block :math:`g` maps to output block :math:`g` only
            (as in a grouped convolution).
        edge_index (LongTensor): ``[2, E]``, sources index ``x``.
        edge_type (LongTensor): ``[E]`` values in ``[0, T)``.
        num_dst (int): number of target nodes.
        groups (int, optional): channel groups. (default: :obj:`1`)

    Returns:
        ``[num_dst, F_out]``.

    .. note::
        Differentiable once (no double backward).
    """
    if weight.dim() != 3 or x.dim() != 2 \
            or x.size(1) != weight.size(1) * groups:
        raise ValueError(f"'x' [N, F_in] and 'weight' [T, F_in / groups, "
                         f"F_out] do not fit (got {tuple(x.shape)}, "
                         f"{tuple(weight.shape)}, groups={groups})")
    check_edge_vector(edge_type, edge_index.size(1), 'edge_type',
                      weight.size(0))
    plan = _plan(edge_index, edge_type, weight.size(0), dtype=x.dtype)
    if groups == 1 and all(step is None or step[0] == 'shift'
                           for step in plan):
        return _ShiftAggregate.apply(x, weight, plan, num_dst)
    return _TypedAggregate.apply(x, weight, plan, num_dst, groups)


def _plan(edge_index: Tensor, edge_type: Tensor, num_types: int,
          shifts: bool = True,
          dtype: torch.dtype = torch.float32) -> List[Tuple]:
    """Per type: ``('shift', lo, hi, delta, mask or None)`` or
    ``('gather', src, dst)`` (see :func:`typed_aggregate`). A ``mask`` is
    a bool ``[hi - lo, 1]``: rows are *selected*, never multiplied by 0, so
    a NaN/inf stays in its own rows (``dtype`` is kept for callers)."""
    # Sorting small integers is several times faster in a narrow dtype.
    key = edge_type
    if num_types < 256:
        key = edge_type.to(torch.uint8)
    elif num_types < 32767:
        key = edge_type.to(torch.int16)
    key, perm = key.sort(stable=True)  # edges grouped by type, order kept
    src = edge_index[0].index_select(0, perm)
    dst = edge_index[1].index_select(0, perm)
    num_edges = src.numel()
    # Everything the plan needs from the indices, per type, computed on
    # the device and read back in ONE transfer (a host sync on CUDA), not a
    # few per type: [count, min offset, max offset, first target, last
    # target, targets not strictly increasing].
    bounds = torch.arange(num_types + 1, device=key.device).to(key.dtype)
    ends = torch.searchsorted(key, bounds)  # [T + 1]
    counts = ends.diff()  # [T]
    stats = [counts]
    if shifts and num_edges > 0:
        types = key.long()
        offset = src - dst  # [E]
        low = offset.new_zeros(num_types).scatter_reduce(
            0, types, offset, 'amin', include_self=False)
        high = offset.new_zeros(num_types).scatter_reduce(
            0, types, offset, 'amax', include_self=False)
        first = dst.index_select(0, ends[:-1].clamp(max=num_edges - 1))
        last = dst.index_select(0, (ends[1:] - 1).clamp(min=0))
        unsorted = (types[1:] == types[:-1]) & (dst[1:] <= dst[:-1])
        unsorted = counts.new_zeros(num_types).index_add_(
            0, types[1:], unsorted.to(counts.dtype))
        stats += [low, high, first, last, unsorted]
    rows = torch.stack(stats, dim=1).tolist()  # [T, 1 or 6]: the one sync
    plan, start = [], 0
    for t, row in enumerate(rows):
        n = row[0]
        s, d = src[start:start + n], dst[start:start + n]
        start += n
        if n == 0:
            plan.append(None)
            continue
        if shifts:
            _, low, high, lo, hi, unsorted = row
            hi += 1
            # one offset, targets strictly increasing (each at most once)
            if low == high and unsorted == 0:
                mask = None
                if hi - lo != n:  # holes: rows of the range without edge
                    mask = torch.zeros(hi - lo, 1, dtype=torch.bool,
                                       device=d.device)
                    mask[d - lo] = True
                plan.append(('shift', lo, hi, low, mask))
                continue
        plan.append(('gather', s, d))
    return plan


def _group_mm(a: Tensor, w: Tensor, groups: int) -> Tensor:
    """``a [n, G*ci] @ w [ci, G*co]`` block-diagonally: ``[n, G*co]``."""
    if groups == 1:
        return a @ w
    n, ci = a.size(0), w.size(0)
    co = w.size(1) // groups
    out = torch.bmm(a.view(n, groups, ci).transpose(0, 1),  # [G, n, ci]
                    w.view(ci, groups, co).transpose(0, 1))  # [G, ci, co]
    return out.transpose(0, 1).reshape(n, groups * co)  # [n, G*co]


def _group_mm_nt(g: Tensor, w: Tensor, groups: int) -> Tensor:
    """``g [n, G*co] @ w.T`` block-diagonally: ``[n, G*ci]``."""
    if groups == 1:
        return g @ w.t()
    n, ci = g.size(0), w.size(0)
    co = w.size(1) // groups
    out = torch.bmm(g.view(n, groups, co).transpose(0, 1),  # [G, n, co]
                    w.view(ci, groups, co).permute(1, 2, 0))  # [G, co, ci]
    return out.transpose(0, 1).reshape(n, groups * ci)  # [n, G*ci]


def _group_mm_tn(a: Tensor, g: Tensor, groups: int) -> Tensor:
    """``a.T @ g`` block-diagonally: ``[ci, G*co]`` (a weight gradient)."""
    if groups == 1:
        return a.t() @ g
    n = a.size(0)
    ci, co = a.size(1) // groups, g.size(1) // groups
    out = torch.bmm(a.view(n, groups, ci).permute(1, 2, 0),  # [G, ci, n]
                    g.view(n, groups, co).transpose(0, 1))  # [G, n, co]
    return out.transpose(0, 1).reshape(ci, groups * co)  # [ci, G*co]


class _TypedAggregate(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, plan, num_dst, groups):
        out = x.new_zeros(num_dst, weight.size(-1))
        for t, step in enumerate(plan):
            if step is None:
                continue
            if step[0] == 'shift':
                _, lo, hi, delta, mask = step
                xs = x[lo + delta:hi + delta]  # [hi - lo, F_in]
                if mask is not None:  # a select: NaN * 0 would be NaN
                    xs = torch.where(mask, xs, 0.)
                if groups == 1:
                    out[lo:hi].addmm_(xs, weight[t])
                else:
                    out[lo:hi] += _group_mm(xs, weight[t], groups)
            else:
                _, s, d = step
                out.index_add_(0, d, _group_mm(x.index_select(0, s),
                                               weight[t], groups))
        ctx.save_for_backward(x, weight)
        ctx.plan, ctx.groups = plan, groups
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        groups = ctx.groups
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x = torch.zeros_like(x) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        for t, step in enumerate(ctx.plan):
            if step is None:
                continue
            if step[0] == 'shift':
                _, lo, hi, delta, mask = step
                g = grad_out[lo:hi]  # [hi - lo, F_out]
                if mask is not None:
                    g = torch.where(mask, g, 0.)
                if need_w:
                    grad_w[t] = _group_mm_tn(x[lo + delta:hi + delta], g,
                                             groups)
                if need_x:
                    if groups == 1:
                        grad_x[lo + delta:hi + delta].addmm_(g, weight[t].t())
                    else:
                        grad_x[lo + delta:hi + delta] += _group_mm_nt(
                            g, weight[t], groups)
            else:
                _, s, d = step
                g = grad_out.index_select(0, d)  # [E_t, F_out]
                if need_w:
                    grad_w[t] = _group_mm_tn(x.index_select(0, s), g, groups)
                if need_x:
                    grad_x.index_add_(0, s, _group_mm_nt(g, weight[t],
                                                         groups))
        return grad_x, grad_w, None, None, None


class _ShiftAggregate(torch.autograd.Function):
    # Every type a translation ('shift' steps of _plan), groups == 1: a
    # chunked im2col. ``cols[r, t] = mask_t[r] * x[r + delta_t]`` for a block
    # of target rows r, then ``out[block] = cols @ weight.view(T * F_in, -)``.

    @staticmethod
    def _fill(cols: Tensor, x: Tensor, plan, r0: int, r1: int,
              grad_cols: Optional[Tensor] = None,
              grad_x: Optional[Tensor] = None):
        """Build ``cols`` (``[r1 - r0, T, F_in]``) for rows ``r0:r1``; with
        ``grad_cols`` also add its rows back to ``grad_x`` (the transpose)."""
        for t, step in enumerate(plan):
            if step is None:
                cols[:, t].zero_()
                continue
            _, lo, hi, delta, mask = step
            a, b = max(lo, r0), min(hi, r1)
            if a >= b:
                cols[:, t].zero_()
                continue
            if a > r0:
                cols[:a - r0, t].zero_()
            if b < r1:
                cols[b - r0:, t].zero_()
            src = x[a + delta:b + delta]  # [b - a, F_in]
            dst = cols[a - r0:b - r0, t]
            m = None if mask is None else mask[a - lo:b - lo]  # [b - a, 1]
            if m is None:
                dst.copy_(src)
            else:  # a select: NaN * 0 would carry a NaN into other rows
                torch.where(m, src, src.new_zeros(()), out=dst)
            if grad_cols is not None:
                g = grad_cols[a - r0:b - r0, t]
                if m is None:
                    grad_x[a + delta:b + delta] += g
                else:
                    grad_x[a + delta:b + delta] += torch.where(m, g, 0.)

    @staticmethod
    def _rows(x: Tensor, weight: Tensor) -> int:
        row_bytes = weight.size(0) * weight.size(1) * x.element_size()
        return max(64, min(4096, (1 << 21) // max(row_bytes, 1)))

    @staticmethod
    def forward(ctx, x, weight, plan, num_dst):
        num_types, f_in, f_out = weight.shape
        w_all = weight.reshape(num_types * f_in, f_out)
        out = x.new_empty(num_dst, f_out)
        rows = _ShiftAggregate._rows(x, weight)
        cols = x.new_empty(min(rows, num_dst), num_types, f_in)
        for r0 in range(0, num_dst, rows):
            r1 = min(r0 + rows, num_dst)
            block = cols[:r1 - r0]
            _ShiftAggregate._fill(block, x, plan, r0, r1)
            torch.mm(block.view(r1 - r0, -1), w_all, out=out[r0:r1])
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        num_types, f_in, f_out = weight.shape
        w_all = weight.reshape(num_types * f_in, f_out)
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x = torch.zeros_like(x) if need_x else None
        grad_w = torch.zeros_like(w_all) if need_w else None
        num_dst = grad_out.size(0)
        rows = _ShiftAggregate._rows(x, weight)
        cols = x.new_empty(min(rows, num_dst), num_types, f_in)
        for r0 in range(0, num_dst, rows):
            r1 = min(r0 + rows, num_dst)
            block, g = cols[:r1 - r0], grad_out[r0:r1]  # g: [rows, F_out]
            grad_cols = (g @ w_all.t()).view(r1 - r0, num_types, f_in) \
                if need_x else None
            _ShiftAggregate._fill(block, x, ctx.plan, r0, r1, grad_cols,
                                  grad_x)
            if need_w:
                grad_w.addmm_(block.view(r1 - r0, -1).t(), g)
        if grad_w is not None:
            grad_w = grad_w.view_as(weight)
        return grad_x, grad_w, None, None
