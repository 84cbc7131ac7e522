r"""Typed edges, written once.

Kernel offsets (:class:`LatticeConv`), clipped relative positions
(:class:`MultiheadAttentionConv` with ``relative_clip``) and latent edge types
(:mod:`~pyg_relational.nn.nri`) are the same mechanism: every edge carries a
type :math:`t_{ji}` and its message uses the weights of that type. The weights
are never materialised per edge: :func:`typed_transform` applies every type's
weight to every *node* once (one matmul), and :func:`gather_typed` picks, per
edge, the row of its source and type.
"""
from typing import Optional

from torch import Tensor

__all__ = ['typed_transform', 'gather_typed']


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
