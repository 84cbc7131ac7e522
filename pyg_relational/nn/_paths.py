r"""Execution paths: one meaning, several ways to compute it.

Every layer with more than one way of computing its formula takes
``path='auto' | 'dense' | 'sparse' | 'message'`` and records the path that
ran in ``layer.last_path``:

* ``'dense'``: PyTorch's dense kernels on a graph whose structure is known
  (:mod:`pyg_relational.structure`): ``scaled_dot_product_attention`` on
  complete blocks, ``conv1d/conv2d`` on grids, fused RNN kernels on chains;
* ``'sparse'``: CSR products (SDDMM / SpMM) on any graph with an edge (a
  repeated edge is two messages, as on the message path);
* ``'message'``: PyG's ``propagate``, the reference every other path is
  tested against, and the fall-back.

``'auto'`` takes the first available of dense, sparse, message, and takes
the message path whenever a faster path cannot keep the message path's
contract: PyG explain masks, propagate/message hooks, TorchScript tracing,
``torch.compile`` of a kernel that cannot be traced, and dtypes the kernel
lacks. A forced path that cannot run raises a :class:`ValueError` saying
why.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch

from .._checks import check_choice

try:  # the optional `full` extra; resolved once (not while compiling)
    from torch_sparse import SparseTensor
except ImportError:
    SparseTensor = None

__all__ = ['PATHS', 'check_path', 'message_only_reason', 'choose_path',
           'PathLayer', 'adjacency_size', 'weights_like_graph']

PATHS = ('auto', 'dense', 'sparse', 'message')

_HOOKS = ('_propagate_forward_pre_hooks', '_propagate_forward_hooks',
          '_message_forward_pre_hooks', '_message_forward_hooks',
          '_aggregate_forward_pre_hooks', '_aggregate_forward_hooks',
          '_message_and_aggregate_forward_pre_hooks',
          '_message_and_aggregate_forward_hooks',
          '_edge_update_forward_pre_hooks', '_edge_update_forward_hooks')


def check_path(path: str) -> str:
    """Validate a ``path=`` argument."""
    return check_choice(path, PATHS, 'path')


def message_only_reason(module) -> Optional[str]:
    """Why only the message path keeps the contract right now (or None):
    an explainer's edge mask, user hooks on propagate/message, tracing."""
    if getattr(module, '_explain', None) or \
            getattr(module, '_edge_mask', None) is not None:
        return 'an explainer is attached (PyG explain edge mask)'
    for name in _HOOKS:
        if getattr(module, name, None):
            return f'hooks are registered ({name.strip("_")})'
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return 'TorchScript tracing'
    return None


_FUSED = ("{layer}: 'fused' was removed; use path='message' (was "
          "fused=False) or path='auto' (was fused=True)")


def _refuse_fused(module, value=None):
    raise TypeError(_FUSED.format(layer=type(module).__name__))


class PathLayer:
    """What every layer with execution paths shares (a mixin beside
    :class:`~torch_geometric.nn.conv.MessagePassing`): ``path``, the
    ``last_path`` / ``why_not_faster`` record of the call, and the removed
    ``fused`` switch, refused with the name of its replacement."""

    def init_paths(self, path: str, fused: Optional[bool] = None):
        """Set ``path`` (checked); ``fused`` (removed) is refused."""
        if fused is not None:
            _refuse_fused(self)
        self.path = check_path(path)
        self.last_path: Optional[str] = None
        self.why_not_faster: Optional[Dict[str, str]] = None

    #: setting the removed switch raises (reading it finds no attribute)
    fused = property(None, _refuse_fused, doc="Removed: use ``path``.")

    def choose_path(self, unavailable: Dict[str, Optional[str]],
                    order: Sequence[str] = ('dense', 'sparse', 'message')
                    ) -> str:
        """:func:`choose_path` with this layer's ``path``."""
        return choose_path(self, self.path, unavailable, order)


def choose_path(module, requested: str,
                unavailable: Dict[str, Optional[str]],
                order: Sequence[str] = ('dense', 'sparse', 'message')) -> str:
    r"""The path to run; also sets ``module.last_path`` (the path) and
    ``module.why_not_faster`` (None when the fastest path the layer has ran,
    else ``{path: reason}`` for each faster path skipped).

    Args:
        module: the layer (its explain masks and hooks are looked at).
        requested (str): the layer's ``path`` (``'auto'`` or a path name).
        unavailable (dict): for every fast path the layer has, the reason
            it cannot run on this input (``None`` when it can). Paths the
            layer does not have are simply absent.
        order (sequence of str): preference of ``'auto'``.
    """
    path, why_not = _choose(module, requested, unavailable, order)
    module.last_path = path
    module.why_not_faster = why_not
    return path


def _choose(module, requested, unavailable, order):
    reason = message_only_reason(module)
    if requested == 'auto':
        if reason is None:
            for path in order:
                if path in unavailable and unavailable[path] is None:
                    skipped = {p: unavailable[p] for p in order
                               if p in unavailable and p != path}
                    slower = order.index(path) > 0
                    return path, (skipped if slower else None)
            return 'message', {p: unavailable[p] for p in order
                               if p in unavailable}
        return 'message', {'all': reason}
    if requested == 'message':
        return 'message', {'all': "path='message' was asked for"}
    if requested not in unavailable:
        raise ValueError(f"{type(module).__name__} has no {requested!r} path "
                         f"(it has {sorted(unavailable) + ['message']}); use "
                         f"path='auto'")
    why = unavailable[requested] or reason
    if why is not None:
        raise ValueError(f"{type(module).__name__}(path={requested!r}) cannot "
                         f"run here: {why}; use path='auto' to fall back")
    return requested, None


class GraphInput:
    r"""A layer's graph argument, resolved once per call.

    Accepts an ``edge_index`` tensor, PyG's :class:`EdgeIndex`, an
    ``adj_t`` (:class:`torch_sparse.SparseTensor` or a ``torch.sparse``
    COO/CSR/CSC tensor of shape ``[N_dst, N_src]``, as PyG layers take it),
    or a :class:`~pyg_relational.structure.GraphStructure` (the edge list is
    then built only if a path needs it).

    Attributes:
        structure: the graph's structure, or None.
        edge_weight: the ``adj_t`` values (None for an index or structure).
    """

    def __init__(self, graph, num_src: Optional[int] = None,
                 num_dst: Optional[int] = None, device=None,
                 name: str = 'edge_index'):
        from ..structure import GraphStructure, structure_of
        self.edge_weight = None
        self._edge_index = None
        self._device = device
        if isinstance(graph, GraphStructure):
            self.structure = graph
            for what, want, have in (('source', num_src, graph.num_src_nodes),
                                     ('target', num_dst, graph.num_dst_nodes)):
                if want is not None and want != have:
                    raise ValueError(
                        f"'{name}' describes {have} {what} nodes but the "
                        f"input has {want}")
            return
        graph = _from_adj_t(graph, self, name)
        self._edge_index = graph
        self.structure = structure_of(graph, num_src, num_dst) \
            if isinstance(graph, torch.Tensor) else None

    @property
    def edge_index(self) -> torch.Tensor:
        """The edge list (built from the structure on first use)."""
        if self._edge_index is None:
            self._edge_index = self.structure.edge_index(self._device)
        return self._edge_index

    def refuse_values(self, layer: str, name: str = 'edge_index'):
        """Refuse an ``adj_t`` whose values ``layer`` would not use (values
        of one are a bare pattern): weights are never ignored silently."""
        if self.edge_weight is not None and not bool(
                (self.edge_weight == 1).all()):
            raise ValueError(
                f"{layer} does not use edge weights: the values of the adj_t "
                f"passed as '{name}' would be ignored; pass it without "
                f"values (SparseTensor(row=..., col=...)) or with values of "
                f"one")

    @property
    def materialised(self) -> bool:
        return self._edge_index is not None


def _from_adj_t(graph, into: GraphInput, name: str):
    """``adj_t`` -> ``edge_index`` (sources first), values kept."""
    if SparseTensor is not None and isinstance(graph, SparseTensor):
        row, col, value = graph.coo()  # row = target, col = source
        into.edge_weight = value
        return torch.stack([col, row])
    if isinstance(graph, torch.Tensor) and graph.layout != torch.strided:
        if graph.dim() != 2:
            raise ValueError(f"a sparse '{name}' (adj_t) must be 2-D "
                             f"[N_dst, N_src]; got {tuple(graph.shape)}")
        coo = graph.to_sparse_coo().coalesce()
        row, col = coo.indices()
        into.edge_weight = coo.values()
        return torch.stack([col, row])
    if isinstance(graph, torch.Tensor) and type(graph) is not torch.Tensor:
        return graph  # EdgeIndex: kept (its cached CSR is used by PyG)
    return graph


def adjacency_size(graph) -> Optional[Tuple[int, int]]:
    """``(N_src, N_dst)`` of an ``adj_t`` (``SparseTensor`` or
    ``torch.sparse`` ``[N_dst, N_src]``), None for other graph inputs."""
    if SparseTensor is not None and isinstance(graph, SparseTensor):
        num_dst, num_src = graph.sparse_sizes()
        return num_src, num_dst
    if isinstance(graph, torch.Tensor) and graph.layout != torch.strided \
            and graph.dim() == 2:
        return graph.size(1), graph.size(0)
    return None


def weights_like_graph(graph, edge_index: torch.Tensor,
                       alpha: torch.Tensor, size: Tuple[int, int]):
    r"""Attention weights ``alpha [E, H]`` of the edges ``edge_index`` in
    the kind of graph the layer was given, as PyG's attention layers
    return them: ``(edge_index, alpha)`` for an edge list, ``(adj, alpha)``
    for a ``torch.sparse`` ``adj_t`` (``adj [N_dst, N_src, H]`` in the
    input's layout), and a ``SparseTensor`` ``[N_dst, N_src]`` with
    ``alpha`` as its values for a ``SparseTensor``."""
    num_src, num_dst = size
    if SparseTensor is not None and isinstance(graph, SparseTensor):
        return SparseTensor(row=edge_index[1], col=edge_index[0],
                            value=alpha, sparse_sizes=(num_dst, num_src))
    if isinstance(graph, torch.Tensor) and graph.layout != torch.strided:
        shape = (num_dst, num_src) + tuple(alpha.shape[1:])
        row, col = edge_index[1], edge_index[0]
        if graph.layout in (torch.sparse_csr, torch.sparse_csc):
            csr = graph.layout == torch.sparse_csr  # CSC: sorted by column
            major, minor, num = (row, col, num_dst) if csr \
                else (col, row, num_src)
            perm = (major * (num_src + num_dst) + minor).argsort()
            ptr = torch.zeros(num + 1, dtype=torch.long, device=row.device)
            ptr[1:] = torch.bincount(major, minlength=num).cumsum(0)
            make = torch.sparse_csr_tensor if csr else torch.sparse_csc_tensor
            adj = make(ptr, minor[perm], alpha[perm], shape)
        else:
            adj = torch.sparse_coo_tensor(torch.stack([row, col]), alpha,
                                          shape).coalesce()
        return adj, alpha
    return edge_index, alpha
