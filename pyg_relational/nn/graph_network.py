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

The graph argument is what PyG layers take: an ``edge_index`` ``[2, E]``, a
:class:`torch_geometric.EdgeIndex`, or an ``adj_t`` ``[N_dst, N_src]``
(:class:`torch_sparse.SparseTensor`, or a ``torch.sparse`` COO / CSR / CSC
tensor), or a :class:`~pyg_relational.structure.GraphStructure`. As in
PyG's ``propagate``, the ``[E, F]`` values of an ``adj_t`` are the edge
features when ``edge_attr`` is None (scalar values, i.e. edge weights, are
not used); an ``edge_attr`` passed with an ``adj_t``, and the edge outputs,
follow its edge order (by target, then source). Arguments follow PyG's
order, ``(x, edge_index, edge_attr, u, batch, ..., size)``; a ``size``
passed in the place of another argument is refused.
"""
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module
from torch_geometric.nn import MLP, MessagePassing
from torch_geometric.nn import Linear as PyGLinear
from torch_geometric.nn.inits import reset as _reset
from torch_geometric.nn.resolver import aggregation_resolver

from .._checks import check_edge_index, check_int, check_size, split_pair
from .._torch import compiling
from ._paths import GraphInput
from .attention import edge_softmax

__all__ = ['EdgeBlock', 'NodeBlock', 'GlobalBlock', 'GraphNetwork', 'mlp',
           'split_first_linear']

PairTensor = Tuple[Tensor, Tensor]
#: ``edge_index``, :class:`~torch_geometric.EdgeIndex`, an ``adj_t``
#: (``SparseTensor`` / ``torch.sparse``) or a ``GraphStructure``.
Adj = Union[Tensor, object]
_EDGE_PARTS = ('edges', 'senders', 'receivers', 'globals')
#: the ``from_sizes`` argument that sized each part
_BUILT = {'edges': 'edge_channels', 'senders': 'node_channels',
          'receivers': 'node_channels', 'nodes': 'node_channels',
          'globals': 'global_channels'}
NodeInput = Union[Tensor, PairTensor]
BatchInput = Optional[Union[Tensor, Tuple[Optional[Tensor], Optional[Tensor]]]]


def mlp(in_channels: int, out_channels: int,
        hidden_channels: Optional[int] = None, num_layers: int = 2,
        act: str = 'relu') -> Module:
    r"""The default block model: a :class:`torch_geometric.nn.MLP` without
    normalisation and with a plain (linear) last layer.

    Args:
        in_channels (int): input size; ``-1`` infers it from the first
            input (lazy, as PyG's :class:`~torch_geometric.nn.Linear`).
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
    if in_channels != -1:
        check_int(in_channels, 'in_channels', 1)
    check_int(out_channels, 'out_channels', 1)
    check_int(num_layers, 'num_layers', 1)
    hidden_channels = out_channels if hidden_channels is None else \
        check_int(hidden_channels, 'hidden_channels', 1)
    if num_layers == 1:
        return torch.nn.Linear(in_channels, out_channels) \
            if in_channels > 0 else PyGLinear(-1, out_channels)
    return MLP(in_channels=in_channels, hidden_channels=hidden_channels,
               out_channels=out_channels, num_layers=num_layers, act=act,
               norm=None, plain_last=True)


# --------------------------------------------------------------------------
# Small shared helpers (private).
# --------------------------------------------------------------------------
def _num_nodes(x: NodeInput, name: str = 'x',
               size: Optional[Tuple[Optional[int], Optional[int]]] = None
               ) -> Tuple[int, int]:
    """``(N_src, N_dst)`` of the node features, checked against ``size``."""
    src, dst = split_pair(x, name)
    for t, role in ((src, 'source'), (dst, 'target')):
        if not isinstance(t, Tensor) or t.dim() != 2:
            shape = tuple(t.shape) if isinstance(t, Tensor) else \
                type(t).__name__
            raise ValueError(f"'{name}' ({role} nodes) must be a 2-D tensor "
                             f"[num_nodes, channels] (got {shape})")
    have = (src.size(0), dst.size(0))
    if size is not None:
        check_size(size, allow_none=True)
        if any(s is not None and s != h for s, h in zip(size, have)):
            raise ValueError(f"'size' is {tuple(size)} but '{name}' has "
                             f"{have[0]} source and {have[1]} target nodes; "
                             f"drop 'size' or pass matching features")
    return have


def _looks_like_size(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool))
        for v in value) and any(isinstance(v, int) for v in value)


def _refuse_sizes(**arguments):
    """A ``size`` passed positionally must not be taken for another
    argument (``u``, ``batch``, ...)."""
    for name, value in arguments.items():
        if _looks_like_size(value):
            raise TypeError(f"'{name}' got {value!r}, which looks like a "
                            f"size; pass it by keyword: size={value!r}")


def _features_device(*values) -> Optional[torch.device]:
    """The device of the first tensor among ``values`` (pairs looked
    into): where a graph given as a structure must be built."""
    for value in values:
        for t in (value if isinstance(value, (tuple, list)) else (value, )):
            if isinstance(t, Tensor):
                return t.device
    return None


def _resolve_graph(edge_index, edge_attr: Optional[Tensor] = None,
                   num_src: Optional[int] = None,
                   num_dst: Optional[int] = None,
                   device: Optional[torch.device] = None
                   ) -> Tuple[Tensor, Optional[Tensor]]:
    r"""``(edge_index, edge_attr)`` from any graph argument PyG layers take:
    an ``edge_index``, an :class:`~torch_geometric.EdgeIndex`, an ``adj_t``
    (:class:`torch_sparse.SparseTensor` or ``torch.sparse``,
    ``[N_dst, N_src]``) or a
    :class:`~pyg_relational.structure.GraphStructure`, via
    :class:`~pyg_relational.nn._paths.GraphInput`. As PyG's ``propagate``
    does, the values of an ``adj_t`` are the edge features (``[E]``
    weights as one feature ``[E, 1]``; values all one are a bare pattern);
    with ``edge_attr`` too they are refused; the edges of an ``adj_t`` come sorted by target,
    then source. A structure's edges are built on ``device`` (the node
    features'; default: ``edge_attr``'s, else the CPU)."""
    if type(edge_index) is Tensor and edge_index.layout == torch.strided:
        # a plain edge_index: nothing to resolve
        return edge_index, edge_attr
    if device is None and edge_attr is not None:
        device = edge_attr.device
    graph = GraphInput(edge_index, num_src, num_dst, device=device)
    values = graph.edge_weight
    if values is not None and (values.dim() == 2
                               or not bool((values == 1).all())):
        # the values are edge features ([E] weights: one feature), never
        # dropped; all ones is a pattern without values
        if edge_attr is not None:
            raise ValueError("both an adj_t with values and 'edge_attr' "
                             "were given; pass the edge features once")
        edge_attr = values.view(values.size(0), -1)  # [E, F]
    return graph.edge_index, edge_attr


def _check_width(t: Optional[Tensor], want: Optional[int], name: str,
                 built: str):
    """``t`` (argument ``name``) has the ``want`` features the block was
    built for (``from_sizes(..., built=want)``; ``-1``: lazy)."""
    if t is not None and want is not None and want > 0 and \
            t.size(-1) != want:
        raise ValueError(f"'{name}' has {t.size(-1)} features but the block "
                         f"was built with {built}={want}; pass [*, {want}] "
                         f"or build it with {built}={t.size(-1)}")


def _check_total(model: Module, model_name: str,
                 parts: List[Tuple[str, Tensor]]):
    """The concatenated ``parts`` fit the first linear layer of ``model``
    (when it has one): a wrong width names the arguments, not a matmul."""
    head = split_first_linear(model)
    if head is None:
        return
    want = head[0].weight.size(1)
    have = sum(t.size(-1) for _, t in parts)
    if have != want:
        desc = ' + '.join(f"{name} {t.size(-1)}" for name, t in parts)
        names = dict.fromkeys(repr(name) for name, _ in parts)
        raise ValueError(f"'{model_name}' takes {want} input features but "
                         f"the inputs give {have} ({desc}); check the widths "
                         f"of {', '.join(names)}")


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
    if batch.numel() > 0 and not compiling() and int(batch.min()) < 0:
        raise ValueError(f"'{name}' contains the negative graph index "
                         f"{int(batch.min())}; graph indices start at 0")


def _check_within_graphs(edge_index: Tensor, batch_src: Optional[Tensor],
                         batch_dst: Optional[Tensor]):
    """Every edge joins two nodes of the same graph of the batch (an edge
    between graphs would mix their globals and aggregates silently)."""
    if batch_src is None or batch_dst is None or edge_index.numel() == 0 \
            or compiling():  # a value check: eager calls only (no sync)
        return
    crossing = batch_src.index_select(0, edge_index[0]) \
        != batch_dst.index_select(0, edge_index[1])
    if bool(crossing.any()):
        k = int(crossing.nonzero()[0, 0])
        j, i = int(edge_index[0, k]), int(edge_index[1, k])
        raise ValueError(
            f"'edge_index' has an edge between two graphs of the batch (edge "
            f"{k}: {j} -> {i}, graphs {int(batch_src[j])} and "
            f"{int(batch_dst[i])}); edges must stay inside their graph "
            f"(check 'batch' or the node offsets of the edge_index)")


def _check_globals(u: Optional[Tensor], required: bool, flag: str,
                   batch: Optional[Tensor]):
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


def _num_graphs(num_graphs: Optional[int], u: Optional[Tensor],
                batch: Optional[Tensor]) -> int:
    """The number of graphs ``B``: ``u.size(0)``, else ``num_graphs``, else
    ``batch.max() + 1`` (1 without batch); a ``num_graphs`` too small for
    ``batch`` or unequal to ``u.size(0)`` is refused."""
    if num_graphs is not None:
        num_graphs = check_int(num_graphs, 'num_graphs', 1)
        if u is not None and num_graphs != u.size(0):
            raise ValueError(f"'num_graphs' is {num_graphs} but 'u' has "
                             f"{u.size(0)} rows; drop 'num_graphs' or pass "
                             f"one row of 'u' per graph")
        if batch is not None and batch.numel() > 0 and \
                int(batch.max()) >= num_graphs:
            raise ValueError(f"'num_graphs' is {num_graphs} but 'batch' "
                             f"refers to graph {int(batch.max())}; pass "
                             f"num_graphs >= {int(batch.max()) + 1} or "
                             f"leave it None")
        return num_graphs
    if u is not None:
        return u.size(0)
    if batch is not None and batch.numel() > 0:
        return int(batch.max()) + 1
    return 1


def _aggr_width(aggr, channels: int) -> int:
    """Width of ``aggr`` applied to ``channels`` features (a
    :class:`~torch_geometric.nn.aggr.MultiAggregation` widens it; ``-1``:
    lazy, ``0``: off)."""
    if channels <= 0:
        return channels
    module = aggregation_resolver(aggr)
    if hasattr(module, 'get_out_channels'):
        return module.get_out_channels(channels)
    return channels


def _lazy_sum(sizes: List[int]) -> int:
    """Input width of a model fed the parts of ``sizes`` (``0``: off);
    ``-1`` (lazy) when any part is lazy."""
    for s in sizes:
        check_int(s, 'channels', -1)
    return -1 if -1 in sizes else sum(sizes)


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
def _use_inputs(block, **use: bool):
    """Store a block's ``use_*`` switches (at least one on) and its
    ``part_channels``, the widths ``from_sizes`` built each part for (None:
    unknown)."""
    if not any(use.values()):
        raise ValueError(f"{type(block).__name__} needs at least one input; "
                         f"set one of {', '.join(use)} to True")
    for name, on in use.items():
        setattr(block, name, on)
    block.part_channels: Optional[Dict[str, int]] = None


def _built_for(block, edge_channels: int, node_channels: int,
               global_channels: int):
    """``block`` with the widths its parts were built for."""
    block.part_channels = {'edges': edge_channels, 'nodes': node_channels,
                           'globals': global_channels}
    return block


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
          bipartite graph (or :obj:`None` when no node is used), edge
          indices :math:`(2, |\mathcal{E}|)` or an ``adj_t`` (see the
          module), edge features :math:`(|\mathcal{E}|, F_e)`
          *(optional)*, globals :math:`(B, F_u)` *(optional)*, batch vector
          :math:`(|\mathcal{V}|)` or a pair of them *(optional)*, ``size``
          :math:`(|\mathcal{V}_s|, |\mathcal{V}_t|)` *(optional)*
        - **output:** edge features :math:`(|\mathcal{E}|, F_e')`

    Example:
        >>> block = EdgeBlock.from_sizes(2, 3, 0, out_channels=4)  # no globals
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
        _use_inputs(self, use_edges=use_edges,
                    use_sender_nodes=use_sender_nodes,
                    use_receiver_nodes=use_receiver_nodes,
                    use_globals=use_globals)
        self.edge_model = edge_model
        self.node_first = node_first
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, edge_channels: int, node_channels: Union[int, Tuple[
            int, int]], global_channels: int, out_channels: int,
                   hidden_channels: Optional[int] = None,
                   num_layers: int = 2,
                   node_first: bool = False) -> 'EdgeBlock':
        r"""An :class:`EdgeBlock` whose :math:`\phi^e` is :func:`mlp`; a part
        of size ``0`` is switched off, a part of size ``-1`` is on and
        sized from the first input (lazy, so
        :func:`~torch_geometric.nn.to_hetero` needs no sizes).
        ``node_channels`` may be a pair ``(sender, receiver)``, e.g.
        ``(-1, -1)``. Inputs of another width than built for raise a
        :class:`ValueError` naming the argument."""
        send, recv = split_pair(node_channels, 'node_channels')
        sizes = [edge_channels, send, recv, global_channels]
        block = cls(mlp(_lazy_sum(sizes), out_channels, hidden_channels,
                        num_layers), *(s != 0 for s in sizes),
                    node_first=node_first)
        block.part_channels = dict(zip(_EDGE_PARTS, sizes))
        return block

    def reset_parameters(self):
        super().reset_parameters()
        _reset(self.edge_model)

    def forward(self, x: Optional[NodeInput], edge_index: Adj,
                edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
                batch: BatchInput = None,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        """Return the new edge features ``[E, F_e']`` (for an ``adj_t``, in
        its edge order: by target, then source)."""
        _refuse_sizes(edge_attr=edge_attr, u=u, batch=batch)
        if x is not None:
            size = _num_nodes(x, size=size)
        elif self.use_sender_nodes or self.use_receiver_nodes:
            raise ValueError("'x' is None but the block uses node features; "
                             "pass x [N, F]")
        elif size is not None:
            size = check_size(size, allow_none=True)
        edge_index, edge_attr = _resolve_graph(
            edge_index, edge_attr, *(size or (None, None)),
            device=_features_device(x, edge_attr, u))
        check_edge_index(edge_index, *(size or (None, None)))
        _check_edge_attr(edge_attr, edge_index.size(1), self.use_edges,
                         'use_edges')
        batch_src, batch_dst = split_pair(batch, 'batch')
        if size is not None:
            _check_batch(batch_src, size[0], 'batch')
            _check_batch(batch_dst, size[1], 'batch')
            _check_within_graphs(edge_index, batch_src, batch_dst)
        _check_globals(u, self.use_globals, 'use_globals', batch_dst)
        self._check_inputs(x, edge_attr, u)
        one_side = self.use_sender_nodes != self.use_receiver_nodes
        if self.node_first and one_side and not (self.use_edges
                                                 or self.use_globals):
            # Fast path: phi^e on the nodes, then one row per edge.
            side = 0 if self.use_sender_nodes else 1
            h = self.edge_model(split_pair(x, 'x')[side])  # [N_side, F_e']
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

    def _check_inputs(self, x: Optional[NodeInput],
                      edge_attr: Optional[Tensor], u: Optional[Tensor]):
        """Every part has the width ``edge_model`` takes."""
        pair = isinstance(x, (tuple, list))
        x_src, x_dst = split_pair(x, 'x') if x is not None else (None, None)
        parts = [(part, name, t) for part, flag, name, t in zip(
            _EDGE_PARTS, (self.use_edges, self.use_sender_nodes,
                          self.use_receiver_nodes, self.use_globals),
            ('edge_attr', 'x[0]' if pair else 'x', 'x[1]' if pair else 'x',
             'u'), (edge_attr, x_src, x_dst, u)) if flag]
        if self.part_channels is not None:
            for part, name, t in parts:
                _check_width(t, self.part_channels[part], name,
                             _BUILT[part])
        _check_total(self.edge_model, 'edge_model',
                     [(name, t) for _, name, t in parts])

    def _split_forward(self, lin: Module, rest: Callable[[Tensor], Tensor],
                       x: Optional[NodeInput], edge_index: Tensor,
                       edge_attr: Optional[Tensor], u: Optional[Tensor],
                       edge_batch: Optional[Tensor]) -> Tensor:
        """``edge_model`` with its first linear layer split by input part
        (see ``node_first``)."""
        x_src, x_dst = split_pair(x, 'x') if x is not None else (None, None)
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
        widths = [t.size(-1) for _, t, _, _ in parts]  # checked in forward
        weight = lin.weight  # [F_out, F_in]
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
    zeros. With ``use_sent_edges=True`` (graph_nets / jraph) the aggregate
    of the edges *sent* by :math:`i`, :math:`\rho^{e \to v}_{k : s_k = i}
    \mathbf{e}_k`, is fed as well, right after the received one.

    Args:
        node_model (torch.nn.Module): :math:`\phi^{v}`; see
            :meth:`from_sizes` for a default MLP.
        aggr (str or Aggregation or list, optional): :math:`\rho^{e \to v}`,
            any PyG aggregation (:obj:`"sum"`, :obj:`"mean"`, :obj:`"max"`,
            ...), or a list of them (a
            :class:`~torch_geometric.nn.aggr.MultiAggregation`, whose
            concatenated output :meth:`from_sizes` feeds to a wider MLP).
            (default: :obj:`"sum"`)
        use_received_edges (bool, optional): feed
            :math:`\bar{\mathbf{e}}^{\prime}_{i}`. (default: :obj:`True`)
        use_nodes (bool, optional): feed :math:`\mathbf{v}_{i}`.
            (default: :obj:`True`)
        use_globals (bool, optional): feed :math:`\mathbf{u}_{g(i)}`.
            (default: :obj:`True`)
        use_sent_edges (bool, optional): feed the aggregate of the edges
            each node sends (one node set only, not a bipartite pair).
            (default: :obj:`False`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_v)` or
          :math:`((|\mathcal{V}_s|, F_s), (|\mathcal{V}_t|, F_t))`,
          edge indices :math:`(2, |\mathcal{E}|)` or an ``adj_t`` (see the
          module), edge features :math:`(|\mathcal{E}|, F_e)`, globals
          :math:`(B, F_u)` *(optional)*, batch vector :math:`(|\mathcal{V}|)`
          or a pair *(optional)*, ``size`` *(optional)*
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
                 use_globals: bool = True, use_sent_edges: bool = False):
        super().__init__(aggr=aggr)
        _use_inputs(self, use_received_edges=use_received_edges,
                    use_sent_edges=use_sent_edges, use_nodes=use_nodes,
                    use_globals=use_globals)
        self.node_model = node_model
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, edge_channels: int, node_channels: int,
                   global_channels: int, out_channels: int,
                   hidden_channels: Optional[int] = None, num_layers: int = 2,
                   aggr='sum', use_sent_edges: bool = False) -> 'NodeBlock':
        r"""A :class:`NodeBlock` whose :math:`\phi^v` is :func:`mlp`; a part
        of size ``0`` is switched off, ``-1`` is lazy (``node_channels`` =
        receiver size). The MLP takes the aggregated width (``k`` times
        ``edge_channels`` for ``k`` aggregations)."""
        if use_sent_edges and edge_channels == 0:
            raise ValueError("use_sent_edges=True aggregates edge features "
                             "but edge_channels=0; pass their width (or -1)")
        edge_width = _aggr_width(aggr, edge_channels)
        sizes = [edge_width, edge_width if use_sent_edges else 0,
                 node_channels, global_channels]
        block = cls(mlp(_lazy_sum(sizes), out_channels, hidden_channels,
                        num_layers), aggr, edge_channels != 0,
                    node_channels != 0, global_channels != 0,
                    use_sent_edges=use_sent_edges)
        return _built_for(block, edge_channels, node_channels,
                          global_channels)

    def reset_parameters(self):
        super().reset_parameters()
        _reset(self.node_model)

    def forward(self, x: NodeInput, edge_index: Adj,
                edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
                batch: BatchInput = None,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        """Return the new features ``[N_t, F_v']`` of the target nodes
        (:meth:`receive` and :meth:`send`, then :meth:`node_update`)."""
        _refuse_sizes(edge_attr=edge_attr, u=u, batch=batch)
        size = _num_nodes(x, size=size)
        edge_index, edge_attr = _resolve_graph(
            edge_index, edge_attr, *size, device=_features_device(x))
        check_edge_index(edge_index, *size)
        received = sent = None
        if self.use_received_edges:
            received = self.receive(x, edge_index, edge_attr)
        if self.use_sent_edges:
            sent = self.send(x, edge_index, edge_attr)
        return self.node_update(x, received, u, batch, sent=sent)

    def _edges_in(self, x: NodeInput, edge_index: Tensor,
                  edge_attr: Optional[Tensor], flag: str
                  ) -> Tuple[Tuple[int, int], Tensor, Optional[Tensor]]:
        size = _num_nodes(x)
        edge_index, edge_attr = _resolve_graph(
            edge_index, edge_attr, *size, device=_features_device(x))
        check_edge_index(edge_index, *size)
        _check_edge_attr(edge_attr, edge_index.size(1), True, flag)
        if self.part_channels is not None:
            _check_width(edge_attr, self.part_channels['edges'], 'edge_attr',
                         'edge_channels')
        return size, edge_index, edge_attr

    def receive(self, x: NodeInput, edge_index: Adj,
                edge_attr: Optional[Tensor]) -> Tensor:
        r""":math:`\bar{\mathbf{e}}^{\prime}_{i}`: the received edges
        aggregated per target, ``[N_t, F_e]`` (zeros for a node without
        incoming edge)."""
        size, edge_index, edge_attr = self._edges_in(
            x, edge_index, edge_attr, 'use_received_edges')
        return self.propagate(edge_index, edge_attr=edge_attr,
                              size=size)  # [N_t, F_e]

    def send(self, x: NodeInput, edge_index: Adj,
             edge_attr: Optional[Tensor]) -> Tensor:
        r"""The sent edges aggregated per sender, ``[N, F_e]`` (zeros for a
        node without outgoing edge); one node set only."""
        if isinstance(x, (tuple, list)) and x[0] is not x[1]:
            raise ValueError("use_sent_edges=True aggregates edges at their "
                             "senders, which a bipartite pair 'x' does not "
                             "update; pass one node set or build the block "
                             "with use_sent_edges=False")
        size, edge_index, edge_attr = self._edges_in(
            x, edge_index, edge_attr, 'use_sent_edges')
        return self.propagate(edge_index.flip(0), edge_attr=edge_attr,
                              size=size)  # [N, F_e]

    def node_update(self, x: NodeInput, received: Optional[Tensor] = None,
                    u: Optional[Tensor] = None, batch: BatchInput = None,
                    sent: Optional[Tensor] = None) -> Tensor:
        r""":math:`\phi^{v}` on the parts switched on, given the outputs of
        :meth:`receive` (and :meth:`send`); callers that drop the edge
        tensor between the two steps save its memory."""
        size = _num_nodes(x)
        batch_dst = split_pair(batch, 'batch')[1]
        _check_batch(batch_dst, size[1], 'batch')
        _check_globals(u, self.use_globals, 'use_globals', batch_dst)
        x_dst = split_pair(x, 'x')[1]
        parts = []
        for flag, name, step, value, rows in (
                (self.use_received_edges, 'received', 'receive', received,
                 size[1]),
                (self.use_sent_edges, 'sent', 'send', sent, size[0])):
            if flag and (value is None or value.size(0) != rows):
                raise ValueError(f"'{name}' must be the [{rows}, F] output "
                                 f"of {step}() since use_{name}_edges=True")
            if flag:
                parts.append((f"aggregated edge_attr ({name})",
                              value))  # [N_t, F_e]
        if self.use_nodes:
            if self.part_channels is not None:
                _check_width(x_dst, self.part_channels['nodes'],
                             'x[1]' if isinstance(x, (tuple, list)) else 'x',
                             'node_channels')
            parts.append(('x', x_dst))  # [N_t, F_t]
        if self.use_globals:
            if self.part_channels is not None:
                _check_width(u, self.part_channels['globals'], 'u',
                             'global_channels')
            parts.append(('u', _gather_globals(u, batch_dst,
                                               size[1])))  # [N_t, F_u]
        _check_total(self.node_model, 'node_model', parts)
        return self.node_model(torch.cat([t for _, t in parts], dim=-1))

    def message(self, edge_attr: Tensor) -> Tensor:
        return edge_attr  # [E, F_e]

    def __repr__(self) -> str:
        used = _used(['received_edges', 'sent_edges', 'nodes', 'globals'],
                     [self.use_received_edges, self.use_sent_edges,
                      self.use_nodes, self.use_globals])
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
          :math:`(2, |\mathcal{E}|)` or an ``adj_t``, edge features
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
        _use_inputs(self, use_edges=use_edges, use_nodes=use_nodes,
                    use_globals=use_globals)
        self.global_model = global_model
        self.edge_aggr = edge_aggr
        self.node_aggr = node_aggr
        self.edge_aggr_module = aggregation_resolver(edge_aggr)
        self.node_aggr_module = aggregation_resolver(node_aggr)
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, edge_channels: int, node_channels: int,
                   global_channels: int, out_channels: int,
                   hidden_channels: Optional[int] = None, num_layers: int = 2,
                   edge_aggr='sum', node_aggr='sum') -> 'GlobalBlock':
        r"""A :class:`GlobalBlock` whose :math:`\phi^u` is :func:`mlp`; a
        part of size ``0`` is switched off, ``-1`` is lazy. The MLP takes
        the aggregated widths (wider for a list of aggregations)."""
        sizes = [_aggr_width(edge_aggr, edge_channels),
                 _aggr_width(node_aggr, node_channels), global_channels]
        block = cls(mlp(_lazy_sum(sizes), out_channels, hidden_channels,
                        num_layers), edge_aggr, node_aggr,
                    *(s != 0 for s in sizes))
        return _built_for(block, edge_channels, node_channels,
                          global_channels)

    def reset_parameters(self):
        _reset(self.global_model)
        self.edge_aggr_module.reset_parameters()
        self.node_aggr_module.reset_parameters()

    def forward(self, x: NodeInput, edge_index: Adj,
                edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
                batch: BatchInput = None,
                num_graphs: Optional[int] = None) -> Tensor:
        """Return the new globals ``[B, F_u']``; ``B`` is ``u.size(0)``,
        else ``num_graphs``, else ``batch.max() + 1`` (1 without batch)."""
        _refuse_sizes(edge_attr=edge_attr, u=u, batch=batch)
        size = _num_nodes(x)
        edge_index, edge_attr = _resolve_graph(
            edge_index, edge_attr, *size, device=_features_device(x))
        check_edge_index(edge_index, *size)
        x_dst = split_pair(x, 'x')[1]
        batch_dst = split_pair(batch, 'batch')[1]
        _check_batch(batch_dst, size[1], 'batch')
        _check_edge_attr(edge_attr, edge_index.size(1), self.use_edges,
                         'use_edges')
        _check_globals(u, self.use_globals, 'use_globals', batch_dst)
        num_graphs = _num_graphs(num_graphs, u, batch_dst)
        if batch_dst is None:
            batch_dst = x_dst.new_zeros(size[1], dtype=torch.long)
        parts = []
        for flag, part, name, t in (
                (self.use_edges, 'edges', 'edge_attr', edge_attr),
                (self.use_nodes, 'nodes', 'x', x_dst),
                (self.use_globals, 'globals', 'u', u)):
            if flag and self.part_channels is not None:
                _check_width(t, self.part_channels[part], name, _BUILT[part])
        if self.use_edges:
            edge_batch = batch_dst.index_select(0, edge_index[1])  # [E]
            parts.append(('aggregated edge_attr', self.edge_aggr_module(
                edge_attr, edge_batch, dim_size=num_graphs)))  # [B, F_e]
        if self.use_nodes:
            parts.append(('aggregated x', self.node_aggr_module(
                x_dst, batch_dst, dim_size=num_graphs)))  # [B, F_v]
        if self.use_globals:
            parts.append(('u', u))  # [B, F_u]
        _check_total(self.global_model, 'global_model', parts)
        return self.global_model(torch.cat([t for _, t in parts],
                                           dim=-1))  # [B, F_u']

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
    With an ``attention_logit_fn`` (jraph's ``GraphNetwork``), the new edges
    are weighted before the node and global updates,

    .. math::
        \alpha_k = \mathrm{softmax}_{k' : r_{k'} = r_k}\, a(\mathbf{e}^{
        \prime}_{k'}, \mathbf{v}_{s_{k'}}, \mathbf{v}_{r_{k'}},
        \mathbf{u}), \qquad \mathbf{e}^{\prime}_k \leftarrow \alpha_k
        \mathbf{e}^{\prime}_k

    (:func:`~pyg_relational.nn.attention.edge_softmax` over the edges each
    receiver gets); the returned edges are the weighted ones, as in jraph.

    Args:
        edge_block (EdgeBlock, optional): the edge update. (default:
            :obj:`None`)
        node_block (NodeBlock, optional): the node update. (default:
            :obj:`None`)
        global_block (GlobalBlock, optional): the global update. (default:
            :obj:`None`)
        attention_logit_fn (callable, optional): :math:`a`, called as
            ``attention_logit_fn(edge_attr, x_j, x_i, u_k)`` on per-edge
            rows (``u_k`` the globals of each edge's graph, or None) and
            returning logits ``[E]`` or ``[E, H]``; with ``H`` heads the
            edge features are split into ``H`` equal chunks, one weight
            each. A :class:`~torch.nn.Module` is registered as a
            submodule. (default: :obj:`None`)
        attention_normalize_fn (callable, optional): replaces the edge
            softmax, called as ``fn(logits, receivers, num_nodes)``.
            (default: :obj:`None`: :func:`edge_softmax`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_v)`, edge
          indices :math:`(2, |\mathcal{E}|)` or an ``adj_t``, edge features
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
                 global_block: Optional[GlobalBlock] = None,
                 attention_logit_fn: Optional[Callable] = None,
                 attention_normalize_fn: Optional[Callable] = None):
        super().__init__()
        for name, fn in (('attention_logit_fn', attention_logit_fn),
                         ('attention_normalize_fn', attention_normalize_fn)):
            if fn is not None and not callable(fn):
                raise ValueError(f"'{name}' must be callable (got "
                                 f"{type(fn).__name__})")
        if attention_normalize_fn is not None and attention_logit_fn is None:
            raise ValueError("'attention_normalize_fn' needs an "
                             "'attention_logit_fn' (the logits it "
                             "normalises)")
        self.edge_block = edge_block
        self.node_block = node_block
        self.global_block = global_block
        self.attention_logit_fn = attention_logit_fn
        self.attention_normalize_fn = attention_normalize_fn
        self.reset_parameters()

    @classmethod
    def from_sizes(cls, node_channels: int, edge_channels: int,
                   global_channels: int, out_channels: Union[int, Tuple[
                       int, int, int]], hidden_channels: Optional[int] = None,
                   num_layers: int = 2, aggr='sum',
                   node_first: bool = False,
                   use_sent_edges: bool = False) -> 'GraphNetwork':
        r"""A full block with :func:`mlp` models. ``out_channels`` is one
        size or a triple ``(node, edge, global)``; a global output size of
        ``0`` drops the global block. Input sizes of ``0`` switch that input
        off everywhere; ``-1`` sizes it from the first input (lazy).
        ``aggr`` (one aggregation or a list) is used by the node and global
        blocks, ``node_first`` by the :class:`EdgeBlock` and
        ``use_sent_edges`` by the :class:`NodeBlock`."""
        if isinstance(out_channels, (tuple, list)):
            node_out, edge_out, global_out = out_channels
        else:
            node_out = edge_out = global_out = out_channels
        edge = EdgeBlock.from_sizes(edge_channels, node_channels,
                                    global_channels, edge_out,
                                    hidden_channels, num_layers, node_first)
        node = NodeBlock.from_sizes(edge_out, node_channels, global_channels,
                                    node_out, hidden_channels, num_layers,
                                    aggr, use_sent_edges)
        glob = None
        if global_out > 0:
            glob = GlobalBlock.from_sizes(edge_out, node_out,
                                          global_channels, global_out,
                                          hidden_channels, num_layers, aggr,
                                          aggr)
        return cls(edge, node, glob)

    def reset_parameters(self):
        for block in (self.edge_block, self.node_block, self.global_block,
                      self.attention_logit_fn):
            if isinstance(block, Module):
                _reset(block)

    def forward(
        self, x: Tensor, edge_index: Adj,
        edge_attr: Optional[Tensor] = None, u: Optional[Tensor] = None,
        batch: Optional[Tensor] = None, num_graphs: Optional[int] = None
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Return ``(x', edge_attr', u')`` (for an ``adj_t``, the edges in
        its order: by target, then source)."""
        if not isinstance(x, Tensor):
            raise ValueError(f"GraphNetwork takes one node set 'x' [N, F] "
                             f"(got {type(x).__name__}); for a bipartite "
                             f"graph call the blocks directly")
        _refuse_sizes(edge_attr=edge_attr, u=u, batch=batch)
        N = _num_nodes(x)[0]
        edge_index, edge_attr = _resolve_graph(edge_index, edge_attr, N, N,
                                               device=x.device)
        check_edge_index(edge_index, N, N)
        _check_batch(batch, N, 'batch')
        if num_graphs is not None or self.global_block is not None:
            _num_graphs(num_graphs, u, batch)  # refused before any work
        _check_within_graphs(edge_index, batch, batch)
        if self.edge_block is not None:
            edge_attr = self.edge_block(x, edge_index, edge_attr, u, batch)
        if self.attention_logit_fn is not None:
            edge_attr = self._attend(x, edge_index, edge_attr, u, batch)
        if self.node_block is not None:
            x = self.node_block(x, edge_index, edge_attr, u, batch)
        if self.global_block is not None:
            u = self.global_block(x, edge_index, edge_attr, u, batch,
                                  num_graphs)
        return x, edge_attr, u

    def _attend(self, x: Tensor, edge_index: Tensor,
                edge_attr: Optional[Tensor], u: Optional[Tensor],
                batch: Optional[Tensor]) -> Tensor:
        """The edges weighted by their normalised attention logits."""
        if edge_attr is None:
            raise ValueError("'attention_logit_fn' weights edge features but "
                             "there are none; pass 'edge_attr' or add an "
                             "edge block")
        src, dst = edge_index
        E = edge_index.size(1)
        u_k = None
        if u is not None:
            _check_globals(u, False, 'use_globals', batch)
            edge_batch = None if batch is None else batch.index_select(0, dst)
            u_k = _gather_globals(u, edge_batch, E)  # [E, F_u]
        logits = self.attention_logit_fn(edge_attr, x.index_select(0, src),
                                         x.index_select(0, dst), u_k)
        if not isinstance(logits, Tensor) or logits.dim() not in (1, 2) or \
                logits.size(0) != E or (logits.dim() == 2 and (
                    edge_attr.size(-1) % logits.size(1) != 0)):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else \
                type(logits).__name__
            raise ValueError(f"'attention_logit_fn' must return logits [E] or "
                             f"[E, H] with H dividing the {edge_attr.size(-1)}"
                             f" edge features (E={E}; got {shape})")
        normalize = self.attention_normalize_fn or edge_softmax
        alpha = normalize(logits, dst, x.size(0))
        H = 1 if logits.dim() == 1 else logits.size(1)
        weighted = edge_attr.view(E, H, -1) * alpha.view(E, H, 1)  # [E, H, C]
        return weighted.view(E, -1)  # [E, F_e]

    def __repr__(self) -> str:
        used = _used(['edge', 'node', 'global'],
                     [self.edge_block is not None,
                      self.node_block is not None,
                      self.global_block is not None])
        extra = '' if self.attention_logit_fn is None else ', attention=True'
        return (f"{self.__class__.__name__}(blocks=[{', '.join(used)}]"
                f"{extra})")
