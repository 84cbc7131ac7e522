r"""Message passing neural network with a GRU update (Gilmer et al., 2017),
as a rewiring of the Graph Network blocks: the message function is an
:class:`~pyg_relational.nn.EdgeBlock` (senders [+ edges]) and the GRU update a
:class:`~pyg_relational.nn.NodeBlock` (received messages + node state)."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, Module, ModuleList
from torch_geometric.nn import MessagePassing

from .._checks import check_choice, check_features, check_int
from .graph_network import (EdgeBlock, NodeBlock, _aggr_width, _num_nodes,
                            _refuse_sizes, _resolve_graph, _split_pair, mlp)

__all__ = ['MPNNConv']


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
        out = cls(C, C, num_steps=T, aggr=module.aggr, share_weights=False,
                  bias=module.rnn.bias)
        with torch.no_grad():
            for t, block in enumerate(out.message_blocks):
                block.edge_model.weight.copy_(module.weight[t].t())
            out.update_block.node_model.gru.load_state_dict(
                module.rnn.state_dict())
        return out.to(module.weight.device, module.weight.dtype)

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]], edge_index,
                edge_attr: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        _refuse_sizes(edge_attr=edge_attr)
        size = _num_nodes(x, size=size)
        pair = isinstance(x, (tuple, list))
        x_src, x_dst = _split_pair(x, 'x')
        widths = self.in_channels if isinstance(self.in_channels, tuple) \
            else (self.in_channels, ) * 2
        for t, want, name in zip((x_src, x_dst), widths,
                                 ('x[0]', 'x[1]') if pair else ('x', 'x')):
            check_features(t, t.size(-1) if want == -1 else want, name)
            if t.size(-1) > self.out_channels:
                raise ValueError(f"'{name}' has {t.size(-1)} features but "
                                 f"at most out_channels="
                                 f"{self.out_channels} fit the state")
        edge_index, edge_attr = _resolve_graph(edge_index, edge_attr, *size)
        if self.message == 'edge_network':
            if edge_attr is None:
                raise ValueError("message='edge_network' needs 'edge_attr' "
                                 f"[E, {self.edge_dim}]")
            check_features(edge_attr, self.edge_dim, 'edge_attr')
        else:
            edge_attr = None  # the linear message ignores edge features
        h_src, h = self._pad(x_src), self._pad(x_dst)  # [N_s, C], [N_t, C]
        for t in range(self.num_steps):
            block = self.message_blocks[0 if self.share_weights else t]
            if not pair:
                h_src = h
            m = self._receive(block, (h_src, h), edge_index,
                              edge_attr)  # [N_t, kC]
            h = self.update_block.node_update(h, m)  # GRU, [N_t, C]
        return h

    def _pad(self, x: Tensor) -> Tensor:
        """``x`` zero-padded to the state size ``[N, C]``."""
        if x.size(-1) == self.out_channels:
            return x
        pad = x.new_zeros(x.size(0), self.out_channels - x.size(-1))
        return torch.cat([x, pad], dim=-1)  # [N, C]

    def _receive(self, block: EdgeBlock, h: Tensor, edge_index: Tensor,
                 edge_attr: Optional[Tensor]) -> Tensor:
        """Aggregated messages; the per-edge messages ``[E, C]`` are freed
        on return, before the GRU runs (as in ``GatedGraphConv``)."""
        messages = block(h, edge_index, edge_attr)  # [E, C]
        return self.update_block.receive(h, edge_index, messages)  # [N_t, kC]

    def __repr__(self) -> str:
        aggr = '' if self.aggr in ('add', 'sum') else f', aggr={self.aggr!r}'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_steps={self.num_steps}, '
                f'message={self.message!r}{aggr})')
