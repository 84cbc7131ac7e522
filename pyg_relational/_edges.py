r"""The edge kernels of the graph builders: per-graph sizes in (validated
``LongTensor``s, tuples for grids), an ``edge_index`` sorted by target then
source out, registered nowhere. :mod:`~pyg_relational.structure`'s
descriptions build their graphs with them and
:mod:`~pyg_relational.graphs`' builders validate their arguments, call them
and register the result (one direction: neither imports the other back)."""
import math
import os
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor


# Bytes per edge while a builder runs: edge_index (16) plus the int64
# temporaries of _expand and the gathers (target, rank, source, ...).
_BYTES_PER_EDGE = 64
_BYTES_PER_NODE = 32


def _memory_bytes() -> int:
    """This machine's physical memory (2**40 where unknown)."""
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (AttributeError, ValueError, OSError):
        return 2**40


def _gib(num_bytes: float) -> str:
    return f'{num_bytes / 2**30:,.1f} GiB'


def _check_budget(builder: str, num_nodes: float, num_edges: float = 0):
    """Refuse, before allocating anything, a graph whose construction needs
    more memory than the machine has (``complete_graph(100000)``: 10^10
    edges), with the counts and bytes it would need."""
    need = _BYTES_PER_EDGE * num_edges + _BYTES_PER_NODE * num_nodes
    limit = _memory_bytes()
    if need > limit:
        raise ValueError(
            f"{builder}: the requested graph has {num_nodes:,.0f} nodes and "
            f"{num_edges:,.0f} edges; its edge_index alone takes "
            f"{_gib(16 * num_edges)} and building it about {_gib(need)}, "
            f"more than this machine's memory ({_gib(limit)}). Build fewer "
            f"or smaller graphs (e.g. batch by batch)")


def ptr_of(sizes: Tensor) -> Tensor:
    """``[0, n_0, n_0 + n_1, ...]`` — the first node of every graph."""
    return torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])


def _expand(counts: Tensor, builder: str) -> Tuple[Tensor, Tensor]:
    """For per-target edge ``counts`` return, per edge, its target and its
    rank ``k`` among that target's edges (``0 <= k < counts[target]``)."""
    _check_budget(builder, counts.numel(), float(counts.double().sum()))
    target = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    rank = torch.arange(target.numel()) - ptr_of(counts)[:-1][target]
    return target, rank


def _node_layout(sizes: Tensor, builder: str) -> Tuple[Tensor, Tensor]:
    """Per node: the index of its graph and its position inside it."""
    _check_budget(builder, float(sizes.double().sum()))
    graph = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
    position = torch.arange(graph.numel()) - ptr_of(sizes)[:-1][graph]
    return graph, position



def chain(sizes: Tensor, reverse: bool) -> Tensor:
    r""":math:`t-1 \to t` (:math:`t+1 \to t` with ``reverse``) within every
    sequence of ``sizes`` nodes."""
    _check_budget('chain_graph', float(sizes.double().sum()),
                  float((sizes - 1).clamp(min=0).double().sum()))
    _, position = _node_layout(sizes, 'chain_graph')
    last = (sizes - 1).repeat_interleave(sizes)
    if reverse:
        target = (position < last).nonzero().view(-1)
        return torch.stack([target + 1, target])
    target = (position > 0).nonzero().view(-1)
    return torch.stack([target - 1, target])


def complete(sizes: Tensor, self_loops: bool, causal: bool) -> Tensor:
    r"""All pairs :math:`j \to i` (:math:`j \le i` if ``causal``) within
    every graph of ``sizes`` nodes."""
    graph, position = _node_layout(sizes, 'complete_graph')
    if causal:
        counts = position + 1
    else:
        counts = sizes[graph]
    if not self_loops:
        counts = (counts - 1).clamp(min=0)
    target, rank = _expand(counts, 'complete_graph')
    if not self_loops:  # skip the target's own position
        rank = rank + (rank >= position[target]).long()
    source = ptr_of(sizes)[graph[target]] + rank
    return torch.stack([source, target])


def bipartite(src_sizes: Tensor, dst_sizes: Tensor) -> Tensor:
    """Every source of graph :math:`b` to every target of graph :math:`b`."""
    graph, _ = _node_layout(dst_sizes, 'bipartite_graph')
    target, rank = _expand(src_sizes[graph], 'bipartite_graph')
    source = ptr_of(src_sizes)[graph[target]] + rank
    return torch.stack([source, target])


def window(src_sizes: Tensor, dst_sizes: Tensor, radius: int,
           centers: Optional[Tensor] = None) -> Tensor:
    r"""Sources at :math:`[c_t - r, c_t + r]` (clipped) to target :math:`t`;
    :math:`c_t = t` without ``centers`` (finite float64, one per target)."""
    # A window wider than every sequence is the whole sequence: clip the
    # radius there so that position +- radius stays inside int64
    # (window_graph(5, 5, 2**63) gave 0 edges; now all 25).
    widest = max([0] + src_sizes.tolist() + dst_sizes.tolist())
    graph, position = _node_layout(dst_sizes, 'window_graph')
    if centers is None:
        radius = min(radius, widest)
        low = position - radius
        high = position + radius
    else:
        # float64 -> int64 is undefined past 2**63: clip to the sources'
        # range first (beyond it both ends are clamped below anyway).
        top = float(widest + 1)
        wide = float(radius)  # a Python int past 2**63 cannot meet a tensor
        low = torch.ceil(centers - wide).clamp(-1., top).long()
        high = torch.floor(centers + wide).clamp(-1., top).long()
    low = low.clamp(min=0)
    high = torch.minimum(high, src_sizes[graph] - 1)
    counts = (high - low + 1).clamp(min=0)
    target, rank = _expand(counts, 'window_graph')
    source = ptr_of(src_sizes)[graph[target]] + low[target] + rank
    return torch.stack([source, target])


Padding = Union[str, Tuple[int, ...]]


def grid_padding(kernel: Sequence[int], dilation: Sequence[int],
                 padding: Padding) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """``(before, total)`` zero padding per dimension; ``'same'`` pads
    asymmetrically as PyTorch does (the extra pixel goes last)."""
    if padding == 'same':
        return (tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)),
                tuple(d * (k - 1) for k, d in zip(kernel, dilation)))
    return tuple(padding), tuple(2 * p for p in padding)


def grid_out_size(size: Sequence[int], kernel: Sequence[int],
                  stride: Sequence[int], padding: Padding,
                  dilation: Sequence[int]) -> Tuple[int, ...]:
    """The output size per dimension, or a :class:`ValueError` when the
    kernel spans more than the padded input."""
    _, pad_total = grid_padding(kernel, dilation, padding)
    out_size = []
    for n, k, s, p, d in zip(size, kernel, stride, pad_total, dilation):
        span = d * (k - 1) + 1
        if n + p < span:
            raise ValueError(
                f"kernel_size={tuple(kernel)!r} with dilation={d} spans "
                f"{span} positions but the padded input has only {n + p} "
                f"(size={n}, padding={p} in total); use a smaller kernel or "
                f"more padding")
        out_size.append((n + p - span) // s + 1)
    return tuple(out_size)


def grid(size: Tuple[int, ...], kernel: Tuple[int, ...],
         stride: Tuple[int, ...], padding: Padding,
         dilation: Tuple[int, ...], batch_size: int) -> Tuple[Tensor, Tensor]:
    """``(edge_index, edge_type)`` of a convolution's receptive fields over
    ``batch_size`` images (1-D or 2-D, one entry per dimension)."""
    out_size = grid_out_size(size, kernel, stride, padding, dilation)
    pad_before, _ = grid_padding(kernel, dilation, padding)
    _check_budget('grid_graph', batch_size * (math.prod(size) +
                                              math.prod(out_size)),
                  max(batch_size, 1) * math.prod(out_size) * math.prod(kernel))
    # Per dimension: input coordinate of every (output position, tap).
    coords = []
    for n, m, k, s, p, d in zip(size, out_size, kernel, stride, pad_before,
                                dilation):
        c = torch.arange(m).view(-1, 1) * s - p + torch.arange(k) * d  # [m, k]
        coords.append(c)
    if len(size) == 1:
        (cx, ), (w, ) = coords, size
        src = cx  # [m, k]
        valid = (cx >= 0) & (cx < w)
    else:
        cy, cx = coords
        (h, w), (mh, mw), (kh, kw) = size, out_size, kernel
        # [mh, mw, kh, kw]: output (oy, ox), tap (dy, dx)
        yy = cy.view(mh, 1, kh, 1)
        xx = cx.view(1, mw, 1, kw)
        src = yy * w + xx
        valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        src = src.expand(mh, mw, kh, kw)
        valid = valid.expand(mh, mw, kh, kw)
    num_out = math.prod(out_size)
    num_taps = math.prod(kernel)
    src = src.reshape(num_out, num_taps)  # [out positions, taps]
    valid = valid.reshape(num_out, num_taps)
    dst = torch.arange(num_out).view(-1, 1).expand(num_out, num_taps)
    tap = torch.arange(num_taps).view(1, -1).expand(num_out, num_taps)
    src, dst, tap = src[valid], dst[valid], tap[valid]  # row-major: by target

    num_in = math.prod(size)
    shift = torch.arange(batch_size).view(-1, 1)  # [B, 1]
    edge_index = torch.stack([
        (src.view(1, -1) + shift * num_in).view(-1),
        (dst.reshape(1, -1) + shift * num_out).view(-1),
    ])
    edge_type = tap.reshape(1, -1).expand(batch_size, -1).reshape(-1)
    return edge_index, edge_type
