r"""Graph builders: the relational inductive bias of a classic operator,
written as an ``edge_index``.

Every builder works on a whole batch at once: it takes per-graph sizes (an
``int`` for a single graph, or a 1-D sequence/tensor with one size per graph)
and lays the graphs end to end, as :class:`torch_geometric.data.Batch` does.
Edges follow PyG's ``flow='source_to_target'`` convention:
``edge_index[0]`` is the source :math:`j` (sender), ``edge_index[1]`` the
target :math:`i` (receiver), and every builder returns its edges sorted by
target (then by source), so a CSR ``ptr`` is one ``cumsum`` away.

Example:
    >>> chain_graph([3, 2])
    tensor([[0, 1, 3],
            [1, 2, 4]])
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import _edges
from ._checks import (SizeLike, check_edge_index, check_int, check_sizes)
from .structure import (BipartiteBlocks, Chains, CompleteBlocks,
                        GraphStructure, Grid, Windows, register)

__all__ = [
    'chain_graph', 'complete_graph', 'bipartite_graph', 'window_graph',
    'grid_graph', 'relative_position'
]


def _registered(structure: GraphStructure) -> Tensor:
    """The graph of ``structure``, built afresh and registered as its."""
    return register(structure.build(), structure)


def chain_graph(sizes: SizeLike, reverse: bool = False) -> Tensor:
    r"""The chain of a recurrence: :math:`t-1 \to t` within every sequence
    (:math:`t+1 \to t` with ``reverse=True``, the backward direction of a
    bidirectional RNN).

    Args:
        sizes (int or Sequence[int] or Tensor): sequence length(s).
        reverse (bool, optional): point edges from :math:`t+1` to :math:`t`.
            (default: :obj:`False`)

    Returns:
        :class:`LongTensor` ``[2, sum(n - 1)]``.

    Example:
        >>> chain_graph(3, reverse=True)
        tensor([[1, 2],
                [0, 1]])
    """
    return _registered(Chains(check_sizes(sizes), reverse=bool(reverse)))


def complete_graph(sizes: SizeLike, self_loops: bool = True,
                   causal: bool = False) -> Tensor:
    r"""All pairs :math:`j \to i` within every graph: the graph of
    self-attention and of the non-local block.

    Args:
        sizes (int or Sequence[int] or Tensor): number of nodes per graph.
        self_loops (bool, optional): include :math:`i \to i`.
            (default: :obj:`True`)
        causal (bool, optional): keep only :math:`j \le i` (position within
            the graph), the graph of a causal attention mask.
            (default: :obj:`False`)

    Returns:
        :class:`LongTensor` ``[2, E]``.

    Example:
        >>> complete_graph(3, causal=True)
        tensor([[0, 0, 1, 0, 1, 2],
                [0, 1, 1, 2, 2, 2]])
    """
    return _registered(CompleteBlocks(check_sizes(sizes), causal=bool(causal),
                                      self_loops=bool(self_loops)))


def bipartite_graph(src_sizes: SizeLike, dst_sizes: SizeLike) -> Tensor:
    r"""Every source node of graph :math:`b` to every target node of graph
    :math:`b`: a fully-connected layer (units to units) or global attention
    (encoder states to decoder steps).

    Source and target nodes are numbered separately, so use it with
    ``size=(sum(src_sizes), sum(dst_sizes))``.

    Args:
        src_sizes (int or Sequence[int] or Tensor): sources per graph.
        dst_sizes (int or Sequence[int] or Tensor): targets per graph.

    Example:
        >>> bipartite_graph(2, 2)
        tensor([[0, 1, 0, 1],
                [0, 0, 1, 1]])
    """
    return _registered(BipartiteBlocks(*_paired_sizes(src_sizes, dst_sizes)))


def window_graph(src_sizes: SizeLike, dst_sizes: SizeLike, radius: int,
                 centers: Optional[Tensor] = None) -> Tensor:
    r"""Local attention: target :math:`t` receives from the sources of its
    graph at positions :math:`s \in [c_t - r, c_t + r]` (clipped to the
    sequence). :math:`c_t = t` by default (Luong et al.'s *local-m*); pass
    ``centers`` (one per target, integer or real, e.g. *local-p*'s
    :math:`p_t`) to move the windows.

    Args:
        src_sizes (int or Sequence[int] or Tensor): sources per graph.
        dst_sizes (int or Sequence[int] or Tensor): targets per graph.
        radius (int): half-width :math:`r \ge 0` of the window.
        centers (Tensor, optional): window centre per target node, as a
            position inside the source sequence. (default: :obj:`None`)

    Example:
        >>> window_graph(3, 3, radius=1)
        tensor([[0, 1, 0, 1, 2, 1, 2],
                [0, 0, 1, 1, 1, 2, 2]])
    """
    src_sizes, dst_sizes = _paired_sizes(src_sizes, dst_sizes)
    radius = check_int(radius, 'radius', minimum=0)
    if centers is None:
        return _registered(Windows(src_sizes, dst_sizes, radius))
    return _edges.window(src_sizes, dst_sizes, radius,
                         _checked_centers(centers, int(dst_sizes.sum())))


def _checked_centers(centers, num_dst: int) -> Tensor:
    """``centers`` as a finite float64 CPU vector of ``num_dst`` entries."""
    if not isinstance(centers, Tensor) or centers.dim() != 1 \
            or centers.numel() != num_dst:
        shape = tuple(centers.shape) if isinstance(centers, Tensor) \
            else centers
        raise ValueError(f"'centers' must be a 1-D tensor with one entry "
                         f"per target node ({num_dst}); got {shape}")
    if centers.dtype == torch.bool or centers.is_complex():
        raise ValueError(f"'centers' must hold real positions (got "
                         f"dtype={centers.dtype})")
    centers = centers.detach().cpu().to(torch.float64)
    bad = ~torch.isfinite(centers)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"'centers' must be finite: target {first} has centre "
            f"{float(centers[first])} ({int(bad.sum())} non-finite in "
            f"all); a NaN centre has no window (check the input that "
            f"produced the positions, e.g. a local-p query with NaN)")
    return centers


def _paired_sizes(src_sizes: SizeLike,
                  dst_sizes: SizeLike) -> Tuple[Tensor, Tensor]:
    src_sizes = check_sizes(src_sizes, 'src_sizes')
    dst_sizes = check_sizes(dst_sizes, 'dst_sizes')
    if src_sizes.numel() != dst_sizes.numel():
        raise ValueError(f"'src_sizes' and 'dst_sizes' must describe the same "
                         f"number of graphs (got {src_sizes.numel()} and "
                         f"{dst_sizes.numel()})")
    return src_sizes, dst_sizes


def _tuple(value, dims: int, name: str, minimum: int) -> Tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ValueError(f"'{name}' must have {dims} entries for a "
                             f"{dims}-D grid (got {value!r})")
        return tuple(check_int(v, name, minimum) for v in value)
    return (check_int(value, name, minimum), ) * dims


def grid_graph(
    size: Union[int, Sequence[int]],
    kernel_size: Union[int, Sequence[int]],
    stride: Union[int, Sequence[int]] = 1,
    padding: Union[int, Sequence[int], str] = 0,
    dilation: Union[int, Sequence[int]] = 1,
    batch_size: int = 1,
) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    r"""The receptive fields of a convolution as a typed bipartite graph.

    Source :math:`j` is an input position, target :math:`i` an output
    position, and ``edge_type`` is the kernel offset joining them, numbered
    row-major as in ``Conv2d.weight[:, :, dy, dx]`` (``dy * kW + dx``; ``dx``
    for 1-D). Exactly the pairs that :class:`torch.nn.Conv1d` /
    :class:`torch.nn.Conv2d` multiply with the same ``kernel_size``,
    ``stride``, ``padding`` and ``dilation`` are edges; a tap that falls on
    zero padding has no edge.

    Input nodes are numbered image after image, positions row-major
    (``x.permute(0, 2, 3, 1).reshape(-1, C)``); output nodes likewise on the
    output grid.

    Args:
        size (int or (int, int)): input length (1-D) or ``(H, W)`` (2-D).
        kernel_size (int or tuple): kernel size per dimension.
        stride (int or tuple, optional): stride. (default: :obj:`1`)
        padding (int or tuple or str, optional): zero padding per side, or
            ``'same'`` (stride 1 only, as in PyTorch). (default: :obj:`0`)
        dilation (int or tuple, optional): spacing of kernel taps.
            (default: :obj:`1`)
        batch_size (int, optional): number of images laid end to end.
            (default: :obj:`1`)

    Returns:
        ``(edge_index [2, E], edge_type [E], out_size)`` where ``out_size`` is
        the output length (1-D) or ``(H_out, W_out)`` (2-D).

    Example:
        >>> edge_index, edge_type, out_size = grid_graph(3, kernel_size=2)
        >>> edge_index
        tensor([[0, 1, 1, 2],
                [0, 0, 1, 1]])
        >>> edge_type, out_size
        (tensor([0, 1, 0, 1]), 2)
    """
    one_d = not isinstance(size, (tuple, list))
    dims = 1 if one_d else len(size)
    if dims not in (1, 2):
        raise ValueError(f"'size' must be an int (1-D) or (H, W) (2-D); "
                         f"got {size!r}")
    size = _tuple(size, dims, 'size', 0)
    kernel = _tuple(kernel_size, dims, 'kernel_size', 1)
    stride = _tuple(stride, dims, 'stride', 1)
    dilation = _tuple(dilation, dims, 'dilation', 1)
    batch_size = check_int(batch_size, 'batch_size', 0)
    if isinstance(padding, str):
        if padding != 'same':
            raise ValueError(f"Unknown padding={padding!r}; expected an int, "
                             f"a tuple of ints or 'same'")
        if any(s != 1 for s in stride):
            raise ValueError("padding='same' needs stride=1 (as in PyTorch); "
                             f"got stride={stride}")
    else:
        padding = _tuple(padding, dims, 'padding', 0)
    grid = Grid(size, kernel, stride, padding, dilation, batch_size)
    out_size = grid.out_size  # checks that the kernel fits
    edge_index, edge_type = grid.build_typed()
    register(edge_index, grid)
    return edge_index, edge_type, (out_size[0] if one_d else out_size)


def relative_position(edge_index: Tensor,
                      position: Union[Tensor, Tuple[Tensor, Tensor]],
                      clip: int) -> Tensor:
    r"""Clipped relative position of every edge as a type in
    :math:`[0, 2k]`: :math:`\mathrm{clip}(p_j - p_i, -k, k) + k` (Shaw et
    al., 2018).

    Args:
        edge_index (LongTensor): ``[2, E]``.
        position (LongTensor or (LongTensor, LongTensor)): position of every
            node, or ``(position_src, position_dst)`` for bipartite graphs.
        clip (int): maximum distance :math:`k \ge 0`.

    Example:
        >>> relative_position(chain_graph(3), torch.arange(3), clip=1)
        tensor([0, 0])
    """
    clip = check_int(clip, 'clip', minimum=0)
    pos_src, pos_dst = position if isinstance(position, (tuple, list)) \
        else (position, position)
    checked = []
    for p in (pos_src, pos_dst):
        if not isinstance(p, Tensor) or p.dim() != 1:
            raise ValueError(f"'position' must be a 1-D tensor with one entry "
                             f"per node (got {getattr(p, 'shape', p)})")
        if p.dtype == torch.bool or p.is_complex():
            raise ValueError(f"'position' must hold integer positions (got "
                             f"dtype={p.dtype})")
        if p.is_floating_point():
            whole = torch.isfinite(p) & (p == torch.round(p))
            if not bool(whole.all()):
                bad = int((~whole).nonzero()[0])
                raise ValueError(
                    f"'position' must hold whole numbers: node {bad} has "
                    f"position {float(p[bad])} (dtype={p.dtype}); a "
                    f"relative position is an edge type, so round the "
                    f"positions yourself (e.g. position.round().long()) "
                    f"rather than have them truncated")
        checked.append(p.long())  # int64: no uint8 wrap-around below
    pos_src, pos_dst = checked
    check_edge_index(edge_index, pos_src.numel(), pos_dst.numel())
    delta = pos_src[edge_index[0]] - pos_dst[edge_index[1]]
    return delta.clamp(-clip, clip) + clip
