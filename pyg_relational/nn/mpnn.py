r"""Message passing neural network with a GRU update (Gilmer et al., 2017),
as a rewiring of the Graph Network blocks: the message function is an
:class:`~pyg_relational.nn.EdgeBlock` (senders [+ edges]) and the GRU update a
:class:`~pyg_relational.nn.NodeBlock` (received messages + node state)."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, Module, ModuleList, Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import uniform

from .._checks import (check_choice, check_edge_attr, check_edge_index,
                       check_edge_weight, check_features, check_int,
                       split_pair)
from .graph_network import (EdgeBlock, NodeBlock, _aggr_width,
                            _features_device, _num_nodes, _refuse_sizes,
                            mlp)
from ._csr import EdgePattern, EdgeSum, dtype_reason
from .._torch import compiling, plain_tensor
from ._paths import GraphInput, PathLayer

__all__ = ['MPNNConv', 'GatedGraphConv']


class _GRUUpdate(Module):
    r"""``node_model`` of the update block: splits
    ``cat([m_i, h_i], -1)`` and returns ``GRU(m_i, h_i)`` (``m_i`` is
    ``message_channels`` wide: ``k C`` for ``k`` aggregations)."""
    def __init__(self, channels: int, bias: bool = True,
                 message_channels: Optional[int] = None):
        super().__init__()
        self.channels = channels
        self.message_channels = message_channels or channels
        self.gru = GRUCell(self.message_channels, channels, bias=bias)

    def reset_parameters(self):
        self.gru.reset_parameters()

    def forward(self, z: Tensor) -> Tensor:
        m, h = z.split([self.message_channels, self.channels],
                       dim=-1)  # [N, kC], [N, C]
        return self.gru(m, h)


class _EdgeNetwork(Module):
    r"""``edge_model`` of the NNConv-style message: splits
    ``cat([e_ji, h_j], -1)`` and returns ``A(e_ji) h_j`` with
    ``A(e) = nn(e).view(C, C)``."""
    def __init__(self, edge_dim: int, channels: int, nn: Module):
        super().__init__()
        self.edge_dim, self.channels, self.nn = edge_dim, channels, nn

    def reset_parameters(self):
        from torch_geometric.nn.inits import reset
        reset(self.nn)

    def forward(self, z: Tensor) -> Tensor:
        e, h = z.split([self.edge_dim, self.channels], dim=-1)
        C = self.channels
        A = self.nn(e).view(-1, C, C)  # [E, C_in, C_out]
        return torch.bmm(h.unsqueeze(1), A).squeeze(1)  # [E, C]


class MPNNConv(MessagePassing):
    r"""The message passing neural network with a GRU update from the
    `"Neural Message Passing for Quantum Chemistry"
    <https://arxiv.org/abs/1704.01212>`_ paper

    .. math::
        \mathbf{m}^{(t+1)}_i &= \bigoplus_{j \to i}
        M_t\left(\mathbf{h}^{(t)}_j, \mathbf{e}_{ji}\right) \\
        \mathbf{h}^{(t+1)}_i &= \mathrm{GRU}\left(\mathbf{m}^{(t+1)}_i,
        \mathbf{h}^{(t)}_i\right)

    for :math:`t = 0, \dots, T-1`, with :math:`\mathbf{h}^{(0)}_i` the input
    features zero-padded to ``out_channels`` and :math:`\bigoplus` = ``aggr``.
    The message is either linear, :math:`M_t(\mathbf{h}_j) =
    \mathbf{W}_t^{\top} \mathbf{h}_j` (``message='linear'``; then the layer
    is :class:`torch_geometric.nn.GatedGraphConv`, Li et al. 2016), or an
    edge network, :math:`M_t(\mathbf{h}_j, \mathbf{e}_{ji}) =
    A(\mathbf{e}_{ji}) \mathbf{h}_j` with :math:`A` an MLP to
    :math:`C \times C` matrices (``message='edge_network'``, as in
    :class:`torch_geometric.nn.NNConv`).

    It is a rewiring of the GN blocks: each :math:`M_t` is an
    :class:`~pyg_relational.nn.EdgeBlock` on the senders (and edges), the
    GRU a :class:`~pyg_relational.nn.NodeBlock` on the aggregated messages
    and the node state.

    .. note::
        Gilmer et al. tie the message weights across steps; that is the
        default (``share_weights=True``). ``share_weights=False`` learns one
        :math:`M_t` per step, as PyG's ``GatedGraphConv`` does (used by
        :meth:`from_module`). The readout of the paper is not part of this
        layer (use a PyG aggregation or :class:`GlobalBlock`). A node with
        no incoming edge receives the message :math:`\mathbf{0}`.

    Args:
        in_channels (int or tuple): input size (at most ``out_channels``);
            ``-1`` infers it from the first input, a pair ``(source,
            target)`` (e.g. ``(-1, -1)``) is for bipartite inputs, as
            :func:`~torch_geometric.nn.to_hetero` gives them.
        out_channels (int): hidden/output size :math:`C`.
        num_steps (int, optional): :math:`T`. (default: :obj:`3`)
        message (str, optional): :obj:`'linear'` or
            :obj:`'edge_network'`. (default: :obj:`'linear'`)
        edge_dim (int, optional): edge-feature size, required by
            ``'edge_network'``. (default: :obj:`None`)
        edge_hidden_channels (int, optional): hidden size of the edge
            network MLP. (default: :obj:`64`)
        aggr (str or list, optional): :math:`\bigoplus`, any PyG
            aggregation; a list (a
            :class:`~torch_geometric.nn.aggr.MultiAggregation`) feeds the
            concatenated aggregates to a wider GRU input.
            (default: :obj:`'add'`)
        share_weights (bool, optional): one message function for all steps.
            (default: :obj:`True`)
        bias (bool, optional): GRU biases. (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` or a
          bipartite pair :math:`((|\mathcal{V}_s|, F_s), (|\mathcal{V}_t|,
          F_t))` (the sources keep their padded input state, the targets
          are updated), edge indices :math:`(2, |\mathcal{E}|)` or an
          ``adj_t`` :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)`
          (``SparseTensor`` / ``torch.sparse``; ``[E, D]`` values are the
          edge features when ``edge_attr`` is None), edge features
          :math:`(|\mathcal{E}|, D)` *(edge network only)*, ``size``
          *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, C)`

    Example:
        >>> conv = MPNNConv(3, 8, num_steps=2)
        >>> conv
        MPNNConv(3, 8, num_steps=2, message='linear')
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> conv(torch.randn(3, 3), edge_index).shape
        torch.Size([3, 8])
    """
    def __init__(self, in_channels: int, out_channels: int,
                 num_steps: int = 3, message: str = 'linear',
                 edge_dim: Optional[int] = None,
                 edge_hidden_channels: int = 64, aggr: str = 'add',
                 share_weights: bool = True, bias: bool = True):
        # A MessagePassing (so to_hetero and explainers treat it as a
        # graph layer) whose message passing is done by its blocks.
        super().__init__(aggr=None)
        self.out_channels = C = check_int(out_channels, 'out_channels', 1)
        pair = isinstance(in_channels, (tuple, list))
        for name, value in zip(('in_channels[0]', 'in_channels[1]') if pair
                               else ('in_channels',),
                               in_channels if pair else (in_channels,)):
            if value != -1:
                check_int(value, name, 1)
            if value > out_channels:
                raise ValueError(f"'{name}' ({value}) must be <= "
                                 f"'out_channels' ({out_channels}); the "
                                 f"input is zero-padded to the state size")
        self.in_channels = tuple(in_channels) if pair else in_channels
        self.num_steps = check_int(num_steps, 'num_steps', 1)
        self.message = check_choice(message, ('linear', 'edge_network'),
                                    'message')
        if message == 'edge_network':
            edge_dim = check_int(edge_dim, 'edge_dim', 1) if edge_dim \
                is not None else None
            if edge_dim is None:
                raise ValueError("message='edge_network' needs 'edge_dim' "
                                 "(the edge-feature size)")
        self.edge_dim = edge_dim
        self.aggr = aggr
        message_channels = _aggr_width(aggr, C)
        self.share_weights = share_weights

        def message_block() -> EdgeBlock:
            if message == 'linear':  # M_t(h_j) = W_t^T h_j, on nodes first
                return EdgeBlock(Linear(C, C, bias=False), use_edges=False,
                                 use_receiver_nodes=False, use_globals=False,
                                 node_first=True)
            nn = mlp(edge_dim, C * C, edge_hidden_channels, num_layers=2)
            return EdgeBlock(_EdgeNetwork(edge_dim, C, nn),
                             use_receiver_nodes=False, use_globals=False)

        count = 1 if share_weights else self.num_steps
        self.message_blocks = ModuleList(message_block()
                                         for _ in range(count))
        self.update_block = NodeBlock(_GRUUpdate(C, bias, message_channels),
                                      aggr=aggr, use_globals=False)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for block in self.message_blocks:
            block.reset_parameters()
        self.update_block.reset_parameters()

    @classmethod
    def from_module(cls, module) -> 'MPNNConv':
        """An :class:`MPNNConv` computing what the PyG
        :class:`~torch_geometric.nn.GatedGraphConv` ``module`` computes
        (weights copied; ``share_weights=False``)."""
        from torch_geometric.nn import GatedGraphConv
        if not isinstance(module, GatedGraphConv):
            raise ValueError(f"from_module expects a GatedGraphConv (got "
                             f"{type(module).__name__})")
        C, T = module.out_channels, module.num_layers
        # in_channels=-1: any input up to C features, zero-padded (as PyG)
        out = cls(-1, C, num_steps=T, aggr=module.aggr, share_weights=False,
                  bias=module.rnn.bias)
        with torch.no_grad():
            for t, block in enumerate(out.message_blocks):
                block.edge_model.weight.copy_(module.weight[t].t())
            out.update_block.node_model.gru.load_state_dict(
                module.rnn.state_dict())
        return out.to(module.weight.device, module.weight.dtype)

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]], edge_index,
                edge_attr: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None, *,
                edge_weight: Optional[Tensor] = None) -> Tensor:
        r"""Args:
            x (Tensor or (Tensor, Tensor)): node features (or a pair).
            edge_index (LongTensor or EdgeIndex or adj_t): the graph; the
                values of an ``adj_t`` are the edge weights (``[E]``, linear
                message) or edge features (``[E, D]``, edge network), as
                PyG's ``propagate`` reads them.
            edge_attr (Tensor, optional): ``[E, edge_dim]`` (edge network).
            size ((int, int), optional): ``(N_src, N_dst)``.
            edge_weight (Tensor, optional): ``[E]`` scalar per edge
                multiplying its message (as ``GatedGraphConv``). Keyword.
        """
        _refuse_sizes(edge_attr=edge_attr)
        size = _num_nodes(x, size=size)
        pair = isinstance(x, (tuple, list))
        x_src, x_dst = split_pair(x, 'x')
        widths = self.in_channels if isinstance(self.in_channels, tuple) \
            else (self.in_channels, ) * 2
        for t, want, name in zip((x_src, x_dst), widths,
                                 ('x[0]', 'x[1]') if pair else ('x', 'x')):
            check_features(t, t.size(-1) if want == -1 else want, name)
            if t.size(-1) > self.out_channels:
                raise ValueError(f"'{name}' has {t.size(-1)} features but "
                                 f"at most out_channels="
                                 f"{self.out_channels} fit the state")
        edge_index, edge_attr, edge_weight = self._edges(
            x, edge_index, edge_attr, edge_weight, size)
        h_src, h = self._pad(x_src), self._pad(x_dst)  # [N_s, C], [N_t, C]
        for t in range(self.num_steps):
            block = self.message_blocks[0 if self.share_weights else t]
            if not pair:
                h_src = h
            m = self._receive(block, (h_src, h), edge_index, edge_attr,
                              edge_weight)  # [N_t, kC]
            h = self.update_block.node_update(h, m)  # GRU, [N_t, C]
        return h

    def _pad(self, x: Tensor) -> Tensor:
        """``x`` zero-padded to the state size ``[N, C]``."""
        if x.size(-1) == self.out_channels:
            return x
        pad = x.new_zeros(x.size(0), self.out_channels - x.size(-1))
        return torch.cat([x, pad], dim=-1)  # [N, C]

    def _edges(self, x, edge_index, edge_attr: Optional[Tensor],
               edge_weight: Optional[Tensor], size: Tuple[int, int]):
        """``(edge_index, edge_attr, edge_weight)`` from the graph argument
        and the per-edge inputs, each checked; nothing is dropped: what the
        message cannot use is refused by name."""
        graph = GraphInput(edge_index, *size, device=_features_device(x))
        edge_index = graph.edge_index
        if graph.structure is None:
            check_edge_index(edge_index, *size)
        values = graph.edge_weight  # adj_t values: weights or features
        if values is not None and values.dim() == 1 and bool(
                (values == 1).all()):
            values = None  # values of one: a bare pattern
        if values is not None:
            if values.dim() == 1 and self.message == 'linear':
                if edge_weight is not None:
                    raise ValueError("both an adj_t with values and "
                                     "'edge_weight' were given; pass one")
                edge_weight = values
            elif edge_attr is None and self.message == 'edge_network':
                edge_attr = values.view(values.size(0), -1)  # [E, D]
            else:
                raise ValueError(
                    f"the values of the adj_t passed as 'edge_index' "
                    f"({tuple(values.shape)}) cannot be used by "
                    f"message={self.message!r} (scalar weights [E] go to "
                    f"'linear', features [E, D] to 'edge_network'); pass "
                    f"the adj_t without values")
        E = edge_index.size(1)
        if self.message == 'edge_network':
            if edge_attr is None:
                raise ValueError("message='edge_network' needs 'edge_attr' "
                                 f"[E, {self.edge_dim}]")
            edge_attr = check_edge_attr(edge_attr, self.edge_dim, E)
        elif edge_attr is not None:
            raise ValueError("message='linear' has no edge features, "
                             "'edge_attr' would be ignored; pass scalar "
                             "weights as edge_weight=[E], or use "
                             "message='edge_network'")
        if edge_weight is not None:
            check_edge_weight(edge_weight, E)
        return edge_index, edge_attr, edge_weight

    def _receive(self, block: EdgeBlock, h: Tensor, edge_index: Tensor,
                 edge_attr: Optional[Tensor],
                 edge_weight: Optional[Tensor] = None) -> Tensor:
        """Aggregated messages; the per-edge messages ``[E, C]`` are freed
        on return, before the GRU runs (as in ``GatedGraphConv``)."""
        messages = block(h, edge_index, edge_attr)  # [E, C]
        if edge_weight is not None:
            messages = edge_weight.view(-1, 1).to(messages.dtype) * messages
        return self.update_block.receive(h, edge_index, messages)  # [N_t, kC]

    def __repr__(self) -> str:
        aggr = '' if self.aggr in ('add', 'sum') else f', aggr={self.aggr!r}'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_steps={self.num_steps}, '
                f'message={self.message!r}{aggr})')


class GatedGraphConv(PathLayer, MessagePassing):
    r"""The gated graph convolution operator from the `"Gated Graph Sequence
    Neural Networks" <https://arxiv.org/abs/1511.05493>`_ paper, a drop-in
    for :class:`torch_geometric.nn.GatedGraphConv` (same signature,
    defaults, parameter names ``weight`` / ``rnn`` and numbers)

    .. math::
        \mathbf{h}_i^{(0)} &= \mathbf{x}_i \, \Vert \, \mathbf{0} \\
        \mathbf{m}_i^{(l+1)} &= \sum_{j \to i} e_{j,i} \cdot
        \mathbf{\Theta}^{(l)\top} \mathbf{h}_j^{(l)} \\
        \mathbf{h}_i^{(l+1)} &= \textrm{GRU} (\mathbf{m}_i^{(l+1)},
        \mathbf{h}_i^{(l)})

    up to :math:`\mathbf{h}_i^{(L)}`, with :math:`e_{j,i}` the edge weight
    (1 without weights). It is :class:`MPNNConv` with a linear message and
    one :math:`\mathbf{\Theta}^{(l)}` per step (``MPNNConv.from_module``
    gives the same numbers); its sum runs as one CSR product per step
    (``path='sparse'``, repeated edges included) unless an explainer, a hook,
    another ``aggr``, a dtype without CSR products or ``torch.compile``
    asks for the message path (``last_path``, ``why_not_faster``).

    Args:
        out_channels (int): size :math:`C` of the state and output.
        num_layers (int): number of steps :math:`L`.
        aggr (str, optional): aggregation. (default: :obj:`'add'`)
        bias (bool, optional): GRU biases. (default: :obj:`True`)
        path (str, optional): ``'auto'``, ``'sparse'`` or ``'message'``.
            (default: :obj:`'auto'`)
        fused: removed (a :class:`TypeError` naming ``path``).
        **kwargs: further ``MessagePassing`` options.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`,
          :math:`F_{in} \le C`, edge indices :math:`(2, |\mathcal{E}|)` or an
          ``adj_t`` (its values are the edge weights), edge weights
          :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, C)`

    Example:
        >>> conv = GatedGraphConv(8, num_layers=2)
        >>> conv
        GatedGraphConv(8, num_layers=2)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> conv(torch.randn(3, 5), edge_index).shape
        torch.Size([3, 8])
    """
    def __init__(self, out_channels: int, num_layers: int,
                 aggr: str = 'add', bias: bool = True, path: str = 'auto',
                 fused: Optional[bool] = None, **kwargs):
        super().__init__(aggr=aggr, **kwargs)
        self.out_channels = check_int(out_channels, 'out_channels', 1)
        self.num_layers = check_int(num_layers, 'num_layers', 1)
        self.init_paths(check_choice(path, ('auto', 'sparse', 'message'),
                                     'path'), fused)
        self.weight = Parameter(torch.empty(num_layers, out_channels,
                                            out_channels))
        self.rnn = GRUCell(out_channels, out_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        uniform(self.out_channels, self.weight)  # U(-1/sqrt(C), 1/sqrt(C))
        self.rnn.reset_parameters()

    def forward(self, x: Tensor, edge_index,
                edge_weight: Optional[Tensor] = None) -> Tensor:
        r"""Args:
            x (Tensor): node features ``[N, F]``, ``F <= out_channels``
                (zero-padded).
            edge_index (LongTensor or EdgeIndex or adj_t): the graph; an
                ``adj_t``'s values are the edge weights.
            edge_weight (Tensor, optional): ``[E]`` weight per edge.
        """
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"'x' must be node features [N, F] (got "
                             f"{getattr(x, 'shape', type(x).__name__)})")
        if x.size(-1) > self.out_channels:
            raise ValueError(f"The number of input channels ({x.size(-1)}) "
                             f"is not allowed to be larger than the number "
                             f"of output channels ({self.out_channels})")
        N = x.size(0)
        graph = GraphInput(edge_index, N, N, device=x.device)
        edge_index = graph.edge_index
        if graph.edge_weight is not None:
            if edge_weight is not None:
                raise ValueError("both an adj_t with values and "
                                 "'edge_weight' were given; pass one")
            edge_weight = graph.edge_weight
        if graph.structure is None:
            check_edge_index(edge_index, N, N)
        if edge_weight is not None:
            check_edge_weight(edge_weight, edge_index.size(1))
        pattern, why = None, None
        if self.aggr not in ('add', 'sum'):
            why = f'aggr={self.aggr!r} is not a sum (no CSR product)'
        else:
            why = dtype_reason(x)
        if why is None and compiling():
            why = 'torch.compile cannot trace the CSR products'
        if why is None:
            pattern = EdgePattern.build(plain_tensor(edge_index), N, N)
            why = 'the graph has no edge (no CSR form)' if pattern is None \
                else None
        path = self.choose_path({'sparse': why}, order=('sparse', 'message'))
        if path == 'sparse':  # weights in CSR order, [E, 1]
            w = x.new_ones(edge_index.size(1)) if edge_weight is None \
                else edge_weight.to(x.dtype)
            w = (w if pattern.perm is None else w[pattern.perm]).view(-1, 1)
        h = x
        if x.size(-1) < self.out_channels:  # h^(0) = x || 0
            h = torch.cat([x, x.new_zeros(N, self.out_channels - x.size(-1))],
                          dim=1)
        for i in range(self.num_layers):
            m = h @ self.weight[i]  # [N, C]
            if path == 'sparse':
                m = EdgeSum.apply(pattern, w, m.unsqueeze(1)).squeeze(1)
            else:
                m = self.propagate(edge_index, x=m, edge_weight=edge_weight)
            h = self.rnn(m, h)
        return h

    def message(self, x_j: Tensor, edge_weight: Optional[Tensor]) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    @classmethod
    def from_module(cls, module) -> 'GatedGraphConv':
        """This layer with the options and weights of a PyG
        :class:`~torch_geometric.nn.GatedGraphConv`."""
        from torch_geometric.nn import GatedGraphConv as Theirs
        if not isinstance(module, Theirs):
            raise ValueError(f"GatedGraphConv.from_module expects a "
                             f"torch_geometric.nn.GatedGraphConv (got "
                             f"{type(module).__name__})")
        conv = cls(module.out_channels, module.num_layers, aggr=module.aggr,
                   bias=module.rnn.bias)
        conv = conv.to(module.weight.device, module.weight.dtype)
        conv.load_state_dict(module.state_dict())
        return conv

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.out_channels}, '
                f'num_layers={self.num_layers})')
