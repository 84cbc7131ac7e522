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

from .._checks import check_choice, check_edge_index, check_features, check_int
from ..graphs import complete_graph  # noqa: F401 (the example)
from ..structure import BipartiteBlocks, CompleteBlocks, GraphStructure
from ..transforms import image_to_nodes, nodes_to_image
from ._attend import (choose_attention_path, edge_order, normalise,
                      sparse_attention)
from ._csr import EdgePattern
from ._dense import block_attention, dense_reason
from ._paths import GraphInput, check_path, weights_like_graph
from .attention import attention_score

__all__ = ['NonLocalBlock']

PairTensor = Tuple[Tensor, Tensor]

#: Sources per block from which the Gaussian forms use PyTorch's fused
#: attention kernel on equal blocks (below, and when :math:`g` is narrower
#: than the keys, which the fused CPU kernel does not take: its fallback
#: measured ~2x slower, ``softmax(q k^T) g`` as two batched products).
#: Forward+backward of ``NonLocalBlock(64)`` on 8 images, 1 thread (loaded
#: machine, best of 20-60): batched products faster at 64 and 128
#: positions (1.66 vs 1.88 ms; 13.2 vs 17.3 ms), the fused kernel from 256
#: (20.6 vs 25.3 ms) and 1024 (2x faster than the products).
SDPA_MIN_SOURCES = 256


class NonLocalBlock(MessagePassing):
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
        Three ways compute the same numbers (tested against each other:
        forward, backward and second order), chosen with ``path``
        (:attr:`last_path` says which ran, :attr:`why_not_faster` why a
        faster one did not):

        * ``'dense'``: on complete blocks with self-loops (the block's own
          dense input, or a graph from
          :func:`~pyg_relational.graphs.complete_graph` /
          :func:`~pyg_relational.graphs.bipartite_graph`, or a
          :class:`~pyg_relational.structure.GraphStructure` passed as
          ``edge_index``) the Gaussian forms are unscaled softmax attention,
          :func:`~torch.nn.functional.scaled_dot_product_attention` with
          ``scale=1`` per block; ``'dot'`` and ``'concat'`` are two batched
          matrix products over equal blocks (the paper's implementation).
          No per-edge tensor is built unless the weights are asked for;
        * ``'sparse'``: any graph with an edge (repeated edges are separate
          messages), as CSR products
          (an SDDMM for :math:`\theta_i^{\top}\phi_j`, an SpMM for
          :math:`\sum_j \alpha_{ji} g_j`; pattern cached per graph);
          float32 / float64, or in float32 under autocast;
        * ``'message'``: :meth:`edge_update` + :meth:`message`, the
          reference.

        ``'auto'`` (default) takes the first that applies, and the message
        path under PyG explain, hooks, or :func:`torch.compile` of a graph
        without known structure. CUDA is untested.

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
        fused (bool, optional): deprecated alias: ``fused=False`` is
            ``path='message'``. (default: :obj:`None`)
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
        self.in_channels = check_int(in_channels, 'in_channels', minimum=1)
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        self.inter_channels = check_int(inter_channels, 'inter_channels',
                                        minimum=1)
        self.pairwise = check_choice(pairwise, self.PAIRWISE, 'pairwise')
        self.sub_sample = bool(sub_sample)
        self.output_projection = bool(output_projection)
        self.batch_norm = bool(batch_norm)
        self.path = check_path(path)
        if fused is not None:  # the old switch: fused=False is 'message'
            self.fused = fused
        self.last_path: Optional[str] = None
        self.why_not_faster = None

        self.g = Linear(in_channels, inter_channels)
        if pairwise == 'gaussian':
            self.register_module('theta', None)
            self.register_module('phi', None)
        else:
            self.theta = Linear(in_channels, inter_channels)
            self.phi = Linear(in_channels, inter_channels)
        # f is AttentionConv's score, one head: 'dot' (q_i^T k_j) for the
        # Gaussian and dot forms, 'concat' with a ReLU (negative_slope=0):
        # w_f = [score.att_dst || score.att_src].
        key_channels = in_channels if pairwise == 'gaussian' \
            else inter_channels
        if pairwise == 'concat':
            self.score = attention_score('concat', 1, key_channels,
                                         key_channels, negative_slope=0.)
        else:
            self.score = attention_score('dot', 1, key_channels,
                                         key_channels)
        if output_projection:
            self.W_z = Linear(inter_channels, in_channels)
        else:
            self.register_module('W_z', None)
        if output_projection and batch_norm:
            self.bn = BatchNorm1d(in_channels)
        else:
            self.register_module('bn', None)
        self.reset_parameters()

    @property
    def fused(self) -> bool:
        """The old switch: :obj:`False` when ``path='message'``."""
        return self.path != 'message'

    @fused.setter
    def fused(self, value: bool):
        self.path = 'auto' if value else 'message'

    def reset_parameters(self):
        super().reset_parameters()
        for lin in (self.g, self.theta, self.phi, self.W_z):
            if lin is not None:
                lin.reset_parameters()
        self.score.reset_parameters()
        if self.bn is not None:
            self.bn.reset_parameters()
            torch.nn.init.zeros_(self.bn.weight)  # identity at init

    # ------------------------------------------------------------------
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
                (``SparseTensor`` / ``torch.sparse``, its values unused), or
                the :class:`~pyg_relational.structure.GraphStructure` of the
                graph. Required for node features; for a dense batch it
                defaults to the complete graph of every example (sources are
                the pooled positions with ``sub_sample=True``).
                (default: :obj:`None`)
            return_attention_weights (bool, optional): also return
                ``(edge_index, alpha)`` (for an ``adj_t``: ``(adj, alpha)``
                or a ``SparseTensor``, as PyG's attention layers).
                (default: :obj:`False`)
        """
        if self.training and self.bn is not None:  # BN needs 2 values
            dst = x[-1] if isinstance(x, (tuple, list)) and x else x
            if isinstance(dst, Tensor) and dst.dim() >= 1:
                rows = dst.size(0) * math.prod(dst.shape[2:]) \
                    if dst.dim() >= 3 else dst.size(0)
                if rows == 1:
                    raise ValueError(
                        f"NonLocalBlock in training mode normalises its "
                        f"output with BatchNorm, which needs more than one "
                        f"target position, but 'x' has one (shape "
                        f"{tuple(dst.shape)}); pass a batch or image with "
                        f"more positions, call block.eval(), or build it "
                        f"with batch_norm=False")
        if isinstance(x, Tensor) and x.dim() >= 3:
            return self._forward_dense(x, edge_index,
                                       return_attention_weights)
        x_src, x_dst = self._check_graph_input(x, edge_index)
        graph = self._graph(edge_index, x_src.size(0), x_dst.size(0),
                            x_dst.device)
        out, alpha = self._attend(x_dst, self._key(x_src), self.g(x_src),
                                  graph, return_attention_weights)
        if return_attention_weights:  # in the input's kind of graph
            return out, weights_like_graph(edge_index, graph.edge_index,
                                           alpha, (x_src.size(0),
                                                   x_dst.size(0)))
        return out

    def _check_graph_input(self, x, edge_index) -> PairTensor:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(f"'x' must be a tensor or a pair (x_src, "
                                 f"x_dst) (got {len(x)} entries)")
            named = (('x_src', x[0]), ('x_dst', x[1]))
        else:
            named = (('x', x), )
        for name, t in named:
            check_features(t, self.in_channels, name)
            if t.dim() != 2:
                raise ValueError(
                    f"'{name}' must be node features [N, {self.in_channels}] "
                    f"or a dense batch [B, {self.in_channels}, *spatial] (got "
                    f"shape {tuple(t.shape)})")
        x_src, x_dst = named[0][1], named[-1][1]
        if self.sub_sample:
            raise ValueError(
                "sub_sample=True pools the dense layout and needs a batch "
                "[B, C, T], [B, C, H, W] or [B, C, T, H, W]; on a graph pass "
                "pooled sources as x=(x_src, x_dst) with a bipartite "
                "edge_index and sub_sample=False")
        if edge_index is None:
            raise ValueError("'edge_index' is required for node features "
                             "[N, C]; build one with complete_graph(sizes) "
                             "or pass a dense batch [B, C, *spatial]")
        return x_src, x_dst

    @staticmethod
    def _graph(edge_index, num_src: int, num_dst: int, device) -> GraphInput:
        """The graph argument resolved; an edge list whose structure is
        not known is checked (a known one was built for these sizes)."""
        graph = GraphInput(edge_index, num_src, num_dst, device)
        graph.refuse_values('NonLocalBlock')
        if graph.structure is None:
            check_edge_index(graph.edge_index, num_src, num_dst)
        return graph

    def _forward_dense(self, x: Tensor, edge_index,
                       return_attention_weights: bool):
        if x.dim() > 5:
            raise ValueError(
                f"'x' must be [B, C, T], [B, C, H, W] or [B, C, T, H, W] "
                f"(got shape {tuple(x.shape)})")
        check_features(x, self.in_channels, 'x', dim=1)
        batch_size, spatial = x.size(0), tuple(x.shape[2:])
        num_dst = math.prod(spatial)
        x_dst = image_to_nodes(x)  # [B * prod(S), C]
        key, value = self._key(x_dst), self.g(x_dst)
        num_src = num_dst
        if self.sub_sample:
            key, value, num_src = self._pool(key, value, batch_size, spatial)
        if edge_index is None:  # the block's own graph, never materialised
            edge_index = BipartiteBlocks((num_src, ) * batch_size,
                                         (num_dst, ) * batch_size) \
                if self.sub_sample else CompleteBlocks((num_dst, ) *
                                                       batch_size)
        graph = self._graph(edge_index, batch_size * num_src,
                            batch_size * num_dst, x.device)
        out, alpha = self._attend(x_dst, key, value, graph,
                                  return_attention_weights)
        out = nodes_to_image(out, batch_size, *spatial)  # [B, C', *S]
        if return_attention_weights:
            return out, (graph.edge_index, alpha)
        return out

    def _key(self, x: Tensor) -> Tensor:
        r"""The key of every source: :math:`\phi(x_j)` (``x_j`` itself for
        ``'gaussian'``)."""
        return x if self.phi is None else self.phi(x)

    def _pool(self, key: Tensor, value: Tensor, batch_size: int,
              spatial: Tuple[int, ...]) -> Tuple[Tensor, Tensor, int]:
        """Max-pools keys and values (nodes ``[B * prod(S), *]``) over the
        dense layout; returns them as nodes and the pooled positions per
        example."""
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

    # -- path choice -----------------------------------------------------
    def _dense_reason(self, structure) -> Optional[str]:
        """Why the dense path cannot run on this graph (None if it can)."""
        reason = dense_reason(structure)
        if reason is None and self.pairwise not in self.SOFTMAX \
                and not _equal_blocks(structure):
            reason = "'dot' / 'concat' run densely on equal blocks only " \
                "(complete with self-loops and not causal, or bipartite)"
        return reason

    # -- the three paths ----    # -- the three paths ---------------------------------------------------
    def _attend(self, x_dst: Tensor, key: Tensor, value: Tensor,
                graph: GraphInput, need_weights: bool) -> PairTensor:
        """``z`` (or ``y``) of the targets and the weights of the edges (in
        the order of ``graph.edge_index``; None unless ``need_weights``),
        from the targets' features and the sources' keys and values."""
        query = x_dst if self.theta is None else self.theta(x_dst)
        size = (key.size(0), query.size(0))
        path, pattern = choose_attention_path(
            self, graph, size, query, self._dense_reason(graph.structure))
        if path == 'dense':
            y, alpha = self._dense(query, key, value, graph.structure,
                                   need_weights)
        elif path == 'sparse':
            y, alpha = self._sparse(query, key, value, pattern, size)
        else:
            # one head: [N, 1, C'] -> per-node part of f ([N, 1] 'concat')
            query, key = self.score.project(query.unsqueeze(1),
                                            key.unsqueeze(1))
            # edge_updater_type: (query: Tensor, key: Tensor)
            alpha = self.edge_updater(graph.edge_index, query=query, key=key,
                                      size=size)
            # propagate_type: (value: Tensor, alpha: Tensor)
            y = self.propagate(graph.edge_index, value=value, alpha=alpha,
                               size=size)
        if self.W_z is None:
            return y, alpha
        z = self.W_z(y)
        if self.bn is not None and z.size(0) > 0:
            z = self.bn(z)
        return z + x_dst, alpha

    def _dense(self, query: Tensor, key: Tensor, value: Tensor,
               structure: GraphStructure, need_weights: bool) -> PairTensor:
        r"""Blocks as dense matrices: SDPA with ``scale=1`` for the Gaussian
        forms; on equal blocks, :math:`f` with a batched product then
        :math:`f\, g / \mathcal{C}` with another (``'dot'``, ``'concat'``,
        the weights when asked, and the Gaussian forms on small blocks or
        with :math:`g` narrower than the keys, where PyTorch's fused CPU
        kernel is slower, see :data:`SDPA_MIN_SOURCES`)."""
        softmax = self.pairwise in self.SOFTMAX
        fused = query.size(-1) == value.size(-1) and not need_weights and \
            key.size(0) >= SDPA_MIN_SOURCES * len(_block_sizes(structure)[0])
        if softmax and (fused or not _equal_blocks(structure)):
            y, alpha = block_attention(query.unsqueeze(1), key.unsqueeze(1),
                                       value.unsqueeze(1), structure,
                                       scale=1., need_weights=need_weights)
            return y.squeeze(1), (None if alpha is None else alpha.view(-1))
        blocks = len(_block_sizes(structure)[0])
        if blocks == 0 or key.size(0) == 0 or query.size(0) == 0:
            y = value.new_zeros(query.size(0), value.size(-1))
            return y, (value.new_zeros(0) if need_weights else None)
        n, m = query.size(0) // blocks, key.size(0) // blocks
        q = query.view(blocks, n, -1)  # [B, n, C']
        k = key.view(blocks, m, -1)  # [B, m, C']
        if self.pairwise == 'concat':  # ReLU(w_dst^T theta_i + w_src^T phi_j)
            q, k = self.score.project(q, k)  # [B, n], [B, m]
            f = self.score.edge(q.unsqueeze(2), k.unsqueeze(1))  # [B, n, m]
        else:  # theta_i^T phi_j
            f = torch.bmm(q, k.transpose(1, 2))  # [B, n, m]
        # f / C_i: a softmax, or C_i = N_b, the block's sources
        f = torch.softmax(f, dim=-1) if softmax else f / m
        y = torch.bmm(f, value.view(blocks, m, -1))  # [B, n, C']
        return y.view(-1, y.size(-1)), (f.reshape(-1) if need_weights
                                        else None)

    def _sparse(self, query: Tensor, key: Tensor, value: Tensor,
                pattern: EdgePattern, size: Tuple[int, int]) -> PairTensor:
        r"""The same ``y`` and ``alpha`` as :meth:`edge_update` +
        :meth:`message` by
        :func:`~pyg_relational.nn._attend.sparse_attention` (an SDDMM for
        :math:`\theta_i^{\top}\phi_j`, an SpMM for the sum)."""
        if not self.score.dot_product:  # 'concat': per-node scalars [N, 1]
            query, key = self.score.project(query.unsqueeze(1),
                                            key.unsqueeze(1))
        y, alpha = sparse_attention(pattern, self.score, query, key, value,
                                    size[1], how=self._how)
        return y, edge_order(pattern, alpha)

    @property
    def _how(self) -> str:
        r""":math:`\mathcal{C}_i`: a softmax or the number of edges."""
        return 'softmax' if self.pairwise in self.SOFTMAX else 'count'

    def edge_update(self, query_i: Tensor, key_j: Tensor, index: Tensor,
                    ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        f = self.score.edge(query_i, key_j).view(-1)  # [E, 1] -> [E]
        return normalise(f, index, ptr, size_i, self._how)

    def message(self, value_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * value_j

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


def _equal_blocks(structure: GraphStructure) -> bool:
    """Blocks of one size whose targets see all sources of their block:
    ``[B, n, m]`` views of the node tensors are the whole graph."""
    if isinstance(structure, CompleteBlocks) and (
            structure.causal or not structure.self_loops):
        return False
    src, dst = _block_sizes(structure)
    return len(set(src)) <= 1 and len(set(dst)) <= 1


def _block_sizes(structure: GraphStructure
                 ) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """``(sources, targets)`` per block of complete or bipartite blocks."""
    if isinstance(structure, CompleteBlocks):
        return structure.sizes, structure.sizes
    return structure.src_sizes, structure.dst_sizes
