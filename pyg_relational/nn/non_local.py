r"""The non-local block (Wang et al., 2018) as message passing on the
complete graph over positions."""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.aggr import SumAggregation

from .._checks import (check_choice, check_edge_index, check_features,
                       check_int, split_pair)
from ..graphs import complete_graph  # noqa: F401 (the example)
from ..structure import BipartiteBlocks, CompleteBlocks, GraphStructure
from ..transforms import image_to_nodes, nodes_to_image
from ._attend import EdgeAttention, attend
from ._paths import GraphInput, PathLayer, weights_like_graph
from .attention import attention_score

__all__ = ['NonLocalBlock']

PairTensor = Tuple[Tensor, Tensor]



class NonLocalBlock(EdgeAttention, PathLayer, MessagePassing):
    r"""The non-local block from the `"Non-local Neural Networks"
    <https://arxiv.org/abs/1711.07971>`_ paper: every position :math:`i`
    attends to the positions :math:`j` that send it an edge (all positions
    of its image, clip or sequence on the complete graph),

    .. math::
        \mathbf{y}_i = \frac{1}{\mathcal{C}_i} \sum_{j \in \mathcal{N}(i)}
        f(\mathbf{x}_i, \mathbf{x}_j)\, g(\mathbf{x}_j), \qquad
        \mathbf{z}_i = \mathrm{BN}(\mathbf{W}_z \mathbf{y}_i) + \mathbf{x}_i,

    with :math:`g(\mathbf{x}_j) = \mathbf{W}_g \mathbf{x}_j`,
    :math:`\theta(\mathbf{x}_i) = \mathbf{W}_\theta \mathbf{x}_i`,
    :math:`\phi(\mathbf{x}_j) = \mathbf{W}_\phi \mathbf{x}_j` (1×1
    projections to ``inter_channels``, with bias) and one of the paper's
    pairwise functions :math:`f` and normalisations
    :math:`\mathcal{C}_i`:

    * ``'gaussian'``: :math:`f = \exp(\mathbf{x}_i^{\top} \mathbf{x}_j)`,
      :math:`\mathcal{C}_i = \sum_{j \in \mathcal{N}(i)} f` (a softmax over
      the incoming edges of :math:`i`; no :math:`\theta`, :math:`\phi`);
    * ``'embedded_gaussian'``: :math:`f = \exp(\theta(\mathbf{x}_i)^{\top}
      \phi(\mathbf{x}_j))`, :math:`\mathcal{C}_i = \sum_{j} f` (softmax
      self-attention, unscaled);
    * ``'dot'``: :math:`f = \theta(\mathbf{x}_i)^{\top} \phi(\mathbf{x}_j)`,
      :math:`\mathcal{C}_i = |\mathcal{N}(i)|`;
    * ``'concat'``: :math:`f = \mathrm{ReLU}(\mathbf{w}_f^{\top}
      [\theta(\mathbf{x}_i) \,\|\, \phi(\mathbf{x}_j)])`,
      :math:`\mathcal{C}_i = |\mathcal{N}(i)|`.

    :math:`f` is computed by the score functions of
    :mod:`~pyg_relational.nn.attention` with one head (``'dot'`` for the
    first three, ``'concat'`` with ``negative_slope=0`` for the last, whose
    :math:`\mathbf{w}_f` is ``[score.att_dst, score.att_src]``) and the
    Gaussian forms are normalised by its
    :func:`~pyg_relational.nn.attention.edge_softmax`.

    The input is either node features ``[N, C]`` with an ``edge_index`` (any
    graph: the complete graph is the paper's block, a
    :func:`~pyg_relational.graphs.window_graph` or
    :func:`~pyg_relational.graphs.grid_graph` a local variant), a bipartite
    pair ``(x_src, x_dst)``, or a dense batch ``[B, C, T]``,
    ``[B, C, H, W]`` or ``[B, C, T, H, W]`` whose graph is the complete graph
    over the positions of every example
    (:class:`~pyg_relational.structure.CompleteBlocks`: its edge list is
    built only if the sparse or message path or the weights need it); the
    output keeps the dense layout.

    With ``sub_sample=True`` (dense input only) :math:`\phi` and :math:`g`
    are max-pooled as in the paper (window 2 in 1-D, 2×2 in 2-D, 1×2×2 in
    3-D) and the graph is the bipartite graph from the pooled positions to
    all positions of the same example
    (:func:`~pyg_relational.graphs.bipartite_graph`).

    .. note::
        The paper's block always attends over all positions,
        :math:`\mathcal{C}(\mathbf{x}) = N`. On a graph the sum runs over the
        incoming edges of :math:`i` and :math:`\mathcal{C}_i` counts them; a
        node without incoming edges gets :math:`\mathbf{y}_i = \mathbf{0}`.

    .. note::
        :math:`\mathbf{W}_z` (``output_projection``) and its BatchNorm
        (``batch_norm``) are optional here. BatchNorm runs over all nodes of
        the batch (for dense input this equals a ``BatchNorm{1,2,3}d`` over
        batch and positions) and its scale is initialised to zero, so a new
        block is the identity, as in the paper. Without
        ``output_projection`` the layer returns :math:`\mathbf{y}` itself
        (the non-local operation, no residual).

    .. note::
        The block is :func:`~pyg_relational.nn._attend.attend` with one
        head, so it has the attention layers' paths (``path``; the one that
        ran is :attr:`last_path`, :attr:`why_not_faster` says why a faster
        one did not): ``'dense'`` on complete blocks with self-loops or
        bipartite blocks (the Gaussian forms as unscaled softmax attention,
        ``'dot'`` / ``'concat'`` as two batched products on equal blocks,
        the paper's implementation; no per-edge tensor unless the weights
        are asked for), ``'sparse'`` (CSR products) on any graph with an
        edge, and ``'message'``, the reference.

    Args:
        in_channels (int): channels :math:`C` of :math:`\mathbf{x}`.
        inter_channels (int, optional): channels of :math:`\theta`,
            :math:`\phi` and :math:`g`. (default: :obj:`in_channels // 2`,
            at least 1)
        pairwise (str, optional): ``'gaussian'``, ``'embedded_gaussian'``,
            ``'dot'`` or ``'concat'``. (default: :obj:`'embedded_gaussian'`)
        sub_sample (bool, optional): max-pool :math:`\phi` and :math:`g`
            (dense input only). (default: :obj:`False`)
        output_projection (bool, optional): apply :math:`\mathbf{W}_z` and
            the residual connection. (default: :obj:`True`)
        batch_norm (bool, optional): BatchNorm after :math:`\mathbf{W}_z`,
            scale initialised to zero. (default: :obj:`True`)
        path (str, optional): ``'auto'``, ``'dense'``, ``'sparse'`` or
            ``'message'`` (see the note); a forced path that cannot run
            raises a :class:`ValueError`. (default: :obj:`'auto'`)
        fused: removed; passing it raises a :class:`TypeError` naming
            ``path``.
        **kwargs (optional): additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`. ``aggr`` must
            stay ``'add'``: the block normalises by :math:`\mathcal{C}_i`
            itself.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)` or
          :math:`((|\mathcal{V}_s|, C), (|\mathcal{V}_t|, C))` with
          edge indices :math:`(2, |\mathcal{E}|)`; or a dense batch
          :math:`(B, C, *S)` with ``S`` one to three spatial sizes.
        - **output:** :math:`(|\mathcal{V}_t|, C)` (or ``inter_channels``
          without ``output_projection``), or :math:`(B, C, *S)` for dense
          input; with ``return_attention_weights=True`` also
          ``(edge_index, alpha)``, :math:`\alpha_{ji} = f_{ji} /
          \mathcal{C}_i` of shape :math:`(|\mathcal{E}|,)`.

    Example:
        >>> block = NonLocalBlock(8)
        >>> block
        NonLocalBlock(8, inter_channels=4, pairwise='embedded_gaussian')
        >>> images = torch.randn(2, 8, 5, 5)
        >>> torch.equal(block(images), images)  # identity at initialisation
        True
        >>> x, edge_index = torch.randn(6, 8), complete_graph([2, 4])
        >>> out, (edge_index, alpha) = block(x, edge_index,
        ...                                  return_attention_weights=True)
        >>> out.shape, alpha.shape
        (torch.Size([6, 8]), torch.Size([20]))
        >>> block.last_path  # complete blocks: scaled_dot_product_attention
        'dense'
    """
    PAIRWISE = ('gaussian', 'embedded_gaussian', 'dot', 'concat')
    SOFTMAX = ('gaussian', 'embedded_gaussian')
    dropout = 0.  # (no dropout on the weights in the paper)

    def __init__(self, in_channels: int, inter_channels: Optional[int] = None,
                 pairwise: str = 'embedded_gaussian', sub_sample: bool = False,
                 output_projection: bool = True, batch_norm: bool = True,
                 path: str = 'auto', fused: Optional[bool] = None, **kwargs):
        kwargs.setdefault('aggr', 'add')
        super().__init__(node_dim=0, **kwargs)
        if not isinstance(self.aggr_module, SumAggregation):
            raise ValueError(
                f"NonLocalBlock normalises by C_i itself (softmax or the "
                f"number of incoming edges), so 'aggr' must be 'add' (got "
                f"aggr={kwargs['aggr']!r}); remove the argument")
        self.init_paths(path, fused)
        self.in_channels = check_int(in_channels, 'in_channels', minimum=1)
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        self.inter_channels = check_int(inter_channels, 'inter_channels',
                                        minimum=1)
        self.pairwise = check_choice(pairwise, self.PAIRWISE, 'pairwise')
        self.sub_sample = bool(sub_sample)
        self.output_projection = bool(output_projection)
        self.batch_norm = bool(batch_norm)
        self.g = Linear(in_channels, inter_channels)
        gaussian = pairwise == 'gaussian'  # no theta, phi
        self.theta = None if gaussian else Linear(in_channels, inter_channels)
        self.phi = None if gaussian else Linear(in_channels, inter_channels)
        # f is AttentionConv's score, one head: 'dot' (q_i^T k_j) for the
        # Gaussian and dot forms, 'concat' with a ReLU (negative_slope=0):
        # w_f = [score.att_dst || score.att_src].
        channels = in_channels if gaussian else inter_channels
        self.score = attention_score('concat', 1, channels, channels,
                                     negative_slope=0.) \
            if pairwise == 'concat' else attention_score('dot', 1, channels,
                                                         channels)
        self.W_z = Linear(inter_channels, in_channels) \
            if output_projection else None
        self.bn = BatchNorm1d(in_channels) \
            if output_projection and batch_norm else None
        self.reset_parameters()

    @property
    def normalisation(self) -> str:
        r""":math:`\mathcal{C}_i`: a softmax or the number of edges."""
        return 'softmax' if self.pairwise in self.SOFTMAX else 'count'

    def reset_parameters(self):
        super().reset_parameters()
        for lin in (self.g, self.theta, self.phi, self.W_z):
            if lin is not None:
                lin.reset_parameters()
        self.score.reset_parameters()
        if self.bn is not None:
            self.bn.reset_parameters()
            torch.nn.init.zeros_(self.bn.weight)  # identity at init

    def forward(
        self,
        x: Union[Tensor, PairTensor],
        edge_index: Optional[Union[Tensor, GraphStructure]] = None,
        return_attention_weights: bool = False,
    ):
        r"""Runs the block.

        Args:
            x (Tensor or (Tensor, Tensor)): node features ``[N, C]``, a
                bipartite pair ``(x_src, x_dst)``, or a dense batch
                ``[B, C, *S]``.
            edge_index (LongTensor or GraphStructure, optional): ``[2, E]``
                graph (``j -> i``), a PyG ``EdgeIndex``, an ``adj_t``
                (``SparseTensor`` / ``torch.sparse``, without values), or
                its :class:`~pyg_relational.structure.GraphStructure`.
                Required for node features; for a dense batch it defaults
                to the complete graph of every example (from the pooled
                positions with ``sub_sample=True``). (default: :obj:`None`)
            return_attention_weights (bool, optional): also return
                ``(edge_index, alpha)`` (for an ``adj_t``: ``(adj, alpha)``
                or a ``SparseTensor``, as PyG's attention layers).
                (default: :obj:`False`)
        """
        _check_batch_norm(self, x)
        dense = isinstance(x, Tensor) and x.dim() >= 3
        x_dst, key, value, graph, shape = _dense_inputs(self, x, edge_index) \
            if dense else _graph_inputs(self, x, edge_index)
        query = x_dst if self.theta is None else self.theta(x_dst)
        y, alpha = attend(self, query.unsqueeze(1), key.unsqueeze(1),
                          value.unsqueeze(1), graph,
                          (key.size(0), query.size(0)),
                          need_weights=return_attention_weights)
        out = y.squeeze(1)
        if self.W_z is not None:
            out = self.W_z(out)
            if self.bn is not None and out.size(0) > 0:
                out = self.bn(out)
            out = out + x_dst
        if dense:
            out = nodes_to_image(out, *shape)  # [B, C', *S]
        if not return_attention_weights:
            return out
        alpha = alpha.view(-1)
        if dense:
            return out, (graph.edge_index, alpha)
        return out, weights_like_graph(edge_index, graph.edge_index, alpha,
                                       (key.size(0), query.size(0)))

    def __repr__(self) -> str:
        extra = ''
        if self.sub_sample:
            extra += ', sub_sample=True'
        if not self.output_projection:
            extra += ', output_projection=False'
        elif not self.batch_norm:
            extra += ', batch_norm=False'
        if self.path != 'auto':
            extra += f', path={self.path!r}'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'inter_channels={self.inter_channels}, '
                f'pairwise={self.pairwise!r}{extra})')


def _check_batch_norm(block: NonLocalBlock, x):
    """BatchNorm in training needs more than one target position."""
    if not block.training or block.bn is None:
        return
    dst = x[-1] if isinstance(x, (tuple, list)) and x else x
    if isinstance(dst, Tensor) and dst.dim() >= 1:
        rows = dst.size(0) * math.prod(dst.shape[2:]) \
            if dst.dim() >= 3 else dst.size(0)
        if rows == 1:
            raise ValueError(
                f"NonLocalBlock in training mode normalises its output "
                f"with BatchNorm, which needs more than one target "
                f"position, but 'x' has one (shape {tuple(dst.shape)}); "
                f"pass a batch or image with more positions, call "
                f"block.eval(), or build it with batch_norm=False")


def _key(block: NonLocalBlock, x: Tensor) -> Tensor:
    r"""The key of every source: :math:`\phi(x_j)` (``x_j`` itself for
    ``'gaussian'``)."""
    return x if block.phi is None else block.phi(x)


def _graph(edge_index, num_src: int, num_dst: int, device) -> GraphInput:
    """The graph argument resolved; an edge list whose structure is not
    known is checked (a known one was built for these sizes)."""
    graph = GraphInput(edge_index, num_src, num_dst, device)
    graph.refuse_values('NonLocalBlock')
    if graph.structure is None:
        check_edge_index(graph.edge_index, num_src, num_dst)
    return graph


def _graph_inputs(block: NonLocalBlock, x, edge_index):
    """``(x_dst, key, value, graph, None)`` of node-feature input."""
    pair = isinstance(x, (tuple, list))
    x_src, x_dst = split_pair(x, 'x')
    named = (('x_src', x_src), ('x_dst', x_dst)) if pair else (('x', x), )
    for name, t in named:
        check_features(t, block.in_channels, name)
        if t.dim() != 2:
            raise ValueError(
                f"'{name}' must be node features [N, {block.in_channels}] "
                f"or a dense batch [B, {block.in_channels}, *spatial] (got "
                f"shape {tuple(t.shape)})")
    if block.sub_sample:
        raise ValueError(
            "sub_sample=True pools the dense layout and needs a batch "
            "[B, C, T], [B, C, H, W] or [B, C, T, H, W]; on a graph pass "
            "pooled sources as x=(x_src, x_dst) with a bipartite "
            "edge_index and sub_sample=False")
    if edge_index is None:
        raise ValueError("'edge_index' is required for node features "
                         "[N, C]; build one with complete_graph(sizes) "
                         "or pass a dense batch [B, C, *spatial]")
    graph = _graph(edge_index, x_src.size(0), x_dst.size(0), x_dst.device)
    return x_dst, _key(block, x_src), block.g(x_src), graph, None


def _dense_inputs(block: NonLocalBlock, x: Tensor, edge_index):
    """``(x_dst, key, value, graph, (B, *S))`` of a dense batch: positions
    as nodes, keys and values max-pooled with ``sub_sample``, the complete
    (or pooled bipartite) graph of every example by default."""
    if x.dim() > 5:
        raise ValueError(
            f"'x' must be [B, C, T], [B, C, H, W] or [B, C, T, H, W] "
            f"(got shape {tuple(x.shape)})")
    check_features(x, block.in_channels, 'x', dim=1)
    batch_size, spatial = x.size(0), tuple(x.shape[2:])
    num_dst = num_src = math.prod(spatial)
    x_dst = image_to_nodes(x)  # [B * prod(S), C]
    key, value = _key(block, x_dst), block.g(x_dst)
    if block.sub_sample:
        key, value, num_src = _pool(key, value, batch_size, spatial)
    if edge_index is None:  # the block's own graph, never materialised
        edge_index = BipartiteBlocks((num_src, ) * batch_size,
                                     (num_dst, ) * batch_size) \
            if block.sub_sample else CompleteBlocks((num_dst, ) * batch_size)
    graph = _graph(edge_index, batch_size * num_src, batch_size * num_dst,
                   x.device)
    return x_dst, key, value, graph, (batch_size, ) + spatial


def _pool(key: Tensor, value: Tensor, batch_size: int,
          spatial: Tuple[int, ...]) -> Tuple[Tensor, Tensor, int]:
    """Max-pools keys and values (nodes ``[B * prod(S), *]``) over the dense
    layout; returns them as nodes and the pooled positions per example."""
    kernel = {1: (2, ), 2: (2, 2), 3: (1, 2, 2)}[len(spatial)]
    pooled = tuple(s // k for s, k in zip(spatial, kernel))
    if math.prod(pooled) == 0:
        raise ValueError(
            f"sub_sample=True max-pools with window {kernel} but the "
            f"spatial size is {spatial}; use sub_sample=False for inputs "
            f"smaller than the window")
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[len(spatial) - 1]

    def pooled_nodes(h: Tensor) -> Tensor:
        dense = nodes_to_image(h, batch_size, *spatial)  # [B, C', *S]
        return image_to_nodes(pool(dense, kernel))  # [B * prod(S'), C']

    return pooled_nodes(key), pooled_nodes(value), math.prod(pooled)
