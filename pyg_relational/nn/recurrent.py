r"""Recurrence as message passing in topological order over a DAG."""
import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing

from .._checks import check_choice, check_edge_index, check_int, \
    check_node_features
from .._torch import rnn_kernel
from ..structure import Chains
from ._paths import GraphInput, PathLayer
from ._recurrent_kernels import (State, check_initial_state, fused_rnn,
                                 level_rnn)

__all__ = ['RecurrentConv']


class RecurrentConv(PathLayer, MessagePassing):
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
        fused: removed (a :class:`TypeError` naming ``path``).

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
                 nonlinearity: str = 'tanh', path: str = 'auto',
                 fused: Optional[bool] = None):
        super().__init__(aggr='add')
        self.init_paths(path, fused)
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
        check_node_features(x, self.input_size, 'turn a batch of sequences '
                            'into nodes with sequence_to_nodes(x, lengths)')
        num_nodes = x.size(0)
        graph = GraphInput(edge_index, num_nodes, num_nodes, device=x.device)
        graph.refuse_values('RecurrentConv')
        chains = graph.structure if isinstance(graph.structure, Chains) \
            else None
        kernel = rnn_kernel(self._kernel_name)
        dense_why = None
        if chains is None:
            dense_why = ('the graph is not a set of chains (DAGs and trees '
                         'take the level schedule)')
        elif kernel is None:
            dense_why = (f'this torch has no fused {self._kernel_name!r} '
                         f'kernel (torch._VF)')
        path = self.choose_path({'dense': dense_why})
        check_initial_state(self, x, h_0)
        if path == 'dense':
            return fused_rnn(self, kernel, x, chains, h_0)
        edge_index = graph.edge_index
        if chains is None:  # a known structure has valid indices
            check_edge_index(edge_index, num_nodes, num_nodes)
        return level_rnn(self, x, edge_index, h_0)

    @property
    def _kernel_name(self) -> str:
        return self.cell if self.cell != 'rnn' else f'rnn_{self.nonlinearity}'

    def message(self, h_j: Tensor) -> Tensor:
        return h_j

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
