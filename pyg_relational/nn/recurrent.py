r"""Recurrence as message passing in topological order over a DAG."""
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing

from .._checks import (check_choice, check_dtypes, check_edge_index,
                       check_features, check_int)
from .._torch import rnn_kernel
from ..structure import Chains
from ._paths import GraphInput, check_path, choose_path

__all__ = ['RecurrentConv']

State = Union[Tensor, List[Tensor]]


@dataclass
class _Schedule:
    r"""The order in which a DAG's nodes are updated (index data only).

    Nodes are sorted by *level* (longest path from a node without
    predecessors), node id within a level; ``position[v]`` is the place of
    node ``v`` in that order. For a level ``l >= 1``, ``direct[l]`` is
    :obj:`True` when every node has exactly one predecessor, in level
    ``l - 1`` at the same place (chains): its states are used as they are.
    Otherwise ``groups[l]`` lists the incoming edges by source level,
    ``(s, place inside level s)``, and ``index[l]`` their targets' places
    inside level ``l``."""
    level_sizes: List[int]
    order: Tensor  # [N] node ids in level order
    position: Tensor  # [N] place of every node in level order
    sinks: Tensor  # [S'] places of the nodes without successors, node order
    direct: List[bool]
    groups: List[List[Tuple[int, Tensor]]]
    index: List[Optional[Tensor]]
    identity: bool  # level order == node order


def _levels(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Longest-path level of every node by Kahn's algorithm, one frontier at
    a time (NumPy: these are many tiny operations)."""
    remaining = np.bincount(dst, minlength=n)  # in-degree
    out_degree = np.bincount(src, minlength=n)
    dst_by_src = dst[np.argsort(src, kind='stable')]
    ptr = np.concatenate([[0], np.cumsum(out_degree)])
    level = np.full(n, -1, dtype=np.int64)
    frontier = np.flatnonzero(remaining == 0)
    depth = 0
    while frontier.size > 0:
        level[frontier] = depth
        counts = out_degree[frontier]
        total = int(counts.sum())
        if total == 0:
            break
        # ids of the out-edges of the frontier (CSR by source)
        offset = np.repeat(ptr[frontier] - (np.cumsum(counts) - counts),
                           counts)
        targets = dst_by_src[offset + np.arange(total)]
        np.subtract.at(remaining, targets, 1)
        frontier = np.unique(targets[remaining[targets] == 0])
        depth += 1
    if n > 0 and level.min() < 0:
        node = int(np.flatnonzero(level < 0)[0])
        raise ValueError(
            f"'edge_index' has a cycle (node {node} lies on or after one); "
            f"RecurrentConv needs a directed acyclic graph such as "
            f"chain_graph(...): remove self-loops and back edges")
    return level


@torch.compiler.disable  # index bookkeeping in NumPy: run, never trace
def _schedule(edge_index: Tensor, num_nodes: int) -> _Schedule:
    """Levels, level order and per-level gathers of a DAG (on the CPU)."""
    device = edge_index.device
    src, dst = edge_index.detach().cpu().numpy()
    n = num_nodes
    level = _levels(src, dst, n)
    sizes = np.bincount(level, minlength=1) if n > 0 else np.zeros(
        0, dtype=np.int64)
    order = np.argsort(level, kind='stable')
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    local = position - np.concatenate([[0], np.cumsum(sizes)])[level]
    num_levels = sizes.size

    # Levels whose nodes each take the state at the same place one level
    # up (chains) need no gather and no scatter.
    src_level, dst_level = level[src], level[dst]
    aligned = (src_level == dst_level - 1) & (local[src] == local[dst])
    per_level = np.bincount(dst_level, minlength=num_levels)
    per_level_aligned = np.bincount(dst_level[aligned],
                                    minlength=num_levels)
    direct = [False] + [
        bool(per_level_aligned[lev] == per_level[lev] == sizes[lev]
             == sizes[lev - 1]) for lev in range(1, num_levels)]

    groups: List[List[Tuple[int, Tensor]]] = [[] for _ in range(num_levels)]
    index: List[Optional[Tensor]] = [None] * num_levels
    keep = ~np.asarray(direct, dtype=bool)[dst_level] if src.size \
        else np.zeros(0, dtype=bool)
    if keep.any():
        # the remaining edges grouped by (target level, source level)
        key = dst_level[keep] * num_levels + src_level[keep]
        perm = np.argsort(key, kind='stable')
        key = key[perm]
        src_local = local[src[keep][perm]]
        dst_local = local[dst[keep][perm]]
        keys, starts = np.unique(key, return_index=True)
        bounds = list(starts) + [key.size]
        for k, (a, b) in zip(keys.tolist(), zip(bounds[:-1], bounds[1:])):
            target, source = divmod(k, num_levels)
            groups[target].append(
                (source, torch.from_numpy(src_local[a:b]).to(device)))
        dst_bounds = np.searchsorted(key // num_levels,
                                     np.arange(num_levels + 1))
        for lev in range(num_levels):
            a, b = dst_bounds[lev], dst_bounds[lev + 1]
            if b > a:
                index[lev] = torch.from_numpy(dst_local[a:b]).to(device)
    sinks = position[np.flatnonzero(np.bincount(src, minlength=n) == 0)]

    def to_torch(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return _Schedule(sizes.tolist(), to_torch(order), to_torch(position),
                     to_torch(sinks), direct, groups, index,
                     bool(np.array_equal(order, np.arange(n))))


@torch.compiler.disable
@lru_cache(maxsize=32)
def _packing(lengths: Tuple[int, ...], reverse: bool, device: str):
    """How chains of ``lengths`` (all > 0, laid end to end) form a
    :class:`~torch.nn.utils.rnn.PackedSequence`: ``order`` gathers the nodes
    time-major (last node first with ``reverse``), longest sequence first
    (packed row -> node), ``position`` gathers them back (node -> packed
    row), ``batch_sizes`` (CPU) counts the sequences alive at every step,
    ``perm`` / ``unperm`` sort the sequences by length and back."""
    lens = torch.tensor(lengths)
    lens_sorted, perm = lens.sort(descending=True, stable=True)
    first = torch.cat([lens.new_zeros(1), lens.cumsum(0)[:-1]])
    step = torch.arange(int(lens_sorted[0])).view(-1, 1)  # [T, 1]
    offset = lens_sorted.view(1, -1) - 1 - step if reverse else step
    node = first[perm].view(1, -1) + offset  # [T, B]
    alive = step < lens_sorted.view(1, -1)  # [T, B]
    order = node[alive]  # [N], time-major
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel())
    unperm = torch.empty_like(perm)
    unperm[perm] = torch.arange(perm.numel())
    return (order.to(device), position.to(device), alive.sum(1),
            perm.to(device), unperm.to(device))


class RecurrentConv(MessagePassing):
    r"""Recurrence as message passing in topological order (Elman,
    `"Finding Structure in Time"
    <https://doi.org/10.1207/s15516709cog1402_1>`_;
    GRU: Cho et al., `"Learning Phrase Representations using RNN
    Encoder-Decoder" <https://arxiv.org/abs/1406.1078>`_; LSTM: Hochreiter
    and Schmidhuber, `"Long Short-Term Memory"
    <https://doi.org/10.1162/neco.1997.9.8.1735>`_).

    Every node :math:`i` of a directed acyclic graph receives the states of
    its predecessors, sums them, and applies a recurrent cell to its own
    input :math:`\mathbf{x}_i`:

    .. math::
        \bar{\mathbf{h}}_i = \sum_{j \to i} \mathbf{h}_j, \qquad
        \mathbf{h}_i = \mathrm{cell}\big(\mathbf{x}_i,
        \bar{\mathbf{h}}_i\big),

    with the cells of :class:`torch.nn.RNN` (:math:`\mathbf{h}_i =
    \tanh(\mathbf{W}_{ih}\mathbf{x}_i + \mathbf{b}_{ih} +
    \mathbf{W}_{hh}\bar{\mathbf{h}}_i + \mathbf{b}_{hh})`),
    :class:`torch.nn.GRU` and :class:`torch.nn.LSTM` (whose memory cells
    :math:`\mathbf{c}_j` are summed alike). A node without predecessors
    starts from the initial state ``h_0`` (zeros by default). Nodes are
    updated level by level (a node's level is the longest path reaching it),
    all nodes of one level across the whole batch together: the input
    projections :math:`\mathbf{W}_{ih}\mathbf{x}` of all nodes are one
    matrix product up front, and each level costs one hidden-state product,
    the aggregation of its incoming edges and the cell update.

    On :func:`~pyg_relational.graphs.chain_graph` this is exactly PyTorch's
    RNN/GRU/LSTM, one sequence per chain, variable lengths included (as with
    packed sequences); :meth:`from_module` copies the weights. With
    ``bidirectional=True`` the second direction runs on the reversed graph
    ``edge_index.flip(0)`` and the outputs are concatenated, as in PyTorch.
    On a tree with edges from children to parents it is a child-sum
    tree-RNN.

    Two paths compute this (``path``; the one that ran is
    ``layer.last_path``, the reason the faster one did not in
    ``layer.why_not_faster``):

    * ``'dense'``: on chains in either direction
      (:class:`~pyg_relational.structure.Chains`: the ``edge_index`` of
      :func:`~pyg_relational.graphs.chain_graph`, a plain ``edge_index``
      recognised as chains, a :class:`Chains` passed instead of it, or
      ``structure_of(batch)`` after collating
      :class:`~pyg_relational.transforms.SequenceToGraph` graphs), every
      layer and direction runs in PyTorch's fused kernel
      (``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``, the
      kernels of :class:`torch.nn.LSTM` etc.): sequences of equal length as
      a ``[B, T, F]`` view, others as a packed sequence (reversed chains
      read the sequences backwards).
    * ``'message'``: the level schedule described above, for any DAG.

    ``'auto'`` takes the dense path on chains and the message path
    otherwise, under PyG explain or message-passing hooks, and while
    :func:`torch.compile` traces a tensor ``edge_index`` (which cannot be
    looked up then). Both paths give the same numbers, second-order
    gradients included on the CPU. In eval mode with a gradient recorded
    the fused kernel runs in training mode without dropout (cuDNN has no
    backward for its inference mode), which computes the eval-mode numbers.

    .. note::
        On CUDA the dense path's backward is cuDNN's, which has no
        derivative: for second-order gradients there use
        ``path='message'``.

    Args:
        input_size (int): input features :math:`F`.
        hidden_size (int): state size :math:`H`.
        num_layers (int, optional): stacked layers; layer :math:`l + 1`
            reads the states of layer :math:`l`. (default: :obj:`1`)
        cell (str, optional): ``'rnn'``, ``'gru'`` or ``'lstm'``.
            (default: :obj:`'gru'`)
        bias (bool, optional): learn :math:`\mathbf{b}_{ih}` and
            :math:`\mathbf{b}_{hh}`. (default: :obj:`True`)
        bidirectional (bool, optional): add the reversed graph as a second
            direction. (default: :obj:`False`)
        dropout (float, optional): dropout on the outputs of every layer but
            the last, in training mode. (default: :obj:`0.`)
        nonlinearity (str, optional): ``'tanh'`` or ``'relu'`` for
            ``cell='rnn'``. (default: :obj:`'tanh'`)
        path (str, optional): ``'auto'``, ``'dense'`` or ``'message'``
            (see above); a forced path that cannot run raises a
            :class:`ValueError`. (default: :obj:`'auto'`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)` of a DAG, optional initial state
          :math:`(L \cdot D, S, H)` (a pair ``(h_0, c_0)`` for LSTM) where
          :math:`S` is the number of nodes without predecessors, in node
          order (the first step of every chain)
        - **output:** node states :math:`(|\mathcal{V}|, D \cdot H)` and the
          final states :math:`(L \cdot D, S', H)` at the nodes without
          successors, in node order (the last step of every chain; the
          first one for the reverse direction), a pair for LSTM

    .. note::
        On trees the predecessor states are *summed* before the cell, also
        the LSTM memory cells with one shared forget gate (Tai et al.'s
        Child-Sum Tree-LSTM has one forget gate per child). When the two
        directions of a bidirectional layer have different numbers of
        start or end nodes (trees), ``h_0`` and the final states are lists
        of :math:`L \cdot D` tensors ``[S_d, H]`` instead of one stacked
        tensor. The topological schedule of the message path is computed on
        the CPU at every call (nothing is cached).

    .. note::
        On CUDA the dense path runs cuDNN, whose RNN backward cannot be
        differentiated again: for second-order gradients
        (``torch.autograd.grad(..., create_graph=True)`` through the layer)
        on CUDA use ``path='message'``; ``'auto'`` cannot know in advance
        that they will be asked for. cuDNN also wants its weights in one
        buffer and copies them at every call (only tested on the CPU).
        Dropout between layers draws other random numbers on the two paths.

    Example:
        >>> gru = torch.nn.GRU(3, 4, batch_first=True)
        >>> layer = RecurrentConv.from_module(gru)
        >>> layer
        RecurrentConv(3, 4, cell='gru')
        >>> x = torch.randn(2, 5, 3)  # two sequences of length 5
        >>> out, h_n = layer(x.reshape(10, 3), chain_graph([5, 5]))
        >>> out_ref, h_ref = gru(x)
        >>> torch.allclose(out.view(2, 5, 4), out_ref, atol=1e-6)
        True
        >>> torch.allclose(h_n, h_ref, atol=1e-6)
        True
        >>> layer.last_path
        'dense'
    """
    GATES = {'rnn': 1, 'gru': 3, 'lstm': 4}

    def __init__(self, input_size: int, hidden_size: int,
                 num_layers: int = 1, cell: str = 'gru', bias: bool = True,
                 bidirectional: bool = False, dropout: float = 0.,
                 nonlinearity: str = 'tanh', path: str = 'auto'):
        super().__init__(aggr='add')
        self.path = check_path(path)
        self.last_path: Optional[str] = None
        self.why_not_faster = None
        self.input_size = check_int(input_size, 'input_size', 1)
        self.hidden_size = check_int(hidden_size, 'hidden_size', 1)
        self.num_layers = check_int(num_layers, 'num_layers', 1)
        self.cell = check_choice(cell, self.GATES, 'cell')
        self.nonlinearity = check_choice(nonlinearity, ('tanh', 'relu'),
                                         'nonlinearity')
        if not 0. <= float(dropout) <= 1.:
            raise ValueError(f"'dropout' must lie in [0, 1] (got {dropout})")
        self.dropout = float(dropout)
        self.bias = bias
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        gates = self.GATES[cell] * hidden_size
        # Parameters named as in torch.nn.RNN/GRU/LSTM.
        for layer in range(num_layers):
            for suffix in self._suffixes():
                f_in = input_size if layer == 0 \
                    else hidden_size * self.num_directions
                self.register_parameter(f'weight_ih_l{layer}{suffix}',
                                        Parameter(torch.empty(gates, f_in)))
                self.register_parameter(
                    f'weight_hh_l{layer}{suffix}',
                    Parameter(torch.empty(gates, hidden_size)))
                for kind in ('ih', 'hh'):
                    self.register_parameter(
                        f'bias_{kind}_l{layer}{suffix}',
                        Parameter(torch.empty(gates)) if bias else None)
        self.reset_parameters()

    def _suffixes(self) -> Tuple[str, ...]:
        return ('', '_reverse')[:self.num_directions]

    def reset_parameters(self):
        r"""The initialisation of :class:`torch.nn.RNN`: uniform in
        :math:`\pm 1/\sqrt{H}`."""
        super().reset_parameters()
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            torch.nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, edge_index: Tensor,
                h_0: Optional[Union[State, Tuple[State, State]]] = None,
                ) -> Tuple[Tensor, Union[State, Tuple[State, State]]]:
        r"""Returns ``(out, h_n)`` (``(out, (h_n, c_n))`` for LSTM)."""
        if isinstance(x, Tensor) and x.dim() != 2:
            raise ValueError(f"'x' must be node features [N, "
                             f"{self.input_size}] (got shape "
                             f"{tuple(x.shape)}); turn a batch of sequences "
                             f"into nodes with sequence_to_nodes(x, lengths)")
        check_features(x, self.input_size)
        num_nodes = x.size(0)
        graph = GraphInput(edge_index, num_nodes, num_nodes, device=x.device)
        graph.refuse_values('RecurrentConv')
        chains = graph.structure if isinstance(graph.structure, Chains) \
            else None
        dense_why = None
        if chains is None:
            dense_why = ('the graph is not a set of chains (DAGs and trees '
                         'take the level schedule)')
        elif rnn_kernel(self._kernel_name) is None:
            dense_why = (f'this torch has no fused {self._kernel_name!r} '
                         f'kernel (torch._VF)')
        path = choose_path(self, self.path, {'dense': dense_why})
        lstm = self.cell == 'lstm'
        if lstm and h_0 is not None:
            if not isinstance(h_0, (tuple, list)) or len(h_0) != 2:
                raise ValueError("'h_0' of an LSTM must be a pair (h_0, c_0)")
        self._check_state_dtypes(x, h_0, lstm)
        if path == 'dense':
            return self._dense(x, chains, h_0)
        edge_index = graph.edge_index
        if chains is None:  # a known structure has valid indices
            check_edge_index(edge_index, num_nodes, num_nodes)
        schedules = [_schedule(edge_index, num_nodes)]
        if self.bidirectional:
            schedules.append(_schedule(edge_index.flip(0), num_nodes))
        starts = [sched.level_sizes[0] if sched.level_sizes else 0
                  for sched in schedules]
        if lstm and h_0 is not None:
            h_init = self._initial(h_0[0], starts, 'h_0')
            c_init = self._initial(h_0[1], starts, 'c_0')
        else:
            h_init = self._initial(h_0, starts, 'h_0')
            c_init = [None] * len(h_init)

        h_n, c_n = [], []
        inp = x
        for layer in range(self.num_layers):
            outs = []
            for d, sched in enumerate(schedules):
                k = layer * self.num_directions + d
                params = [
                    getattr(self, f'{name}_l{layer}{self._suffixes()[d]}')
                    for name in ('weight_ih', 'weight_hh', 'bias_ih',
                                 'bias_hh')
                ]
                out, h_last, c_last = self._direction(inp, sched, params,
                                                      h_init[k], c_init[k])
                outs.append(out)
                h_n.append(h_last)
                c_n.append(c_last)
            inp = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
            if self.dropout > 0 and self.training \
                    and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, training=True)
        h_n = self._stack(h_n)
        return inp, (h_n, self._stack(c_n)) if lstm else h_n

    def _flat_weights(self) -> List[Tensor]:
        """The parameters in the order of PyTorch's fused RNN kernels
        (``nn.RNNBase._flat_weights``)."""
        names = ('weight_ih', 'weight_hh') + (('bias_ih', 'bias_hh')
                                              if self.bias else ())
        return [getattr(self, f'{name}_l{layer}{suffix}')
                for layer in range(self.num_layers)
                for suffix in self._suffixes() for name in names]

    @property
    def _kernel_name(self) -> str:
        return self.cell if self.cell != 'rnn' else f'rnn_{self.nonlinearity}'

    def _dense(self, x: Tensor, chains: Chains, h_0):
        """All layers and directions in one fused kernel call
        (``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``): equal
        lengths as a ``[B, T, F]`` view, else a packed sequence; reversed
        chains (:math:`t+1 \to t`) as the sequences read backwards."""
        lengths = tuple(n for n in chains.sizes if n > 0)
        batch, hidden = len(lengths), self.hidden_size
        count = self.num_layers * self.num_directions
        lstm = self.cell == 'lstm'
        starts = [batch] * self.num_directions
        states = []  # [L*D, B, H] each: h (and c)
        for k, name in enumerate(('h_0', 'c_0')[:2 if lstm else 1]):
            given = h_0[k] if lstm and h_0 is not None else h_0
            parts = self._initial(given, starts, name)
            states.append(x.new_zeros(count, batch, hidden)
                          if parts[0] is None else torch.stack(parts))
        if batch == 0:
            out = x.new_zeros(0, self.num_directions * hidden)
            return out, (tuple(states) if lstm else states[0])
        kernel = rnn_kernel(self._kernel_name)
        weights = self._flat_weights()
        # cuDNN's RNN backward runs only after a forward in training mode.
        # In eval mode with a gradient recorded the kernel runs in training
        # mode without dropout: the same numbers, and a backward that works.
        train = self.training or (torch.is_grad_enabled() and any(
            t.requires_grad for t in [x, *weights, *states]))
        dropout = self.dropout if self.training else 0.
        args = (weights, self.bias, self.num_layers, dropout, train,
                self.bidirectional)
        if len(set(lengths)) == 1:
            seq = x.reshape(batch, lengths[0], -1)  # [B, T, F], batch first
            seq = seq.flip(1) if chains.reverse else seq
            result = kernel(seq, tuple(states) if lstm else states[0],
                            *args, True)
            out = result[0].flip(1) if chains.reverse else result[0]
            out = out.reshape(x.size(0), -1)  # [B*T, D*H]
            finals = list(result[1:])
        else:
            order, position, batch_sizes, perm, unperm = _packing(
                lengths, chains.reverse, str(x.device))
            states = [s.index_select(1, perm) for s in states]  # sorted
            result = kernel(x.index_select(0, order), batch_sizes,
                            tuple(states) if lstm else states[0], *args)
            out = result[0].index_select(0, position)  # node order
            finals = [h.index_select(1, unperm) for h in result[1:]]
        return out, (tuple(finals) if lstm else finals[0])

    def _direction(self, x: Tensor, sched: _Schedule, params: List[Tensor],
                   h_0: Optional[Tensor], c_0: Optional[Tensor]):
        """One direction of one layer over the whole batch."""
        w_ih, w_hh, b_ih, b_hh = params
        hidden = self.hidden_size
        if x.size(0) == 0:
            empty = x.new_zeros(0, hidden)
            return empty, empty, (empty if self.cell == 'lstm' else None)
        gi = F.linear(x, w_ih, b_ih)  # [N, G*H]: all inputs in one matmul
        if not sched.identity:
            gi = gi.index_select(0, sched.order)  # level order
        states: List[Tensor] = []
        cells: List[Tensor] = []
        for lev, gi_lev in enumerate(gi.split(sched.level_sizes)):
            if lev == 0:
                h_agg, c_agg = h_0, c_0
            else:
                h_agg, c_agg = self._aggregate_level(sched, lev, states, cells)
            h, c = self._cell(gi_lev, h_agg, c_agg, w_hh, b_hh)
            states.append(h)
            if c is not None:
                cells.append(c)
        h_all = torch.cat(states)  # [N, H], level order
        out = h_all if sched.identity else h_all.index_select(
            0, sched.position)  # node order
        h_last = h_all.index_select(0, sched.sinks)
        c_last = torch.cat(cells).index_select(0, sched.sinks) \
            if cells else None
        return out, h_last, c_last

    def _aggregate_level(self, sched: _Schedule, lev: int,
                         states: List[Tensor], cells: List[Tensor]):
        r""":math:`\sum_{j \to i}` of the states (and LSTM cells) over the
        incoming edges of level ``lev``."""
        if sched.direct[lev]:  # one predecessor each, aligned: no scatter
            return states[lev - 1], cells[lev - 1] if cells else None
        msg = torch.cat([
            self.message(torch.cat([states[s], cells[s]], dim=-1)
                         .index_select(0, s_loc) if cells else
                         states[s].index_select(0, s_loc))
            for s, s_loc in sched.groups[lev]])  # [E_l, H or 2H]
        agg = self.aggregate(msg, sched.index[lev],
                             dim_size=sched.level_sizes[lev])
        if cells:
            h_agg, c_agg = agg.split(self.hidden_size, dim=-1)
            return h_agg, c_agg
        return agg, None

    def message(self, h_j: Tensor) -> Tensor:
        return h_j

    def _cell(self, gi: Tensor, h: Optional[Tensor], c: Optional[Tensor],
              w_hh: Tensor, b_hh: Optional[Tensor]):
        """The cell update of one level; ``h is None`` means zero state."""
        if h is None:  # W_hh 0 + b_hh
            gh = b_hh.expand_as(gi) if b_hh is not None else None
        else:
            gh = F.linear(h, w_hh, b_hh)  # [n, G*H]
        if self.cell == 'rnn':
            pre = gi if gh is None else gi + gh
            return (torch.tanh(pre) if self.nonlinearity == 'tanh'
                    else torch.relu(pre)), None
        hidden = self.hidden_size
        if self.cell == 'gru':
            if gh is None:
                gh = torch.zeros_like(gi)
            rz = torch.sigmoid(gi[:, :2 * hidden] + gh[:, :2 * hidden])
            r, z = rz[:, :hidden], rz[:, hidden:]
            n = torch.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
            if h is None:
                return n - z * n, None
            return n + z * (h - n), None  # (1 - z) n + z h
        gates = gi if gh is None else gi + gh  # [n, 4H]: i, f, g, o
        ifo = torch.sigmoid(gates)
        i, f, o = (ifo[:, :hidden], ifo[:, hidden:2 * hidden],
                   ifo[:, 3 * hidden:])
        g = torch.tanh(gates[:, 2 * hidden:3 * hidden])
        c = i * g if c is None else f * c + i * g
        return o * torch.tanh(c), c

    def _check_state_dtypes(self, x: Tensor, h_0, lstm: bool):
        """The initial states share the dtype of ``x`` and the layer (a
        clear error naming them, not a matmul's)."""
        states = {}
        for name, state in zip(('h_0', 'c_0'), h_0 if lstm and h_0 is not
                               None else (h_0, )):
            parts = [state] if isinstance(state, Tensor) else (state or [])
            for k, part in enumerate(parts):
                key = name if isinstance(state, Tensor) else f'{name}[{k}]'
                states[key] = part
        check_dtypes(self, x=x, **states)

    def _initial(self, h_0: Optional[State], starts: List[int],
                 name: str) -> List[Optional[Tensor]]:
        """Per (layer, direction): the state of the nodes without
        predecessors, ``[S_d, H]`` with ``S_d = starts[d]``, or ``None``
        (zeros)."""
        count = self.num_layers * self.num_directions
        if h_0 is None:
            return [None] * count
        parts = list(h_0.unbind(0)) if isinstance(h_0, Tensor) \
            and h_0.dim() == 3 else h_0
        if not isinstance(parts, (list, tuple)) or len(parts) != count:
            shape = tuple(h_0.shape) if isinstance(h_0, Tensor) else h_0
            raise ValueError(
                f"'{name}' must have shape [num_layers * num_directions "
                f"({count}), S, {self.hidden_size}] (got {shape})")
        for k, p in enumerate(parts):
            s = starts[k % self.num_directions]
            if not isinstance(p, Tensor) or p.shape != (s, self.hidden_size):
                raise ValueError(
                    f"'{name}'[{k}] must have shape [{s}, {self.hidden_size}]"
                    f": one row per node without predecessors, in node "
                    f"order (got {tuple(getattr(p, 'shape', ()))})")
        return list(parts)

    @staticmethod
    def _stack(states: List[Optional[Tensor]]) -> State:
        if any(s is None for s in states):
            return None
        if len({s.size(0) for s in states}) == 1:
            return torch.stack(states)  # [L*D, S, H]
        return states

    @classmethod
    def from_module(cls, module: torch.nn.RNNBase,
                    path: str = 'auto') -> 'RecurrentConv':
        r"""The graph twin of a :class:`torch.nn.RNN`, :class:`torch.nn.GRU`
        or :class:`torch.nn.LSTM`, weights copied; ``path`` as in the
        constructor."""
        cells = {torch.nn.RNN: 'rnn', torch.nn.GRU: 'gru',
                 torch.nn.LSTM: 'lstm'}
        cell = cells.get(type(module))
        if cell is None:
            raise ValueError(f"RecurrentConv.from_module expects an nn.RNN, "
                             f"nn.GRU or nn.LSTM (got "
                             f"{type(module).__name__})")
        if getattr(module, 'proj_size', 0) > 0:
            raise ValueError(f"LSTM with proj_size={module.proj_size} is not "
                             f"supported; use proj_size=0")
        nonlinearity = getattr(module, 'nonlinearity', 'tanh')
        layer = cls(module.input_size, module.hidden_size, module.num_layers,
                    cell=cell, bias=module.bias,
                    bidirectional=module.bidirectional,
                    dropout=module.dropout, nonlinearity=nonlinearity,
                    path=path)
        weight = next(module.parameters())
        layer = layer.to(weight.device, weight.dtype)
        layer.load_state_dict(module.state_dict())
        return layer

    def __repr__(self) -> str:
        extra = ''
        if self.num_layers != 1:
            extra += f', num_layers={self.num_layers}'
        if self.bidirectional:
            extra += ', bidirectional=True'
        return (f'{self.__class__.__name__}({self.input_size}, '
                f'{self.hidden_size}, cell={self.cell!r}{extra})')
