r"""Drop-in GAT layers: PyG's :class:`~torch_geometric.nn.GATConv` and
:class:`~torch_geometric.nn.GATv2Conv` with PyG's constructor, ``forward``,
return conventions, parameter names (a PyG ``state_dict`` loads as it is) and
``__repr__``, computed by :class:`~pyg_relational.nn.AttentionConv`'s
execution paths (``path=``, ``last_path``, ``why_not_faster``).

Changing ``from torch_geometric.nn import GATConv`` to
``from pyg_relational.nn import GATConv`` gives the same numbers from the same
seed (the parameters are drawn in PyG's order)."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros

from ._inputs import attention_options
from .attention import AttentionConv, gat_logits, gatv2_logits

__all__ = ['GATConv', 'GATv2Conv']


class _Score:
    """:class:`~pyg_relational.nn.AttentionScore`'s interface on a drop-in
    layer's own parameters (so they keep PyG's names): ``project`` once per
    node, ``edge`` per edge."""
    dot_product = linear_in_key = False
    scale = 1.0

    def __init__(self, conv: MessagePassing):
        self.conv = conv


class _GATScore(_Score):
    name = 'gat'

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        return ((query * self.conv.att_dst).sum(-1),  # [N_dst, H]
                (key * self.conv.att_src).sum(-1))  # [N_src, H]

    def edge(self, query_i, key_j, edge_type=None, edge_term=None):
        return gat_logits(query_i, key_j, edge_term,
                          self.conv.negative_slope)


class _GATv2Score(_Score):
    name = 'gatv2'

    def project(self, query: Tensor, key: Tensor) -> Tuple[Tensor, Tensor]:
        return query, key

    def edge(self, query_i, key_j, edge_type=None, edge_term=None):
        return gatv2_logits(query_i, key_j, self.conv.att, edge_term,
                            self.conv.negative_slope)


def _message_passing_kwargs(kwargs: dict, name: str):
    """PyG's ``**kwargs`` go to ``MessagePassing``; GAT sums its messages
    over the node dimension 0, so only those values are accepted."""
    for key, want in (('aggr', 'add'), ('node_dim', 0),
                      ('flow', 'source_to_target')):
        if key in kwargs and kwargs.pop(key) != want:
            raise ValueError(f"{name} supports {key}={want!r} only")
    unknown = sorted(kwargs)
    if unknown:
        raise TypeError(f"{name}() got unexpected keyword arguments "
                        f"{unknown}")


class _DropIn(AttentionConv):
    """What the drop-in GAT layers share: PyG's ``forward`` signature
    (``size`` positional, ``return_attention_weights=None``), the error PyG
    raises for edge features with self-loops on a ``SparseTensor``, and
    :meth:`from_module`."""
    pyg_name = ''
    score_class = _Score  # the score on the layer's own parameters
    # PyG compiles propagate per class and keeps the class's previous one as
    # the explain-aware fall-back (_orig_propagate); inherited, that would
    # be AttentionConv's compiled one, which ignores explain masks.
    propagate = MessagePassing.propagate
    edge_updater = MessagePassing.edge_updater

    def forward(self, x: Union[Tensor, Tuple[Tensor, Optional[Tensor]]],
                edge_index, edge_attr: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None,
                return_attention_weights: Optional[bool] = None):
        r"""Args:
            x (Tensor or (Tensor, Tensor or None)): node features, or
                ``(x_src, x_dst)``; ``(x_src, None)`` scores each edge from
                its source alone (pass ``size`` or an ``adj_t``).
            edge_index (LongTensor or EdgeIndex or adj_t or GraphStructure):
                ``[2, E]`` sources first, or an ``adj_t``
                ``[N_dst, N_src]`` without values.
            edge_attr (Tensor, optional): ``[E, edge_dim]`` (or ``[E]``).
            size ((int, int), optional): ``(N_src, N_dst)``.
            return_attention_weights (bool, optional): also return the
                weights ``[E, H]``: ``(edge_index, alpha)`` for an edge
                list, ``(adj, alpha)`` for a ``torch.sparse`` ``adj_t``,
                a ``SparseTensor`` with ``alpha`` as values for a
                ``SparseTensor``.
        """
        if self.add_self_loops and self.edge_dim is not None and \
                type(edge_index).__name__ == 'SparseTensor':
            raise NotImplementedError(
                f"{self.pyg_name}: edge features and add_self_loops=True "
                f"with a SparseTensor 'edge_index' are not supported (as in "
                f"PyG): pass an edge_index [2, E] and edge_attr [E, D]")
        return super().forward(
            x, edge_index, edge_attr, size=size,
            return_attention_weights=bool(return_attention_weights))

    def _start(self, score: str, kwargs: dict, *options):
        """``MessagePassing`` set up (PyG's ``**kwargs`` checked) and the
        options stored (:func:`attention_options`); ``(in_src, in_dst)``.
        The removed ``fused`` goes to :func:`attention_options`, which
        refuses it naming ``path=``."""
        fused = kwargs.pop('fused', None)
        _message_passing_kwargs(kwargs, self.pyg_name)
        MessagePassing.__init__(self, aggr='add', node_dim=0)
        in_channels, out_channels, heads, *rest = options
        return attention_options(self, in_channels, out_channels, heads,
                                 score, *rest, fused)

    @property
    def score(self) -> _Score:
        return self.score_class(self)

    def _finish(self, in_dst: int, residual: bool, bias: bool):
        """PyG's residual map and output bias (last, in PyG's order), the
        AttentionConv parts GAT does not have, then the first draw."""
        out = self.heads * self.out_channels if self.concat \
            else self.out_channels
        self.res = Linear(in_dst, out, bias=False,
                          weight_initializer='glorot') if residual else None
        self.bias = Parameter(torch.empty(out)) if bias else None
        self.lin_query = self.lin_key = self.lin_value = None
        self.register_parameter('rel_key', None)
        self.register_parameter('rel_value', None)
        self.reset_parameters()

    @classmethod
    def from_module(cls, module):
        """This layer with the options and weights of PyG's layer of the
        same name (parameter names are PyG's)."""
        from torch_geometric import nn as pyg_nn
        theirs = getattr(pyg_nn, cls.pyg_name)
        if not isinstance(module, theirs):
            raise ValueError(f"{cls.__name__}.from_module expects a "
                             f"torch_geometric.nn.{cls.pyg_name} (got "
                             f"{type(module).__name__})")
        conv = cls(**{name: getattr(module, name) for name in cls._options_of}
                   , bias=module.bias is not None,
                   residual=getattr(module, 'res', None) is not None)
        ref = next(module.parameters())
        conv = conv.to(ref.device, ref.dtype)
        conv.load_state_dict(module.state_dict())
        return conv

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads})')


class GATConv(_DropIn):
    r"""The graph attentional operator from the `"Graph Attention Networks"
    <https://arxiv.org/abs/1710.10903>`_ paper, a drop-in for
    :class:`torch_geometric.nn.GATConv` (same signature, defaults, returns,
    parameter names and numbers)

    .. math::
        \mathbf{x}^{\prime}_i = \mathbin\Vert_{h=1}^{H} \sum_{j \in
        \mathcal{N}(i) \cup \{ i \}} \alpha^h_{i,j} \mathbf{\Theta}^h_s
        \mathbf{x}_{j} \;[+ \mathbf{\Theta}_r \mathbf{x}_i] + \mathbf{b},
        \qquad
        \alpha^h_{i,j} = \mathrm{softmax}_j\Big(\mathrm{LeakyReLU}\big(
        \mathbf{a}^{h\top}_{s} \mathbf{\Theta}^h_{s}\mathbf{x}_j
        + \mathbf{a}^{h\top}_{t} \mathbf{\Theta}^h_{t}\mathbf{x}_i
        [+ \mathbf{a}^{h\top}_{e} \mathbf{\Theta}^h_{e} \mathbf{e}_{i,j}]
        \big)\Big)

    with :math:`\mathbf{\Theta}_s = \mathbf{\Theta}_t` (``lin``) for one
    node set, ``lin_src`` / ``lin_dst`` for ``in_channels=(F_s, F_t)``; the
    heads averaged instead of concatenated with ``concat=False``. It is
    :class:`~pyg_relational.nn.AttentionConv` with ``score='gat'``: the
    sparse path (CSR products, repeated edges included) runs by default,
    the message path under explainers and hooks (``last_path``,
    ``why_not_faster``).

    .. note::
        ``x=(x_src, None)`` scores each edge from its source alone
        (:math:`\mathbf{a}_t` term absent), as PyG does. The values of an
        ``adj_t`` are not edge weights in GAT: an ``adj_t`` with values
        other than one is refused (PyG ignores them).

    Args:
        in_channels (int or (int, int)): input size, or ``(source size,
            target size)``; ``-1`` infers it (lazy).
        out_channels (int): channels :math:`C` per head.
        heads (int, optional): number of heads :math:`H`. (default: :obj:`1`)
        concat (bool, optional): concatenate the heads (else average).
            (default: :obj:`True`)
        negative_slope (float, optional): LeakyReLU slope.
            (default: :obj:`0.2`)
        dropout (float, optional): dropout on :math:`\alpha` in training.
            (default: :obj:`0.`)
        add_self_loops (bool, optional): replace self-loops by one per node.
            (default: :obj:`True`)
        edge_dim (int, optional): edge-feature size. (default: :obj:`None`)
        fill_value (float or Tensor or str, optional): edge features of the
            added self-loops. (default: :obj:`'mean'`)
        bias (bool, optional): learn :math:`\mathbf{b}`. (default: :obj:`True`)
        residual (bool, optional): add :math:`\mathbf{\Theta}_r
            \mathbf{x}_i`. (default: :obj:`False`)
        path (str, optional): ``'auto'``, ``'sparse'`` or ``'message'`` (see
            :class:`~pyg_relational.nn.AttentionConv`). (default:
            :obj:`'auto'`)
        **kwargs: PyG's ``MessagePassing`` options (``aggr='add'``,
            ``node_dim=0``, ``flow='source_to_target'`` only).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V}_s|, F_s), (|\mathcal{V}_t|, F_t))`, edge
          indices :math:`(2, |\mathcal{E}|)` or an ``adj_t``, edge features
          :math:`(|\mathcal{E}|, D)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, H \cdot C)` or
          :math:`(|\mathcal{V}_t|, C)` with ``concat=False``; with
          ``return_attention_weights=True`` also the weights
          :math:`(|\mathcal{E}|, H)` in the input's kind of graph.

    Example:
        >>> conv = GATConv(8, 4, heads=2)
        >>> conv
        GATConv(8, 4, heads=2)
        >>> edge_index = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
        >>> conv(torch.randn(3, 8), edge_index).shape
        torch.Size([3, 8])
        >>> conv.last_path
        'sparse'
    """
    pyg_name = 'GATConv'
    score_class = _GATScore
    _options_of = ('in_channels', 'out_channels', 'heads', 'concat',
                   'negative_slope', 'dropout', 'add_self_loops', 'edge_dim',
                   'fill_value')

    def __init__(self, in_channels: Union[int, Tuple[int, int]],
                 out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0,
                 add_self_loops: bool = True, edge_dim: Optional[int] = None,
                 fill_value: Union[float, Tensor, str] = 'mean',
                 bias: bool = True, residual: bool = False,
                 path: str = 'auto', **kwargs):
        in_src, in_dst = self._start(
            'gat', kwargs, in_channels, out_channels, heads, concat,
            negative_slope, dropout, add_self_loops, edge_dim, fill_value,
            residual, path)
        H, C = self.heads, self.out_channels
        # PyG's parameters, names and order of drawing
        self.lin = self.lin_src = self.lin_dst = None
        if isinstance(in_channels, int):
            self.lin = Linear(in_src, H * C, bias=False,
                              weight_initializer='glorot')
        else:
            self.lin_src = Linear(in_src, H * C, bias=False,
                                  weight_initializer='glorot')
            self.lin_dst = Linear(in_dst, H * C, bias=False,
                                  weight_initializer='glorot')
        self.att_src = Parameter(torch.empty(1, H, C))
        self.att_dst = Parameter(torch.empty(1, H, C))
        if edge_dim is not None:
            self.lin_edge = Linear(edge_dim, H * C, bias=False,
                                   weight_initializer='glorot')
            self.att_edge = Parameter(torch.empty(1, H, C))
        else:
            self.lin_edge = None
            self.register_parameter('att_edge', None)
        self._finish(in_dst, residual, bias)

    def reset_parameters(self):
        MessagePassing.reset_parameters(self)
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge,
                    self.res):
            if lin is not None:
                lin.reset_parameters()
        glorot(self.att_src)
        glorot(self.att_dst)
        glorot(self.att_edge)
        zeros(self.bias)

    def _project(self, x_src: Tensor, x_dst: Optional[Tensor],
                 num_dst: Optional[int] = None):
        H, C = self.heads, self.out_channels
        lin_src = self.lin if self.lin is not None else self.lin_src
        lin_dst = self.lin if self.lin is not None else self.lin_dst
        key = lin_src(x_src).view(-1, H, C)  # [N_src, H, C]
        if x_dst is None:  # no target features: no a_t term
            query = key.new_zeros(num_dst, H, C)
        elif x_dst is x_src and self.lin is not None:
            query = key
        else:
            query = lin_dst(x_dst).view(-1, H, C)  # [N_dst, H, C]
        return query, key, key


class GATv2Conv(_DropIn):
    r"""The GATv2 operator from the `"How Attentive are Graph Attention
    Networks?" <https://arxiv.org/abs/2105.14491>`_ paper, a drop-in for
    :class:`torch_geometric.nn.GATv2Conv` (same signature, defaults,
    returns, parameter names and numbers)

    .. math::
        \mathbf{x}^{\prime}_i = \mathbin\Vert_{h=1}^{H} \sum_{j \in
        \mathcal{N}(i) \cup \{ i \}} \alpha^h_{i,j} \mathbf{\Theta}^h_{s}
        \mathbf{x}_{j} \;[+ \mathbf{\Theta}_r \mathbf{x}_i] + \mathbf{b},
        \qquad
        \alpha^h_{i,j} = \mathrm{softmax}_j\Big(\mathbf{a}^{h\top}
        \mathrm{LeakyReLU}\big(\mathbf{\Theta}^h_{s} \mathbf{x}_j
        + \mathbf{\Theta}^h_{t} \mathbf{x}_i
        [+ \mathbf{\Theta}^h_{e} \mathbf{e}_{i,j}]\big)\Big)

    with :math:`\mathbf{\Theta}_s` = ``lin_l``, :math:`\mathbf{\Theta}_t` =
    ``lin_r`` (one map with ``share_weights=True``). It is
    :class:`~pyg_relational.nn.AttentionConv` with ``score='gatv2'``
    (sparse path by default, message path under explainers and hooks).

    .. note::
        ``x=(x_src, None)`` (PyG asserts here) scores from the sources
        alone, :math:`\mathbf{\Theta}_t \mathbf{x}_i = 0`. An ``adj_t``
        with values other than one is refused (PyG ignores them).

    Args:
        in_channels, out_channels, heads, concat, negative_slope, dropout,
            add_self_loops, edge_dim, fill_value, residual, path, **kwargs:
            as :class:`GATConv`.
        bias (bool, optional): biases of ``lin_l``/``lin_r`` and the output
            bias. (default: :obj:`True`)
        share_weights (bool, optional): one map for sources and targets.
            (default: :obj:`False`)

    Shapes:
        - **input:** as :class:`GATConv`
        - **output:** as :class:`GATConv`

    Example:
        >>> conv = GATv2Conv(8, 4, heads=2, share_weights=True)
        >>> conv
        GATv2Conv(8, 4, heads=2)
        >>> edge_index = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
        >>> conv(torch.randn(3, 8), edge_index).shape
        torch.Size([3, 8])
    """
    pyg_name = 'GATv2Conv'
    score_class = _GATv2Score
    _options_of = GATConv._options_of + ('share_weights', )

    def __init__(
        self,
        in_channels: Union[int, Tuple[int, int]],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: Optional[int] = None,
        fill_value: Union[float, Tensor, str] = 'mean',
        bias: bool = True,
        share_weights: bool = False,
        residual: bool = False,
        path: str = 'auto',
        **kwargs,
    ):
        in_src, in_dst = self._start(
            'gatv2', kwargs, in_channels, out_channels, heads, concat,
            negative_slope, dropout, add_self_loops, edge_dim, fill_value,
            residual, path)
        self.share_weights = share_weights
        H, C = self.heads, self.out_channels
        # PyG's parameters, names and order of drawing
        self.lin_l = Linear(in_src, H * C, bias=bias,
                            weight_initializer='glorot')
        self.lin_r = self.lin_l if share_weights else Linear(
            in_dst, H * C, bias=bias, weight_initializer='glorot')
        self.att = Parameter(torch.empty(1, H, C))
        self.lin_edge = Linear(edge_dim, H * C, bias=False,
                               weight_initializer='glorot') \
            if edge_dim is not None else None
        self.register_parameter('att_edge', None)  # inside the LeakyReLU
        self._finish(in_dst, residual, bias)

    def reset_parameters(self):
        MessagePassing.reset_parameters(self)
        self.lin_l.reset_parameters()
        self.lin_r.reset_parameters()
        for lin in (self.lin_edge, self.res):
            if lin is not None:
                lin.reset_parameters()
        glorot(self.att)
        zeros(self.bias)

    def _project(self, x_src: Tensor, x_dst: Optional[Tensor],
                 num_dst: Optional[int] = None):
        H, C = self.heads, self.out_channels
        key = self.lin_l(x_src).view(-1, H, C)  # [N_src, H, C]
        if x_dst is None:
            query = key.new_zeros(num_dst, H, C)
        elif x_dst is x_src and self.share_weights:
            query = key
        else:
            query = self.lin_r(x_dst).view(-1, H, C)  # [N_dst, H, C]
        return query, key, key
