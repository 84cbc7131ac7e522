r"""Convolution as message passing on a grid: one weight matrix per kernel
offset (edge type), shared over the lattice."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import PairTensor

from .._checks import (check_edge_index, check_edge_vector, check_node_features,
                       check_int)
from .._cache import same_state, tensor_cache, tensor_state
from ..graphs import grid_graph
from ..structure import GraphStructure, Grid, _known, register
from .._torch import autocast_on, compiling
from ._paths import GraphInput, PathLayer
from .typed import (_group_mm_tn, _plan, _TypedAggregate, gather_typed,
                    typed_transform)

__all__ = ['LatticeConv']

_IntOrTuple = Union[int, Sequence[int]]


class LatticeConv(PathLayer, MessagePassing):
    r"""The convolution operator as message passing on a grid graph
    (LeCun et al., `"Gradient-Based Learning Applied to Document
    Recognition" <http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf>`_):
    every edge :math:`j \to i` carries the kernel offset
    :math:`t_{ji}` joining input position :math:`j` to output position
    :math:`i`, and the weights of an offset are shared over the grid

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{b} + \sum_{j \to i}
        \mathbf{x}_j \mathbf{W}_{t_{ji}}.

    On the graphs of :func:`~pyg_relational.graphs.grid_graph` it computes
    exactly :class:`torch.nn.Conv1d` / :class:`torch.nn.Conv2d` (zero padding
    is an absent edge; stride and dilation change which pixels connect), but
    it runs on any graph whose edges carry a type in
    ``[0, prod(kernel_size))``.

    Three paths compute this formula (``path``; the one that ran is
    ``layer.last_path``, the reasons faster ones did not in
    ``layer.why_not_faster``):

    * ``'dense'``: on a graph whose structure is a
      :class:`~pyg_relational.structure.Grid` with this layer's kernel (the
      ``edge_index`` returned by :func:`~pyg_relational.graphs.grid_graph`
      or :meth:`grid_graph`, a :class:`Grid` passed instead of it, or
      ``structure_of(batch)`` after collating
      :class:`~pyg_relational.transforms.ImageToGraph` graphs) and with the
      grid's own kernel offsets as ``edge_type``, it calls
      :func:`torch.nn.functional.conv1d` / :func:`~torch.nn.functional.conv2d`
      with the grid's stride, padding and dilation. The nodes are viewed as
      channels-last images, so nothing is copied in or out.
    * ``'sparse'``: any typed graph. Per offset, the sources of that offset
      are gathered, multiplied by :math:`\mathbf{W}_t` and added to their
      targets; backward recomputes the gathers, so nothing per edge is kept.
    * ``'message'``: the reference, through :meth:`message`: every node is
      transformed by every offset
      (:func:`~pyg_relational.nn.typed.typed_transform`, ``[N, T, C_out]``)
      and each edge picks its row
      (:func:`~pyg_relational.nn.typed.gather_typed`).

    ``'auto'`` takes the first of these that applies and the message path
    under PyG explain or message-passing hooks; while
    :func:`torch.compile` traces, a tensor ``edge_index`` cannot be looked
    up, so only a :class:`Grid` passed as the graph runs densely. All paths
    give the same numbers, also second-order gradients.

    Args:
        in_channels (int): input channels :math:`C_{in}`.
        out_channels (int): output channels :math:`C_{out}`.
        kernel_size (int or tuple): kernel size; an ``int`` means a 1-D
            kernel, a tuple ``(kH, kW)`` a 2-D one (``(k,)`` is 1-D). The
            number of edge types is ``prod(kernel_size)``.
        stride (int or tuple, optional): stored for :meth:`grid_graph`
            only; the graph decides the computation. (default: :obj:`1`)
        padding (int or tuple or str, optional): stored for
            :meth:`grid_graph`. (default: :obj:`0`)
        dilation (int or tuple, optional): stored for :meth:`grid_graph`.
            (default: :obj:`1`)
        groups (int, optional): channel groups, as in :class:`nn.Conv2d`:
            input block :math:`g` feeds output block :math:`g` only.
            (default: :obj:`1`)
        bias (bool, optional): learn the additive bias :math:`\mathbf{b}`.
            (default: :obj:`True`)
        path (str, optional): ``'auto'``, ``'dense'``, ``'sparse'`` or
            ``'message'`` (see above); a forced path that cannot run raises
            a :class:`ValueError`. (default: :obj:`'auto'`)
        fused: removed (a :class:`TypeError` naming ``path``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}_s|, C_{in})` (or a
          pair, of which only the source part is used), edge indices
          :math:`(2, |\mathcal{E}|)` or a :class:`Grid`, edge types
          :math:`(|\mathcal{E}|)` (implied by a :class:`Grid`)
        - **output:** node features :math:`(|\mathcal{V}_t|, C_{out})`

    .. note::
        Output nodes are the targets of the graph. When the output grid
        differs from the input grid (no ``'same'`` padding, stride > 1),
        pass ``size=(num_input_nodes, num_output_nodes)`` — the third value
        :func:`grid_graph` returns gives the output grid. Targets without
        incoming edges get :math:`\mathbf{b}` (zeros without bias).

    Example:
        >>> conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        >>> layer = LatticeConv.from_module(conv)
        >>> image = torch.randn(2, 3, 5, 5)
        >>> edge_index, edge_type, out_size = layer.grid_graph((5, 5), 2)
        >>> out = layer(image_to_nodes(image), edge_index, edge_type)
        >>> torch.allclose(nodes_to_image(out, 2, *out_size), conv(image),
        ...                atol=1e-6)
        True
        >>> layer.last_path
        'dense'
    """
    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: _IntOrTuple,
                 stride: _IntOrTuple = 1,
                 padding: Union[_IntOrTuple, str] = 0,
                 dilation: _IntOrTuple = 1, groups: int = 1,
                 bias: bool = True, path: str = 'auto',
                 fused: Optional[bool] = None):
        super().__init__(aggr='add')
        self.in_channels = check_int(in_channels, 'in_channels', 1)
        self.out_channels = check_int(out_channels, 'out_channels', 1)
        self.groups = check_int(groups, 'groups', 1)
        for name, c in (('in_channels', in_channels),
                        ('out_channels', out_channels)):
            if c % groups:
                raise ValueError(f"'{name}' ({c}) must be divisible by "
                                 f"'groups' ({groups})")
        if isinstance(kernel_size, (tuple, list)):
            if len(kernel_size) not in (1, 2):
                raise ValueError(f"'kernel_size' must be an int (1-D) or a "
                                 f"tuple of 1 or 2 ints (got {kernel_size!r})")
            kernel_size = tuple(
                check_int(k, 'kernel_size', 1) for k in kernel_size)
        else:
            kernel_size = (check_int(kernel_size, 'kernel_size', 1), )
        self.kernel_size: Tuple[int, ...] = kernel_size
        self.num_types = math.prod(kernel_size)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.init_paths(path, fused)
        # W_t = weight[t]: [T, C_in / groups, C_out]; group g uses columns
        # g * C_out / groups ... (g + 1) * C_out / groups.
        self.weight = Parameter(
            torch.empty(self.num_types, in_channels // groups, out_channels))
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        r"""The initialisation of :class:`torch.nn.Conv2d`."""
        super().reset_parameters()
        fan_in = self.weight.size(0) * self.weight.size(1)
        bound = 1 / math.sqrt(fan_in)
        # Conv2d's kaiming_uniform_(a=sqrt(5)) has this bound 1/sqrt(fan_in)
        torch.nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def grid_graph(self, size: Union[int, Sequence[int]],
                   batch_size: int = 1):
        r"""The graph of this layer's convolution on inputs of ``size``
        (see :func:`~pyg_relational.graphs.grid_graph`): returns
        ``(edge_index, edge_type, out_size)``."""
        one_d = len(self.kernel_size) == 1
        if one_d and isinstance(size, (tuple, list)) and len(size) == 1:
            size = size[0]
        if one_d == isinstance(size, (tuple, list)):
            expected = 'an int' if one_d else '(H, W)'
            raise ValueError(f"'size' must be {expected} for kernel_size="
                             f"{self.kernel_size} (got {size!r})")
        kernel = self.kernel_size[0] if one_d else self.kernel_size
        padding = 0 if self.padding == 'valid' else self.padding
        return grid_graph(size, kernel, self.stride, padding,
                          self.dilation, batch_size)

    def forward(self, x: Union[Tensor, PairTensor],
                edge_index: Union[Tensor, Grid],
                edge_type: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        r"""Returns the output node features ``[N_dst, C_out]``.

        ``edge_index`` may be a :class:`~pyg_relational.structure.Grid`
        instead of a tensor; ``edge_type`` is then implied (pass it only to
        use other types) and ``size`` follows from the grid."""
        if isinstance(x, (tuple, list)):
            x = x[0]
        check_node_features(x, self.in_channels, 'turn images into nodes '
                            'with image_to_nodes(x)')
        num_src = x.size(0)
        if size is not None and size[0] is not None and size[0] != num_src:
            raise ValueError(f"'size' says {size[0]} source nodes but 'x' "
                             f"has {num_src}; pass size=({num_src}, "
                             f"num_output_nodes)")
        given = edge_index
        graph = GraphInput(edge_index, num_src, device=x.device)
        graph.refuse_values('LatticeConv')
        grid = graph.structure if isinstance(graph.structure, Grid) else None
        if isinstance(given, GraphStructure):
            num_dst = given.num_dst_nodes
            if size is not None and size[1] is not None \
                    and size[1] != num_dst:
                raise ValueError(f"'size' says {size[1]} target nodes but "
                                 f"the structure {given!r} has {num_dst}")
            if grid is None and edge_type is None:
                raise ValueError(f"'edge_type' is needed with the structure "
                                 f"{given!r}: only a Grid implies it")
        else:
            num_dst = num_src if size is None or size[1] is None else size[1]
            if edge_type is None:
                raise ValueError("'edge_type' is needed with an edge_index "
                                 "tensor; pass the kernel offsets that "
                                 "grid_graph returns (or a Grid structure "
                                 "instead of edge_index)")
        dense_why = self._why_not_dense(grid, edge_type, num_dst)
        sparse_why = None
        if compiling():
            sparse_why = 'torch.compile traces (its plan is data-dependent)'
        elif autocast_on(x.device):
            sparse_why = 'autocast is on (the typed sum has no autocast rule)'
        path = self.choose_path({'dense': dense_why, 'sparse': sparse_why})
        if path == 'dense':
            return self._dense(x, grid)
        edge_index = graph.edge_index
        if edge_type is None:
            edge_type = grid.edge_type(x.device)
        if dense_why is not None:  # a verified grid needs no index checks
            check_edge_index(edge_index, num_src, num_dst)
            try:
                check_edge_vector(edge_type, edge_index.size(1), 'edge_type',
                                  self.num_types)
            except IndexError as error:
                raise IndexError(f'{error}{self._kernel_hint(grid)}') \
                    from None
        if path == 'sparse':
            plan = _typed_plan(edge_index, edge_type, self.num_types)
            out = _TypedSum.apply(x, self.weight, plan, num_dst, self.groups)
        else:
            h = self._transform(x)  # [N, T, C_out]
            out = self.propagate(edge_index, h=h, edge_type=edge_type,
                                 size=(num_src, num_dst))
        if self.bias is not None:
            out = out + self.bias
        return out

    def _kernel_hint(self, grid: Optional[Grid]) -> str:
        """Why edge types may exceed this layer's kernel: most often a 1-D
        ``kernel_size=3`` (3 offsets) on the graph of a 2-D 3 x 3 grid
        (9 offsets)."""
        kernel = self.kernel_size
        if grid is not None and grid.kernel_size != kernel:
            return (f"; the graph is a {grid.dims}-D grid with kernel_size="
                    f"{grid.kernel_size} ({math.prod(grid.kernel_size)} "
                    f"offsets) but this layer has kernel_size={kernel} "
                    f"({self.num_types}); build it with kernel_size="
                    f"{grid.kernel_size}")
        if len(kernel) == 1:
            k = kernel[0]
            return (f"; kernel_size={k} (an int) is a 1-D kernel with {k} "
                    f"offsets, while a 2-D grid graph (e.g. ImageToGraph, "
                    f"grid_graph((H, W), ...)) numbers {k * k} offsets: "
                    f"for images build the layer with kernel_size=({k}, {k})")
        return (f"; this layer's kernel_size={kernel} has {self.num_types} "
                f"offsets: build the graph with the same kernel_size "
                f"(layer.grid_graph(size) does)")

    def _why_not_dense(self, grid: Optional[Grid],
                       edge_type: Optional[Tensor],
                       num_dst: int) -> Optional[str]:
        """Why ``conv1d``/``conv2d`` cannot compute this call (or None)."""
        if grid is None:
            return ('the graph is not a known grid (pass the edge_index of '
                    'grid_graph, a Grid, or structure_of(batch))')
        if grid.kernel_size != self.kernel_size:
            return (f'the grid has kernel_size={grid.kernel_size}, the layer '
                    f'{self.kernel_size}')
        if grid.num_dst_nodes != num_dst:
            return (f'the grid has {grid.num_dst_nodes} output positions but '
                    f'{num_dst} target nodes were asked for; pass size=('
                    f'{grid.num_src_nodes}, {grid.num_dst_nodes})')
        if not _grid_types(edge_type, grid):
            return "'edge_type' is not the grid's kernel offsets"
        return None

    def _dense(self, x: Tensor, grid: Grid) -> Tensor:
        """The convolution on the images the nodes lay out (channels last
        in memory, so reshaping in and out copies nothing)."""
        c_in, c_out = self.in_channels, self.out_channels
        image = x.reshape(grid.batch_size, *grid.size, c_in).movedim(-1, 1)
        # [B, C_in, *size]; W_t = weight[t] -> [C_out, C_in / groups, *k],
        # copied (it is small) into the layout the kernel reads fastest: a
        # strided view of it made oneDNN's convolution ~2x slower.
        weight = self.weight.permute(2, 1, 0).reshape(c_out, -1,
                                                      *grid.kernel_size)
        weight = weight.contiguous(memory_format=torch.channels_last) \
            if grid.dims == 2 else weight.contiguous()
        padding = grid.padding
        if padding == 'same':  # explicit (asymmetric) padding, no warning
            total = [d * (k - 1) for k, d in zip(grid.kernel_size,
                                                 grid.dilation)]
            if all(t % 2 == 0 for t in total):
                padding = tuple(t // 2 for t in total)
            else:
                pads = []  # F.pad order: last dimension first
                for t in reversed(total):
                    pads += [t // 2, t - t // 2]
                image = F.pad(image, pads)
                padding = 0
        conv = F.conv1d if grid.dims == 1 else F.conv2d
        out = conv(image, weight, self.bias, grid.stride, padding,
                   grid.dilation, self.groups)  # [B, C_out, *out_size]
        return out.movedim(1, -1).reshape(-1, c_out)  # [B*prod(out), C_out]

    def message(self, h: Tensor, edge_index_j: Tensor,
                edge_type: Tensor) -> Tensor:
        # x_j W_{t_ji} = h[j, t_ji] with h = typed_transform(x, W)
        return gather_typed(h, edge_index_j, edge_type)  # [E, C_out]

    def _transform(self, x: Tensor) -> Tensor:
        """Every node by every offset, ``[N, T, C_out]``; with groups, each
        group's channels by its own block only (no zero blocks: a NaN or
        inf stays in its group, as in :class:`torch.nn.Conv2d`)."""
        if self.groups == 1:
            return typed_transform(x, self.weight)
        t, ci, c_out = self.weight.shape
        g = self.groups
        h = torch.einsum('ngc,tcgo->ntgo', x.reshape(-1, g, ci),
                         self.weight.view(t, ci, g, c_out // g))
        return h.reshape(x.size(0), t, c_out)  # [N, T, G * C_out / G]

    @classmethod
    def from_module(cls, module: torch.nn.Module, path: str = 'auto',
                    fused: Optional[bool] = None) -> 'LatticeConv':
        r"""The graph twin of a :class:`torch.nn.Conv1d` or
        :class:`torch.nn.Conv2d` (zero padding only), with its weights
        copied; ``path`` / ``fused`` (removed) as in the constructor."""
        if not isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
            raise ValueError(f"LatticeConv.from_module expects an nn.Conv1d "
                             f"or nn.Conv2d (got {type(module).__name__})")
        if module.padding_mode != 'zeros':
            raise ValueError(f"Only padding_mode='zeros' has a grid graph "
                             f"(got {module.padding_mode!r}); pad the input "
                             f"yourself and use padding=0")
        layer = cls(module.in_channels, module.out_channels,
                    tuple(module.kernel_size), stride=tuple(module.stride),
                    padding=module.padding if isinstance(module.padding, str)
                    else tuple(module.padding),
                    dilation=tuple(module.dilation), groups=module.groups,
                    bias=module.bias is not None, path=path, fused=fused)
        layer = layer.to(module.weight.device, module.weight.dtype)
        with torch.no_grad():
            # [C_out, C_in/g, *k] -> [T, C_in/g, C_out]
            layer.weight.copy_(module.weight.flatten(2).permute(2, 1, 0))
            if module.bias is not None:
                layer.bias.copy_(module.bias)
        return layer

    def __repr__(self) -> str:
        extra = f', groups={self.groups}' if self.groups != 1 else ''
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, kernel_size={self.kernel_size}'
                f'{extra})')


def _grid_types(edge_type: Optional[Tensor], grid: Grid) -> bool:
    """Whether ``edge_type`` holds exactly the kernel offsets of ``grid``
    (None: implied). Compared once per tensor, then remembered like a
    registered structure (by identity and in-place version)."""
    if edge_type is None:
        return True
    found, known = _known(edge_type)
    if found and known == grid:
        return True
    if compiling():
        return False
    expected = grid.edge_type(edge_type.device)
    same = edge_type is expected or (
        edge_type.shape == expected.shape and edge_type.dtype == expected.dtype
        and torch.equal(edge_type, expected))
    if same:
        register(edge_type, grid)
    return same


def _typed_plan(edge_index: Tensor, edge_type: Tensor, num_types: int):
    """The edges grouped by type (per type: sources and targets), cached
    with the graph's other patterns (``tensor_cache``) while neither
    tensor is freed or modified (the one validity rule of
    :mod:`pyg_relational._cache`)."""
    cache = tensor_cache(edge_index)
    key = ('typed-plan', num_types)
    entry = cache.get(key)
    if entry is None or not same_state(entry[0], edge_type):
        plan = _plan(edge_index, edge_type, num_types, shifts=False)
        entry = (tensor_state(edge_type), plan)
        cache[key] = entry
    return entry[1]


class _TypedSum(_TypedAggregate):
    # typed_aggregate's per-type gather plan, differentiable twice: under
    # create_graph the backward is computed with differentiable operations
    # (the input gradient is itself a typed sum, over the reversed edges
    # with the transposed weights); otherwise the fast backward runs.

    @staticmethod
    def backward(ctx, grad_out):
        if not torch.is_grad_enabled():
            return _TypedAggregate.backward(ctx, grad_out)
        x, weight = ctx.saved_tensors
        plan, groups = ctx.plan, ctx.groups
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x = grad_w = None
        if need_x:
            t, ci, c_out = weight.shape
            co = c_out // groups
            # W'_t [co, G*ci]: block g is W_t[:, g*co:(g+1)*co]^T
            weight_t = weight.view(t, ci, groups, co).permute(
                0, 3, 2, 1).reshape(t, co, groups * ci)
            reverse = [None if step is None else ('gather', step[2], step[1])
                       for step in plan]
            grad_x = _TypedSum.apply(grad_out, weight_t, reverse, x.size(0),
                                     groups)
        if need_w:
            grad_w = torch.stack([
                weight.new_zeros(weight.shape[1:]) if step is None else
                _group_mm_tn(x.index_select(0, step[1]),
                             grad_out.index_select(0, step[2]), groups)
                for step in plan])  # [T, C_in / groups, C_out]
        return grad_x, grad_w, None, None, None
