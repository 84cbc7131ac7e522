r"""Sequences and images as graphs.

Two :class:`torch_geometric.transforms.BaseTransform` s turn one example into a
:class:`~torch_geometric.data.Data` graph, and four helpers move whole dense
batches to flat node tensors (the layout of every layer in
:mod:`pyg_relational.nn`) and back:

* a batch of sequences ``[B, T, F]`` becomes ``x [N, F]`` sequence after
  sequence, time within (padding dropped when ``lengths`` are given);
* a batch of images ``[B, C, H, W]`` becomes ``x [B*H*W, C]`` image after
  image, pixels row-major.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import to_dense_batch

from ._checks import check_choice, check_int, check_sizes
from .graphs import (chain_graph, complete_graph, grid_graph,
                     relative_position, window_graph)
from .structure import structure_of

__all__ = [
    'SequenceToGraph', 'ImageToGraph', 'sequence_to_nodes',
    'nodes_to_sequence', 'image_to_nodes', 'nodes_to_image'
]


class SequenceToGraph(BaseTransform):
    r"""Turns a sequence ``data.x [T, F]`` into a graph over its timesteps.

    Sets ``edge_index``, ``pos`` (the position ``t`` of every node),
    ``structure`` (the :class:`~pyg_relational.structure.GraphStructure` of
    the graph: :class:`~pyg_relational.structure.Chains`,
    :class:`~pyg_relational.structure.CompleteBlocks` or
    :class:`~pyg_relational.structure.Windows`; after batching,
    :func:`~pyg_relational.structure.structure_of` joins it back into one
    value) and, with ``relative_clip=k``, ``edge_type`` = clipped relative
    position (:func:`~pyg_relational.graphs.relative_position`).

    Args:
        structure (str, optional): ``'chain'`` (:math:`t-1 \to t`),
            ``'complete'``, ``'causal'`` (complete with :math:`j \le i`) or
            ``'window'`` (:math:`|j - i| \le` ``radius``).
            (default: :obj:`'chain'`)
        radius (int, optional): window half-width, required for
            ``'window'``. (default: :obj:`None`)
        relative_clip (int, optional): also store clipped relative positions
            as ``edge_type``. (default: :obj:`None`)

    Example:
        >>> data = SequenceToGraph('causal')(Data(x=torch.randn(3, 4)))
        >>> data.edge_index
        tensor([[0, 0, 1, 0, 1, 2],
                [0, 1, 1, 2, 2, 2]])
    """
    STRUCTURES = ('chain', 'complete', 'causal', 'window')

    def __init__(self, structure: str = 'chain', radius: Optional[int] = None,
                 relative_clip: Optional[int] = None):
        self.structure = check_choice(structure, self.STRUCTURES, 'structure')
        if structure == 'window':
            if radius is None:
                raise ValueError("structure='window' needs 'radius' (an int "
                                 ">= 0)")
            radius = check_int(radius, 'radius', minimum=0)
        self.radius = radius
        if relative_clip is not None:
            relative_clip = check_int(relative_clip, 'relative_clip', 0)
        self.relative_clip = relative_clip

    def build(self, sizes) -> Tensor:
        """The ``edge_index`` of this structure for a batch of sequences of
        the given lengths."""
        if self.structure == 'chain':
            return chain_graph(sizes)
        if self.structure == 'window':
            return window_graph(sizes, sizes, self.radius)
        return complete_graph(sizes, causal=self.structure == 'causal')

    def forward(self, data: Data) -> Data:
        x = data.x
        if not isinstance(x, Tensor) or x.dim() not in (1, 2):
            raise ValueError(f"SequenceToGraph expects data.x of shape [T, F] "
                             f"or [T] (got {getattr(x, 'shape', x)})")
        length = x.size(0)
        edge_index = self.build(length)
        data.structure = structure_of(edge_index)  # registered by the builder
        data.edge_index = edge_index.to(x.device)
        data.pos = torch.arange(length, device=x.device)
        if self.relative_clip is not None:
            data.edge_type = relative_position(data.edge_index, data.pos,
                                               self.relative_clip)
        return data

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.structure!r}, '
                f'radius={self.radius}, relative_clip={self.relative_clip})')


class ImageToGraph(BaseTransform):
    r"""Turns an image ``[C, H, W]`` (a tensor, or ``data.x``) into a graph
    over its pixels: ``x [H*W, C]`` (row-major), ``pos [H*W, 2]`` (row,
    column), ``edge_index``, ``structure`` (a
    :class:`~pyg_relational.structure.Grid` or
    :class:`~pyg_relational.structure.CompleteBlocks`; after batching,
    :func:`~pyg_relational.structure.structure_of` joins it back into one
    value, e.g. a :class:`~pyg_relational.structure.Grid` with
    ``batch_size=B``) and, for ``'grid'``, ``edge_type`` (kernel offset,
    see :func:`~pyg_relational.graphs.grid_graph`). Other attributes of
    ``data`` (e.g. ``y``) are kept.

    Args:
        structure (str, optional): ``'grid'`` (a convolution's receptive
            field, ``padding='same'``) or ``'complete'`` (every pixel to
            every pixel, as in a non-local block). (default: :obj:`'grid'`)
        kernel_size (int or (int, int), optional): receptive field for
            ``'grid'``. (default: :obj:`3`)
        dilation (int or (int, int), optional): dilation for ``'grid'``.
            (default: :obj:`1`)

    Example:
        >>> data = ImageToGraph('grid', kernel_size=3)(torch.randn(2, 4, 4))
        >>> data.x.shape, data.edge_index.shape, data.edge_type.max().item()
        (torch.Size([16, 2]), torch.Size([2, 100]), 8)
    """
    STRUCTURES = ('grid', 'complete')

    def __init__(self, structure: str = 'grid', kernel_size=3, dilation=1):
        self.structure = check_choice(structure, self.STRUCTURES, 'structure')
        self.kernel_size = kernel_size
        self.dilation = dilation

    def forward(self, data: Union[Data, Tensor]) -> Data:
        if isinstance(data, Tensor):
            data = Data(x=data)
        image = data.x
        if not isinstance(image, Tensor) or image.dim() != 3:
            raise ValueError(f"ImageToGraph expects an image of shape "
                             f"[C, H, W] (got {getattr(image, 'shape', image)})"
                             f"; add a channel dimension with unsqueeze(0)")
        _, h, w = image.shape
        data.x = image_to_nodes(image.unsqueeze(0))
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w),
                                    indexing='ij')
        data.pos = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)
        data.pos = data.pos.to(image.device, torch.get_default_dtype())
        if self.structure == 'grid':
            edge_index, edge_type, _ = grid_graph(
                (h, w), self.kernel_size, padding='same',
                dilation=self.dilation)
            data.edge_type = edge_type.to(image.device)
        else:
            edge_index = complete_graph(h * w)
        data.structure = structure_of(edge_index)  # registered by the builder
        data.edge_index = edge_index.to(image.device)
        return data

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.structure!r}, '
                f'kernel_size={self.kernel_size}, dilation={self.dilation})')


def sequence_to_nodes(
        x: Tensor, lengths: Optional[Tensor] = None,
        mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    r"""A dense batch of sequences ``[B, T, F]`` as flat nodes.

    Args:
        x (Tensor): ``[B, T, F]`` (batch first).
        lengths (Tensor, optional): ``[B]`` valid length of each sequence;
            the padding after it is dropped. (default: :obj:`None`)
        mask (Tensor, optional): ``[B, T]`` boolean, :obj:`True` for valid
            steps (an alternative to ``lengths``; valid steps must come first).
            (default: :obj:`None`)

    Returns:
        ``(x [N, F], batch [N], lengths [B])``.
    """
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"'x' must have shape [B, T, F] (got "
                         f"{getattr(x, 'shape', x)}); use x.unsqueeze(-1) for "
                         f"scalar features")
    b, t, _ = x.shape
    if lengths is not None and mask is not None:
        raise ValueError("Pass either 'lengths' or 'mask', not both")
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise ValueError(f"'mask' must be a bool tensor of shape "
                             f"[{b}, {t}] (got {type(mask).__name__})")
        if mask.shape != (b, t) or mask.dtype != torch.bool:
            raise ValueError(f"'mask' must be a bool tensor of shape "
                             f"[{b}, {t}] (got {mask.dtype}, "
                             f"{tuple(mask.shape)})")
        lengths = mask.sum(1)
        if not torch.equal(mask, _length_mask(lengths, t)):
            raise ValueError("'mask' must mark a prefix of each sequence "
                             "(valid steps first, padding after)")
    if lengths is None:
        lengths = torch.full((b, ), t, dtype=torch.long)
    lengths = check_sizes(lengths, 'lengths')
    if lengths.numel() != b or (b > 0 and int(lengths.max()) > t):
        raise ValueError(f"'lengths' must have {b} entries, each <= {t} "
                         f"(got {lengths.tolist()})")
    lengths = lengths.to(x.device)
    keep = _length_mask(lengths, t)
    batch = torch.arange(b, device=x.device).repeat_interleave(lengths)
    return x[keep], batch, lengths


def _length_mask(lengths: Tensor, t: int) -> Tensor:
    return torch.arange(t, device=lengths.device).view(1, -1) \
        < lengths.view(-1, 1)


def nodes_to_sequence(x: Tensor, batch: Tensor,
                      batch_size: Optional[int] = None,
                      max_length: Optional[int] = None,
                      fill_value: float = 0.) -> Tuple[Tensor, Tensor]:
    r"""Flat nodes back to a padded batch ``[B, T, F]`` and its mask
    ``[B, T]`` (the inverse of :func:`sequence_to_nodes`; a thin wrapper of
    :func:`torch_geometric.utils.to_dense_batch`).

    Args:
        x (Tensor): ``[N, F]`` nodes, sequence after sequence.
        batch (LongTensor): ``[N]`` sequence of every node, sorted
            (non-decreasing), as :func:`sequence_to_nodes` returns it.
        batch_size (int, optional): :math:`B` (default: ``batch.max() + 1``).
        max_length (int, optional): :math:`T`, at least the longest
            sequence; nothing is ever dropped (default: the longest).
        fill_value (float, optional): value of the padding. (default: ``0``)
    """
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise ValueError(f"'x' must be a tensor [N, F] (got "
                         f"{getattr(x, 'shape', type(x).__name__)})")
    if not isinstance(batch, Tensor) or batch.dim() != 1 or \
            batch.dtype != torch.long or batch.numel() != x.size(0):
        got = (f'{tuple(batch.shape)}, {batch.dtype}' if isinstance(
            batch, Tensor) else type(batch).__name__)
        raise ValueError(f"'batch' must be a 1-D long tensor with one entry "
                         f"per row of 'x' ({x.size(0)}) (got {got})")
    counts = batch.new_zeros(0)
    if batch.numel() > 0:
        if int(batch.min()) < 0:
            raise IndexError(f"'batch' contains a negative sequence index "
                             f"({int(batch.min())})")
        down = (batch[1:] < batch[:-1]).nonzero()
        if down.numel() > 0:
            k = int(down[0]) + 1
            raise ValueError(
                f"'batch' must be sorted (sequence after sequence): row {k} "
                f"belongs to sequence {int(batch[k])} after a row of "
                f"sequence {int(batch[k - 1])}; sort first with "
                f"perm = batch.argsort(stable=True) and pass x[perm], "
                f"batch[perm]")
        counts = torch.bincount(batch)
    if batch_size is not None:
        batch_size = check_int(batch_size, 'batch_size', 0)
        if batch_size < counts.numel():
            raise ValueError(f"'batch_size' ({batch_size}) is smaller than "
                             f"the number of sequences in 'batch' "
                             f"({counts.numel()})")
    if max_length is not None:
        max_length = check_int(max_length, 'max_length', 0)
        longest = int(counts.max()) if counts.numel() > 0 else 0
        if max_length < longest:
            raise ValueError(
                f"'max_length' ({max_length}) is shorter than sequence "
                f"{int(counts.argmax())} ({longest} rows); rows would be "
                f"dropped. Pass max_length >= {longest}, or cut the "
                f"sequences before calling")
    return to_dense_batch(x, batch, fill_value=fill_value,
                          max_num_nodes=max_length, batch_size=batch_size)


def image_to_nodes(x: Tensor) -> Tensor:
    r"""Images ``[B, C, H, W]`` (or ``[B, C, L]``) as nodes
    ``[B*H*W, C]``: image after image, pixels row-major."""
    if not isinstance(x, Tensor) or x.dim() < 3:
        raise ValueError(f"'x' must have shape [B, C, ...spatial] (got "
                         f"{getattr(x, 'shape', x)})")
    c = x.size(1)
    dims = list(range(2, x.dim()))
    return x.permute(0, *dims, 1).reshape(-1, c)  # [B * prod(spatial), C]


def nodes_to_image(x: Tensor, batch_size: int, *spatial: int) -> Tensor:
    r"""Nodes ``[B*H*W, C]`` back to images ``[B, C, H, W]`` (the inverse of
    :func:`image_to_nodes`)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"'x' must be a tensor [B*H*W, C] (got "
                         f"{type(x).__name__})")
    count = check_int(batch_size, 'batch_size', 0)
    for s in spatial:
        count *= check_int(s, 'spatial size', 0)
    if x.dim() != 2 or x.size(0) != count:
        raise ValueError(f"'x' must have shape [{count}, C] for batch_size="
                         f"{batch_size} and spatial size {spatial} (got "
                         f"{tuple(x.shape)})")
    out = x.view(batch_size, *spatial, x.size(1))  # [B, *spatial, C]
    return out.permute(0, out.dim() - 1,
                       *range(1, out.dim() - 1)).contiguous()
