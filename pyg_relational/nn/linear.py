r"""A fully-connected layer as message passing between units."""
import math
from typing import Optional

import torch
from torch import Tensor
from torch.nn import Parameter
from torch.nn.parameter import UninitializedParameter
from torch_geometric.nn import MessagePassing

from .._checks import check_edge_index, check_features, check_int
from .._torch import compiling, plain_tensor
from ..graphs import bipartite_graph
from ._paths import GraphInput, PathLayer

__all__ = ['FullyConnectedConv']


class FullyConnectedConv(PathLayer, MessagePassing):
    r"""The fully-connected (linear) layer as message passing (Rosenblatt,
    `"The Perceptron" <https://doi.org/10.1037/h0042519>`_; the first row of
    the relational inductive-bias table of Battaglia et al., `"Relational
    inductive biases, deep learning, and graph networks"
    <https://arxiv.org/abs/1806.01261>`_).

    The *units* are the nodes: ``in_features`` input units send to
    ``out_features`` output units over the complete bipartite graph
    :func:`~pyg_relational.graphs.bipartite_graph`, with one weight
    :math:`w_{ji}` per edge and no sharing. The examples of a batch are the
    feature dimension of the unit nodes, so for one example

    .. math::
        x^{\prime}_i = b_i + \sum_{j \to i} w_{ji} \, x_j.

    On the complete graph this is :class:`torch.nn.Linear`
    (:meth:`from_module` copies its weights: edge :math:`e = i \cdot
    \mathrm{in} + j` holds ``linear.weight[i, j]``). Any other bipartite
    ``edge_index`` gives a sparsely connected layer.

    Two execution paths (:mod:`pyg_relational.nn._paths`): ``'dense'``
    (:meth:`message_and_aggregate`) scatters the edge weights into the
    ``[out, in]`` adjacency matrix and sums all messages in one matrix
    product; ``'message'`` materialises every message :math:`w_{ji} x_j`
    (``[E, B]``) in :meth:`message` and aggregates them. Both compute the
    same numbers; ``'auto'`` takes the dense path unless an explainer or
    hooks need the messages, or ``x`` holds a NaN or inf and the
    connectivity is not complete (``0 * NaN`` in the product would reach
    targets without an edge from that unit; one ``isfinite`` pass over
    ``x`` per call decides it, skipped under :func:`torch.compile`).
    ``layer.last_path`` says which ran, ``layer.why_not_faster`` why. The
    dense path itself zeroes units without outgoing edges, so their NaN
    never reaches the output.

    Args:
        in_features (int): number of input units; ``-1`` infers it from the
            first input (lazy, complete connectivity only).
        out_features (int): number of output units.
        bias (bool, optional): learn the bias :math:`b_i`.
            (default: :obj:`True`)
        edge_index (LongTensor or EdgeIndex or adj_t, optional): ``[2, E]``
            connections from input unit ``edge_index[0]`` to output unit
            ``edge_index[1]``, or an ``adj_t`` ``[out, in]``
            (``SparseTensor`` / ``torch.sparse``) whose *pattern* gives the
            connections (its values are not used: the weights are
            learned). (default: :obj:`None`: all pairs)
        path (str, optional): ``'auto'``, ``'dense'`` or ``'message'``.
            (default: :obj:`'auto'`)
        fused: removed (a :class:`TypeError` naming ``path``).

    Shapes:
        - **input:** :math:`(*, \mathrm{in})`, any leading batch dimensions
        - **output:** :math:`(*, \mathrm{out})`

    .. note::
        The weights are initialised like :class:`torch.nn.Linear`'s
        (uniform in :math:`\pm 1/\sqrt{\mathrm{in}}`), also for a sparse
        ``edge_index``.

    Example:
        >>> linear = torch.nn.Linear(4, 3)
        >>> layer = FullyConnectedConv.from_module(linear)
        >>> layer
        FullyConnectedConv(4, 3)
        >>> x = torch.randn(5, 4)
        >>> torch.allclose(layer(x), linear(x), atol=1e-6)
        True
    """
    def __init__(self, in_features: int, out_features: int,
                 bias: bool = True, edge_index=None,
                 fused: Optional[bool] = None, path: str = 'auto'):
        super().__init__(aggr='add')
        self.out_features = check_int(out_features, 'out_features', 1)
        self.init_paths(path, fused)
        self.complete = edge_index is None
        if in_features == -1 and not self.complete:
            raise ValueError("in_features=-1 (lazy) needs the complete "
                             "connectivity (edge_index=None): a given "
                             "'edge_index' fixes the input units")
        self.in_features = in_features if in_features == -1 else \
            check_int(in_features, 'in_features', 1)
        if edge_index is not None:
            graph = GraphInput(edge_index, in_features, out_features)
            graph.refuse_values('FullyConnectedConv (its weights are '
                                'learnt per edge)')
            edge_index = graph.edge_index
            check_edge_index(edge_index, in_features, out_features)
            edge_index = plain_tensor(edge_index).clone()
        elif in_features != -1:
            edge_index = bipartite_graph(in_features, out_features)
        self.register_buffer('edge_index', edge_index)
        self.weight = UninitializedParameter() if edge_index is None else \
            Parameter(torch.empty(edge_index.size(1)))  # [E]
        self.bias = Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        r"""The initialisation of :class:`torch.nn.Linear`."""
        super().reset_parameters()
        if self.in_features == -1:  # lazy: at the first input
            return
        bound = 1 / math.sqrt(self.in_features)
        torch.nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def _materialise(self, in_features: int):
        """Size a lazy layer for ``in_features`` input units."""
        self.in_features = check_int(in_features, 'in_features', 1)
        device = self.bias.device if self.bias is not None else None
        self.edge_index = bipartite_graph(in_features,
                                          self.out_features).to(device)
        self.weight.materialize((self.edge_index.size(1), ), device=device,
                                dtype=self.bias.dtype if self.bias
                                is not None else None)
        self.reset_parameters()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight = state_dict.get(prefix + 'weight')
        if self.in_features == -1 and weight is not None:
            self._materialise(weight.numel() // self.out_features)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_features == -1 and isinstance(x, Tensor) and x.dim() > 0:
            with torch.no_grad():
                self._materialise(x.size(-1))
        check_features(x, self.in_features)
        batch_shape = x.shape[:-1]
        h = x.reshape(-1, self.in_features).t()  # [in, B]: units x examples
        size = (self.in_features, self.out_features)
        dense_why = None
        if not self.complete and self.path == 'auto' and not compiling() \
                and not bool(torch.isfinite(x).all()):
            # 0 * NaN: the product over all pairs would carry a NaN / inf
            # to targets that receive no edge from its unit
            dense_why = ("'x' holds NaN or inf and the connectivity is not "
                         "complete: the dense product would spread them "
                         "beyond the unit's edges (0 * NaN)")
        if self.choose_path({'dense': dense_why}) == 'dense':
            out = self.message_and_aggregate(self.edge_index, h, self.weight)
        else:
            out = self.propagate(self.edge_index, x=h,
                                 edge_weight=self.weight, size=size)
        out = out.t()  # [B, out]
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*batch_shape, self.out_features)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j  # w_ji x_j: [E, B]

    def message_and_aggregate(self, edge_index: Tensor, x: Tensor,
                              edge_weight: Tensor) -> Tensor:
        r"""All :math:`\sum_{j \to i} w_{ji} x_j` at once: the edge weights
        form the ``[out, in]`` adjacency matrix :math:`A_{ij} = w_{ji}`
        (duplicate edges add up), times the unit features ``[in, B]``."""
        if self.complete:  # edges i * in + j, in order: a plain reshape
            adj = edge_weight.view(self.out_features, self.in_features)
        else:
            adj = edge_weight.new_zeros(self.out_features, self.in_features)
            adj = adj.index_put((edge_index[1], edge_index[0]), edge_weight,
                                accumulate=True)  # [out, in]
            # A unit with no outgoing edge sends no message: its column of
            # adj is 0, and 0 * NaN would still poison every row. Zero it
            # (a NaN in a unit with edges: 'auto' takes the message path,
            # see forward).
            sends = torch.zeros(self.in_features, dtype=torch.bool,
                                device=x.device)
            sends[edge_index[0]] = True  # [in]
            x = x.masked_fill(~sends.view(-1, 1), 0.)  # [in, B]
        return adj @ x  # [out, B]

    @classmethod
    def from_module(cls, module: torch.nn.Linear,
                    fused: Optional[bool] = None,
                    path: str = 'auto') -> 'FullyConnectedConv':
        r"""The graph twin of a :class:`torch.nn.Linear`, weights copied
        (``path`` / ``fused`` (removed) as in the constructor)."""
        if not isinstance(module, torch.nn.Linear):
            raise ValueError(f"FullyConnectedConv.from_module expects an "
                             f"nn.Linear (got {type(module).__name__})")
        layer = cls(module.in_features, module.out_features,
                    bias=module.bias is not None, fused=fused, path=path)
        layer = layer.to(module.weight.device, module.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(module.weight.reshape(-1))  # [out*in]
            if module.bias is not None:
                layer.bias.copy_(module.bias)
        return layer

    def __repr__(self) -> str:
        extra = '' if self.complete else f', num_edges={self.weight.numel()}'
        return (f'{self.__class__.__name__}({self.in_features}, '
                f'{self.out_features}{extra})')
