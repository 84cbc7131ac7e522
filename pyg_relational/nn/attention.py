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
2. ``logits = score.edge(q_node[i], k_node[j], edge_type=None)``: the
   per-edge part on the gathered rows, returning ``[E, H]``.

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
``location``    :math:`(W_a q_i)_{t_{ij}}`: depends on the target only
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
from typing import Dict, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.inits import glorot
from torch_geometric.utils import softmax

from .._checks import check_choice, check_edge_vector, check_int

__all__ = [
    'AttentionScore', 'DotScore', 'ScaledDotScore', 'GeneralScore',
    'AdditiveScore', 'ConcatScore', 'LocationScore', 'SCORES',
    'attention_score', 'edge_softmax'
]


def edge_softmax(logits: Tensor, index: Tensor, num_nodes: Optional[int] = None,
                 ptr: Optional[Tensor] = None) -> Tensor:
    r"""Softmax of per-edge ``logits`` over each target's incoming edges:
    :math:`\alpha_{ij} = \exp(e_{ij} - m_i) / \sum_{j'} \exp(e_{ij'} - m_i)`
    with :math:`m_i = \max_{j'} e_{ij'}` (stable for logits of any size).

    The one normalisation of every attention layer in the package; it calls
    :func:`torch_geometric.utils.softmax` (torch-scatter where faster, CSR
    ``ptr`` when given). A target with no incoming edge has no
    :math:`\alpha` at all, so its aggregate is zero.

    Args:
        logits (Tensor): ``[E]`` or ``[E, H]``.
        index (LongTensor): ``[E]`` target of every edge (``edge_index[1]``).
        num_nodes (int, optional): number of targets. (default: :obj:`None`)
        ptr (LongTensor, optional): CSR pointer of targets when the edges
            are sorted by target. (default: :obj:`None`)
    """
    if logits.numel() == 0:
        return logits
    return softmax(logits, index, ptr, num_nodes, dim=0)


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
             edge_type: Optional[Tensor] = None) -> Tensor:
        """Per-edge part on gathered rows of :meth:`project`: ``[E, H]``."""
        raise NotImplementedError

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
                edge_type: Optional[Tensor] = None) -> Tensor:
        """Logits ``[E, H]`` of every edge ``j -> i`` of ``edge_index``."""
        self._check(query, key)
        q, k = self.project(query, key)
        return self.edge(q.index_select(0, edge_index[1]),
                         k.index_select(0, edge_index[0]), edge_type)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(heads={self.heads}, '
                f'query_channels={self.query_channels}, '
                f'key_channels={self.key_channels})')


class DotScore(AttentionScore):
    r""":math:`e_{ij} = q_i^\top k_j / s` with :math:`s = 1`."""
    linear_in_key = True

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
             edge_type: Optional[Tensor] = None) -> Tensor:
        return (query_i * key_j).sum(dim=-1) / self.scale  # [E, H]


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
             edge_type: Optional[Tensor] = None) -> Tensor:
        return (query_i * key_j).sum(dim=-1)  # [E, H]


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
             edge_type: Optional[Tensor] = None) -> Tensor:
        return (torch.tanh(query_i + key_j) * self.att).sum(dim=-1)


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
        glorot(self.att_dst)
        glorot(self.att_src)

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        return ((query * self.att_dst).sum(-1),  # [N_dst, H]
                (key * self.att_src).sum(-1))  # [N_src, H]

    def edge(self, query_i: Tensor, key_j: Tensor,
             edge_type: Optional[Tensor] = None) -> Tensor:
        return F.leaky_relu(query_i + key_j, self.negative_slope)


class LocationScore(AttentionScore):
    r""":math:`e_{ij} = (W_a q_i)_{t_{ij}}`: a function of the target only,
    read at the edge's type :math:`t_{ij}` (Luong et al.'s *location* score
    with :math:`t_{ij}` = source position). The typed-edge mechanism of
    :mod:`~pyg_relational.nn.typed`: one row per target and type, gathered
    per edge.

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
             edge_type: Optional[Tensor] = None) -> Tensor:
        if edge_type is None:
            raise ValueError("score='location' needs 'edge_type' (the "
                             "position of every edge's source)")
        check_edge_vector(edge_type, query_i.size(0), 'edge_type',
                          self.num_types)
        # query_i: [E, T, H] -> the row of each edge's type: [E, H]
        return query_i.gather(
            1, edge_type.view(-1, 1, 1).expand(-1, 1, self.heads)).squeeze(1)


SCORES: Dict[str, Type[AttentionScore]] = {
    'dot': DotScore,
    'scaled_dot': ScaledDotScore,
    'general': GeneralScore,
    'additive': AdditiveScore,
    'concat': ConcatScore,
    'gat': ConcatScore,
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
