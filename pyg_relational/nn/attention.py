r"""Attention as an inferred edge attribute.

"The attention is nothing but an edge attribute that finds a relation between
node attributes": every edge :math:`j \to i` gets a logit
:math:`e_{ij} = \mathrm{score}(q_i, k_j)`, the logits are normalised over each
target's incoming edges, :math:`\alpha_{ij} = \mathrm{softmax}_i(e_{ij})`, and
the target sums :math:`\alpha_{ij}` times its sources' values.

Score-function API (used by :class:`AttentionConv`, :class:`BahdanauAttention`,
:class:`LuongAttention`, :class:`~pyg_relational.nn.MultiheadAttentionConv`
and :class:`~pyg_relational.nn.NonLocalBlock`)
--------------------------------------------------------------------------

Every score is an :class:`AttentionScore` (a :class:`torch.nn.Module`) built
by name with :func:`attention_score`::

    score = attention_score('scaled_dot', heads=H, query_channels=C,
                            key_channels=C)

It works on per-head node features, queries ``q [N_dst, H, C_q]`` (targets
:math:`i`) and keys ``k [N_src, H, C_k]`` (sources :math:`j`), in two steps:

1. ``q_node, k_node = score.project(q, k)``: everything that depends on one
   node only, computed **once per node** (e.g. ``additive`` maps
   :math:`W q_i` and :math:`U k_j`; ``gat`` reduces to :math:`a_{dst}^\top
   q_i` and :math:`a_{src}^\top k_j`);
2. ``logits = score.edge(q_node[i], k_node[j], edge_type=None,
   edge_term=None)``: the per-edge part on the gathered rows, returning
   ``[E, H]`` (``edge_term [E, H]``, e.g. projected edge features, is added
   to the logit, inside the LeakyReLU for ``concat``).

Scores with ``dot_product = True`` (``dot``, ``scaled_dot``, ``general``)
have ``edge = q_i . k_j / scale``, so layers may compute them as sparse CSR
products without gathering per-edge rows, or, on complete and bipartite
blocks, with :func:`~torch.nn.functional.scaled_dot_product_attention`
(``AttentionConv(path=...)``).

``score(q, k, edge_index, edge_type=None)`` runs both steps (gathering
``q_node[edge_index[1]]`` and ``k_node[edge_index[0]]``).
:func:`edge_softmax` then normalises the logits over each target's incoming
edges (numerically stable, targets without edges get nothing, never NaN).

==============  =========================================================
name            per-edge logit :math:`e_{ij}` (per head)
==============  =========================================================
``dot``         :math:`q_i^\top k_j` (Luong *dot*; needs :math:`C_q = C_k`)
``scaled_dot``  :math:`q_i^\top k_j / \sqrt{C_k}` (Vaswani et al.)
``general``     :math:`q_i^\top W k_j` (Luong *general*)
``additive``    :math:`v^\top \tanh(W q_i + U k_j)` (Bahdanau; Luong
                *concat* :math:`v^\top\tanh(W_c[q_i; k_j])` is the same map)
``concat``      :math:`\mathrm{LeakyReLU}(a_{dst}^\top q_i + a_{src}^\top
                k_j)` = :math:`\mathrm{LeakyReLU}(a^\top[q_i \Vert k_j])`
                (GAT; ``negative_slope=0`` gives the ReLU of the non-local
                block's concatenation form). Alias: ``gat``.
``gatv2``       :math:`a^\top \mathrm{LeakyReLU}(q_i + k_j)` (GATv2, Brody
                et al.; per-edge rows, ``from_module(GATv2Conv)``)
``location``    :math:`(W_a q_i + b_a)_{t_{ij}}`: depends on the target only
                (Luong *location*); ``edge_type`` :math:`t_{ij}` picks the
                entry (e.g. the source position), so ``project`` returns an
                empty key.
==============  =========================================================

Example:
    >>> score = attention_score('scaled_dot', heads=2, query_channels=4,
    ...                         key_channels=4)
    >>> q, k = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    >>> edge_index = complete_graph(3)
    >>> logits = score(q, k, edge_index)  # [E, H]
    >>> alpha = edge_softmax(logits, edge_index[1], num_nodes=3)
    >>> logits.shape, alpha.shape
    (torch.Size([9, 2]), torch.Size([9, 2]))
"""
import math
from typing import Dict, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros

from .._checks import (check_choice, check_edge_index, check_edge_vector,
                       check_features, check_int, check_sizes)
from ..graphs import bipartite_graph, window_graph
from ..structure import GraphStructure
from ._attend import EdgeAttention, attend, edge_softmax
from ._convert import attention_from_pyg
from ._inputs import (attention_edges, attention_nodes, attention_options,
                      with_self_loops)
from ._paths import GraphInput, PathLayer, weights_like_graph

__all__ = [
    'AttentionConv', 'BahdanauAttention', 'LuongAttention', 'AttentionScore',
    'DotScore', 'ScaledDotScore', 'GeneralScore',
    'AdditiveScore', 'ConcatScore', 'GATv2Score', 'LocationScore', 'SCORES',
    'attention_score', 'edge_softmax'
]


class AttentionScore(torch.nn.Module):
    r"""Base class of the score functions (see the module docstring).

    Args:
        heads (int): number of heads :math:`H`.
        query_channels (int): channels :math:`C_q` of a query per head.
        key_channels (int): channels :math:`C_k` of a key per head.
    """
    #: per-edge logits are linear in the key (``dot``/``scaled_dot``), so
    #: key offsets such as relative-position embeddings can be scored alone.
    linear_in_key: bool = False
    #: :meth:`edge` is ``q_i . k_j / scale`` on the projected rows (``dot``,
    #: ``scaled_dot``, ``general``), so a layer may compute it as a sampled
    #: matrix product (SDDMM) without gathering per-edge rows.
    dot_product: bool = False
    scale: float = 1.0

    def __init__(self, heads: int, query_channels: int, key_channels: int):
        super().__init__()
        self.heads = check_int(heads, 'heads', minimum=1)
        self.query_channels = check_int(query_channels, 'query_channels', 1)
        self.key_channels = check_int(key_channels, 'key_channels', 1)

    def reset_parameters(self):
        pass

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-node part: ``query [N_dst, H, C_q]``, ``key [N_src, H, C_k]``
        to what :meth:`edge` gathers per edge."""
        return query, key

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        r"""Per-edge part on gathered rows of :meth:`project`: ``[E, H]``.

        ``edge_term [E, H]`` (optional) is a per-edge contribution such as
        projected edge features: added to the logit, inside the LeakyReLU
        for ``concat`` (GAT's :math:`a^\top[W x_i \Vert W x_j \Vert W_e
        e_{ij}]`)."""
        raise NotImplementedError

    @staticmethod
    def _add(logits: Tensor, edge_term: Optional[Tensor]) -> Tensor:
        return logits if edge_term is None else logits + edge_term

    def _check(self, query: Tensor, key: Tensor):
        for name, t, c in (('query', query, self.query_channels),
                           ('key', key, self.key_channels)):
            if not isinstance(t, Tensor) or t.dim() != 3 or \
                    t.size(1) != self.heads or t.size(2) != c:
                shape = tuple(t.shape) if isinstance(t, Tensor) else t
                raise ValueError(
                    f"'{name}' of {self.__class__.__name__} must have shape "
                    f"[N, {self.heads}, {c}] (heads, channels per head); got "
                    f"{shape}; reshape with .view(-1, heads, channels)")

    def forward(self, query: Tensor, key: Tensor, edge_index: Tensor,
                edge_type: Optional[Tensor] = None,
                edge_term: Optional[Tensor] = None) -> Tensor:
        """Logits ``[E, H]`` of every edge ``j -> i`` of ``edge_index``."""
        self._check(query, key)
        check_edge_index(edge_index, key.size(0), query.size(0))
        q, k = self.project(query, key)
        return self.edge(q.index_select(0, edge_index[1]),
                         k.index_select(0, edge_index[0]), edge_type,
                         edge_term)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(heads={self.heads}, '
                f'query_channels={self.query_channels}, '
                f'key_channels={self.key_channels})')


class DotScore(AttentionScore):
    r""":math:`e_{ij} = q_i^\top k_j / s` with :math:`s = 1`."""
    linear_in_key = True
    dot_product = True

    def __init__(self, heads: int, query_channels: int, key_channels: int):
        super().__init__(heads, query_channels, key_channels)
        if query_channels != key_channels:
            raise ValueError(
                f"score={self.name!r} needs query_channels == key_channels "
                f"(got {query_channels} and {key_channels}); use "
                f"score='general' to compare features of different sizes")

    name = 'dot'

    @property
    def scale(self) -> float:
        return 1.0

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        # einsum (a batched matmul) beats mul + sum by ~3x on CPU
        dot = torch.einsum('ehc,ehc->eh', query_i, key_j)  # [E, H]
        return self._add(dot / self.scale, edge_term)


class ScaledDotScore(DotScore):
    r""":math:`e_{ij} = q_i^\top k_j / \sqrt{C_k}`."""
    name = 'scaled_dot'

    @property
    def scale(self) -> float:
        return math.sqrt(self.key_channels)


class GeneralScore(AttentionScore):
    r""":math:`e_{ij} = q_i^\top W k_j`, one :math:`W` per head; the query
    side :math:`q_i^\top W` is computed once per node."""
    name = 'general'
    dot_product = True

    def __init__(self, heads: int, query_channels: int, key_channels: int):
        super().__init__(heads, query_channels, key_channels)
        self.weight = Parameter(torch.empty(heads, query_channels,
                                            key_channels))
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.weight)

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        return torch.einsum('nhq,hqk->nhk', query, self.weight), key

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        dot = torch.einsum('ehc,ehc->eh', query_i, key_j)  # [E, H]
        return self._add(dot, edge_term)


class AdditiveScore(AttentionScore):
    r""":math:`e_{ij} = v^\top \tanh(W q_i + U k_j)` (Bahdanau et al.,
    2015); :math:`W q_i` and :math:`U k_j` are computed once per node.

    Args:
        attention_channels (int, optional): size :math:`A` of the hidden
            layer. (default: ``key_channels``)
        bias (bool, optional): add a learnt bias inside the tanh.
            (default: :obj:`False`)
    """
    name = 'additive'

    def __init__(self, heads: int, query_channels: int, key_channels: int,
                 attention_channels: Optional[int] = None, bias: bool = False):
        super().__init__(heads, query_channels, key_channels)
        a = key_channels if attention_channels is None else check_int(
            attention_channels, 'attention_channels', 1)
        self.attention_channels = a
        self.weight_query = Parameter(torch.empty(heads, query_channels, a))
        self.weight_key = Parameter(torch.empty(heads, key_channels, a))
        self.att = Parameter(torch.empty(heads, a))
        if bias:
            self.bias = Parameter(torch.empty(heads, a))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.weight_query)
        glorot(self.weight_key)
        glorot(self.att)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        q = torch.einsum('nhq,hqa->nha', query, self.weight_query)
        k = torch.einsum('nhk,hka->nha', key, self.weight_key)
        if self.bias is not None:
            k = k + self.bias
        return q, k  # [N_dst, H, A], [N_src, H, A]

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        return self._add((torch.tanh(query_i + key_j) * self.att).sum(-1),
                         edge_term)


class ConcatScore(AttentionScore):
    r""":math:`e_{ij} = \mathrm{LeakyReLU}(a^\top [q_i \Vert k_j])
    = \mathrm{LeakyReLU}(a_{dst}^\top q_i + a_{src}^\top k_j)` (GAT); both
    halves are reduced to one number per node and head once.

    Args:
        negative_slope (float, optional): LeakyReLU slope; ``0`` gives a
            ReLU. (default: :obj:`0.2`)
    """
    name = 'concat'

    def __init__(self, heads: int, query_channels: int, key_channels: int,
                 negative_slope: float = 0.2):
        super().__init__(heads, query_channels, key_channels)
        self.negative_slope = float(negative_slope)
        self.att_dst = Parameter(torch.empty(1, heads, query_channels))
        self.att_src = Parameter(torch.empty(1, heads, key_channels))
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.att_src)  # GATConv's order: source, then target
        glorot(self.att_dst)

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        return ((query * self.att_dst).sum(-1),  # [N_dst, H]
                (key * self.att_src).sum(-1))  # [N_src, H]

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        return gat_logits(query_i, key_j, edge_term, self.negative_slope)


def gat_logits(query_i: Tensor, key_j: Tensor, edge_term: Optional[Tensor],
               negative_slope: float) -> Tensor:
    r"""GAT's logits :math:`\mathrm{LeakyReLU}(a_{dst}^\top q_i + a_{src}^\top
    k_j [+ a_{edge}^\top W_e e_{ij}])` from the per-node terms ``[E, H]``."""
    logits = query_i + key_j
    if edge_term is not None:
        logits = logits + edge_term
    return F.leaky_relu(logits, negative_slope)  # [E, H]


def gatv2_logits(query_i: Tensor, key_j: Tensor, att: Tensor,
                 edge_term: Optional[Tensor], negative_slope: float
                 ) -> Tensor:
    r"""GATv2's logits :math:`a^\top \mathrm{LeakyReLU}(q_i + k_j [+ W_e
    e_{ij}])` from the per-edge rows ``[E, H, C]`` (the edge term
    ``[E, H, C]`` inside the LeakyReLU, as in ``GATv2Conv``)."""
    hidden = query_i + key_j
    if edge_term is not None:
        hidden = hidden + edge_term
    hidden = F.leaky_relu(hidden, negative_slope)
    return (hidden * att).sum(dim=-1)  # [E, H]


class GATv2Score(AttentionScore):
    r""":math:`e_{ij} = \mathbf{a}^\top \mathrm{LeakyReLU}(q_i + k_j)`
    (GATv2, `Brody et al., 2022 <https://arxiv.org/abs/2105.14491>`_): the
    nonlinearity comes before the attention vector, so the ranking of the
    sources can depend on the target ("dynamic" attention). Needs the
    per-edge rows ``[E, H, C]``; ``query_channels`` must equal
    ``key_channels``. An ``edge_term`` (projected edge features) is
    ``[E, H, C]`` and enters inside the LeakyReLU, as in ``GATv2Conv``.

    Args:
        negative_slope (float, optional): LeakyReLU slope.
            (default: :obj:`0.2`)
    """
    name = 'gatv2'

    def __init__(self, heads: int, query_channels: int, key_channels: int,
                 negative_slope: float = 0.2):
        super().__init__(heads, query_channels, key_channels)
        if query_channels != key_channels:
            raise ValueError(f"score='gatv2' adds query and key: "
                             f"query_channels ({query_channels}) must equal "
                             f"key_channels ({key_channels})")
        self.negative_slope = float(negative_slope)
        self.att = Parameter(torch.empty(1, heads, key_channels))
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.att)

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        return gatv2_logits(query_i, key_j, self.att, edge_term,
                            self.negative_slope)


class LocationScore(AttentionScore):
    r""":math:`e_{ij} = (W_a q_i + b_a)_{t_{ij}}`: a function of the target
    only, read at the edge's type :math:`t_{ij}` (Luong et al.'s *location*
    score with :math:`t_{ij}` = source position; :math:`b_a` is an addition).
    One row per target and type, picked per edge.

    Args:
        num_types (int): number of edge types (e.g. the longest source).
    """
    name = 'location'

    def __init__(self, heads: int, query_channels: int, key_channels: int,
                 num_types: Optional[int] = None):
        super().__init__(heads, query_channels, key_channels)
        if num_types is None:
            raise ValueError("score='location' needs 'num_types' (e.g. the "
                             "longest source sequence) to size W_a")
        self.num_types = check_int(num_types, 'num_types', 1)
        self.weight = Parameter(torch.empty(heads, query_channels, num_types))
        self.bias = Parameter(torch.empty(heads, num_types))
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.weight)
        torch.nn.init.zeros_(self.bias)

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        q = torch.einsum('nhq,hqt->nth', query, self.weight) + self.bias.t()
        return q, key.new_empty(key.size(0), 0)  # [N_dst, T, H], unused key

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None,
             edge_term: Optional[Tensor] = None) -> Tensor:
        if edge_type is None:
            raise ValueError("score='location' needs 'edge_type' (the "
                             "position of every edge's source)")
        check_edge_vector(edge_type, query_i.size(0), 'edge_type',
                          self.num_types)
        # query_i: [E, T, H] -> the row of each edge's type: [E, H]
        logits = query_i.gather(
            1, edge_type.view(-1, 1, 1).expand(-1, 1, self.heads)).squeeze(1)
        return self._add(logits, edge_term)


SCORES: Dict[str, Type[AttentionScore]] = {
    'dot': DotScore,
    'scaled_dot': ScaledDotScore,
    'general': GeneralScore,
    'additive': AdditiveScore,
    'concat': ConcatScore,
    'gat': ConcatScore,
    'gatv2': GATv2Score,
    'location': LocationScore,
}


def attention_score(name: str, heads: int, query_channels: int,
                    key_channels: int, **kwargs) -> AttentionScore:
    r"""Build the score function ``name`` (one of :obj:`SCORES`).

    Args:
        name (str): ``'dot'``, ``'scaled_dot'``, ``'general'``,
            ``'additive'``, ``'concat'`` (alias ``'gat'``) or
            ``'location'``.
        heads (int): number of heads.
        query_channels (int): channels of a query per head.
        key_channels (int): channels of a key per head.
        **kwargs: score options (``negative_slope`` for ``concat``,
            ``attention_channels``/``bias`` for ``additive``,
            ``num_types`` for ``location``).
    """
    check_choice(name, SCORES, 'score')
    return SCORES[name](heads, query_channels, key_channels, **kwargs)


class AttentionConv(EdgeAttention, PathLayer, MessagePassing):
    r"""Attention on any graph: the attention weight is an edge attribute
    inferred from the node attributes.

    .. math::
        \mathbf{x}'_i = \big\Vert_{h=1}^{H} \sum_{j \to i}
        \alpha^h_{ij} \big(\mathbf{W}^h_V \mathbf{x}_j + \mathbf{a}^V_{t_{ij}}
        \big) + \mathbf{b},
        \qquad
        \alpha^h_{ij} = \mathrm{softmax}_i\big(
        \mathrm{score}(\mathbf{W}^h_Q \mathbf{x}_i, \mathbf{W}^h_K
        \mathbf{x}_j + \mathbf{a}^K_{t_{ij}}) + \mathbf{c}^{h\top}
        \mathbf{W}^h_E \mathbf{e}_{ij}\big)

    with the score chosen by name (``'dot'``, ``'scaled_dot'``,
    ``'general'``, ``'additive'``, ``'concat'``/``'gat'``, ``'location'``;
    see :mod:`~pyg_relational.nn.attention`), the softmax taken over each
    target's incoming edges, the edge-feature term only with ``edge_dim``,
    and the relative-position terms :math:`\mathbf{a}_{t_{ij}}` (Shaw et
    al., 2018; one learnt vector per edge type, shared by all heads) only
    with ``num_edge_types``. With ``concat=False`` the heads are averaged
    instead of concatenated.

    With ``score='gat'`` (or ``'concat'``) the layer is GAT
    (`Veličković et al., 2018 <https://arxiv.org/abs/1710.10903>`_):
    query, key and value share one :math:`\mathbf{W}` (``lin_src`` /
    ``lin_dst`` on bipartite input), and
    ``AttentionConv.from_module(GATConv(...))`` computes exactly what
    :class:`torch_geometric.nn.GATConv` computes (``add_self_loops=True``
    there). Otherwise :math:`\mathbf{W}_Q, \mathbf{W}_K, \mathbf{W}_V` are
    separate maps, as in the Transformer
    (`Vaswani et al., 2017 <https://arxiv.org/abs/1706.03762>`_).

    .. note::
        The graph is the inductive bias, so self-loops are **not** added by
        default (``GATConv`` adds them); pass ``add_self_loops=True`` or
        build the graph with them. Relative-position terms need a score that
        is linear in the key (``'dot'``, ``'scaled_dot'``); they are scored
        per target node and type once (:mod:`~pyg_relational.nn.typed`).
        For ``'gat'`` the edge-feature term sits inside the LeakyReLU, as in
        ``GATConv``.

    Execution paths (``path='auto'`` takes the first that applies; a forced
    path that cannot run raises a :class:`ValueError` saying why):

    * ``'dense'``: scores ``'dot'``, ``'scaled_dot'``, ``'general'`` on
      :class:`~pyg_relational.structure.CompleteBlocks` (with self-loops,
      causal or not) or :class:`~pyg_relational.structure.BipartiteBlocks`
      (built by :func:`~pyg_relational.graphs.complete_graph` /
      :func:`~pyg_relational.graphs.bipartite_graph`, recognised on an
      ``edge_index``, or passed as the structure itself), without
      ``edge_attr``, ``edge_weight`` or ``add_self_loops``:
      :func:`~torch.nn.functional.scaled_dot_product_attention` on
      ``[B, H, n, C]`` blocks (:mod:`~pyg_relational.nn._dense`);
    * ``'sparse'``: every score, on any graph with an edge (a repeated edge
      is two messages), float32/float64, not while :func:`torch.compile`
      traces: CSR products (SDDMM / SpMM), never ``[E, H, C]`` rows for
      GAT;
    * ``'message'``: :meth:`edge_update` + :meth:`message`, the reference,
      also taken by ``'auto'`` for PyG explain masks and hooks.

    All three are :func:`~pyg_relational.nn._attend.attend`, the one
    attention operator of the package.

    Args:
        in_channels (int or (int, int)): input size, or
            ``(source size, target size)`` for bipartite input; ``-1``
            infers a size from the first input (lazy, as in PyG, e.g. for
            :func:`~torch_geometric.nn.to_hetero`).
        out_channels (int): channels :math:`C` per head.
        heads (int, optional): number of heads :math:`H`. (default: :obj:`1`)
        score (str, optional): score function. (default: :obj:`'gat'`)
        concat (bool, optional): concatenate the heads (else average).
            (default: :obj:`True`)
        negative_slope (float, optional): LeakyReLU slope of ``'gat'``.
            (default: :obj:`0.2`)
        dropout (float, optional): dropout on :math:`\alpha` in training.
            (default: :obj:`0.`)
        add_self_loops (bool, optional): replace self-loops by one per node
            (edge features filled with ``fill_value``, as PyG does).
            (default: :obj:`False`)
        edge_dim (int, optional): edge-feature size; adds the edge term to
            the logits. (default: :obj:`None`)
        fill_value (float or str, optional): edge features of added
            self-loops. (default: :obj:`'mean'`)
        bias (bool, optional): learn the output bias :math:`\mathbf{b}`.
            (default: :obj:`True`)
        qkv_bias (bool, optional): biases in the query/key/value maps.
            (default: :obj:`False`)
        num_edge_types (int, optional): learn relative key/value vectors
            :math:`\mathbf{a}^K_t, \mathbf{a}^V_t` per edge type.
            (default: :obj:`None`)
        residual (bool, optional): add :math:`\mathbf{W}_r \mathbf{x}_i`
            (the target's own input, mapped to the output size) to the
            output, as ``GATConv(residual=True)``. (default: :obj:`False`)
        path (str, optional): how to compute it, same numbers on every
            path (see below): ``'auto'``, ``'dense'``, ``'sparse'`` or
            ``'message'``. The one that ran is ``conv.last_path``, the
            reasons faster ones did not are ``conv.why_not_faster``.
            (default: :obj:`'auto'`)
        fused: removed; passing it raises a :class:`TypeError` naming
            ``path``.
        **score_kwargs: options of the score (e.g. ``num_types`` for
            ``'location'``, ``attention_channels`` for ``'additive'``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V}_s|, F_s), (|\mathcal{V}_t|, F_t))`,
          edge indices :math:`(2, |\mathcal{E}|)` (or an ``EdgeIndex``,
          an ``adj_t`` without values, a
          :class:`~pyg_relational.structure.GraphStructure`), edge features
          :math:`(|\mathcal{E}|, D)` *(optional)*, edge types
          :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, H \cdot C)` or
          :math:`(|\mathcal{V}_t|, C)` with ``concat=False``; with
          ``return_attention_weights=True`` also
          ``(edge_index, alpha [E, H])``.

    Example:
        >>> conv = AttentionConv(8, 4, heads=2, score='scaled_dot')
        >>> x, edge_index = torch.randn(5, 8), complete_graph(5)
        >>> out, (edge_index, alpha) = conv(x, edge_index,
        ...                                 return_attention_weights=True)
        >>> out.shape, alpha.shape
        (torch.Size([5, 8]), torch.Size([25, 2]))
        >>> conv.last_path  # complete graph: scaled_dot_product_attention
        'dense'
        >>> from pyg_relational.structure import CompleteBlocks
        >>> conv(torch.randn(6, 8), CompleteBlocks((4, 2), causal=True)).shape
        torch.Size([6, 8])
    """
    def __init__(self, in_channels: Union[int, Tuple[int, int]],
                 out_channels: int, heads: int = 1, score: str = 'gat',
                 concat: bool = True, negative_slope: float = 0.2,
                 dropout: float = 0., add_self_loops: bool = False,
                 edge_dim: Optional[int] = None,
                 fill_value: Union[float, Tensor, str] = 'mean',
                 bias: bool = True, qkv_bias: bool = False,
                 num_edge_types: Optional[int] = None,
                 residual: bool = False, path: str = 'auto',
                 fused: Optional[bool] = None, **score_kwargs):
        super().__init__(aggr='add', node_dim=0)
        check_choice(score, SCORES, 'score')
        in_src, in_dst = attention_options(
            self, in_channels, out_channels, heads, score, concat,
            negative_slope, dropout, add_self_loops, edge_dim, fill_value,
            residual, path, fused)
        H, C = self.heads, self.out_channels

        def linear(size):
            return Linear(size, H * C, bias=qkv_bias,
                          weight_initializer='glorot')

        self.lin_src = self.lin_dst = None
        self.lin_query = self.lin_key = self.lin_value = None
        if self.gat:  # GAT: one W for key and value (and query in GAT)
            self.lin_src = linear(in_src)
            shared = isinstance(in_channels, int) and score != 'gatv2'
            self.lin_dst = self.lin_src if shared else linear(in_dst)
            score_kwargs.setdefault('negative_slope', negative_slope)
        else:
            self.lin_query = linear(in_dst)
            self.lin_key, self.lin_value = linear(in_src), linear(in_src)
        # The score initialises itself, and reset_parameters() below draws
        # its parameters again: keep that first draw off the global random
        # stream, so one seed gives the same start as PyG's GATConv
        # (lin, [lin_edge], att_src, att_dst, att_edge) for score='gat'.
        with torch.random.fork_rng(devices=[]):
            self.score = attention_score(score, H, C, C, **score_kwargs)
        self.lin_edge = None if edge_dim is None else Linear(
            edge_dim, H * C, bias=False, weight_initializer='glorot')
        self.att_edge = Parameter(torch.empty(1, H, C)) if (
            edge_dim is not None and score != 'gatv2') else None  # GATv2: no
        # GATConv's residual: a map of the target's own input to the output
        self.res = Linear(in_dst, H * C if concat else C, bias=False,
                          weight_initializer='glorot') if residual else None
        self.rel_key = self.rel_value = None
        if num_edge_types is not None:
            self.num_edge_types = check_int(num_edge_types, 'num_edge_types',
                                            1)
            if not self.score.linear_in_key:
                raise ValueError(
                    f"num_edge_types (relative positions) needs a score "
                    f"linear in the key ('dot' or 'scaled_dot'); got "
                    f"score={score!r}")
            self.rel_key = Parameter(torch.empty(num_edge_types, C))
            self.rel_value = Parameter(torch.empty(num_edge_types, C))
        self.bias = Parameter(torch.empty(H * C if concat else C)) \
            if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        lin_dst = None if self.lin_dst is self.lin_src else self.lin_dst
        for lin in (self.lin_src, lin_dst, self.lin_query, self.lin_key,
                    self.lin_value, self.lin_edge, self.res):
            if lin is not None:  # the shared GAT map is drawn once
                lin.reset_parameters()
        self.score.reset_parameters()
        glorot(self.att_edge)
        if self.rel_key is not None:
            torch.nn.init.xavier_uniform_(self.rel_key)
            torch.nn.init.xavier_uniform_(self.rel_value)
        zeros(self.bias)

    def _project(self, x_src: Tensor, x_dst: Optional[Tensor],
                 num_dst: Optional[int] = None):
        """Per-node query ``[N_dst, H, C]``, key and value ``[N_src, H, C]``
        (no target features: a zero query, which adds nothing to a GAT
        logit)."""
        H, C = self.heads, self.out_channels
        if not self.gat:
            return (self.lin_query(x_dst).view(-1, H, C),
                    self.lin_key(x_src).view(-1, H, C),
                    self.lin_value(x_src).view(-1, H, C))
        key = self.lin_src(x_src).view(-1, H, C)
        if x_dst is None:  # no target features
            return key.new_zeros(num_dst, H, C), key, key
        if x_dst is x_src and self.lin_dst is self.lin_src:
            return key, key, key  # one W on one node set: projected once
        return self.lin_dst(x_dst).view(-1, H, C), key, key

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]],
                edge_index: Union[Tensor, GraphStructure],
                edge_attr: Optional[Tensor] = None, *,
                edge_type: Optional[Tensor] = None,
                edge_weight: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None,
                return_attention_weights: bool = False):
        r"""Args:
            x (Tensor or (Tensor, Tensor)): node features, or
                ``(x_src, x_dst)``.
            edge_index (LongTensor or EdgeIndex or adj_t or GraphStructure):
                ``[2, E]``, sources first; an ``adj_t`` (``SparseTensor`` /
                ``torch.sparse`` ``[N_dst, N_src]``, without values); or a
                :class:`~pyg_relational.structure.GraphStructure`.
            edge_attr (Tensor, optional): ``[E, D]`` with ``edge_dim``.
            edge_type (LongTensor, optional): ``[E]`` type per edge (with
                ``num_edge_types`` or ``score='location'``).
            edge_weight (Tensor, optional): ``[E]`` weight per edge,
                multiplying :math:`\alpha_{ij}` after the softmax and
                dropout (DGL's ``GATConv(edge_weight=...)``); the returned
                weights include it.
            size ((int, int), optional): ``(N_src, N_dst)``; with a single
                ``x`` the first ``N_dst`` nodes are the targets.
            return_attention_weights (bool, optional): also return
                ``(edge_index, alpha [E, H])`` (an ``adj_t`` in the input's
                kind for an ``adj_t``).

        All arguments after ``edge_attr`` are keyword-only.
        """
        x_src, x_dst, num_dst = attention_nodes(self, x, size, edge_index)
        size = (x_src.size(0), num_dst)
        graph = GraphInput(edge_index, *size, device=x_src.device)
        edge_attr = attention_edges(self, graph, edge_attr, edge_type,
                                    edge_weight, *size)
        query, key, value = self._project(x_src, x_dst, num_dst)
        dense_why = None
        if self.add_self_loops:
            loops, edge_attr = with_self_loops(
                graph.edge_index, edge_attr, min(size), self.fill_value)
            graph = GraphInput(loops, *size)
            dense_why = 'add_self_loops=True rewrites the graph'
        edge_term = None
        if edge_attr is not None:  # GATv2 adds W_e e_ij inside: [E, H, C]
            edge_term = self.lin_edge(edge_attr).view(-1, self.heads,
                                                      self.out_channels)
            if self.att_edge is not None:  # c^T W_e e_ij: [E, H]
                edge_term = (edge_term * self.att_edge).sum(dim=-1)
        out, alpha = attend(
            self, query, key, value, graph, size, edge_term=edge_term,
            edge_type=edge_type, edge_weight=edge_weight,
            relative=None if self.rel_key is None else (self.rel_key,
                                                        self.rel_value),
            need_weights=return_attention_weights, dense_why=dense_why)
        if self.concat:
            out = out.reshape(-1, self.heads * self.out_channels)
        else:
            out = out.mean(dim=1)
        if self.res is not None and x_dst is not None:  # residual: W_r x_i
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        if return_attention_weights:  # in the input's kind of graph
            return out, weights_like_graph(edge_index, graph.edge_index,
                                           alpha, size)
        return out

    from_module = classmethod(attention_from_pyg)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads}, '
                f'score={self.score_name!r})')


class BahdanauAttention(MessagePassing):
    r"""Additive attention of `Bahdanau et al., 2015
    <https://arxiv.org/abs/1409.0473>`_ over a source-to-target graph: every
    decoder state (target :math:`i`) attends the encoder states (sources
    :math:`j`) it is connected to (all of them on a
    :func:`~pyg_relational.graphs.bipartite_graph`).

    .. math::
        \mathbf{c}_i = \sum_{j \to i} \alpha_{ij} \mathbf{h}_j, \qquad
        \alpha_{ij} = \mathrm{softmax}_i\big(\mathbf{v}^\top
        \tanh(\mathbf{W} \mathbf{s}_i + \mathbf{U} \mathbf{h}_j)\big)

    (the ``additive`` score; :math:`\mathbf{W}\mathbf{s}_i` and
    :math:`\mathbf{U}\mathbf{h}_j` are computed once per node).

    .. note::
        In the paper :math:`\mathbf{s}_i` is the decoder state *before*
        step :math:`i` (:math:`s_{i-1}`); pass whichever state your decoder
        uses as ``query``.

    Args:
        query_channels (int): decoder-state size.
        key_channels (int): encoder-state size.
        attention_channels (int, optional): size of the tanh layer.
            (default: ``key_channels``)
        bias (bool, optional): learnt bias inside the tanh.
            (default: :obj:`False`)

    Shapes:
        - **input:** query :math:`(|\mathcal{V}_t|, C_q)`, key
          :math:`(|\mathcal{V}_s|, C_k)`, edge indices
          :math:`(2, |\mathcal{E}|)`, value :math:`(|\mathcal{V}_s|, C_v)`
          *(optional, default: key)*
        - **output:** context :math:`(|\mathcal{V}_t|, C_v)` and
          ``(edge_index, alpha [E])``

    Example:
        >>> attn = BahdanauAttention(6, 4)
        >>> h, s = torch.randn(5, 4), torch.randn(3, 6)  # encoder, decoder
        >>> context, (edge_index, alpha) = attn(s, h, bipartite_graph(5, 3))
        >>> context.shape, alpha.shape
        (torch.Size([3, 4]), torch.Size([15]))
    """
    def __init__(self, query_channels: int, key_channels: int,
                 attention_channels: Optional[int] = None, bias: bool = False):
        super().__init__(aggr='add', node_dim=0)
        self.query_channels = check_int(query_channels, 'query_channels', 1)
        self.key_channels = check_int(key_channels, 'key_channels', 1)
        self.score = AdditiveScore(1, query_channels, key_channels,
                                   attention_channels, bias)
        self.attention_channels = self.score.attention_channels
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.score.reset_parameters()

    def forward(self, query: Tensor, key: Tensor, edge_index: Tensor,
                value: Optional[Tensor] = None):
        _check_query_key(query, key, value, edge_index, self.query_channels,
                         self.key_channels)
        value = key if value is None else value
        size = (key.size(0), query.size(0))
        q, k = self.score.project(query.unsqueeze(1), key.unsqueeze(1))
        alpha = self.edge_updater(edge_index, q=(None, q), k=(k, None),
                                  size=size)  # [E]
        context = self.propagate(edge_index, v=(value, None), alpha=alpha,
                                 size=size)
        return context, (edge_index, alpha)

    def edge_update(self, q_i: Tensor, k_j: Tensor, index: Tensor,
                    ptr: Optional[Tensor], dim_size: Optional[int]) -> Tensor:
        logits = self.score.edge(q_i, k_j).squeeze(-1)  # [E]
        return edge_softmax(logits, index, dim_size, ptr)

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * v_j

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.query_channels}, '
                f'{self.key_channels}, '
                f'attention_channels={self.attention_channels})')


def _check_query_key(query, key, value, edge_index, query_channels,
                     key_channels):
    check_features(query, query_channels, 'query')
    check_features(key, key_channels, 'key')
    for name, t in (('query', query), ('key', key), ('value', value)):
        if t is not None and t.dim() != 2:
            raise ValueError(f"'{name}' must be 2-D [N, F] (got "
                             f"{tuple(t.shape)})")
    if value is not None and value.size(0) != key.size(0):
        raise ValueError(f"'value' must have one row per key ({key.size(0)}); "
                         f"got {value.size(0)}")
    check_edge_index(edge_index, key.size(0), query.size(0))


class LuongAttention(MessagePassing):
    r"""Global and local attention of `Luong et al., 2015
    <https://arxiv.org/abs/1508.04025>`_: decoder states :math:`h_t`
    (targets) attend encoder states :math:`\bar h_s` (sources) over a graph
    that the mode builds from the sequence lengths.

    .. math::
        \mathbf{c}_t = \sum_{s \to t} a_t(s)\, \bar{\mathbf{h}}_s, \qquad
        a_t(s) = \mathrm{softmax}_t\big(\mathrm{score}(\mathbf{h}_t,
        \bar{\mathbf{h}}_s)\big) \cdot g_t(s)

    Scores: ``'dot'`` :math:`h_t^\top \bar h_s`, ``'general'``
    :math:`h_t^\top W_a \bar h_s`, ``'concat'`` :math:`v_a^\top \tanh(W_a
    [h_t; \bar h_s])` (the ``additive`` score, :math:`W_a` split in two),
    ``'location'`` :math:`(W_a h_t)_s` (source position :math:`s` as edge
    type). Modes (graphs):

    * ``'global'``: every source of the pair
      (:func:`~pyg_relational.graphs.bipartite_graph`), :math:`g = 1`;
    * ``'local-m'``: window :math:`[p_t - D, p_t + D]` with :math:`p_t = t`
      (:func:`~pyg_relational.graphs.window_graph`), :math:`g = 1`;
    * ``'local-p'``: window around :math:`p_t = S \cdot
      \mathrm{sigmoid}(\mathbf{v}_p^\top \tanh(\mathbf{W}_p h_t))`
      (:math:`S` = source length) and the Gaussian
      :math:`g_t(s) = \exp(-(s - p_t)^2 / 2\sigma^2)`, :math:`\sigma = D/2`.

    .. note::
        ``local-p`` picks its window with :math:`p_t` detached (the window
        is discrete); :math:`p_t` is learnt through the Gaussian, as in the
        paper. The attentional state :math:`\tilde h_t = \tanh(W_c[c_t;
        h_t])` belongs to the decoder and is not part of this layer. The
        ``location`` score adds a learnt bias per position to
        :math:`W_a h_t`; the softmax runs over the sources of the target's
        graph (window), so positions past the source length never count.

    Args:
        query_channels (int): decoder-state size.
        key_channels (int, optional): encoder-state size.
            (default: ``query_channels``)
        score (str, optional): ``'dot'``, ``'general'``, ``'concat'`` or
            ``'location'``. (default: :obj:`'general'`)
        mode (str, optional): ``'global'``, ``'local-m'`` or ``'local-p'``.
            (default: :obj:`'global'`)
        window (int, optional): half-width :math:`D` for local modes.
            (default: :obj:`None`)
        max_source_length (int, optional): number of positions of
            ``'location'``. (default: :obj:`None`)

    Shapes:
        - **input:** query :math:`(|\mathcal{V}_t|, C_q)`, key
          :math:`(|\mathcal{V}_s|, C_k)`, per-pair lengths ``src_sizes``,
          ``dst_sizes``, value :math:`(|\mathcal{V}_s|, C_v)` *(optional)*
        - **output:** context :math:`(|\mathcal{V}_t|, C_v)` and
          ``(edge_index, alpha [E])``

    Example:
        >>> attn = LuongAttention(4, score='dot', mode='local-p', window=1)
        >>> h_enc, h_dec = torch.randn(5, 4), torch.randn(3, 4)
        >>> context, (edge_index, alpha) = attn(h_dec, h_enc, 5, 3)
        >>> context.shape
        torch.Size([3, 4])
    """
    MODES = ('global', 'local-m', 'local-p')
    LUONG_SCORES = {'dot': 'dot', 'general': 'general', 'concat': 'additive',
                    'location': 'location'}

    def __init__(self, query_channels: int, key_channels: Optional[int] = None,
                 score: str = 'general', mode: str = 'global',
                 window: Optional[int] = None,
                 max_source_length: Optional[int] = None):
        super().__init__(aggr='add', node_dim=0)
        self.query_channels = check_int(query_channels, 'query_channels', 1)
        key_channels = query_channels if key_channels is None else \
            key_channels
        self.key_channels = check_int(key_channels, 'key_channels', 1)
        self.score_name = check_choice(score, self.LUONG_SCORES, 'score')
        self.mode = check_choice(mode, self.MODES, 'mode')
        if mode != 'global':
            if window is None:
                raise ValueError(f"mode={mode!r} needs 'window' (the "
                                 f"half-width D >= 1 of the local window)")
            window = check_int(window, 'window', 1)
        self.window = window
        kwargs = {}
        if score == 'location':
            if max_source_length is None:
                raise ValueError("score='location' needs 'max_source_length'"
                                 " (the number of source positions of W_a)")
            kwargs['num_types'] = max_source_length
        elif score == 'concat':
            kwargs['attention_channels'] = self.query_channels
        self.max_source_length = max_source_length
        self.score = attention_score(self.LUONG_SCORES[score], 1,
                                     self.query_channels, self.key_channels,
                                     **kwargs)
        if mode == 'local-p':
            self.lin_position = Linear(self.query_channels,
                                       self.query_channels, bias=False,
                                       weight_initializer='glorot')
            self.att_position = Parameter(torch.empty(self.query_channels))
        else:
            self.lin_position = None
            self.register_parameter('att_position', None)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.score.reset_parameters()
        if self.lin_position is not None:
            self.lin_position.reset_parameters()
            torch.nn.init.uniform_(self.att_position, -0.1, 0.1)

    def aligned_position(self, query: Tensor, source_length: Tensor) -> Tensor:
        r""":math:`p_t = S \cdot \mathrm{sigmoid}(\mathbf{v}_p^\top
        \tanh(\mathbf{W}_p h_t))` for ``local-p``; ``[N_dst]``."""
        h = torch.tanh(self.lin_position(query))  # [N_dst, C_q]
        return source_length * torch.sigmoid(h @ self.att_position)

    def forward(self, query: Tensor, key: Tensor, src_sizes, dst_sizes,
                value: Optional[Tensor] = None):
        r"""Args:
            query (Tensor): decoder states ``[N_dst, C_q]``, pair after pair.
            key (Tensor): encoder states ``[N_src, C_k]``, pair after pair.
            src_sizes (int or Sequence[int] or Tensor): source lengths.
            dst_sizes (int or Sequence[int] or Tensor): target lengths.
            value (Tensor, optional): ``[N_src, C_v]`` (default: ``key``).
        """
        src_sizes = check_sizes(src_sizes, 'src_sizes')
        dst_sizes = check_sizes(dst_sizes, 'dst_sizes')
        for name, sizes, t in (('src_sizes', src_sizes, key),
                               ('dst_sizes', dst_sizes, query)):
            if isinstance(t, Tensor) and int(sizes.sum()) != t.size(0):
                raise ValueError(f"'{name}' adds up to {int(sizes.sum())} but "
                                 f"there are {t.size(0)} nodes")
        if self.max_source_length is not None and src_sizes.numel() and \
                int(src_sizes.max()) > self.max_source_length:
            raise ValueError(f"a source of length {int(src_sizes.max())} "
                             f"exceeds max_source_length="
                             f"{self.max_source_length}")
        device = query.device
        graph = torch.repeat_interleave(torch.arange(dst_sizes.numel()),
                                        dst_sizes)
        src_start = torch.cat([src_sizes.new_zeros(1), src_sizes.cumsum(0)])
        src_position = torch.arange(int(src_sizes.sum())) - \
            src_start[:-1].repeat_interleave(src_sizes)
        center = None
        if self.mode == 'global':
            edge_index = bipartite_graph(src_sizes, dst_sizes)
        elif self.mode == 'local-m':
            edge_index = window_graph(src_sizes, dst_sizes, self.window)
        else:
            length = src_sizes[graph].to(device, query.dtype)
            center = self.aligned_position(query, length)  # [N_dst]
            edge_index = window_graph(src_sizes, dst_sizes, self.window,
                                      centers=torch.nan_to_num(
                                          center.detach(), nan=0.,
                                          posinf=0., neginf=0.))
            # a non-finite p_t reaches its own context through the Gaussian
        edge_index = edge_index.to(device)
        _check_query_key(query, key, value, edge_index, self.query_channels,
                         self.key_channels)
        value = key if value is None else value
        source_position = src_position.to(device)[edge_index[0]]  # [E]
        size = (key.size(0), query.size(0))
        q, k = self.score.project(query.unsqueeze(1), key.unsqueeze(1))
        alpha = self.edge_updater(edge_index, q=(None, q), k=(k, None),
                                  center=(None, center), pos=source_position,
                                  size=size)  # [E]
        context = self.propagate(edge_index, v=(value, None), alpha=alpha,
                                 size=size)
        return context, (edge_index, alpha)

    def edge_update(self, q_i: Tensor, k_j: Tensor, center_i: Optional[Tensor],
                    pos: Tensor, index: Tensor, ptr: Optional[Tensor],
                    dim_size: Optional[int]) -> Tensor:
        logits = self.score.edge(q_i, k_j, pos).squeeze(-1)  # [E]
        alpha = edge_softmax(logits, index, dim_size, ptr)
        if center_i is not None:  # local-p: Gaussian around p_t
            sigma = self.window / 2
            alpha = alpha * torch.exp(-(pos.to(alpha.dtype) - center_i)**2 /
                                      (2 * sigma**2))
        return alpha

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * v_j

    def __repr__(self) -> str:
        window = '' if self.window is None else f', window={self.window}'
        return (f'{self.__class__.__name__}({self.query_channels}, '
                f'{self.key_channels}, score={self.score_name!r}, '
                f'mode={self.mode!r}{window})')
