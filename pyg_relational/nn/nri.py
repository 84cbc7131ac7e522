r"""Neural Relational Inference (`Kipf et al., 2018
<https://arxiv.org/abs/1802.04687>`_) on sparse ``edge_index`` graphs.

An encoder infers a distribution over latent edge types :math:`z_{ij}` from
trajectories; a decoder predicts the future with one edge MLP per type,
weighted by :math:`z_{ij,k}`. The reference code does every node
:math:`\leftrightarrow` edge pass with dense one-hot ``rel_rec`` /
``rel_send`` matrices of shape ``[E, N]``; here every pass is message passing
on the candidate graph ``edge_index`` (any graph: complete as in the paper,
or sparser), so cost grows with the number of edges and one batch may hold
systems of different sizes.

The pieces are rewirings of the shared Graph Network blocks
(:class:`~pyg_relational.nn.graph_network.EdgeBlock`: node :math:`\to` edge,
:class:`~pyg_relational.nn.graph_network.NodeBlock`: edge :math:`\to`
node), and the per-type edge MLPs of the decoders use the typed-edge
mechanism of :mod:`~pyg_relational.nn.typed` (the first layer is applied per
type to the *nodes*, then gathered per edge).
"""
import math
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Parameter
from torch_geometric.nn import MessagePassing

from .._checks import (check_edge_index, check_edge_vector, check_features,
                       check_int)
from .._torch import autocast_on
from .graph_network import EdgeBlock, NodeBlock
from .typed import gather_typed, typed_transform

__all__ = ['NRIEncoder', 'NRIDecoder', 'NRIRNNDecoder', 'NRI', 'NRIOutput',
           'nll_gaussian', 'kl_categorical', 'edge_accuracy']


# --------------------------------------------------------------------------
# Losses and metrics.
# --------------------------------------------------------------------------
def _check_positive(value, name: str) -> float:
    """``value`` as a finite ``float > 0`` or a ``ValueError`` naming it."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be a number (got {value!r})") \
            from None
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"'{name}' must be a finite number > 0 (got "
                         f"{value!r})")
    return out


def nll_gaussian(pred: Tensor, target: Tensor, variance: float = 5e-5,
                 num_nodes: Optional[int] = None) -> Tensor:
    r"""Gaussian negative log-likelihood of the paper (fixed variance, no
    constant), summed over time and features and averaged over nodes:
    :math:`\frac{1}{N}\sum (\hat{x} - x)^2 / (2\sigma^2)`.

    ``pred`` and ``target`` must have the same shape (no broadcasting: a
    broadcast would silently compare every prediction with the wrong
    frame)."""
    for name, value in (('pred', pred), ('target', target)):
        if not isinstance(value, Tensor):
            raise TypeError(f"'{name}' must be a torch.Tensor (got "
                            f"{type(value).__name__})")
    if pred.shape != target.shape:
        raise ValueError(f"'pred' {tuple(pred.shape)} and 'target' "
                         f"{tuple(target.shape)} must have the same shape")
    variance = _check_positive(variance, 'variance')
    if num_nodes is None:
        num_nodes = pred.size(0) if pred.dim() > 0 else 1
    num_nodes = check_int(num_nodes, 'num_nodes', 0)
    return (pred - target).pow(2).sum() / (2 * variance) / max(num_nodes, 1)


def kl_categorical(prob: Tensor, num_nodes: int,
                   prior: Optional[Tensor] = None,
                   eps: float = 1e-16) -> Tensor:
    r""":math:`\frac{1}{N}\sum_{ij} \mathrm{KL}(q(z_{ij}) \,\|\, p(z_{ij}))`
    with a uniform prior :math:`p = 1/K` or a given ``prior`` ``[K]``.

    ``prob`` ``[E, K]`` must hold probabilities: each row in :math:`[0, 1]`
    and summing to 1 (e.g. ``logits.softmax(-1)``), else a ``ValueError``
    (logits or unnormalised weights would give a meaningless KL)."""
    if not isinstance(prob, Tensor) or not prob.is_floating_point() or \
            prob.dim() == 0:
        got = (f'dtype={prob.dtype}, shape={tuple(prob.shape)}'
               if isinstance(prob, Tensor) else type(prob).__name__)
        raise ValueError(f"'prob' must be a floating tensor [E, K] of "
                         f"probabilities (got {got}); pass "
                         f"logits.softmax(-1)")
    num_types = prob.size(-1)
    if prob.numel() > 0:
        tol = 4 * num_types * torch.finfo(prob.dtype).eps
        total = prob.detach().sum(-1)
        bad = ~torch.isfinite(total) | ((total - 1).abs() > tol)
        bad |= (prob.detach() < 0).any(-1) | (prob.detach() > 1 + tol).any(-1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0]) if prob.dim() > 1 else 0
            values = prob.detach().reshape(-1, num_types)[row].tolist()
            raise ValueError(
                f"'prob' must be probabilities: every row in [0, 1] summing "
                f"to 1 (row {row} is {values}, sum "
                f"{sum(values):.6g}); pass logits.softmax(-1), not logits "
                f"or unnormalised weights")
    if prior is None:
        log_prior = -torch.log(prob.new_tensor(float(num_types)))
    else:
        if prior.shape != (num_types, ):
            raise ValueError(f"'prior' must have shape [{num_types}] (one "
                             f"probability per edge type; got "
                             f"{tuple(prior.shape)})")
        log_prior = torch.log(prior.to(prob) + eps)
    kl = prob * (torch.log(prob + eps) - log_prior)  # [E, K]
    return kl.sum() / max(num_nodes, 1)


def _max_assignment(score: List[List[float]]) -> List[int]:
    r"""The permutation :math:`\pi` maximising
    :math:`\sum_k \text{score}[k][\pi(k)]` of a square matrix: the
    Hungarian method with potentials (shortest augmenting paths, Jonker and
    Volgenant), :math:`O(K^3)`."""
    n = len(score)
    inf = float('inf')
    u, v = [0.] * (n + 1), [0.] * (n + 1)  # row / column potentials
    match = [0] * (n + 1)  # match[col] = row (1-based; 0: free)
    way = [0] * (n + 1)
    for row in range(1, n + 1):
        match[0], col0 = row, 0
        dist, used = [inf] * (n + 1), [False] * (n + 1)
        while match[col0] != 0:  # grow the path until a free column
            used[col0] = True
            r, delta, col1 = match[col0], inf, 0
            for col in range(1, n + 1):
                if not used[col]:
                    cost = -score[r - 1][col - 1] - u[r] - v[col]
                    if cost < dist[col]:
                        dist[col], way[col] = cost, col0
                    if dist[col] < delta:
                        delta, col1 = dist[col], col
            for col in range(n + 1):
                if used[col]:
                    u[match[col]] += delta
                    v[col] -= delta
                else:
                    dist[col] -= delta
            col0 = col1
        while col0:  # flip the augmenting path
            col1 = way[col0]
            match[col0] = match[col1]
            col0 = col1
    perm = [0] * n
    for col in range(1, n + 1):
        perm[match[col] - 1] = col - 1
    return perm


def edge_accuracy(logits: Tensor, edge_label: Tensor,
                  permute: bool = True) -> float:
    r"""Fraction of edges whose most likely type is the true one. With
    ``permute=True`` (as reported in the paper, since the latent types are
    unlabelled) the best relabelling of the :math:`K` types is used, found
    as a maximum-weight assignment on the :math:`K \times K` confusion
    matrix (Hungarian method, :math:`O(K^3)`; not the :math:`K!`
    relabellings).

    Args:
        logits (Tensor): edge-type scores ``[E, K]``.
        edge_label (LongTensor): true type per edge ``[E]``, in ``[0, K)``.
        permute (bool, optional): best relabelling of the types.
            (default: :obj:`True`)
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) \
            else type(logits).__name__
        raise ValueError(f"'logits' must be [E, K] (got {shape})")
    num_edges, num_types = logits.shape
    if isinstance(edge_label, Tensor) and edge_label.dim() != 1:
        raise ValueError(f"'edge_label' must be 1-D [E={num_edges}] (got "
                         f"{tuple(edge_label.shape)}); flatten it with "
                         f".view(-1)")
    check_edge_vector(edge_label, num_edges, 'edge_label', num_types)
    if num_edges == 0:
        return float('nan')
    pred = logits.argmax(-1)
    if not permute:
        return int((pred == edge_label).sum()) / num_edges
    # confusion[p, t]: edges predicted p whose true type is t
    confusion = torch.zeros(num_types * num_types, dtype=torch.long,
                            device=pred.device)
    confusion.index_add_(0, pred * num_types + edge_label.long(),
                         torch.ones_like(pred))
    confusion = confusion.view(num_types, num_types).tolist()
    perm = _max_assignment(confusion)
    correct = sum(confusion[p][perm[p]] for p in range(num_types))
    return correct / num_edges


# --------------------------------------------------------------------------
# Building blocks (private).
# --------------------------------------------------------------------------
class _PaperMLP(torch.nn.Module):
    r"""The paper's two-layer ELU MLP with batch norm:
    ``BN(ELU(W2 dropout(ELU(W1 x))))``, Xavier-normal weights, biases 0.1.

    Batch norm normalises over all rows (nodes or edges of the whole batch),
    as in the reference; it is skipped for fewer than two rows in training
    mode, where batch statistics do not exist."""
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, dropout: float = 0.):
        super().__init__()
        self.lin1 = Linear(in_channels, hidden_channels)
        self.lin2 = Linear(hidden_channels, out_channels)
        self.bn = BatchNorm1d(out_channels)
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self):
        for lin in (self.lin1, self.lin2):
            torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.constant_(lin.bias, 0.1)
        self.bn.reset_parameters()

    def split_first_linear(self):
        """``(lin1, the rest)``, for ``EdgeBlock(node_first=True)``."""
        return self.lin1, self._after_lin1

    def forward(self, x: Tensor) -> Tensor:
        return self._after_lin1(self.lin1(x))

    def _after_lin1(self, x: Tensor) -> Tensor:
        x = F.elu(x, inplace=True)  # x is a fresh pre-activation
        x = F.dropout(x, self.dropout, self.training)
        x = F.elu(self.lin2(x), inplace=True)
        if self.training and x.size(0) < 2:
            return x
        return self.bn(x)


def _check_graph(x: Tensor, edge_index: Tensor):
    if not isinstance(x, Tensor) or x.dim() not in (2, 3):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"'x' must be [N, T, F] or [N, T*F] (got {shape})")
    check_edge_index(edge_index, x.size(0), x.size(0))


def _check_z(z: Tensor, num_edges: int, num_types: int):
    if not isinstance(z, Tensor) or z.dim() != 2 or \
            z.size(0) != num_edges or z.size(1) != num_types:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"'z' must have shape [E={num_edges}, "
                         f"K={num_types}] (one weight per edge and type; got "
                         f"{shape})")


def _check_dtype(x: Tensor, module: torch.nn.Module, name: str = 'x'):
    r"""``x`` must be floating and, outside autocast, have the dtype of
    ``module``'s parameters (a clear error instead of a matmul's)."""
    param = next(module.parameters(), None)
    if not x.is_floating_point():
        raise ValueError(f"'{name}' must be a floating tensor (got "
                         f"{x.dtype}); convert with .float()")
    if param is None or x.dtype == param.dtype or \
            autocast_on(x.device):
        return
    fix = {torch.float64: '.double()', torch.float32: '.float()',
           torch.float16: '.half()', torch.bfloat16: '.bfloat16()'}
    raise ValueError(
        f"'{name}' has dtype {x.dtype} but {type(module).__name__}'s "
        f"parameters are {param.dtype}; convert the input with "
        f"{name}{fix.get(param.dtype, '.to(dtype)')} or the module with "
        f"module{fix.get(x.dtype, '.to(dtype)')}")


def _repeat_graph(edge_index: Tensor, z: Tensor, num_nodes: int,
                  copies: int):
    r"""``copies`` disjoint copies of a graph (copy :math:`s` shifted by
    :math:`s N`), with its edge weights: the time slices of a decoder run in
    parallel as one batch of graphs."""
    offset = torch.arange(copies, device=edge_index.device) * num_nodes
    offset = offset.repeat_interleave(edge_index.size(1))  # [S*E]
    return edge_index.repeat(1, copies) + offset, z.repeat(copies, 1)


class _TypedEdgeMessages(MessagePassing):
    r"""The decoders' edge update, written once:

    .. math::
        \mathbf{m}_{ij} = \frac{1}{c} \sum_{k} z_{ij,k} \, \sigma\left(
        \mathbf{W}_2^{k}\, \sigma\left(\mathbf{W}_{\mathrm{dst}}^{k}
        \mathbf{h}_i + \mathbf{W}_{\mathrm{src}}^{k} \mathbf{h}_j +
        \mathbf{b}_1^{k}\right) + \mathbf{b}_2^{k}\right)

    i.e. :math:`f_e^k([\mathbf{h}_i, \mathbf{h}_j])` per type :math:`k`. The
    first layer is :func:`~pyg_relational.nn.typed.typed_transform` on the
    nodes (never per edge), gathered per edge with
    :func:`~pyg_relational.nn.typed.gather_typed`; the second is one batched
    matmul over types. ``skip_first`` drops type 0 (a hard-coded non-edge).
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, num_edge_types: int, skip_first: bool,
                 act, normalize: bool, dropout: float):
        super().__init__(aggr=None, node_dim=0)
        self.num_edge_types = check_int(num_edge_types, 'num_edge_types', 1)
        if skip_first and num_edge_types < 2:
            raise ValueError(f"'skip_first=True' needs num_edge_types >= 2 "
                             f"(got {num_edge_types})")
        self.skip_first = skip_first
        self.dropout = dropout
        self._act = act
        self._normalize = normalize
        K = num_edge_types
        self.weight_dst = Parameter(torch.empty(K, in_channels,
                                                hidden_channels))
        self.weight_src = Parameter(torch.empty(K, in_channels,
                                                hidden_channels))
        self.bias1 = Parameter(torch.empty(K, hidden_channels))
        self.weight2 = Parameter(torch.empty(K, hidden_channels,
                                             out_channels))
        self.bias2 = Parameter(torch.empty(K, out_channels))

    def reset_typed(self):
        # nn.Linear's default initialisation, per type.
        bound1 = 1. / (2 * self.weight_dst.size(1))**0.5
        bound2 = 1. / self.weight2.size(1)**0.5
        for p, b in ((self.weight_dst, bound1), (self.weight_src, bound1),
                     (self.bias1, bound1), (self.weight2, bound2),
                     (self.bias2, bound2)):
            torch.nn.init.uniform_(p, -b, b)

    def typed_messages(self, h: Tensor, edge_index: Tensor,
                       z: Tensor) -> Tensor:
        types = slice(1 if self.skip_first else 0, self.num_edge_types)
        h_dst = typed_transform(h, self.weight_dst[types],
                                self.bias1[types])  # [N, K', H]
        h_src = typed_transform(h, self.weight_src[types])  # [N, K', H]
        return self.edge_updater(edge_index, h_src=h_src, h_dst=h_dst,
                                 z=z[:, types])  # [E, F_out]

    def edge_update(self, h_src: Tensor, h_dst: Tensor, z: Tensor,
                    edge_index_i: Tensor, edge_index_j: Tensor) -> Tensor:
        types = slice(1 if self.skip_first else 0, self.num_edge_types)
        h = gather_typed(h_src, edge_index_j) + gather_typed(
            h_dst, edge_index_i)  # [E, K', H]
        h = F.dropout(self._act(h), self.dropout, self.training)
        h = torch.baddbmm(self.bias2[types].unsqueeze(1), h.transpose(0, 1),
                          self.weight2[types])  # [K', E, F_out]
        m = (self._act(h) * z.t().unsqueeze(-1)).sum(0)  # [E, F_out]
        if self._normalize:
            m = m / z.size(1)
        return m


# --------------------------------------------------------------------------
# Encoder.
# --------------------------------------------------------------------------
class NRIEncoder(torch.nn.Module):
    r"""The MLP encoder (factor graph variant) of Neural Relational Inference
    from the `"Neural Relational Inference for Interacting Systems"
    <https://arxiv.org/abs/1802.04687>`_ paper: edge-type logits
    :math:`q(z_{ij} \mid \mathbf{x})` for every candidate edge
    :math:`j \to i`

    .. math::
        \mathbf{h}^1_j &= f_v^1(\mathbf{x}_j) \\
        \mathbf{h}^1_{(j,i)} &= f_e^1([\mathbf{h}^1_j, \mathbf{h}^1_i]) \\
        \mathbf{h}^2_i &= f_v^2\Big(\operatorname{mean}_{j \in
        \mathcal{N}(i)} \mathbf{h}^1_{(j,i)}\Big) \\
        \mathbf{h}^2_{(j,i)} &= f_e^2([\mathbf{h}^1_{(j,i)}, \mathbf{h}^2_j,
        \mathbf{h}^2_i]) \\
        \text{logits}_{(j,i)} &= \mathbf{W}\mathbf{h}^2_{(j,i)} + \mathbf{b}

    where :math:`\mathbf{x}_j` is the whole trajectory of particle :math:`j`
    (``T * F`` numbers), every :math:`f` is the paper's two-layer ELU MLP with
    batch norm, the node :math:`\to` edge passes are
    :class:`~pyg_relational.nn.graph_network.EdgeBlock`\ s (senders and
    receivers; the second also gets the skip connection
    :math:`\mathbf{h}^1_{(j,i)}` as edge input) and the edge :math:`\to` node
    pass is a :class:`~pyg_relational.nn.graph_network.NodeBlock` on received
    edges only.

    .. note::
        The reference divides the sum of incoming edges by the number of
        particles :math:`N`; here it is the mean over the edges a node really
        receives (:math:`N-1` on the complete graph), so sparser candidate
        graphs and mixed sizes are scaled consistently. Concatenations are
        in GN order (sender before receiver) - a permutation of the
        reference's weights, nothing else. Both node :math:`\to` edge
        blocks use ``node_first=True``: the node columns of the edge MLPs'
        first layers are multiplied once per node and gathered per edge
        (same numbers, fewer multiply-adds than the reference's per-edge
        concatenation).

    Args:
        in_channels (int): features per node, :math:`T \cdot F` (e.g.
            ``49 * 4``).
        hidden_channels (int, optional): width of every MLP.
            (default: :obj:`256`)
        num_edge_types (int, optional): :math:`K`. (default: :obj:`2`)
        dropout (float, optional): dropout inside the MLPs.
            (default: :obj:`0.`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, T, F)` or
          :math:`(|\mathcal{V}|, T F)`, edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** edge logits :math:`(|\mathcal{E}|, K)`

    Example:
        >>> enc = NRIEncoder(3 * 4, hidden_channels=16)
        >>> enc
        NRIEncoder(12, 16, num_edge_types=2)
        >>> edge_index = complete_graph([3, 2], self_loops=False)
        >>> enc(torch.randn(5, 3, 4), edge_index).shape
        torch.Size([8, 2])
    """
    def __init__(self, in_channels: int, hidden_channels: int = 256,
                 num_edge_types: int = 2, dropout: float = 0.):
        super().__init__()
        self.in_channels = check_int(in_channels, 'in_channels', 1)
        self.hidden_channels = check_int(hidden_channels, 'hidden_channels',
                                         1)
        self.num_edge_types = check_int(num_edge_types, 'num_edge_types', 1)
        self.dropout = dropout
        H = hidden_channels
        self.node_mlp1 = _PaperMLP(in_channels, H, H, dropout)
        # node_first: the node columns of each edge MLP's first layer are
        # multiplied per node, then gathered per edge (same numbers)
        self.node_to_edge1 = EdgeBlock(_PaperMLP(2 * H, H, H, dropout),
                                       use_edges=False, use_globals=False,
                                       node_first=True)
        self.edge_to_node = NodeBlock(_PaperMLP(H, H, H, dropout),
                                      aggr='mean', use_nodes=False,
                                      use_globals=False)
        self.node_to_edge2 = EdgeBlock(_PaperMLP(3 * H, H, H, dropout),
                                       use_edges=True, use_globals=False,
                                       node_first=True)
        self.lin_out = Linear(H, num_edge_types)
        self.reset_parameters()

    def reset_parameters(self):
        self.node_mlp1.reset_parameters()
        self.node_to_edge1.reset_parameters()
        self.edge_to_node.reset_parameters()
        self.node_to_edge2.reset_parameters()
        torch.nn.init.xavier_normal_(self.lin_out.weight)
        torch.nn.init.constant_(self.lin_out.bias, 0.1)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Return the edge-type logits ``[E, K]``."""
        _check_graph(x, edge_index)
        _check_dtype(x, self)
        x = x.flatten(1)  # [N, T*F]
        check_features(x, self.in_channels, 'x (flattened to [N, T*F])')
        h = self.node_mlp1(x)  # [N, H]
        e_skip = self.node_to_edge1(h, edge_index)  # [E, H]
        h = self.edge_to_node(h, edge_index, e_skip)  # [N, H]
        e = self.node_to_edge2(h, edge_index, e_skip)  # [E, H]
        return self.lin_out(e)  # [E, K]

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.hidden_channels}, '
                f'num_edge_types={self.num_edge_types})')


# --------------------------------------------------------------------------
# Decoders.
# --------------------------------------------------------------------------
def _decoder_input(decoder, x: Tensor, edge_index: Tensor, z: Tensor,
                   pred_steps: int) -> Tensor:
    """A decoder's inputs checked; the edge-type weights ``z`` in the dtype
    of ``x`` (weights of any real dtype, e.g. float64 or one-hot)."""
    _check_decoder_input(x, edge_index, z, decoder.in_channels,
                         decoder.num_edge_types, pred_steps)
    _check_dtype(x, decoder)
    return z.to(x.dtype)


def _check_decoder_input(x: Tensor, edge_index: Tensor, z: Tensor,
                         in_channels: int, num_types: int, pred_steps: int):
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"'x' must be [N, T, F] (got {shape})")
    check_features(x, in_channels, 'x')
    check_edge_index(edge_index, x.size(0), x.size(0))
    _check_z(z, edge_index.size(1), num_types)
    if z.is_complex():
        raise ValueError(f"'z' must be real edge-type weights (got "
                         f"{z.dtype})")
    check_int(pred_steps, 'pred_steps', 1)
    if pred_steps > x.size(1):
        raise ValueError(f"'pred_steps' ({pred_steps}) must be at most the "
                         f"number of frames T={x.size(1)}")


class NRIDecoder(_TypedEdgeMessages):
    r"""The MLP decoder of Neural Relational Inference from the `"Neural
    Relational Inference for Interacting Systems"
    <https://arxiv.org/abs/1802.04687>`_ paper: one step of

    .. math::
        \boldsymbol{\mu}_i^{t+1} = \mathbf{x}_i^t + f_v\Big(\Big[
        \sum_{j \in \mathcal{N}(i)} \sum_k z_{ij,k}\,
        f_e^k([\mathbf{x}_i^t, \mathbf{x}_j^t]), \; \mathbf{x}_i^t\Big]\Big)

    with ReLU MLPs :math:`f_e^k` (two layers, one per edge type, computed in
    :meth:`edge_update` with the typed-edge mechanism) and :math:`f_v` (three
    layers) - the edge :math:`\to` node pass is a
    :class:`~pyg_relational.nn.graph_network.NodeBlock` (sum of received
    messages and the node itself). Over a trajectory, the ground truth is fed
    every ``pred_steps`` steps and the decoder's own prediction in between
    (teacher forcing), all starting points in parallel.

    .. note::
        As in the reference, :math:`f_e^k` ends with a ReLU and type 0 can
        be dropped (``skip_first``, a hard-coded "no interaction").

    Args:
        in_channels (int): features per frame :math:`F` (e.g. 4).
        num_edge_types (int, optional): :math:`K`. (default: :obj:`2`)
        msg_hidden (int, optional): hidden size of :math:`f_e^k`.
            (default: :obj:`256`)
        msg_out (int, optional): message size. (default: :obj:`256`)
        hidden_channels (int, optional): hidden size of :math:`f_v`.
            (default: :obj:`256`)
        dropout (float, optional): dropout. (default: :obj:`0.`)
        skip_first (bool, optional): ignore edge type 0.
            (default: :obj:`False`)

    Shapes:
        - **input:** node trajectories :math:`(|\mathcal{V}|, T, F)`, edge
          indices :math:`(2, |\mathcal{E}|)`, edge-type weights
          :math:`(|\mathcal{E}|, K)`
        - **output:** predictions of frames :math:`1..T-1`:
          :math:`(|\mathcal{V}|, T - 1, F)`

    Example:
        >>> dec = NRIDecoder(4, msg_hidden=8, msg_out=8, hidden_channels=8)
        >>> dec
        NRIDecoder(4, num_edge_types=2, skip_first=False)
        >>> edge_index = complete_graph(3, self_loops=False)
        >>> z = torch.rand(6, 2)
        >>> dec(torch.randn(3, 5, 4), edge_index, z, pred_steps=2).shape
        torch.Size([3, 4, 4])
    """
    def __init__(self, in_channels: int, num_edge_types: int = 2,
                 msg_hidden: int = 256, msg_out: int = 256,
                 hidden_channels: int = 256, dropout: float = 0.,
                 skip_first: bool = False):
        super().__init__(check_int(in_channels, 'in_channels', 1),
                         check_int(msg_hidden, 'msg_hidden', 1),
                         check_int(msg_out, 'msg_out', 1), num_edge_types,
                         skip_first, F.relu, normalize=False, dropout=dropout)
        self.in_channels = in_channels
        self.hidden_channels = check_int(hidden_channels, 'hidden_channels',
                                         1)
        H = hidden_channels
        node_model = torch.nn.Sequential(
            Linear(msg_out + in_channels, H), torch.nn.ReLU(),
            torch.nn.Dropout(dropout), Linear(H, H), torch.nn.ReLU(),
            torch.nn.Dropout(dropout), Linear(H, in_channels))
        self.edge_to_node = NodeBlock(node_model, aggr='sum', use_nodes=True,
                                      use_globals=False)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.reset_typed()
        self.edge_to_node.reset_parameters()

    def step(self, x: Tensor, edge_index: Tensor, z: Tensor) -> Tensor:
        r"""One step :math:`\mathbf{x}^t \to \boldsymbol{\mu}^{t+1}` for
        ``x`` ``[N, F]``."""
        m = self.typed_messages(x, edge_index, z)  # [E, msg_out]
        return x + self.edge_to_node(x, edge_index, m)  # [N, F]

    def forward(self, x: Tensor, edge_index: Tensor, z: Tensor,
                pred_steps: int = 1) -> Tensor:
        """Predict frames ``1..T-1`` of ``x`` ``[N, T, F]``."""
        z = _decoder_input(self, x, edge_index, z, pred_steps)
        N, T, Fdim = x.shape
        starts = x[:, 0::pred_steps]  # [N, S, F]
        S = starts.size(1)
        edge_index_s, z_s = _repeat_graph(edge_index, z, N, S)
        h = starts.transpose(0, 1).reshape(S * N, Fdim)  # [S*N, F]
        preds = []
        for _ in range(pred_steps):
            h = self.step(h, edge_index_s, z_s)
            preds.append(h)
        out = torch.stack(preds, 0).view(pred_steps, S, N, Fdim)
        out = out.permute(2, 1, 0, 3).reshape(N, S * pred_steps, Fdim)
        return out[:, :T - 1]  # [N, T-1, F]

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'num_edge_types={self.num_edge_types}, '
                f'skip_first={self.skip_first})')


class NRIRNNDecoder(_TypedEdgeMessages):
    r"""The recurrent (GRU) decoder of Neural Relational Inference from the
    `"Neural Relational Inference for Interacting Systems"
    <https://arxiv.org/abs/1802.04687>`_ paper

    .. math::
        \bar{\mathbf{m}}_i^t &= \operatorname{mean}_{j \in \mathcal{N}(i)}
        \frac{1}{K} \sum_k z_{ij,k}\, \tilde{f}_e^k([\mathbf{h}_i^t,
        \mathbf{h}_j^t]) \\
        \mathbf{h}_i^{t+1} &= \mathrm{GRU}([\bar{\mathbf{m}}_i^t,
        \mathbf{x}_i^t], \mathbf{h}_i^t) \\
        \boldsymbol{\mu}_i^{t+1} &= \mathbf{x}_i^t + f_{\mathrm{out}}(
        \mathbf{h}_i^{t+1})

    with tanh MLPs :math:`\tilde{f}_e^k` (typed-edge mechanism, in
    :meth:`edge_update`), the mean over received messages done by a
    :class:`~pyg_relational.nn.graph_network.NodeBlock`, and the paper's GRU
    whose gates read the input :math:`\mathbf{x}_i^t` and the aggregated
    messages :math:`\bar{\mathbf{m}}_i^t`. The ground truth is the input
    every ``pred_steps`` steps, the previous prediction in between.

    .. note::
        The reference divides the summed messages by the number of particles
        :math:`N`; here it is the mean over received edges (:math:`N-1` on
        the complete graph). With ``skip_first`` the type average is over
        :math:`K-1` types, as in the reference.

    Args:
        in_channels (int): features per frame :math:`F`.
        num_edge_types (int, optional): :math:`K`. (default: :obj:`2`)
        hidden_channels (int, optional): GRU and message size.
            (default: :obj:`256`)
        dropout (float, optional): dropout. (default: :obj:`0.`)
        skip_first (bool, optional): ignore edge type 0.
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, T, F)`, :math:`(2, |\mathcal{E}|)`,
          :math:`(|\mathcal{E}|, K)`
        - **output:** :math:`(|\mathcal{V}|, T - 1, F)`

    Example:
        >>> dec = NRIRNNDecoder(4, hidden_channels=8)
        >>> dec
        NRIRNNDecoder(4, 8, num_edge_types=2, skip_first=False)
        >>> edge_index = complete_graph(3, self_loops=False)
        >>> dec(torch.randn(3, 5, 4), edge_index, torch.rand(6, 2)).shape
        torch.Size([3, 4, 4])
    """
    def __init__(self, in_channels: int, num_edge_types: int = 2,
                 hidden_channels: int = 256, dropout: float = 0.,
                 skip_first: bool = False):
        H = check_int(hidden_channels, 'hidden_channels', 1)
        super().__init__(H, H, H, num_edge_types, skip_first, torch.tanh,
                         normalize=True, dropout=dropout)
        self.in_channels = check_int(in_channels, 'in_channels', 1)
        self.hidden_channels = H
        self.edge_to_node = NodeBlock(torch.nn.Identity(), aggr='mean',
                                      use_nodes=False, use_globals=False)
        self.input_gates = Linear(in_channels, 3 * H)  # r, i, n
        self.hidden_gates = Linear(H, 3 * H, bias=False)
        self.out = torch.nn.Sequential(
            Linear(H, H), torch.nn.ReLU(), torch.nn.Dropout(dropout),
            Linear(H, H), torch.nn.ReLU(), torch.nn.Dropout(dropout),
            Linear(H, in_channels))
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.reset_typed()
        self.edge_to_node.reset_parameters()
        self.input_gates.reset_parameters()
        self.hidden_gates.reset_parameters()
        for m in self.out:
            if isinstance(m, Linear):
                m.reset_parameters()

    def step(self, x: Tensor, hidden: Tensor, edge_index: Tensor,
             z: Tensor):
        r"""One step: ``(x^t [N, F], h^t [N, H]) -> (mu^{t+1}, h^{t+1})``."""
        m = self.typed_messages(hidden, edge_index, z)  # [E, H]
        agg = self.edge_to_node(hidden, edge_index, m)  # [N, H]
        gi = self.input_gates(x).chunk(3, -1)  # 3 x [N, H]
        gh = self.hidden_gates(agg).chunk(3, -1)  # 3 x [N, H]
        r = torch.sigmoid(gi[0] + gh[0])
        i = torch.sigmoid(gi[1] + gh[1])
        n = torch.tanh(gi[2] + r * gh[2])
        hidden = (1 - i) * n + i * hidden
        return x + self.out(hidden), hidden

    def forward(self, x: Tensor, edge_index: Tensor, z: Tensor,
                pred_steps: int = 1) -> Tensor:
        """Predict frames ``1..T-1`` of ``x`` ``[N, T, F]``."""
        z = _decoder_input(self, x, edge_index, z, pred_steps)
        hidden = x.new_zeros(x.size(0), self.hidden_channels)
        preds = []
        for t in range(x.size(1) - 1):
            inp = x[:, t] if t % pred_steps == 0 else preds[-1]
            pred, hidden = self.step(inp, hidden, edge_index, z)
            preds.append(pred)
        if not preds:
            return x[:, :0]
        return torch.stack(preds, 1)  # [N, T-1, F]

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.hidden_channels}, '
                f'num_edge_types={self.num_edge_types}, '
                f'skip_first={self.skip_first})')


# --------------------------------------------------------------------------
# The model.
# --------------------------------------------------------------------------
class NRIOutput(NamedTuple):
    """What :meth:`NRI.forward` returns."""
    logits: Tensor  # [E, K] encoder logits
    prob: Tensor  # [E, K] softmax(logits)
    z: Tensor  # [E, K] Gumbel-softmax sample given to the decoder
    pred: Tensor  # [N, T-1, F] decoder predictions of frames 1..T-1


def _check_prior(prior, num_types: int) -> Tensor:
    """``prior`` as ``num_types`` probabilities (normalised to sum 1)."""
    try:
        out = torch.as_tensor(prior, dtype=torch.float)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"'prior' must be a tensor or list of "
                        f"{num_types} numbers (got {prior!r})") from None
    fix = (f"pass {num_types} non-negative finite numbers with a positive "
           f"sum, e.g. prior=[{', '.join(['0.5'] * num_types)}]")
    if out.shape != (num_types, ):
        raise ValueError(f"'prior' must have shape [{num_types}] (one per "
                         f"edge type; got {tuple(out.shape)}); {fix}")
    if not bool(torch.isfinite(out).all()) or float(out.min()) < 0 or \
            float(out.sum()) <= 0:
        raise ValueError(f"'prior' must be probabilities (got "
                         f"{out.tolist()}); {fix}")
    return out / out.sum()


class NRI(torch.nn.Module):
    r"""Neural Relational Inference from the `"Neural Relational Inference
    for Interacting Systems" <https://arxiv.org/abs/1802.04687>`_ paper: a
    variational auto-encoder whose latent code is one edge type per
    candidate edge,

    .. math::
        q_\phi(z_{ij} \mid \mathbf{x}) = \mathrm{softmax}(
        \text{encoder}(\mathbf{x})_{ij}), \qquad
        z_{ij} = \mathrm{softmax}((\text{logits}_{ij} + g) / \tau)

    (Gumbel-softmax with noise :math:`g`, temperature :math:`\tau`,
    straight-through one-hot with ``hard=True``) and the ELBO loss

    .. math::
        \mathcal{L} = \frac{1}{N}\sum_{i,t}
        \frac{\lVert \mathbf{x}_i^{t+1} - \boldsymbol{\mu}_i^{t+1}
        \rVert^2}{2\sigma^2} + \frac{1}{N}\sum_{ij}
        \mathrm{KL}\big(q_\phi(z_{ij} \mid \mathbf{x}) \,\|\, p(z_{ij})\big)

    with :math:`\sigma^2 = 5 \cdot 10^{-5}` and a uniform or given prior.

    .. note::
        In evaluation mode the decoder gets a hard sample, as in the
        reference's test loop. The uniform-prior KL includes the constant
        :math:`\log K` (the reference drops it; the gradient is the same).
        Under low-precision autocast the logits, :math:`q(z)` and the
        sample :math:`z` are kept in float32.

    Args:
        encoder (NRIEncoder): the encoder.
        decoder (NRIDecoder or NRIRNNDecoder): the decoder.
        tau (float, optional): Gumbel-softmax temperature.
            (default: :obj:`0.5`)
        hard (bool, optional): straight-through one-hot samples in training.
            (default: :obj:`False`)
        prior (Tensor, optional): prior :math:`p(z)` ``[K]``
            (default: uniform).
        variance (float, optional): :math:`\sigma^2`. (default: :obj:`5e-5`)

    Example:
        >>> model = NRI(NRIEncoder(5 * 4, 16), NRIDecoder(4, 2, 16, 16, 16))
        >>> model
        NRI(NRIEncoder(20, 16, num_edge_types=2), NRIDecoder(4, num_edge_types=2, skip_first=False), tau=0.5, hard=False)
        >>> edge_index = complete_graph([3, 3], self_loops=False)
        >>> out = model.loss(torch.randn(6, 5, 4), edge_index, pred_steps=2)
        >>> sorted(out)
        ['kl', 'logits', 'loss', 'nll', 'pred']
    """
    def __init__(self, encoder: NRIEncoder, decoder: torch.nn.Module,
                 tau: float = 0.5, hard: bool = False,
                 prior: Optional[Tensor] = None, variance: float = 5e-5):
        super().__init__()
        if encoder.num_edge_types != decoder.num_edge_types:
            raise ValueError(
                f"encoder and decoder disagree on num_edge_types "
                f"({encoder.num_edge_types} vs {decoder.num_edge_types}); "
                f"build both with the same K")
        self.encoder = encoder
        self.decoder = decoder
        self.tau = _check_positive(tau, 'tau')
        self.hard = bool(hard)
        self.variance = _check_positive(variance, 'variance')
        if prior is not None:
            prior = _check_prior(prior, encoder.num_edge_types)
        self.register_buffer('prior', prior)
        self.reset_parameters()

    @property
    def num_edge_types(self) -> int:
        return self.encoder.num_edge_types

    def reset_parameters(self):
        self.encoder.reset_parameters()
        self.decoder.reset_parameters()

    def sample(self, logits: Tensor, hard: Optional[bool] = None) -> Tensor:
        """A Gumbel-softmax sample ``[E, K]`` of the edge types."""
        hard = (self.hard if self.training else True) if hard is None \
            else hard
        return F.gumbel_softmax(logits, tau=self.tau, hard=hard)

    def forward(self, x: Tensor, edge_index: Tensor, pred_steps: int = 1,
                x_decoder: Optional[Tensor] = None,
                hard: Optional[bool] = None) -> NRIOutput:
        r"""Encode ``x`` ``[N, T, F]``, sample :math:`z`, decode
        ``x_decoder`` (default: ``x``; e.g. the last frames of a long test
        trajectory)."""
        logits = self.encoder(x, edge_index)  # [E, K]
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()  # autocast: q(z) and z in float32
        z = self.sample(logits, hard)  # [E, K]
        x_decoder = x if x_decoder is None else x_decoder
        pred = self.decoder(x_decoder, edge_index, z, pred_steps)
        return NRIOutput(logits, logits.softmax(-1), z, pred)

    def loss(self, x: Tensor, edge_index: Tensor, pred_steps: int = 1,
             x_decoder: Optional[Tensor] = None,
             hard: Optional[bool] = None) -> dict:
        """The negative ELBO: ``dict(loss, nll, kl, logits, pred)``."""
        out = self(x, edge_index, pred_steps, x_decoder, hard)
        target = (x if x_decoder is None else x_decoder)[:, 1:]
        nll = nll_gaussian(out.pred, target, self.variance)
        kl = kl_categorical(out.prob, x.size(0), self.prior)
        return dict(loss=nll + kl, nll=nll, kl=kl, logits=out.logits,
                    pred=out.pred)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.encoder}, {self.decoder}, '
                f'tau={self.tau}, hard={self.hard})')
