r"""The kernels of :class:`~pyg_relational.nn.RecurrentConv`, outside the
layer (which keeps its parameters and chooses the path): the level schedule
of a DAG and the message path run over it, PyTorch's fused RNN kernels on
chains (the dense path), and the initial and final states both share."""
import contextlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._cache import BoundedCache
from .._checks import check_dtypes
from .._torch import autocast_on, onednn_lstm
from ..structure import Chains

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


_PACKINGS = BoundedCache('fused-RNN packings', maxsize=32)


@torch.compiler.disable
def _packing(lengths: Tuple[int, ...], reverse: bool, device: str):
    """The packing of chains of ``lengths``, kept per
    ``(lengths, reverse, device)`` (:func:`_build_packing`)."""
    return _PACKINGS.get((lengths, reverse, device),
                         lambda: _build_packing(lengths, reverse, device))


def _build_packing(lengths: Tuple[int, ...], reverse: bool, device: str):
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


# ---- the dense path: PyTorch's fused kernels on chains --------------------

def _autocast_by_hand(x: Tensor, lstm: bool) -> Optional[torch.dtype]:
    r"""The dtype CPU autocast runs an LSTM in, when this CPU's oneDNN has
    no LSTM primitive for it; :obj:`None` otherwise. The caller then does
    what autocast would (inputs, states and weights in that dtype, output in
    it) with autocast off, where PyTorch's kernel works."""
    if not (lstm and x.device.type == 'cpu' and autocast_on('cpu')):
        return None
    dtype = torch.get_autocast_dtype('cpu')
    return None if onednn_lstm(dtype) else dtype


def fused_rnn(layer, kernel: Callable, x: Tensor, chains: Chains, h_0):
    r"""All layers and directions of ``layer`` in one call of ``kernel``
    (``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``): equal
    lengths as a ``[B, T, F]`` view, else a packed sequence; reversed
    chains (:math:`t+1 \to t`) as the sequences read backwards."""
    lengths = tuple(n for n in chains.sizes if n > 0)
    batch, hidden = len(lengths), layer.hidden_size
    count = layer.num_layers * layer.num_directions
    lstm = layer.cell == 'lstm'
    starts = [batch] * layer.num_directions
    states = []  # [L*D, B, H] each: h (and c)
    for k, name in enumerate(('h_0', 'c_0')[:2 if lstm else 1]):
        given = h_0[k] if lstm and h_0 is not None else h_0
        parts = initial_states(layer, given, starts, name)
        states.append(x.new_zeros(count, batch, hidden)
                      if parts[0] is None else torch.stack(parts))
    if batch == 0:
        out = x.new_zeros(0, layer.num_directions * hidden)
        return out, (tuple(states) if lstm else states[0])
    weights = flat_weights(layer)
    # cuDNN's RNN backward runs only after a forward in training mode.
    # In eval mode with a gradient recorded the kernel runs in training
    # mode without dropout: the same numbers, and a backward that works.
    train = layer.training or (torch.is_grad_enabled() and any(
        t.requires_grad for t in [x, *weights, *states]))
    dropout = layer.dropout if layer.training else 0.
    low = _autocast_by_hand(x, lstm)
    if low is not None:
        x, weights = x.to(low), [w.to(low) for w in weights]
        states = [s.to(low) for s in states]
    args = (weights, layer.bias, layer.num_layers, dropout, train,
            layer.bidirectional)
    with (contextlib.nullcontext() if low is None
          else torch.autocast('cpu', enabled=False)):
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


def flat_weights(layer) -> List[Tensor]:
    """The parameters of ``layer`` in the order of PyTorch's fused RNN
    kernels (``nn.RNNBase._flat_weights``)."""
    names = ('weight_ih', 'weight_hh') + (('bias_ih', 'bias_hh')
                                          if layer.bias else ())
    return [getattr(layer, f'{name}_l{k}{suffix}')
            for k in range(layer.num_layers)
            for suffix in layer._suffixes() for name in names]


# ---- the message path: the level schedule, for any DAG --------------------

def level_rnn(layer, x: Tensor, edge_index: Tensor, h_0):
    """All layers and directions of ``layer`` over the level schedule of
    the DAG ``edge_index`` (the reversed graph for the second direction);
    returns ``(out, h_n)`` (``(out, (h_n, c_n))`` for LSTM)."""
    num_nodes = x.size(0)
    lstm = layer.cell == 'lstm'
    schedules = [_schedule(edge_index, num_nodes)]
    if layer.bidirectional:
        schedules.append(_schedule(edge_index.flip(0), num_nodes))
    starts = [sched.level_sizes[0] if sched.level_sizes else 0
              for sched in schedules]
    if lstm and h_0 is not None:
        h_init = initial_states(layer, h_0[0], starts, 'h_0')
        c_init = initial_states(layer, h_0[1], starts, 'c_0')
    else:
        h_init = initial_states(layer, h_0, starts, 'h_0')
        c_init = [None] * len(h_init)

    h_n, c_n = [], []
    inp = x
    for k in range(layer.num_layers):
        outs = []
        for d, sched in enumerate(schedules):
            i = k * layer.num_directions + d
            params = [getattr(layer, f'{name}_l{k}{layer._suffixes()[d]}')
                      for name in ('weight_ih', 'weight_hh', 'bias_ih',
                                   'bias_hh')]
            out, h_last, c_last = _direction(layer, inp, sched, params,
                                             h_init[i], c_init[i])
            outs.append(out)
            h_n.append(h_last)
            c_n.append(c_last)
        inp = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        if layer.dropout > 0 and layer.training \
                and k < layer.num_layers - 1:
            inp = F.dropout(inp, layer.dropout, training=True)
    h_n = stack_states(h_n)
    return inp, (h_n, stack_states(c_n)) if lstm else h_n


def _direction(layer, x: Tensor, sched: _Schedule, params: List[Tensor],
               h_0: Optional[Tensor], c_0: Optional[Tensor]):
    """One direction of one layer over the whole batch."""
    w_ih, w_hh, b_ih, b_hh = params
    if x.size(0) == 0:
        empty = x.new_zeros(0, layer.hidden_size)
        return empty, empty, (empty if layer.cell == 'lstm' else None)
    gi = F.linear(x, w_ih, b_ih)  # [N, G*H]: all inputs in one matmul
    if not sched.identity:
        gi = gi.index_select(0, sched.order)  # level order
    states: List[Tensor] = []
    cells: List[Tensor] = []
    for lev, gi_lev in enumerate(gi.split(sched.level_sizes)):
        if lev == 0:
            h_agg, c_agg = h_0, c_0
        else:
            h_agg, c_agg = _aggregate_level(layer, sched, lev, states, cells)
        h, c = cell_update(layer, gi_lev, h_agg, c_agg, w_hh, b_hh)
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


def _aggregate_level(layer, sched: _Schedule, lev: int,
                     states: List[Tensor], cells: List[Tensor]):
    r""":math:`\sum_{j \to i}` of the states (and LSTM cells) over the
    incoming edges of level ``lev``, through ``layer.message`` and
    ``layer.aggregate``."""
    if sched.direct[lev]:  # one predecessor each, aligned: no scatter
        return states[lev - 1], cells[lev - 1] if cells else None
    msg = torch.cat([
        layer.message(torch.cat([states[s], cells[s]], dim=-1)
                      .index_select(0, s_loc) if cells else
                      states[s].index_select(0, s_loc))
        for s, s_loc in sched.groups[lev]])  # [E_l, H or 2H]
    agg = layer.aggregate(msg, sched.index[lev],
                          dim_size=sched.level_sizes[lev])
    if cells:
        h_agg, c_agg = agg.split(layer.hidden_size, dim=-1)
        return h_agg, c_agg
    return agg, None


def cell_update(layer, gi: Tensor, h: Optional[Tensor], c: Optional[Tensor],
                w_hh: Tensor, b_hh: Optional[Tensor]):
    """The cell update of one level (``layer.cell``: the cells of
    :class:`torch.nn.RNN` / ``GRU`` / ``LSTM``) from the input projections
    ``gi`` ``[n, G*H]``; ``h is None`` means zero state."""
    if h is None:  # W_hh 0 + b_hh
        gh = b_hh.expand_as(gi) if b_hh is not None else None
    else:
        gh = F.linear(h, w_hh, b_hh)  # [n, G*H]
    if layer.cell == 'rnn':
        pre = gi if gh is None else gi + gh
        return (torch.tanh(pre) if layer.nonlinearity == 'tanh'
                else torch.relu(pre)), None
    hidden = layer.hidden_size
    if layer.cell == 'gru':
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


# ---- initial and final states, as PyTorch's RNNs take and return them ------

def check_initial_state(layer, x: Tensor, h_0):
    """An LSTM's ``h_0`` is a pair; the initial states share the dtype of
    ``x`` and the layer (a clear error naming them, not a matmul's)."""
    lstm = layer.cell == 'lstm'
    if lstm and h_0 is not None:
        if not isinstance(h_0, (tuple, list)) or len(h_0) != 2:
            raise ValueError("'h_0' of an LSTM must be a pair (h_0, c_0)")
    states = {}
    for name, state in zip(('h_0', 'c_0'), h_0 if lstm and h_0 is not
                           None else (h_0, )):
        parts = [state] if isinstance(state, Tensor) else (state or [])
        for k, part in enumerate(parts):
            key = name if isinstance(state, Tensor) else f'{name}[{k}]'
            states[key] = part
    check_dtypes(layer, x=x, **states)


def initial_states(layer, h_0: Optional[State], starts: List[int],
                   name: str) -> List[Optional[Tensor]]:
    """Per (layer, direction): the state of the nodes without
    predecessors, ``[S_d, H]`` with ``S_d = starts[d]``, or ``None``
    (zeros)."""
    count = layer.num_layers * layer.num_directions
    hidden = layer.hidden_size
    if h_0 is None:
        return [None] * count
    parts = list(h_0.unbind(0)) if isinstance(h_0, Tensor) \
        and h_0.dim() == 3 else h_0
    if not isinstance(parts, (list, tuple)) or len(parts) != count:
        shape = tuple(h_0.shape) if isinstance(h_0, Tensor) else h_0
        raise ValueError(
            f"'{name}' must have shape [num_layers * num_directions "
            f"({count}), S, {hidden}] (got {shape})")
    for k, p in enumerate(parts):
        s = starts[k % layer.num_directions]
        if not isinstance(p, Tensor) or p.shape != (s, hidden):
            raise ValueError(
                f"'{name}'[{k}] must have shape [{s}, {hidden}]"
                f": one row per node without predecessors, in node "
                f"order (got {tuple(getattr(p, 'shape', ()))})")
    return list(parts)


def stack_states(states: List[Optional[Tensor]]) -> State:
    """The final states ``[L*D, S, H]``, a list when the directions have
    different numbers of end nodes, None for an absent (non-LSTM) cell."""
    if any(s is None for s in states):
        return None
    if len({s.size(0) for s in states}) == 1:
        return torch.stack(states)  # [L*D, S, H]
    return states
