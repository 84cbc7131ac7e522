r"""Attention over a graph's edges: the one operator every attention layer
calls (:func:`attend`: :class:`~pyg_relational.nn.AttentionConv`, its
drop-in / Transformer subclasses and :class:`~pyg_relational.nn.NonLocalBlock`
keep only their projections and output maps).

:func:`attend` takes queries, keys and values per node, the graph (an edge
list, ``adj_t`` or a :class:`~pyg_relational.structure.GraphStructure`,
resolved as a :class:`~pyg_relational.nn._paths.GraphInput`), the layer's
score, normalisation, dropout, edge terms, edge types with relative
positions, edge weights and whether the weights are wanted. It owns the
reasons each path cannot run, the CSR pattern, the choice between the dense
kernels (:func:`~pyg_relational.nn._dense.block_attention`), the CSR
products (:func:`sparse_attention`) and PyG's message passing (the layer's
``edge_updater`` / ``propagate``, with :class:`EdgeAttention`'s
``edge_update`` / ``message``), and returns the weights in the order of the
edge list whatever path ran."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import degree, softmax

from .._torch import compiling, plain_tensor
from ._csr import EdgeDot, EdgePattern, EdgeSum, dtype_reason
from ._dense import block_attention, dense_reason
from ._paths import GraphInput, choose_path
from .typed import gather_typed

__all__ = ['attend', 'EdgeAttention', 'choose_attention_path',
           'sparse_attention', 'normalise', 'edge_order', 'edge_softmax']

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
        query, key: ``score.project``'s per-node terms, ``[N, H, C]``
            (``[N, H]`` for GAT-like scores).
        value: ``[N_src, H, C]``.
        num_dst: number of targets.
        edge_term, edge_type, edge_weight: per-edge inputs in CSR order.
        how: ``'softmax'`` or ``'count'`` (:func:`normalise`).
        dropout, training: dropout on the weights, its mask drawn in the
            order of ``edge_index`` (the message path's mask for one seed).

    Returns:
        ``out`` ``[N_dst, H, C]`` and ``alpha`` ``[E, H]`` in CSR order.
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
    alpha = normalise(logits, pattern.target, pattern.ptr, num_dst, how)
    if training and dropout > 0:
        keep = F.dropout(alpha.new_ones(alpha.shape), p=dropout)
        alpha = alpha * (keep if pattern.perm is None else keep[pattern.perm])
    if edge_weight is not None:
        alpha = alpha * edge_weight.to(alpha.dtype).view(
            (-1, ) + (1, ) * (alpha.dim() - 1))
    return EdgeSum.apply(pattern, alpha, value), alpha


def attend(layer, query: Tensor, key: Tensor, value: Tensor,
           graph: GraphInput, size: Tuple[int, int], *,
           edge_term: Optional[Tensor] = None,
           edge_type: Optional[Tensor] = None,
           relative: Optional[Tuple[Tensor, Tensor]] = None,
           edge_weight: Optional[Tensor] = None, need_weights: bool = False,
           dense_why: Optional[str] = None) -> Tuple[Tensor, Optional[Tensor]]:
    r"""Attention of every target to its sources along the graph's edges,

    .. math::
        \mathbf{o}_i = \sum_{j \to i} w_{ij}\, \alpha_{ij}
        (\mathbf{v}_j + \mathbf{a}^V_{t_{ij}}), \qquad
        \alpha_{ij} = \frac{1}{\mathcal{C}_i} f\big(\mathrm{score}(
        \mathbf{q}_i, \mathbf{k}_j) + e_{ij} + \mathbf{q}_i^\top
        \mathbf{a}^K_{t_{ij}} / s\big),

    per head, with :math:`f / \mathcal{C}_i` the softmax over the incoming
    edges of :math:`i` (or :math:`f` = identity and :math:`\mathcal{C}_i`
    their number, ``layer.normalisation == 'count'``), dropout on
    :math:`\alpha` in training, edge weights :math:`w_{ij}` after it.
    Runs on the first available path of ``layer.path`` (dense blocks, CSR
    products, PyG's message passing), recorded in ``layer.last_path`` /
    ``layer.why_not_faster``.

    Args:
        layer: the calling :class:`EdgeAttention` layer: its ``score``,
            ``normalisation``, ``dropout``, ``training``, ``path`` and, for
            the message path, its ``edge_updater`` / ``propagate`` (so that
            PyG explain and hooks see the messages).
        query (Tensor): ``[N_dst, H, C]`` (before ``score.project``).
        key (Tensor): ``[N_src, H, C]``.
        value (Tensor): ``[N_src, H, C_v]``.
        graph (GraphInput): the resolved graph argument.
        size ((int, int)): ``(N_src, N_dst)``.
        edge_term (Tensor, optional): ``[E, H]`` per-edge logit term
            :math:`e_{ij}` (``[E, H, C]`` for GATv2), in edge-list order.
        edge_type (LongTensor, optional): ``[E]`` type :math:`t_{ij}` of
            every edge (relative positions, the location score).
        relative ((Tensor, Tensor), optional): ``(rel_key [T, C],
            rel_value [T, C_v])``, the relative-position vectors :math:`
            \mathbf{a}^K_t, \mathbf{a}^V_t` (Shaw et al.).
        edge_weight (Tensor, optional): ``[E]`` :math:`w_{ij}`.
        need_weights (bool): also return :math:`w_{ij}\alpha_{ij}`.
        dense_why (str, optional): a reason of the layer's own why the
            dense path cannot run.

    Returns:
        ``(out [N_dst, H, C_v], alpha [E, H] or None)``, ``alpha`` in the
        order of ``graph.edge_index`` (always returned by the sparse and
        message paths).
    """
    score, how = layer.score, layer.normalisation
    if how == 'softmax' and not score.dot_product:
        name = getattr(score, 'name', type(score).__name__)
        dense_why = f'score={name!r} is not a dot product'
    elif edge_term is not None:
        dense_why = 'edge features (edge_attr) are not part of a dot product'
    elif edge_weight is not None:
        dense_why = 'per-edge weights (edge_weight) are not part of SDPA'
    elif dense_why is None:
        dense_why = dense_reason(graph.structure, equal=how != 'softmax')
    path, pattern = choose_attention_path(layer, graph, size, value,
                                          dense_why)
    rel_key, rel_value = (None, None) if relative is None else relative
    q, k = score.project(query, key)
    rel = None  # relative keys, scored once per (target, type): [N, T, H]
    if rel_key is not None:
        rel = torch.einsum('nhc,tc->nth', q, rel_key) / score.scale
    if path == 'dense':
        if not score.dot_product:  # per-node terms [N, H] -> [N, H, 1]
            q, k = q.unsqueeze(-1), k.unsqueeze(-1)
        return block_attention(
            q, k, value, graph.structure, scale=1. / score.scale,
            dropout_p=layer.dropout, training=layer.training,
            need_weights=need_weights, score=score, how=how,
            relative=None if rel is None else (rel.transpose(1, 2),
                                               rel_value, edge_type))
    if path == 'sparse':
        perm = pattern.perm
        if perm is not None:  # per-edge inputs in CSR order
            edge_term, edge_type, edge_weight = (
                None if t is None else t[perm]
                for t in (edge_term, edge_type, edge_weight))
        out, alpha = sparse_attention(
            pattern, score, q, k, value, size[1],
            edge_term=relative_term(edge_term, rel, pattern.target,
                                    edge_type),
            edge_type=edge_type, how=how, dropout=layer.dropout,
            training=layer.training, edge_weight=edge_weight)
        if rel_value is not None:  # sum_t (sum of alpha of type t) a^V_t
            T, H = rel_value.size(0), alpha.size(-1)
            weight = alpha.new_zeros(size[1] * T, H).index_add_(
                0, pattern.target * T + edge_type, alpha)  # [N_dst*T, H]
            out = out + torch.einsum('nth,tc->nhc', weight.view(-1, T, H),
                                     rel_value)
        return out, edge_order(pattern, alpha)
    edge_index = graph.edge_index
    alpha = layer.edge_updater(edge_index, q=(None, q), k=(k, None),
                               rel=rel, edge_term=edge_term,
                               edge_type=edge_type, size=size)
    if edge_weight is not None:  # [E, H]
        alpha = alpha * edge_weight.to(alpha.dtype).unsqueeze(-1)
    out = layer.propagate(edge_index, v=(value, None), alpha=alpha,
                          rel_value=rel_value, edge_type=edge_type,
                          size=size)  # [N_dst, H, C_v]
    return out, alpha


def relative_term(edge_term: Optional[Tensor], rel: Optional[Tensor],
                  index: Tensor, edge_type: Optional[Tensor]
                  ) -> Optional[Tensor]:
    r"""``edge_term`` plus the relative key term :math:`q_i \cdot
    a^K_{t_{ij}} / s` of every edge (``rel [N_dst, T, H]`` per target and
    type, gathered at the edges' targets ``index`` and types)."""
    if rel is None:
        return edge_term
    rel = gather_typed(rel, index, edge_type)  # [E, H]
    return rel if edge_term is None else edge_term + rel


class EdgeAttention:
    r"""The message path of :func:`attend`, a mixin before
    :class:`~torch_geometric.nn.conv.MessagePassing`: ``edge_update`` scores
    and normalises every edge, ``message`` weighs the source's value. The
    layer provides ``score``, ``dropout`` and ``normalisation``."""
    #: :math:`\mathcal{C}_i`: ``'softmax'`` or ``'count'`` (the number of
    #: incoming edges, with the raw score as :math:`f`).
    normalisation = 'softmax'
    # the arguments :func:`attend` passes (PyG reads them to generate the
    # layer's ``edge_updater`` / ``propagate``; tuples are (source, target))
    edge_updater_type = dict(q=Tensor, k=Tensor, rel=Tensor,
                             edge_term=Tensor, edge_type=Tensor)
    propagate_type = dict(v=Tensor, alpha=Tensor, rel_value=Tensor,
                          edge_type=Tensor)

    def edge_update(self, q_i: Tensor, k_j: Tensor, rel: Optional[Tensor],
                    edge_term: Optional[Tensor], edge_type: Optional[Tensor],
                    index: Tensor, ptr: Optional[Tensor],
                    dim_size: Optional[int]) -> Tensor:
        edge_term = relative_term(edge_term, rel, index, edge_type)
        logits = self.score.edge(q_i, k_j, edge_type, edge_term)  # [E, H]
        alpha = normalise(logits, index, ptr, dim_size, self.normalisation)
        return F.dropout(alpha, p=self.dropout, training=self.training)

    def message(self, v_j: Tensor, alpha: Tensor,
                rel_value: Optional[Tensor],
                edge_type: Optional[Tensor]) -> Tensor:
        if rel_value is not None:
            v_j = v_j + rel_value.index_select(0, edge_type).unsqueeze(1)
        return alpha.unsqueeze(-1) * v_j  # [E, H, C]
