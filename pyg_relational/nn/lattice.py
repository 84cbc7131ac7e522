r"""Convolution as message passing on a grid: one weight matrix per kernel
offset (edge type), shared over the lattice."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import PairTensor

from .._checks import (check_edge_index, check_edge_vector, check_features,
                       check_int)
from ..graphs import grid_graph
from .typed import gather_typed, typed_aggregate, typed_transform

__all__ = ['LatticeConv']

_IntOrTuple = Union[int, Sequence[int]]


class LatticeConv(MessagePassing):
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

    The weights are never materialised per edge. The default fused path
    (:func:`~pyg_relational.nn.typed.typed_aggregate`) loops over offsets:
    gather the sources of that offset, multiply by :math:`\mathbf{W}_t`,
    add to the targets, and recomputes the gathers in backward, so memory
    stays near a dense convolution's. Offsets that are translations of the
    node numbering (every offset of a stride-1 grid whose output grid is
    its input grid, e.g. ``padding='same'``) skip the gather and scatter:
    a shifted, border-masked slice of the input is multiplied straight into
    the output rows. ``fused=False`` runs the reference
    path through :meth:`message`: every node is transformed by every offset
    (:func:`~pyg_relational.nn.typed.typed_transform`, ``[N, T, C_out]``)
    and each edge picks its row
    (:func:`~pyg_relational.nn.typed.gather_typed`).

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
        fused (bool, optional): use the memory-lean fused path instead of
            :meth:`message` + aggregation; both compute the same numbers.
            (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}_s|, C_{in})` (or a
          pair, of which only the source part is used), edge indices
          :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|)`
        - **output:** node features :math:`(|\mathcal{V}_t|, C_{out})`

    .. note::
        Output nodes are the targets of the graph. When the output grid
        differs from the input grid (no ``'same'`` padding, stride > 1),
        pass ``size=(num_input_nodes, num_output_nodes)`` — the third value
        :func:`grid_graph` returns gives the output grid. Targets without
        incoming edges get :math:`\mathbf{b}` (zeros without bias).

    .. note::
        The fused path is differentiable once (no double backward); use
        ``fused=False`` for higher-order gradients.

    Example:
        >>> conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        >>> layer = LatticeConv.from_module(conv)
        >>> image = torch.randn(2, 3, 5, 5)
        >>> edge_index, edge_type, out_size = layer.grid_graph((5, 5), 2)
        >>> out = layer(image_to_nodes(image), edge_index, edge_type)
        >>> torch.allclose(nodes_to_image(out, 2, *out_size), conv(image),
        ...                atol=1e-6)
        True
    """
    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: _IntOrTuple,
                 stride: _IntOrTuple = 1,
                 padding: Union[_IntOrTuple, str] = 0,
                 dilation: _IntOrTuple = 1, groups: int = 1,
                 bias: bool = True, fused: bool = True):
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
        self.fused = fused
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

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Tensor,
                edge_type: Tensor,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        if isinstance(x, (tuple, list)):
            x = x[0]
        if isinstance(x, Tensor) and x.dim() != 2:
            raise ValueError(f"'x' must be node features [N, "
                             f"{self.in_channels}] (got shape "
                             f"{tuple(x.shape)}); turn images into nodes with "
                             f"image_to_nodes(x)")
        check_features(x, self.in_channels)
        num_src = x.size(0)
        num_dst = num_src if size is None or size[1] is None else size[1]
        if size is not None and size[0] is not None and size[0] != num_src:
            raise ValueError(f"'size' says {size[0]} source nodes but 'x' "
                             f"has {num_src}; pass size=({num_src}, "
                             f"num_output_nodes)")
        check_edge_index(edge_index, num_src, num_dst)
        check_edge_vector(edge_type, edge_index.size(1), 'edge_type',
                          self.num_types)
        if self.fused:
            out = typed_aggregate(x, self.weight, edge_index, edge_type,
                                  num_dst, self.groups)
        else:
            h = typed_transform(x, self._dense_weight())  # [N, T, C_out]
            out = self.propagate(edge_index, h=h, edge_type=edge_type,
                                 size=(num_src, num_dst))
        if self.bias is not None:
            out = out + self.bias
        return out

    def message(self, h: Tensor, edge_index_j: Tensor,
                edge_type: Tensor) -> Tensor:
        # x_j W_{t_ji} = h[j, t_ji] with h = typed_transform(x, W)
        return gather_typed(h, edge_index_j, edge_type)  # [E, C_out]

    def _dense_weight(self) -> Tensor:
        """``[T, C_in, C_out]``, block-diagonal over groups (zeros off the
        blocks) for the reference path."""
        if self.groups == 1:
            return self.weight
        t, ci, c_out = self.weight.shape
        g = self.groups
        co = c_out // g
        blocks = self.weight.view(t, ci, g, co)  # [T, ci, G, co]
        eye = torch.eye(g, dtype=self.weight.dtype, device=self.weight.device)
        dense = blocks.unsqueeze(1) * eye.view(1, g, 1, g, 1)  # [T,G,ci,G,co]
        return dense.reshape(t, g * ci, c_out)

    @classmethod
    def from_module(cls, module: torch.nn.Module,
                    fused: bool = True) -> 'LatticeConv':
        r"""The graph twin of a :class:`torch.nn.Conv1d` or
        :class:`torch.nn.Conv2d` (zero padding only), with its weights
        copied."""
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
                    bias=module.bias is not None, fused=fused)
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
