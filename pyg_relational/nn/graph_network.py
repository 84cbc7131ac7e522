r"""The Graph Network (GN) block of Battaglia et al. (2018), as three
composable pieces: :class:`EdgeBlock`, :class:`NodeBlock`, :class:`GlobalBlock`
and the full :class:`GraphNetwork` that chains them.

Special models (:class:`~pyg_relational.nn.InteractionNetwork`,
:class:`~pyg_relational.nn.MPNNConv`, the NRI encoder/decoder) are rewirings
of these blocks (graph_nets / jraph style), not copies of them.

Callback signatures (every ``*_model`` is any :class:`torch.nn.Module` acting
on the last dimension):

* ``edge_model(cat([e_k, v_{s_k}, v_{r_k}, u[batch[r_k]]], -1)) -> e'_k``
* ``node_model(cat([ē'_i, v_i, u[batch[i]]], -1)) -> v'_i``
* ``global_model(cat([ē', v̄', u], -1)) -> u'``

where absent parts (switched off with ``use_*=False``) are skipped and the
order of the remaining parts is kept. Edge direction follows PyG:
``edge_index[0]`` is the sender (source, :math:`s_k`, ``_j``) and
``edge_index[1]`` the receiver (target, :math:`r_k`, ``_i``).
"""
from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module
from torch_geometric.nn import MLP, MessagePassing
from torch_geometric.nn import Linear as PyGLinear
from torch_geometric.nn.inits import reset as _reset
from torch_geometric.nn.resolver import aggregation_resolver

from .._checks import check_edge_index, check_int

__all__ = ['EdgeBlock', 'NodeBlock', 'GlobalBlock', 'GraphNetwork', 'mlp',
           'split_first_linear']

PairTensor = Tuple[Tensor, Tensor]
NodeInput = Union[Tensor, PairTensor]
BatchInput = Optional[Union[Tensor, Tuple[Optional[Tensor], Optional[Tensor]]]]


def mlp(in_channels: int, out_channels: int,
        hidden_channels: Optional[int] = None, num_layers: int = 2,
        act: str = 'relu') -> Module:
    r"""The default block model: a :class:`torch_geometric.nn.MLP` without
    normalisation and with a plain (linear) last layer.

    Args:
        in_channels (int): input size.
        out_channels (int): output size.
        hidden_channels (int, optional): hidden size (default:
            :obj:`out_channels`).
        num_layers (int, optional): number of linear layers; ``1`` gives a
            single :class:`~torch.nn.Linear`. (default: :obj:`2`)
        act (str, optional): activation between layers. (default:
            :obj:`'relu'`)

    Example:
        >>> from pyg_relational.nn.graph_network import mlp
        >>> mlp(6, 4, hidden_channels=16)(torch.randn(3, 6)).shape
        torch.Size([3, 4])
    """
    check_int(in_channels, 'in_channels', 1)
    check_int(out_channels, 'out_channels', 1)
    check_int(num_layers, 'num_layers', 1)
    hidden_channels = out_channels if hidden_channels is None else \
        check_int(hidden_channels, 'hidden_channels', 1)
    if num_layers == 1:
        return torch.nn.Linear(in_channels, out_channels)
    return MLP(in_channels=in_channels, hidden_channels=hidden_channels,
               out_channels=out_channels, num_layers=num_layers, act=act,
               norm=None, plain_last=True)


# --------------------------------------------------------------------------
# Small shared helpers (private).
# --------------------------------------------------------------------------
def _split_pair(value, name: str):
    """``(src, dst)`` from a tensor or a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"'{name}' must be a tensor or a pair "
                             f"(source, target) (got {len(value)} items)")
        return value[0], value[1]
    return value, value


def _num_nodes(x: NodeInput, name: str = 'x') -> Tuple[int, int]:
    src, dst = _split_pair(x, name)
    for t, role in ((src, 'source'), (dst, 'target')):
        if not isinstance(t, Tensor) or t.dim() != 2:
            shape = tuple(t.shape) if isinstance(t, Tensor) else \
                type(t).__name__
            raise ValueError(f"'{name}' ({role} nodes) must be a 2-D tensor "
                             f"[num_nodes, channels] (got {shape})")
    return src.size(0), dst.size(0)


def _check_edge_attr(edge_attr: Optional[Tensor], num_edges: int,
                     required: bool, flag: str):
    if edge_attr is None:
        if required:
            raise ValueError(f"'edge_attr' is None but {flag}=True; pass "
                             f"edge features [E, F] or build the block with "
                             f"{flag}=False")
        return
    if not isinstance(edge_attr, Tensor) or edge_attr.dim() != 2 \
            or edge_attr.size(0) != num_edges:
        shape = tuple(edge_attr.shape) if isinstance(edge_attr, Tensor) \
            else type(edge_attr).__name__
        raise ValueError(f"'edge_attr' must have shape [E={num_edges}, F] "
                         f"(got {shape})")


def _check_batch(batch: Optional[Tensor], num_nodes: int, name: str):
    if batch is None:
        return
    if not isinstance(batch, Tensor) or batch.dim() != 1 \
            or batch.dtype != torch.long or batch.numel() != num_nodes:
        shape = (tuple(batch.shape), batch.dtype) if isinstance(
            batch, Tensor) else type(batch).__name__
        raise ValueError(f"'{name}' must be a 1-D long tensor with one graph "
                         f"index per node ({num_nodes} nodes; got {shape})")


def _check_globals(u: Optional[Tensor], required: bool, flag: str,
                   batch: Optional[Tensor], num_graphs: Optional[int] = None):
    if u is None:
        if required:
            raise ValueError(f"'u' is None but {flag}=True; pass global "
                             f"features [num_graphs, F] or build the block "
                             f"with {flag}=False")
        return
    if not isinstance(u, Tensor) or u.dim() != 2:
        shape = tuple(u.shape) if isinstance(u, Tensor) else \
            type(u).__name__
        raise ValueError(f"'u' must be a 2-D tensor [num_graphs, F] (got "
                         f"{shape}); use u.view(1, -1) for a single graph")
    if batch is None and u.size(0) != 1:
        raise ValueError(f"'u' has {u.size(0)} graphs but 'batch' is None; "
                         f"pass 'batch' (graph index of every node)")
    if batch is not None and batch.numel() > 0 and \
            int(batch.max()) >= u.size(0):
        raise IndexError(f"'batch' refers to graph {int(batch.max())} but "
                         f"'u' has only {u.size(0)} rows")


def _gather_globals(u: Tensor, batch: Optional[Tensor], count: int) -> Tensor:
    """``u[batch]`` (one row per node/edge), or ``u`` broadcast when there
    is a single graph and no batch vector."""
    if batch is None:
        return u.expand(count, u.size(-1))  # [count, F_u]
    return u.index_select(0, batch)  # [count, F_u]


def split_first_linear(model: Module
                       ) -> Optional[Tuple[Module, Callable[[Tensor], Tensor]]]:
    r"""``(linear, rest)`` with ``model(x) == rest(linear(x))`` when
    ``model`` starts with a linear layer, else :obj:`None`.

    Recognised: a :class:`torch.nn.Linear` or
    :class:`torch_geometric.nn.Linear` (``rest`` is the identity), a
    :class:`torch.nn.Sequential` whose first module is recognised, a
    :class:`torch_geometric.nn.MLP` (as :func:`mlp` builds), and any module
    with a ``split_first_linear()`` method returning the pair. Used
    by ``node_first`` blocks to apply the node columns of the first layer
    per node.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU())
        >>> lin, rest = split_first_linear(model)
        >>> x = torch.randn(3, 6)
        >>> torch.equal(rest(lin(x)), model(x))
        True
    """
    if hasattr(model, 'split_first_linear'):
        return model.split_first_linear()
    if isinstance(model, torch.nn.Sequential):
        head = split_first_linear(model[0]) if len(model) > 0 else None
        if head is None:
            return None
        lin, head_rest = head
        tail = model[1:]
        return lin, lambda x: tail(head_rest(x))
    if isinstance(model, MLP):
        head = split_first_linear(model.lins[0])
        if head is None:
            return None
        return head[0], lambda x: _mlp_after_first(model, x)
    if isinstance(model, (torch.nn.Linear, PyGLinear)) and not isinstance(
            model.weight, torch.nn.parameter.UninitializedParameter):
        return model, lambda x: x
    return None


def _mlp_after_first(model: MLP, x: Tensor) -> Tensor:
    """``MLP.forward`` after its first linear layer (PyG 2.8 order: linear,
    [act], norm, [act], dropout per hidden layer; then a plain last layer).
    Tested against ``MLP.forward`` (tests/test_graph_network.py)."""
    for i, (lin, norm) in enumerate(zip(model.lins, model.norms)):
        if i > 0:
            x = lin(x)
        if model.act is not None and model.act_first:
            x = model.act(x)
        x = norm(x)
        if model.act is not None and not model.act_first:
            x = model.act(x)
        x = F.dropout(x, p=model.dropout[i], training=model.training)
    if model.plain_last:
        if len(model.lins) > 1:  # else the last layer is the first one
            x = model.lins[-1](x)
        x = F.dropout(x, p=model.dropout[-1], training=model.training)
    return x


def _used(names, flags) -> List[str]:
    return [n for n, f in zip(names, flags) if f]


# --------------------------------------------------------------------------
# Edge block.
# --------------------------------------------------------------------------
class EdgeBlock(MessagePassing):
    r"""The edge update of the Graph Network block from the `"Relational
    inductive biases, deep learning, and graph networks"
    <https://arxiv.org/abs/1806.01261>`_ paper

    .. math::
        \mathbf{e}^{\prime}_{k} = \phi^{e}\left(\mathbf{e}_{k},
        \mathbf{v}_{s_k}, \mathbf{v}_{r_k}, \mathbf{u}_{g(r_k)}\right)

    for every edge :math:`k = (s_k \to r_k)` (``edge_index[0]`` = sender
    :math:`s_k = j`, ``edge_index[1]`` = receiver :math:`r_k = i`), where
    :math:`\phi^{e}` is ``edge_model`` applied to the concatenation of the
    parts switched on, in this order, and :math:`g(i)` = ``batch[i]`` is the
    graph of node :math:`i`.

    Args:
        edge_model (torch.nn.Module): :math:`\phi^{e}`; see
            :meth:`from_sizes` for a default MLP.
        use_edges (bool, optional): feed :math:`\mathbf{e}_k`.
            (default: :obj:`True`)
        use_sender_nodes (bool, optional): feed :math:`\mathbf{v}_{s_k}`.
            (default: :obj:`True`)
        use_receiver_nodes (bool, optional): feed :math:`\mathbf{v}_{r_k}`.
            (default: :obj:`True`)
        use_globals (bool, optional): feed :math:`\mathbf{u}_{g(r_k)}`.
            (default: :obj:`True`)
        node_first (bool, optional): do per node what can be done per
            node, then gather rows per edge. When the only input is one
            side's nodes (senders or receivers), ``edge_model`` is applied
            to the nodes (:math:`|\mathcal{V}|` instead of
            :math:`|\mathcal{E}|` evaluations; same numbers for a row-wise
            ``edge_model``, which excludes e.g. batch norm in training).
            Otherwise, when ``edge_model`` starts with a linear layer (see
            :func:`split_first_linear`), that layer is split by input
            columns, :math:`\mathbf{W}[\mathbf{e}_k \Vert \mathbf{v}_{s_k}
            \Vert \mathbf{v}_{r_k} \Vert \mathbf{u}] + \mathbf{b} =
            \mathbf{W}_e \mathbf{e}_k + (\mathbf{W}_s \mathbf{v})_{s_k} +
            (\mathbf{W}_r \mathbf{v})_{r_k} + (\mathbf{W}_u
            \mathbf{u})_{g(r_k)} + \mathbf{b}`, so the node and global parts
            are multiplied once per node or graph instead of once per edge,
            and the rest of ``edge_model`` runs on the edges as usual (same
            numbers up to float rounding, batch norm included). Pays off
            when there are more edges than nodes. (default: :obj:`False`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_v)` or
          :math:`((|\mathcal{V}_s|, F_{s}), (|\mathcal{V}_t|, F_{t}))` for a
          bipartite graph, edge indices :math:`(2, |\mathcal{E}|)`,
          edge features :math:`(|\mathcal{E}|, F_e)` *(optional)*,
          globals :math:`(B, F_u)` *(optional)*, batch vector
          :math:`(|\mathcal{V}|)` or a pair of them *(optional)*
        - **output:** edge features :math:`(|\mathcal{E}|, F_e')`

    Example:
        >>> block = EdgeBlock.from_sizes(edge_channels=2, node_channels=3,
        ...                              global_channels=0, out_channels=4)
        >>> block
        EdgeBlock(inputs=[edges, senders, receivers])
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> block(torch.randn(3, 3), edge_index, torch.randn(3, 2)).shape
        torch.Size([3, 4])
    """
    def __init__(self, edge_model: Module, use_edges: bool = True,
                 use_sender_nodes: bool = True,
                 use_receiver_nodes: bool = True, use_globals: bool = True,
                 node_first: bool = False):
        super().__init__(aggr=None)
        if not any((use_edges, use_sender_nodes, use_receiver_nodes,
                    use_globals)):
            raise ValueError("EdgeBlock needs at least one input; set one of "
                             "use_edges, use_sender_nodes, "
                             "use_receiver_nodes, use_globals to True")
        self.edge_model = edge_model
        self.use_edges = use_edges
        self.use_sender_nodes = use_sender_nodes
        self.use_receiver_nodes = use_receiver_nodes
        self.use_globals = use_globals
        self.node_first = node_first
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, edge_channels: int, node_channels: Union[int, Tuple[
            int, int]], global_channels: int, out_channels: int,
                   hidden_channels: Optional[int] = None,
                   num_layers: int = 2,
                   node_first: bool = False) -> 'EdgeBlock':
        r"""An :class:`EdgeBlock` whose :math:`\phi^e` is :func:`mlp`; a part
        of size ``0`` is switched off. ``node_channels`` may be a pair
        ``(sender, receiver)``."""
        send, recv = _split_pair(node_channels, 'node_channels')
        sizes = [edge_channels, send, recv, global_channels]
        return cls(mlp(sum(sizes), out_channels, hidden_channels, num_layers),
                   *(s > 0 for s in sizes), node_first=node_first)

    def reset_parameters(self):
        super().reset_parameters()
        _reset(self.edge_model)

    def forward(self, x: Optional[NodeInput], edge_index: Tensor,
                edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
                batch: BatchInput = None) -> Tensor:
        """Return the new edge features ``[E, F_e']``."""
        size = None
        if x is not None:
            size = _num_nodes(x)
        elif self.use_sender_nodes or self.use_receiver_nodes:
            raise ValueError("'x' is None but the block uses node features; "
                             "pass x [N, F]")
        check_edge_index(edge_index, *(size or (None, None)))
        _check_edge_attr(edge_attr, edge_index.size(1), self.use_edges,
                         'use_edges')
        batch_src, batch_dst = _split_pair(batch, 'batch')
        if size is not None:
            _check_batch(batch_src, size[0], 'batch')
            _check_batch(batch_dst, size[1], 'batch')
        _check_globals(u, self.use_globals, 'use_globals', batch_dst)
        one_side = self.use_sender_nodes != self.use_receiver_nodes
        if self.node_first and one_side and not (self.use_edges
                                                 or self.use_globals):
            # Fast path: phi^e on the nodes, then one row per edge.
            side = 0 if self.use_sender_nodes else 1
            h = self.edge_model(_split_pair(x, 'x')[side])  # [N_side, F_e']
            return h.index_select(0, edge_index[side])  # [E, F_e']
        edge_batch = None  # graph of every edge's receiver, [E]
        if self.use_globals and batch_dst is not None:
            edge_batch = batch_dst.index_select(0, edge_index[1])
        split = split_first_linear(self.edge_model) if self.node_first \
            else None
        if split is not None:
            return self._split_forward(*split, x, edge_index, edge_attr, u,
                                       edge_batch)
        return self.edge_updater(edge_index, x=x, edge_attr=edge_attr, u=u,
                                 edge_batch=edge_batch, size=size)

    def _split_forward(self, lin: Module, rest: Callable[[Tensor], Tensor],
                       x: Optional[NodeInput], edge_index: Tensor,
                       edge_attr: Optional[Tensor], u: Optional[Tensor],
                       edge_batch: Optional[Tensor]) -> Tensor:
        """``edge_model`` with its first linear layer split by input part
        (see ``node_first``)."""
        x_src, x_dst = _split_pair(x, 'x') if x is not None else (None, None)
        src, dst = edge_index
        E = edge_index.size(1)
        # (name, rows, rows -> one row per edge, used), in edge_update order
        parts = [('edges', edge_attr, lambda h: h, self.use_edges),
                 ('senders', x_src, lambda h: h.index_select(0, src),
                  self.use_sender_nodes),
                 ('receivers', x_dst, lambda h: h.index_select(0, dst),
                  self.use_receiver_nodes),
                 ('globals', u, lambda h: _gather_globals(h, edge_batch, E),
                  self.use_globals)]
        parts = [p for p in parts if p[3]]
        widths = [t.size(-1) for _, t, _, _ in parts]
        weight = lin.weight  # [F_out, F_in]
        if sum(widths) != weight.size(1):
            have = ' + '.join(f'{name} {w}'
                              for (name, *_), w in zip(parts, widths))
            raise ValueError(f"the first linear layer of 'edge_model' takes "
                             f"{weight.size(1)} features but the inputs have "
                             f"{sum(widths)} ({have})")
        out = None  # [E, F_out], summed in place into one fresh buffer
        for (_, t, per_edge, _), w in zip(parts, weight.split(widths, dim=1)):
            h = per_edge(t @ w.t())  # product per edge, node or graph
            if out is None:  # a broadcast view must not be written to
                out = h.contiguous() if h.stride(0) == 0 else h
            else:
                out = out.add_(h)
        if lin.bias is not None:
            out = out.add_(lin.bias)
        return rest(out)  # [E, F_e']

    def edge_update(self, x_j: Optional[Tensor], x_i: Optional[Tensor],
                    edge_attr: Optional[Tensor], u: Optional[Tensor],
                    edge_batch: Optional[Tensor], index: Tensor) -> Tensor:
        parts = []
        if self.use_edges:
            parts.append(edge_attr)  # [E, F_e]
        if self.use_sender_nodes:
            parts.append(x_j)  # [E, F_s]
        if self.use_receiver_nodes:
            parts.append(x_i)  # [E, F_t]
        if self.use_globals:
            parts.append(_gather_globals(u, edge_batch,
                                         index.numel()))  # [E, F_u]
        return self.edge_model(torch.cat(parts, dim=-1))  # [E, F_e']

    def __repr__(self) -> str:
        used = _used(['edges', 'senders', 'receivers', 'globals'],
                     [self.use_edges, self.use_sender_nodes,
                      self.use_receiver_nodes, self.use_globals])
        return f"{self.__class__.__name__}(inputs=[{', '.join(used)}])"


# --------------------------------------------------------------------------
# Node block.
# --------------------------------------------------------------------------
class NodeBlock(MessagePassing):
    r"""The node update of the Graph Network block from the `"Relational
    inductive biases, deep learning, and graph networks"
    <https://arxiv.org/abs/1806.01261>`_ paper

    .. math::
        \bar{\mathbf{e}}^{\prime}_{i} = \rho^{e \to v}_{j \in
        \mathcal{N}(i)} \, \mathbf{e}_{ji}, \qquad
        \mathbf{v}^{\prime}_{i} = \phi^{v}\left(\bar{\mathbf{e}}^{\prime}_{i},
        \mathbf{v}_{i}, \mathbf{u}_{g(i)}\right)

    where :math:`\rho^{e \to v}` is ``aggr`` over the edges received by
    :math:`i` (``message()`` returns :math:`\mathbf{e}_{ji}` unchanged), and
    :math:`\phi^{v}` is ``node_model`` applied to the concatenation of the
    parts switched on, in this order. A node with no incoming edge aggregates
    zeros.

    Args:
        node_model (torch.nn.Module): :math:`\phi^{v}`; see
            :meth:`from_sizes` for a default MLP.
        aggr (str or Aggregation, optional): :math:`\rho^{e \to v}`, any PyG
            aggregation (:obj:`"sum"`, :obj:`"mean"`, :obj:`"max"`, ...).
            (default: :obj:`"sum"`)
        use_received_edges (bool, optional): feed
            :math:`\bar{\mathbf{e}}^{\prime}_{i}`. (default: :obj:`True`)
        use_nodes (bool, optional): feed :math:`\mathbf{v}_{i}`.
            (default: :obj:`True`)
        use_globals (bool, optional): feed :math:`\mathbf{u}_{g(i)}`.
            (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_v)` or
          :math:`((|\mathcal{V}_s|, F_s), (|\mathcal{V}_t|, F_t))`,
          edge indices :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, F_e)`, globals :math:`(B, F_u)`
          *(optional)*, batch vector :math:`(|\mathcal{V}|)` or a pair
          *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, F_v')`

    Example:
        >>> block = NodeBlock.from_sizes(edge_channels=4, node_channels=3,
        ...                              global_channels=0, out_channels=5)
        >>> block
        NodeBlock(inputs=[received_edges, nodes], aggr='sum')
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> block(torch.randn(3, 3), edge_index, torch.randn(3, 4)).shape
        torch.Size([3, 5])
    """
    def __init__(self, node_model: Module, aggr='sum',
                 use_received_edges: bool = True, use_nodes: bool = True,
                 use_globals: bool = True):
        super().__init__(aggr=aggr)
        if not any((use_received_edges, use_nodes, use_globals)):
            raise ValueError("NodeBlock needs at least one input; set one of "
                             "use_received_edges, use_nodes, use_globals to "
                             "True")
        self.node_model = node_model
        self.use_received_edges = use_received_edges
        self.use_nodes = use_nodes
        self.use_globals = use_globals
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, edge_channels: int, node_channels: int,
                   global_channels: int, out_channels: int,
                   hidden_channels: Optional[int] = None, num_layers: int = 2,
                   aggr='sum') -> 'NodeBlock':
        r"""A :class:`NodeBlock` whose :math:`\phi^v` is :func:`mlp`; a part
        of size ``0`` is switched off (``node_channels`` = receiver size)."""
        sizes = [edge_channels, node_channels, global_channels]
        return cls(mlp(sum(sizes), out_channels, hidden_channels, num_layers),
                   aggr, *(s > 0 for s in sizes))

    def reset_parameters(self):
        super().reset_parameters()
        _reset(self.node_model)

    def forward(self, x: NodeInput, edge_index: Tensor,
                edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
                batch: BatchInput = None) -> Tensor:
        """Return the new features ``[N_t, F_v']`` of the target nodes
        (:meth:`receive`, then :meth:`node_update`)."""
        received = None
        if self.use_received_edges:
            received = self.receive(x, edge_index, edge_attr)
        else:
            check_edge_index(edge_index, *_num_nodes(x))
        return self.node_update(x, received, u, batch)

    def receive(self, x: NodeInput, edge_index: Tensor,
                edge_attr: Optional[Tensor]) -> Tensor:
        r""":math:`\bar{\mathbf{e}}^{\prime}_{i}`: the received edges
        aggregated per target, ``[N_t, F_e]`` (zeros for a node without
        incoming edge)."""
        size = _num_nodes(x)
        check_edge_index(edge_index, *size)
        _check_edge_attr(edge_attr, edge_index.size(1), True,
                         'use_received_edges')
        return self.propagate(edge_index, edge_attr=edge_attr,
                              size=size)  # [N_t, F_e]

    def node_update(self, x: NodeInput, received: Optional[Tensor] = None,
                    u: Optional[Tensor] = None,
                    batch: BatchInput = None) -> Tensor:
        r""":math:`\phi^{v}` on the parts switched on, given the output of
        :meth:`receive` (callers that drop the edge tensor between the two
        steps save its memory)."""
        size = _num_nodes(x)
        batch_dst = _split_pair(batch, 'batch')[1]
        _check_batch(batch_dst, size[1], 'batch')
        _check_globals(u, self.use_globals, 'use_globals', batch_dst)
        parts = []
        if self.use_received_edges:
            if received is None or received.size(0) != size[1]:
                raise ValueError(f"'received' must be the [N_t={size[1]}, "
                                 f"F] output of receive() since "
                                 f"use_received_edges=True")
            parts.append(received)  # [N_t, F_e]
        if self.use_nodes:
            parts.append(_split_pair(x, 'x')[1])  # [N_t, F_t]
        if self.use_globals:
            parts.append(_gather_globals(u, batch_dst, size[1]))  # [N_t, F_u]
        return self.node_model(torch.cat(parts, dim=-1))  # [N_t, F_v']

    def message(self, edge_attr: Tensor) -> Tensor:
        return edge_attr  # [E, F_e]

    def __repr__(self) -> str:
        used = _used(['received_edges', 'nodes', 'globals'],
                     [self.use_received_edges, self.use_nodes,
                      self.use_globals])
        return (f"{self.__class__.__name__}(inputs=[{', '.join(used)}], "
                f"aggr={self.aggr!r})")


# --------------------------------------------------------------------------
# Global block.
# --------------------------------------------------------------------------
class GlobalBlock(Module):
    r"""The global update of the Graph Network block from the `"Relational
    inductive biases, deep learning, and graph networks"
    <https://arxiv.org/abs/1806.01261>`_ paper

    .. math::
        \mathbf{u}^{\prime}_g = \phi^{u}\left(
        \rho^{e \to u}_{k : g(r_k) = g} \mathbf{e}_k,\;
        \rho^{v \to u}_{i : g(i) = g} \mathbf{v}_i,\; \mathbf{u}_g\right)

    per graph :math:`g` of the batch (an edge belongs to the graph of its
    receiver). :math:`\phi^{u}` is ``global_model`` applied to the
    concatenation of the parts switched on, in this order. A graph without
    edges (or nodes) aggregates zeros.

    Args:
        global_model (torch.nn.Module): :math:`\phi^{u}`; see
            :meth:`from_sizes` for a default MLP.
        edge_aggr (str or Aggregation, optional): :math:`\rho^{e \to u}`.
            (default: :obj:`"sum"`)
        node_aggr (str or Aggregation, optional): :math:`\rho^{v \to u}`.
            (default: :obj:`"sum"`)
        use_edges (bool, optional): feed the aggregated edges.
            (default: :obj:`True`)
        use_nodes (bool, optional): feed the aggregated nodes.
            (default: :obj:`True`)
        use_globals (bool, optional): feed :math:`\mathbf{u}_g`.
            (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_v)` (for a
          bipartite pair, the target nodes are used), edge indices
          :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, F_e)`, globals :math:`(B, F_u)`
          *(optional)*, batch vector :math:`(|\mathcal{V}|)` *(optional)*,
          ``num_graphs`` *(optional)*
        - **output:** globals :math:`(B, F_u')`

    Example:
        >>> block = GlobalBlock.from_sizes(edge_channels=4, node_channels=3,
        ...                                global_channels=2, out_channels=2)
        >>> block
        GlobalBlock(inputs=[edges, nodes, globals], edge_aggr='sum', node_aggr='sum')
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> block(torch.randn(3, 3), edge_index, torch.randn(3, 4),
        ...       u=torch.randn(1, 2)).shape
        torch.Size([1, 2])
    """
    def __init__(self, global_model: Module, edge_aggr='sum', node_aggr='sum',
                 use_edges: bool = True, use_nodes: bool = True,
                 use_globals: bool = True):
        super().__init__()
        if not any((use_edges, use_nodes, use_globals)):
            raise ValueError("GlobalBlock needs at least one input; set one "
                             "of use_edges, use_nodes, use_globals to True")
        self.global_model = global_model
        self.edge_aggr = edge_aggr
        self.node_aggr = node_aggr
        self.edge_aggr_module = aggregation_resolver(edge_aggr)
        self.node_aggr_module = aggregation_resolver(node_aggr)
        self.use_edges = use_edges
        self.use_nodes = use_nodes
        self.use_globals = use_globals
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, edge_channels: int, node_channels: int,
                   global_channels: int, out_channels: int,
                   hidden_channels: Optional[int] = None, num_layers: int = 2,
                   edge_aggr='sum', node_aggr='sum') -> 'GlobalBlock':
        r"""A :class:`GlobalBlock` whose :math:`\phi^u` is :func:`mlp`; a
        part of size ``0`` is switched off."""
        sizes = [edge_channels, node_channels, global_channels]
        return cls(mlp(sum(sizes), out_channels, hidden_channels, num_layers),
                   edge_aggr, node_aggr, *(s > 0 for s in sizes))

    def reset_parameters(self):
        _reset(self.global_model)
        self.edge_aggr_module.reset_parameters()
        self.node_aggr_module.reset_parameters()

    def forward(self, x: NodeInput, edge_index: Tensor,
                edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
                batch: BatchInput = None,
                num_graphs: Optional[int] = None) -> Tensor:
        """Return the new globals ``[B, F_u']``; ``B`` is ``u.size(0)``,
        else ``num_graphs``, else ``batch.max() + 1`` (1 without batch)."""
        size = _num_nodes(x)
        check_edge_index(edge_index, *size)
        x_dst = _split_pair(x, 'x')[1]
        batch_dst = _split_pair(batch, 'batch')[1]
        _check_batch(batch_dst, size[1], 'batch')
        _check_edge_attr(edge_attr, edge_index.size(1), self.use_edges,
                         'use_edges')
        _check_globals(u, self.use_globals, 'use_globals', batch_dst)
        if u is not None:
            num_graphs = u.size(0)
        elif num_graphs is None:
            num_graphs = int(batch_dst.max()) + 1 if (
                batch_dst is not None and batch_dst.numel() > 0) else 1
        num_graphs = check_int(num_graphs, 'num_graphs', 1)
        if batch_dst is None:
            batch_dst = x_dst.new_zeros(size[1], dtype=torch.long)
        parts = []
        if self.use_edges:
            edge_batch = batch_dst.index_select(0, edge_index[1])  # [E]
            parts.append(self.edge_aggr_module(
                edge_attr, edge_batch, dim_size=num_graphs))  # [B, F_e]
        if self.use_nodes:
            parts.append(self.node_aggr_module(
                x_dst, batch_dst, dim_size=num_graphs))  # [B, F_v]
        if self.use_globals:
            parts.append(u)  # [B, F_u]
        return self.global_model(torch.cat(parts, dim=-1))  # [B, F_u']

    def __repr__(self) -> str:
        used = _used(['edges', 'nodes', 'globals'],
                     [self.use_edges, self.use_nodes, self.use_globals])
        return (f"{self.__class__.__name__}(inputs=[{', '.join(used)}], "
                f"edge_aggr={self.edge_aggr!r}, "
                f"node_aggr={self.node_aggr!r})")


# --------------------------------------------------------------------------
# The full block.
# --------------------------------------------------------------------------
class GraphNetwork(Module):
    r"""The full Graph Network block from the `"Relational inductive biases,
    deep learning, and graph networks" <https://arxiv.org/abs/1806.01261>`_
    paper: an :class:`EdgeBlock`, then a :class:`NodeBlock` on the new edges,
    then a :class:`GlobalBlock` on the new edges and nodes

    .. math::
        \mathbf{e}^{\prime}_{k} &= \phi^{e}(\mathbf{e}_{k}, \mathbf{v}_{s_k},
        \mathbf{v}_{r_k}, \mathbf{u}) \\
        \mathbf{v}^{\prime}_{i} &= \phi^{v}(\rho^{e \to v}(E^{\prime}_i),
        \mathbf{v}_{i}, \mathbf{u}) \\
        \mathbf{u}^{\prime} &= \phi^{u}(\rho^{e \to u}(E^{\prime}),
        \rho^{v \to u}(V^{\prime}), \mathbf{u})

    Any block may be :obj:`None` (its input passes through unchanged).

    Args:
        edge_block (EdgeBlock, optional): the edge update. (default:
            :obj:`None`)
        node_block (NodeBlock, optional): the node update. (default:
            :obj:`None`)
        global_block (GlobalBlock, optional): the global update. (default:
            :obj:`None`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_v)`, edge
          indices :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, F_e)` *(optional)*, globals
          :math:`(B, F_u)` *(optional)*, batch vector :math:`(|\mathcal{V}|)`
          *(optional)*
        - **output:** ``(x', edge_attr', u')`` of shapes
          :math:`(|\mathcal{V}|, F_v')`, :math:`(|\mathcal{E}|, F_e')`,
          :math:`(B, F_u')`

    .. note::
        For bipartite graphs use the blocks directly (they accept a
        ``(x_src, x_dst)`` pair); :class:`GraphNetwork` takes one node set.

    Example:
        >>> gn = GraphNetwork.from_sizes(node_channels=3, edge_channels=2,
        ...                              global_channels=1, out_channels=8)
        >>> gn
        GraphNetwork(blocks=[edge, node, global])
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> x, e, u = gn(torch.randn(3, 3), edge_index, torch.randn(3, 2),
        ...              u=torch.randn(1, 1))
        >>> x.shape, e.shape, u.shape
        (torch.Size([3, 8]), torch.Size([3, 8]), torch.Size([1, 8]))
    """
    def __init__(self, edge_block: Optional[EdgeBlock] = None,
                 node_block: Optional[NodeBlock] = None,
                 global_block: Optional[GlobalBlock] = None):
        super().__init__()
        self.edge_block = edge_block
        self.node_block = node_block
        self.global_block = global_block
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, node_channels: int, edge_channels: int,
                   global_channels: int, out_channels: Union[int, Tuple[
                       int, int, int]], hidden_channels: Optional[int] = None,
                   num_layers: int = 2, aggr='sum',
                   node_first: bool = False) -> 'GraphNetwork':
        r"""A full block with :func:`mlp` models. ``out_channels`` is one
        size or a triple ``(node, edge, global)``; a global output size of
        ``0`` drops the global block. Input sizes of ``0`` switch that input
        off everywhere. ``node_first`` is passed to the
        :class:`EdgeBlock`."""
        if isinstance(out_channels, (tuple, list)):
            node_out, edge_out, global_out = out_channels
        else:
            node_out = edge_out = global_out = out_channels
        edge = EdgeBlock.from_sizes(edge_channels, node_channels,
                                    global_channels, edge_out,
                                    hidden_channels, num_layers, node_first)
        node = NodeBlock.from_sizes(edge_out, node_channels, global_channels,
                                    node_out, hidden_channels, num_layers,
                                    aggr)
        glob = None
        if global_out > 0:
            glob = GlobalBlock.from_sizes(edge_out, node_out,
                                          global_channels, global_out,
                                          hidden_channels, num_layers, aggr,
                                          aggr)
        return cls(edge, node, glob)

    def reset_parameters(self):
        for block in (self.edge_block, self.node_block, self.global_block):
            if block is not None:
                block.reset_parameters()

    def forward(
        self, x: Tensor, edge_index: Tensor,
        edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
        batch: Optional[Tensor] = None, num_graphs: Optional[int] = None
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Return ``(x', edge_attr', u')``."""
        if not isinstance(x, Tensor):
            raise ValueError(f"GraphNetwork takes one node set 'x' [N, F] "
                             f"(got {type(x).__name__}); for a bipartite "
                             f"graph call the blocks directly")
        if self.edge_block is not None:
            edge_attr = self.edge_block(x, edge_index, edge_attr, u, batch)
        if self.node_block is not None:
            x = self.node_block(x, edge_index, edge_attr, u, batch)
        if self.global_block is not None:
            u = self.global_block(x, edge_index, edge_attr, u, batch,
                                  num_graphs)
        return x, edge_attr, u

    def __repr__(self) -> str:
        used = _used(['edge', 'node', 'global'],
                     [self.edge_block is not None,
                      self.node_block is not None,
                      self.global_block is not None])
        return f"{self.__class__.__name__}(blocks=[{', '.join(used)}])"
