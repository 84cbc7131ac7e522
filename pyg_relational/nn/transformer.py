r"""The Transformer on graphs: self-attention on a complete (or causal, or
windowed) graph, cross-attention on a bipartite graph.

:class:`MultiheadAttentionConv` is :class:`~pyg_relational.nn.AttentionConv`
with the ``scaled_dot`` score and an output projection; the encoder and
decoder layers wire it with the feed-forward block and layer norms exactly as
:class:`torch.nn.TransformerEncoderLayer` /
:class:`torch.nn.TransformerDecoderLayer` do, and ``from_module`` copies their
weights.

Masks become graphs: a causal mask is ``complete_graph(sizes, causal=True)``;
a ``key_padding_mask`` is the graph without the padded nodes (batches of
different lengths laid end to end).
"""
import math
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear

from .._checks import check_choice, check_dtypes, check_features, check_int
from ..graphs import relative_position
from ..structure import GraphStructure
from ._inputs import attention_nodes
from ._paths import GraphInput, PathLayer, check_path
from .attention import AttentionConv

__all__ = [
    'MultiheadAttentionConv', 'TransformerEncoderLayer',
    'TransformerDecoderLayer', 'PositionalEncoding'
]


class MultiheadAttentionConv(AttentionConv):
    r"""Multi-head scaled dot-product attention (`Vaswani et al., 2017
    <https://arxiv.org/abs/1706.03762>`_) as message passing, optionally with
    relative position representations (`Shaw et al., 2018
    <https://arxiv.org/abs/1803.02155>`_).

    .. math::
        \mathbf{x}'_i = \mathbf{W}_O \big\Vert_{h=1}^{H} \sum_{j \to i}
        \alpha^h_{ij} \big(\mathbf{W}^h_V \mathbf{x}_j + \mathbf{a}^V_{ij}
        \big) + \mathbf{b}_O, \qquad
        \alpha^h_{ij} = \mathrm{softmax}_i\Big(
        \frac{(\mathbf{W}^h_Q \mathbf{x}_i)^\top (\mathbf{W}^h_K
        \mathbf{x}_j + \mathbf{a}^K_{ij})}{\sqrt{d}}\Big)

    with :math:`d` = ``embed_dim // num_heads`` and, only with
    ``relative_clip=k``, :math:`\mathbf{a}_{ij} = \mathbf{w}_{\mathrm{clip}
    (p_j - p_i, -k, k)}` learnt, shared across heads (edge types from
    :func:`~pyg_relational.graphs.relative_position`). It is
    :class:`AttentionConv` with ``score='scaled_dot'`` plus
    :math:`\mathbf{W}_O`.

    On a :func:`~pyg_relational.graphs.complete_graph` it equals
    :class:`torch.nn.MultiheadAttention` (``from_module``); a causal graph
    is its causal mask and a graph without padded keys its
    ``key_padding_mask``.

    .. note::
        Shaw et al. clip :math:`j - i`; here the offset is
        :math:`p_j - p_i` of the given positions (the same on sequences).
        ``bias_k``/``bias_v``/``add_zero_attn`` and different ``kdim``/
        ``vdim`` of :class:`torch.nn.MultiheadAttention` are not supported.
        The execution path is :class:`AttentionConv`'s (``path=``): on
        complete / causal / bipartite blocks
        :func:`~torch.nn.functional.scaled_dot_product_attention` (the
        kernel of :class:`torch.nn.MultiheadAttention`), with relative
        positions dense ``[B, H, n, n]`` products; other graphs run as
        sparse CSR products per head; ``conv.path = 'message'`` forces
        per-edge messages. Same numbers on every path.

    Args:
        embed_dim (int): model size :math:`H \cdot d`.
        num_heads (int): number of heads :math:`H`.
        dropout (float, optional): dropout on :math:`\alpha`.
            (default: :obj:`0.`)
        bias (bool, optional): biases of the input and output projections.
            (default: :obj:`True`)
        relative_clip (int, optional): maximum relative distance :math:`k`;
            enables the relative terms. (default: :obj:`None`)
        path (str, optional): ``'auto'``, ``'dense'``, ``'sparse'`` or
            ``'message'`` (see :class:`AttentionConv`).
            (default: :obj:`'auto'`)
        fused: removed; passing it raises a :class:`TypeError` naming
            ``path``.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, H d)` or
          ``(x_src, x_dst)``, edge indices :math:`(2, |\mathcal{E}|)`,
          with ``relative_clip`` node ``position`` :math:`(|\mathcal{V}|)`
          (or a pair) or ``edge_type`` :math:`(|\mathcal{E}|)`
        - **output:** :math:`(|\mathcal{V}_t|, H d)`; with
          ``return_attention_weights=True`` also ``(edge_index, alpha
          [E, H])``

    Example:
        >>> attn = MultiheadAttentionConv(8, num_heads=2, relative_clip=2)
        >>> x, edge_index = torch.randn(6, 8), complete_graph([4, 2])
        >>> position = torch.tensor([0, 1, 2, 3, 0, 1])
        >>> attn(x, edge_index, position=position).shape
        torch.Size([6, 8])
    """
    # PyG compiles propagate per class and keeps the class's previous one
    # as the explain-aware fall-back (_orig_propagate); inherited, that
    # would be AttentionConv's compiled one, which ignores explain masks.
    propagate = MessagePassing.propagate
    edge_updater = MessagePassing.edge_updater

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.,
                 bias: bool = True, relative_clip: Optional[int] = None,
                 path: str = 'auto', fused: Optional[bool] = None):
        embed_dim = check_int(embed_dim, 'embed_dim', 1)
        num_heads = check_int(num_heads, 'num_heads', 1)
        if embed_dim % num_heads:
            raise ValueError(f"'embed_dim' ({embed_dim}) must be divisible "
                             f"by 'num_heads' ({num_heads})")
        num_types = None
        if relative_clip is not None:
            relative_clip = check_int(relative_clip, 'relative_clip', 0)
            num_types = 2 * relative_clip + 1
        super().__init__(embed_dim, embed_dim // num_heads, heads=num_heads,
                         score='scaled_dot', concat=True, dropout=dropout,
                         bias=False, qkv_bias=bias, num_edge_types=num_types,
                         path=path, fused=fused)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.relative_clip = relative_clip
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias,
                               weight_initializer='glorot')
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value):
            if lin.bias is not None:
                torch.nn.init.zeros_(lin.bias)
        # out_proj does not exist yet when AttentionConv.__init__ calls this
        out_proj = getattr(self, 'out_proj', None)
        if out_proj is not None:
            out_proj.reset_parameters()
            if out_proj.bias is not None:
                torch.nn.init.zeros_(out_proj.bias)

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]],
                edge_index: Union[Tensor, GraphStructure], *,
                edge_type: Optional[Tensor] = None,
                position: Optional[Union[Tensor, Tuple[Tensor,
                                                      Tensor]]] = None,
                size: Optional[Tuple[int, int]] = None,
                return_attention_weights: bool = False):
        r"""Args:
            x (Tensor or (Tensor, Tensor)): node features or
                ``(x_src, x_dst)`` (cross-attention: keys/values from
                ``x_src``).
            edge_index (LongTensor or EdgeIndex or adj_t or GraphStructure):
                the graph (see :meth:`AttentionConv.forward`).
            edge_type (LongTensor, optional): clipped relative positions
                ``[E]`` in ``[0, 2k]``. (default: computed from
                ``position``)
            position (LongTensor or (LongTensor, LongTensor), optional):
                position of every node, for ``relative_clip``.
            size ((int, int), optional): ``(N_src, N_dst)``.
            return_attention_weights (bool, optional): also return
                ``(edge_index, alpha [E, H])``.

        All arguments after ``edge_index`` are keyword-only.
        """
        if self.relative_clip is not None and edge_type is None:
            if position is None:
                raise ValueError(
                    "MultiheadAttentionConv(relative_clip=...) needs "
                    "'position' (node positions) or 'edge_type' (from "
                    "relative_position(edge_index, position, clip))")
            edge_index, edge_type = self._relative(x, edge_index, position,
                                                   size)
        elif self.relative_clip is None and (edge_type is not None
                                             or position is not None):
            raise ValueError("'position'/'edge_type' are only used with "
                             "relative_clip; construct the layer with "
                             "relative_clip=k")
        out = super().forward(
            x, edge_index, edge_type=edge_type, size=size,
            return_attention_weights=return_attention_weights)
        if return_attention_weights:
            out, attention = out
            return self.out_proj(out), attention
        return self.out_proj(out)

    def _relative(self, x, edge_index, position, size):
        """``(edge_index, edge_type)``: the edge list and the clipped
        relative position of every edge, ``position`` checked against the
        nodes."""
        x_src, x_dst, _ = attention_nodes(self, x, size)
        if isinstance(position, (tuple, list)):
            pos_src, pos_dst = position
        elif isinstance(x, Tensor) and isinstance(position, Tensor):
            # one node set; with size=(N, M) the targets are the first M
            pos_src, pos_dst = position, position[:x_dst.size(0)]
        else:
            pos_src = pos_dst = position
        for what, p, n in (('source', pos_src, x_src.size(0)),
                           ('target', pos_dst, x_dst.size(0))):
            if not isinstance(p, Tensor) or p.dim() != 1 or p.numel() != n:
                raise ValueError(
                    f"'position' must give one position per {what} node "
                    f"({n}); got {getattr(p, 'shape', p)}; pass a 1-D "
                    f"tensor [N] or a pair (position_src, position_dst)")
        graph = GraphInput(edge_index, x_src.size(0), x_dst.size(0),
                           device=x_src.device)
        edge_index = graph.edge_index
        return edge_index, relative_position(edge_index, (pos_src, pos_dst),
                                             self.relative_clip)

    @classmethod
    def from_module(cls, module: torch.nn.MultiheadAttention
                    ) -> 'MultiheadAttentionConv':
        """A graph layer with the weights of a
        :class:`torch.nn.MultiheadAttention` (same ``embed_dim``,
        ``num_heads``, ``dropout``, biases)."""
        if not isinstance(module, torch.nn.MultiheadAttention):
            raise ValueError(f"MultiheadAttentionConv.from_module expects a "
                             f"torch.nn.MultiheadAttention (got "
                             f"{type(module).__name__})")
        if not module._qkv_same_embed_dim or module.bias_k is not None or \
                module.add_zero_attn:
            raise ValueError("nn.MultiheadAttention with kdim/vdim != "
                             "embed_dim, add_bias_kv or add_zero_attn has no "
                             "MultiheadAttentionConv equivalent")
        bias = module.in_proj_bias is not None
        conv = cls(module.embed_dim, module.num_heads, module.dropout, bias)
        weight = module.in_proj_weight
        conv = conv.to(weight.device, weight.dtype)
        E = module.embed_dim
        with torch.no_grad():
            for k, lin in enumerate((conv.lin_query, conv.lin_key,
                                     conv.lin_value)):
                lin.weight.copy_(weight[k * E:(k + 1) * E])
                if bias:
                    lin.bias.copy_(module.in_proj_bias[k * E:(k + 1) * E])
            conv.out_proj.weight.copy_(module.out_proj.weight)
            if conv.out_proj.bias is not None:
                conv.out_proj.bias.copy_(module.out_proj.bias)
        return conv

    def __repr__(self) -> str:
        clip = '' if self.relative_clip is None else \
            f', relative_clip={self.relative_clip}'
        return (f'{self.__class__.__name__}({self.embed_dim}, '
                f'num_heads={self.num_heads}{clip})')


_ACTIVATIONS = {'relu': F.relu, 'gelu': F.gelu}


def _activation(activation: Union[str, Callable]) -> Callable:
    if callable(activation):
        return activation
    check_choice(activation, _ACTIVATIONS, 'activation')
    return _ACTIVATIONS[activation]


def _activation_of(module) -> Union[str, Callable]:
    for name, fn in _ACTIVATIONS.items():
        if module.activation is fn:
            return name
    return module.activation


class _TransformerLayer(torch.nn.Module):
    """The encoder and decoder layers: self-attention, the decoder's
    cross-attention (``cross_attention``), feed-forward block, norms and
    residual wiring (one norm per sublayer)."""
    cross_attention = False

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1,
                 activation: Union[str, Callable] = 'relu',
                 layer_norm_eps: float = 1e-5, norm_first: bool = False,
                 bias: bool = True, relative_clip: Optional[int] = None,
                 path: str = 'auto', fused: Optional[bool] = None):
        super().__init__()
        num_norms = 3 if self.cross_attention else 2
        self.d_model = check_int(d_model, 'd_model', 1)
        self.nhead = check_int(nhead, 'nhead', 1)
        self.dim_feedforward = check_int(dim_feedforward, 'dim_feedforward',
                                         1)
        self.dropout_p = float(dropout)
        self.norm_first = norm_first
        self.activation = _activation(activation)
        self.linear1 = torch.nn.Linear(d_model, dim_feedforward, bias=bias)
        self.linear2 = torch.nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norms = torch.nn.ModuleList([
            torch.nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            for _ in range(num_norms)
        ])
        self.dropout = torch.nn.Dropout(dropout)
        self.self_attn = MultiheadAttentionConv(d_model, nhead, dropout, bias,
                                                relative_clip, path, fused)
        if self.cross_attention:
            self.multihead_attn = MultiheadAttentionConv(
                d_model, nhead, dropout, bias, path=path)
        self.reset_parameters()

    # -- execution paths: those of the attention sublayers ---------------
    fused = PathLayer.fused  # removed: setting it raises, naming path=

    def _attentions(self):
        return [m for m in (getattr(self, 'self_attn', None),
                            getattr(self, 'multihead_attn', None))
                if m is not None]

    @property
    def path(self) -> str:
        """The ``path`` of the attention sublayers (see
        :class:`AttentionConv`); setting it sets theirs."""
        paths = {m.path for m in self._attentions()}
        return paths.pop() if len(paths) == 1 else 'mixed'

    @path.setter
    def path(self, value: str):
        for m in self._attentions():
            m.path = check_path(value)

    @property
    def last_path(self) -> Optional[str]:
        """The slowest path an attention sublayer took in the last call
        (``'dense'`` < ``'sparse'`` < ``'message'``)."""
        order = ('dense', 'sparse', 'message')
        ran = [m.last_path for m in self._attentions()
               if m.last_path is not None]
        return max(ran, key=order.index) if ran else None

    @property
    def why_not_faster(self) -> Optional[dict]:
        """The sublayers' reasons, ``{'<sublayer>.<path>': reason}``, or
        :obj:`None` when every one ran its fastest path."""
        out = {}
        for name in ('self_attn', 'multihead_attn'):
            why = getattr(getattr(self, name, None), 'why_not_faster', None)
            for path, reason in (why or {}).items():
                out[f'{name}.{path}'] = reason
        return out or None

    def _feed_forward(self, x: Tensor) -> Tensor:
        h = self.dropout(self.activation(self.linear1(x)))
        return self.dropout(self.linear2(h))

    def _sublayer(self, x: Tensor, k: int, fn: Callable[[Tensor], Tensor]
                  ) -> Tensor:
        """Residual sublayer ``k``: pre-norm ``x + fn(norm(x))`` or
        post-norm ``norm(x + fn(x))``."""
        if self.norm_first:
            return x + fn(self.norms[k](x))
        return self.norms[k](x + fn(x))

    @classmethod
    def _from_torch(cls, module, expected):
        """The layer with the sizes, self-attention, feed-forward and norms
        of a ``torch.nn`` Transformer layer (cross-attention: the decoder)."""
        _check_layer(module, cls.__name__, expected)
        attn = module.self_attn
        layer = cls(attn.embed_dim, attn.num_heads,
                    module.linear1.out_features, module.dropout.p,
                    _activation_of(module), module.norm1.eps,
                    module.norm_first, module.linear1.bias is not None)
        layer = layer.to(attn.in_proj_weight.device,
                         attn.in_proj_weight.dtype)
        layer.self_attn = MultiheadAttentionConv.from_module(attn)
        with torch.no_grad():
            for mine, theirs in ((layer.linear1, module.linear1),
                                 (layer.linear2, module.linear2)):
                mine.load_state_dict(theirs.state_dict())
            for k, norm in enumerate(layer.norms):
                norm.load_state_dict(
                    getattr(module, f'norm{k + 1}').state_dict())
        return layer

    def reset_parameters(self):
        for m in (self.linear1, self.linear2, *self.norms,
                  *self._attentions()):
            m.reset_parameters()


def _check_layer(module, cls_name: str, expected):
    if not isinstance(module, expected):
        raise ValueError(f"{cls_name}.from_module expects a "
                         f"{expected.__module__}.{expected.__name__} (got "
                         f"{type(module).__name__})")


class TransformerEncoderLayer(_TransformerLayer):
    r"""A Transformer encoder layer on a graph (self-attention along
    ``edge_index``), as :class:`torch.nn.TransformerEncoderLayer`:

    .. math::
        \text{post-norm:}\quad \mathbf{x} \leftarrow \mathrm{LN}_1(\mathbf{x}
        + \mathrm{MHA}(\mathbf{x})), \;
        \mathbf{x} \leftarrow \mathrm{LN}_2(\mathbf{x} +
        \mathrm{FFN}(\mathbf{x}))

        \text{pre-norm:}\quad \mathbf{x} \leftarrow \mathbf{x} +
        \mathrm{MHA}(\mathrm{LN}_1(\mathbf{x})), \;
        \mathbf{x} \leftarrow \mathbf{x} + \mathrm{FFN}(\mathrm{LN}_2
        (\mathbf{x}))

    with :math:`\mathrm{MHA}` = :class:`MultiheadAttentionConv` and
    :math:`\mathrm{FFN}(\mathbf{x}) = \mathbf{W}_2\,\sigma(\mathbf{W}_1
    \mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2` (dropout after the
    attention, inside and after the FFN, as in PyTorch).

    .. note::
        A composite :class:`torch.nn.Module`; its message passing is the
        :class:`MultiheadAttentionConv` ``self_attn``.

    Args:
        d_model (int): model size.
        nhead (int): number of heads.
        dim_feedforward (int, optional): FFN hidden size.
            (default: :obj:`2048`)
        dropout (float, optional): dropout. (default: :obj:`0.1`)
        activation (str or callable, optional): ``'relu'``, ``'gelu'`` or a
            function. (default: :obj:`'relu'`)
        layer_norm_eps (float, optional): LayerNorm eps.
            (default: :obj:`1e-5`)
        norm_first (bool, optional): pre-norm. (default: :obj:`False`)
        bias (bool, optional): biases in linear maps and norms.
            (default: :obj:`True`)
        relative_clip (int, optional): Shaw et al. relative positions in the
            self-attention. (default: :obj:`None`)
        path (str, optional): execution path of the attention
            (:class:`AttentionConv`); ``layer.last_path`` /
            ``layer.why_not_faster`` report the sublayers'.
            (default: :obj:`'auto'`)
        fused: removed (a :class:`TypeError` naming ``path``).

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, d)`, edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** :math:`(|\mathcal{V}|, d)`

    Example:
        >>> layer = TransformerEncoderLayer(8, 2, dim_feedforward=16)
        >>> layer(torch.randn(5, 8), complete_graph(5)).shape
        torch.Size([5, 8])
    """
    def forward(self, x: Tensor, edge_index: Tensor,
                edge_type: Optional[Tensor] = None,
                position: Optional[Tensor] = None) -> Tensor:
        r"""Args:
            x (Tensor): ``[N, d_model]``.
            edge_index (LongTensor): self-attention graph ``[2, E]``.
            edge_type, position: relative positions (``relative_clip``).
        """
        check_features(x, self.d_model, 'x')
        check_dtypes(self, x=x)

        def attend(h):
            return self.dropout(self.self_attn(
                h, edge_index, edge_type=edge_type, position=position))

        x = self._sublayer(x, 0, attend)
        return self._sublayer(x, 1, self._feed_forward)

    @classmethod
    def from_module(cls, module: torch.nn.TransformerEncoderLayer
                    ) -> 'TransformerEncoderLayer':
        """Copy a :class:`torch.nn.TransformerEncoderLayer`."""
        return cls._from_torch(module, torch.nn.TransformerEncoderLayer)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.d_model}, nhead='
                f'{self.nhead}, norm_first={self.norm_first})')


class TransformerDecoderLayer(_TransformerLayer):
    r"""A Transformer decoder layer on graphs, as
    :class:`torch.nn.TransformerDecoderLayer`: self-attention along
    ``edge_index`` (causal graph for autoregressive decoding),
    cross-attention from the encoder ``memory`` along the bipartite
    ``memory_edge_index`` (source = memory node, target = decoder node),
    then the FFN:

    .. math::
        \text{post-norm:}\quad \mathbf{x} \leftarrow \mathrm{LN}_1(\mathbf{x}
        + \mathrm{MHA}_s(\mathbf{x})), \;
        \mathbf{x} \leftarrow \mathrm{LN}_2(\mathbf{x} +
        \mathrm{MHA}_c(\mathbf{m}, \mathbf{x})), \;
        \mathbf{x} \leftarrow \mathrm{LN}_3(\mathbf{x} +
        \mathrm{FFN}(\mathbf{x}))

    and pre-norm :math:`\mathbf{x} \leftarrow \mathbf{x} +
    f(\mathrm{LN}_k(\mathbf{x}))` for the same three sublayers (the memory
    is not normalised, as in PyTorch).

    .. note::
        A composite :class:`torch.nn.Module`; its message passing is the
        :class:`MultiheadAttentionConv` ``self_attn`` and
        ``multihead_attn``. ``relative_clip`` applies to the self-attention
        only.

    Args:
        d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
            norm_first, bias, relative_clip: as
            :class:`TransformerEncoderLayer` (``relative_clip`` in the
            self-attention).
        path (str, optional): execution path of both attentions
            (:class:`AttentionConv`); ``layer.last_path`` /
            ``layer.why_not_faster`` report theirs. (default: :obj:`'auto'`)
        fused: removed (a :class:`TypeError` naming ``path``).

    Shapes:
        - **input:** :math:`(|\mathcal{V}_t|, d)`, memory
          :math:`(|\mathcal{V}_s|, d)`, ``edge_index`` :math:`(2,
          |\mathcal{E}_t|)`, ``memory_edge_index`` :math:`(2,
          |\mathcal{E}_{st}|)`
        - **output:** :math:`(|\mathcal{V}_t|, d)`

    Example:
        >>> layer = TransformerDecoderLayer(8, 2, dim_feedforward=16)
        >>> x, memory = torch.randn(3, 8), torch.randn(5, 8)
        >>> layer(x, memory, complete_graph(3, causal=True),
        ...       bipartite_graph(5, 3)).shape
        torch.Size([3, 8])
    """
    cross_attention = True

    def forward(self, x: Tensor, memory: Tensor, edge_index: Tensor,
                memory_edge_index: Tensor, edge_type: Optional[Tensor] = None,
                position: Optional[Tensor] = None) -> Tensor:
        r"""Args:
            x (Tensor): decoder nodes ``[N_t, d_model]``.
            memory (Tensor): encoder output ``[N_s, d_model]``.
            edge_index (LongTensor): self-attention graph on ``x``.
            memory_edge_index (LongTensor): memory-to-decoder graph
                (e.g. :func:`~pyg_relational.graphs.bipartite_graph`).
            edge_type, position: relative positions of the self-attention.
        """
        check_features(x, self.d_model, 'x')
        check_features(memory, self.d_model, 'memory')
        check_dtypes(self, x=x, memory=memory)

        def self_attend(h):
            return self.dropout(self.self_attn(
                h, edge_index, edge_type=edge_type, position=position))

        def cross_attend(h):
            return self.dropout(self.multihead_attn((memory, h),
                                                    memory_edge_index))

        x = self._sublayer(x, 0, self_attend)
        x = self._sublayer(x, 1, cross_attend)
        return self._sublayer(x, 2, self._feed_forward)

    @classmethod
    def from_module(cls, module: torch.nn.TransformerDecoderLayer
                    ) -> 'TransformerDecoderLayer':
        """Copy a :class:`torch.nn.TransformerDecoderLayer`."""
        layer = cls._from_torch(module, torch.nn.TransformerDecoderLayer)
        layer.multihead_attn = MultiheadAttentionConv.from_module(
            module.multihead_attn)
        return layer

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.d_model}, nhead='
                f'{self.nhead}, norm_first={self.norm_first})')


class PositionalEncoding(torch.nn.Module):
    r"""The sinusoidal positional encoding of `Vaswani et al., 2017
    <https://arxiv.org/abs/1706.03762>`_, interleaved as in the paper,
    added to node features:

    .. math::
        \mathrm{PE}(p, 2i) = \sin(p / 10000^{2i/d}), \qquad
        \mathrm{PE}(p, 2i+1) = \cos(p / 10000^{2i/d})

    :math:`\mathbf{x}'_n = \mathbf{x}_n + \mathrm{PE}(p_n)`, followed by
    dropout.

    .. note::
        Not :class:`torch_geometric.nn.PositionalEncoding`, which lays the
        sines and cosines out in two halves and uses other frequencies.
        Positions may be any real numbers (one per node, e.g. the position
        within each sequence); a node-wise map, so not a
        :class:`MessagePassing` layer.

    Args:
        d_model (int): feature size :math:`d` (odd sizes drop the last
            cosine).
        dropout (float, optional): dropout after the addition.
            (default: :obj:`0.`)
        base (float, optional): the :math:`10000`. (default: :obj:`10000.`)

    Shapes:
        - **input:** :math:`(N, d)`, positions :math:`(N)`
        - **output:** :math:`(N, d)`

    Example:
        >>> pe = PositionalEncoding(4)
        >>> pe.encoding(torch.tensor([0, 1]))
        tensor([[0.0000, 1.0000, 0.0000, 1.0000],
                [0.8415, 0.5403, 0.0100, 0.9999]])
    """
    def __init__(self, d_model: int, dropout: float = 0.,
                 base: float = 10000.):
        super().__init__()
        self.d_model = check_int(d_model, 'd_model', 1)
        if not isinstance(base, (int, float)) or not 0 < base < math.inf:
            raise ValueError(f"'base' must be a finite number > 0 (the 10000 of "
                             f"PE(p, 2i) = sin(p / base^(2i/d))); got "
                             f"{base!r}")
        self.base = float(base)
        self.dropout = torch.nn.Dropout(dropout)
        # 1 / base^{2i/d} for i = 0 .. ceil(d/2) - 1
        i2 = torch.arange(0, d_model, 2, dtype=torch.float64)
        self.register_buffer('inv_freq', torch.exp(-math.log(self.base) * i2 /
                                                   d_model), persistent=False)

    def encoding(self, position: Tensor, dtype: Optional[torch.dtype] = None
                 ) -> Tensor:
        """``PE(position)``: ``[N, d_model]``."""
        if not isinstance(position, Tensor) or position.dim() != 1:
            raise ValueError(f"'position' must be a 1-D tensor with one "
                             f"entry per node (got "
                             f"{getattr(position, 'shape', position)})")
        dtype = dtype or torch.get_default_dtype()
        angle = position.to(torch.float64).view(-1, 1) * \
            self.inv_freq.to(position.device).view(1, -1)  # [N, ceil(d/2)]
        pe = torch.empty(position.numel(), self.d_model, dtype=torch.float64,
                         device=position.device)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle[:, :self.d_model // 2])
        return pe.to(dtype)

    def forward(self, x: Tensor, position: Tensor) -> Tensor:
        check_features(x, self.d_model, 'x')
        if not isinstance(position, Tensor) or position.dim() != 1 or \
                position.numel() != x.size(0):
            raise ValueError(f"'position' must be a 1-D tensor with one "
                             f"entry per node ({x.size(0)}); got "
                             f"{getattr(position, 'shape', position)}")
        return self.dropout(x + self.encoding(position, x.dtype))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.d_model})'
