r"""Attention over a graph's edges, the parts every attention layer shares
(:class:`~pyg_relational.nn.AttentionConv` and its drop-in / Transformer
subclasses, :class:`~pyg_relational.nn.NonLocalBlock`): which path runs and
its CSR pattern (:func:`choose_attention_path`), the sparse path itself
(:func:`sparse_attention`: logits as an SDDMM or from per-node terms,
normalisation, dropout, edge weights, the weighted sum as an SpMM) and the
normalisation of every path (:func:`edge_softmax`, :func:`normalise`)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import degree, softmax

from .._checks import plain_tensor
from ._csr import EdgeDot, EdgePattern, EdgeSum, dtype_reason
from .._torch import compiling
from ._paths import GraphInput, choose_path

__all__ = ['choose_attention_path', 'sparse_attention', 'normalise',
           'edge_order', 'edge_softmax']

NORMALISATIONS = ('softmax', 'count')


def edge_softmax(logits: Tensor, index: Tensor,
                 num_nodes: Optional[int] = None,
                 ptr: Optional[Tensor] = None) -> Tensor:
    r"""Softmax of per-edge ``logits`` over each target's incoming edges:
    :math:`\alpha_{ij} = \exp(e_{ij} - m_i) / \sum_{j'} \exp(e_{ij'} - m_i)`
    with :math:`m_i = \max_{j'} e_{ij'}` (stable for logits of any size).

    The one normalisation of every attention layer in the package; it calls
    :func:`torch_geometric.utils.softmax`. A target with no incoming edge
    has no :math:`\alpha` at all, so its aggregate is zero.

    .. note::
        ``ptr`` is used only when no gradient is recorded: with ``ptr`` PyG
        runs torch-scatter's segment kernels, whose backward is not
        differentiable again (second-order gradients came out wrong, e.g.
        61 against values of 94); the ``index`` form is exact at every
        order.

    Args:
        logits (Tensor): ``[E]`` or ``[E, H]``.
        index (LongTensor): ``[E]`` target of every edge (``edge_index[1]``).
        num_nodes (int, optional): number of targets. (default: :obj:`None`)
        ptr (LongTensor, optional): CSR pointer of targets when the edges
            are sorted by target. (default: :obj:`None`)
    """
    if logits.numel() == 0:
        return logits
    if ptr is not None and torch.is_grad_enabled() and logits.requires_grad:
        ptr = None  # exact gradients of every order (see the note)
    return softmax(logits, index, ptr, num_nodes, dim=0)


def choose_attention_path(layer, graph: GraphInput, size: Tuple[int, int],
                          value: Tensor, dense_why: Optional[str]
                          ) -> Tuple[str, Optional[EdgePattern]]:
    """The path ``layer`` runs (``'dense'`` unless ``dense_why`` says why
    not, then ``'sparse'``, then ``'message'``; recorded in ``last_path`` /
    ``why_not_faster``) and, for the sparse path, the graph's CSR pattern
    (repeated edges included)."""
    sparse_why = dtype_reason(value)  # autocast: the products run in fp32
    if sparse_why is None and compiling():
        sparse_why = 'torch.compile cannot trace the CSR products'
    pattern = None
    wanted = layer.path == 'sparse' or (layer.path == 'auto'
                                        and dense_why is not None)
    if sparse_why is None and wanted:
        # PyG's EdgeIndex: its plain data (the same tensor every call, so
        # the pattern cache holds)
        pattern = EdgePattern.build(plain_tensor(graph.edge_index), *size)
        if pattern is None:
            sparse_why = 'the graph has no edge (no CSR form)'
    path = choose_path(layer, layer.path, {'dense': dense_why,
                                           'sparse': sparse_why})
    return path, pattern


def normalise(f: Tensor, index: Tensor, ptr: Optional[Tensor],
              num_nodes: Optional[int], how: str = 'softmax') -> Tensor:
    r""":math:`f_{ij} / \mathcal{C}_i` over the incoming edges of every
    target: a softmax (``'softmax'``; numerically stable, targets without
    edges get nothing) or a division by their number (``'count'``, the
    non-local block's :math:`\mathcal{C}_i = |\mathcal{N}(i)|`)."""
    if how == 'softmax':
        return edge_softmax(f, index, num_nodes, ptr)
    count = degree(index, num_nodes, dtype=f.dtype)  # C_i = |N(i)|
    return f / count.index_select(0, index).view(
        (-1, ) + (1, ) * (f.dim() - 1))


def edge_order(pattern: EdgePattern, alpha: Tensor) -> Tensor:
    """Per-edge values in CSR order back to the order of ``edge_index``."""
    if pattern.perm is None:
        return alpha
    return alpha.new_zeros(alpha.shape).index_copy(0, pattern.perm, alpha)


@torch.compiler.disable  # runs eagerly under torch.compile (CSR ops)
def sparse_attention(pattern: EdgePattern, score, query: Tensor, key: Tensor,
                     value: Tensor, num_dst: int, *,
                     edge_term: Optional[Tensor] = None,
                     edge_type: Optional[Tensor] = None,
                     how: str = 'softmax', dropout: float = 0.,
                     training: bool = False,
                     edge_weight: Optional[Tensor] = None
                     ) -> Tuple[Tensor, Tensor]:
    r"""The weighted sum :math:`\sum_{j \to i} \alpha_{ij} v_j` and the
    weights, with the edges in CSR order and no per-edge rows of the
    values: the logits of dot-product scores as a sampled dense-dense
    product (SDDMM), of the others from the per-node terms of
    ``score.project`` gathered per edge; the sum as a sparse-dense product
    (SpMM).

    Args:
        pattern: the graph's CSR pattern.
        score: the score (``dot_product``, ``scale``, ``edge``).
        query, key: ``score.project``'s per-node terms, ``[N, H, C]`` (or
            ``[N, C]``, one head; ``[N, H]`` / ``[N, 1]`` for non-dot
            scores).
        value: ``[N_src, H, C]`` (or ``[N_src, C]``).
        num_dst: number of targets.
        edge_term, edge_type, edge_weight: per-edge inputs in CSR order.
        how: ``'softmax'`` or ``'count'`` (:func:`normalise`).
        dropout, training: dropout on the weights, its mask drawn in the
            order of ``edge_index`` (the message path's mask for one seed).

    Returns:
        ``out`` ``[N_dst, H, C]`` (``[N_dst, C]``) and ``alpha`` ``[E, H]``
        (``[E]``) in CSR order.
    """
    if score.dot_product:  # q_i . k_j / scale, [E, H] or [E]
        logits = EdgeDot.apply(pattern, query, key)
        if score.scale != 1.:
            logits = logits / score.scale
        if edge_term is not None:
            logits = logits + edge_term
    else:
        logits = score.edge(query.index_select(0, pattern.target),
                            key.index_select(0, pattern.col), edge_type,
                            edge_term)
    if value.dim() == 2:  # one head, 2-D values: [E]
        logits = logits.reshape(-1)
    alpha = normalise(logits, pattern.target, pattern.ptr, num_dst, how)
    if training and dropout > 0:
        keep = F.dropout(alpha.new_ones(alpha.shape), p=dropout)
        alpha = alpha * (keep if pattern.perm is None else keep[pattern.perm])
    if edge_weight is not None:
        alpha = alpha * edge_weight.to(alpha.dtype).view(
            (-1, ) + (1, ) * (alpha.dim() - 1))
    return EdgeSum.apply(pattern, alpha, value), alpha
