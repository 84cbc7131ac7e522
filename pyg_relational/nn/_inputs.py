r"""The inputs of the attention layers, checked and resolved once, outside the
layers (which keep only their projections and output maps): the options
every :class:`~pyg_relational.nn.AttentionConv` variant stores
(:func:`attention_options`), the node features (:func:`attention_nodes`),
the edge inputs (:func:`attention_edges`) and PyG's self-loop rewrite
(:func:`with_self_loops`)."""
from typing import Optional, Tuple

from torch import Tensor
from torch_geometric.utils import add_self_loops, remove_self_loops

from .._checks import (check_edge_attr, check_edge_index, check_edge_vector,
                       check_edge_weight, check_features, check_int,
                       check_size, check_size_or_lazy, split_pair)
from .._torch import compiling
from ..structure import tensor_cache
from ._paths import GraphInput, adjacency_size

__all__ = ['attention_options', 'attention_nodes', 'attention_edges',
           'with_self_loops']

GAT_SCORES = ('gat', 'concat', 'gatv2')


def attention_options(layer, in_channels, out_channels: int, heads: int,
                      score: str, concat: bool, negative_slope: float,
                      dropout: float, add_self_loops: bool,
                      edge_dim: Optional[int], fill_value, residual: bool,
                      path: str, fused: Optional[bool] = None
                      ) -> Tuple[int, int]:
    """Store an attention layer's options, each under its own name, and its
    paths; returns the checked ``(in_src, in_dst)`` (``-1``: lazy)."""
    layer.init_paths(path, fused)
    layer.in_channels = in_channels
    layer.out_channels = check_int(out_channels, 'out_channels', 1)
    layer.heads = check_int(heads, 'heads', 1)
    layer.score_name = score
    layer.gat = score in GAT_SCORES
    layer.concat = concat
    layer.negative_slope = negative_slope
    layer.dropout = float(dropout)
    layer.add_self_loops = add_self_loops
    layer.edge_dim = None if edge_dim is None \
        else check_int(edge_dim, 'edge_dim', 1)
    layer.fill_value = fill_value
    layer.residual = bool(residual)
    layer.num_edge_types = None
    if not isinstance(in_channels, (tuple, list)):
        in_channels = (in_channels, in_channels)
    in_src, in_dst = (check_size_or_lazy(c, 'in_channels')
                      for c in in_channels)
    return in_src, in_dst


def _two_dim(*xs: Tensor):
    if any(t.dim() != 2 for t in xs):
        raise ValueError(f"node features must be 2-D [N, F] (got "
                         f"{' and '.join(str(tuple(t.shape)) for t in xs)})")


def attention_nodes(layer, x, size, edge_index=None):
    """``(x_src, x_dst, N_dst)`` checked against ``layer.in_channels`` and
    ``size``; a single ``x`` with ``size=(N, M)``, ``M <= N``, has its
    first ``M`` nodes as targets (PyG's sampled-subgraph convention);
    ``(x_src, None)`` (GAT-family scores) has no target features, the
    target count from ``size`` or the ``adj_t``."""
    x_src, x_dst = split_pair(x, 'x')
    in_src, in_dst = (layer.in_channels, ) * 2 if isinstance(
        layer.in_channels, int) else layer.in_channels
    if x_dst is None and isinstance(x_src, Tensor):
        return x_src, None, _no_targets(layer, x_src, in_src, size,
                                        edge_index)
    single = x_src is x_dst
    check_features(x_src, in_src, 'x' if single else 'x_src')
    check_features(x_dst, in_dst, 'x' if single else 'x_dst')
    _two_dim(x_src, x_dst)
    if size is None:
        return x_src, x_dst, x_dst.size(0)
    num_src, num_dst = check_size(size)
    if single and num_src == x_src.size(0) and num_dst <= num_src:
        return x_src, x_dst[:num_dst], num_dst
    if (num_src, num_dst) != (x_src.size(0), x_dst.size(0)):
        raise ValueError(
            f"size={tuple(size)} does not match the node features "
            f"({x_src.size(0)} sources, {x_dst.size(0)} targets); pass "
            f"x=(x_src, x_dst) for a bipartite graph, or size=(N, M) "
            f"with M <= N = x.size(0) for the first M nodes as targets")
    return x_src, x_dst, num_dst


def _no_targets(layer, x_src: Tensor, in_src: int, size, edge_index) -> int:
    """The target count of ``x=(x_src, None)``, checked."""
    if not layer.gat:
        raise ValueError(
            f"x=(x_src, None): score={layer.score_name!r} needs target "
            f"features (the queries); only the GAT-family scores ('gat', "
            f"'concat', 'gatv2') score an edge from its source alone")
    check_features(x_src, in_src, 'x_src')
    _two_dim(x_src)
    sizes = check_size(size) if size is not None \
        else adjacency_size(edge_index)
    if sizes is None:
        raise ValueError("x=(x_src, None) has no target features: pass "
                         "size=(N_src, N_dst) (or an adj_t, whose shape "
                         "gives it)")
    if sizes[0] != x_src.size(0):
        raise ValueError(f"size={tuple(sizes)} does not match x_src "
                         f"({x_src.size(0)} sources)")
    return sizes[1]


def attention_edges(layer, graph: GraphInput, edge_attr, edge_type,
                    edge_weight, num_src: int, num_dst: int):
    """Edge list, ``adj_t`` values, edge features, edge types and edge
    weights of an attention layer, checked; returns ``edge_attr``
    (``[E]`` made ``[E, 1]``)."""
    graph.refuse_values(f'{type(layer).__name__} (attention infers its '
                        f'own weights; per-edge weights: edge_weight=)')
    if graph.structure is None:  # a known structure is valid as built
        check_edge_index(graph.edge_index, num_src, num_dst)
    E = graph.structure.num_edges if graph.structure is not None \
        else graph.edge_index.size(1)
    if edge_attr is not None:
        if layer.lin_edge is None:
            raise ValueError("'edge_attr' was given but the layer has no "
                             "edge term; construct it with edge_dim=D")
        edge_attr = check_edge_attr(edge_attr, layer.edge_dim, E)
    if layer.rel_key is not None or layer.score_name == 'location':
        if edge_type is None:
            raise ValueError(
                "this AttentionConv needs 'edge_type' (relative positions "
                "or source positions, e.g. from relative_position())")
        num_types = layer.num_edge_types if layer.rel_key is not None \
            else layer.score.num_types
        check_edge_vector(edge_type, E, 'edge_type', num_types)
        if layer.add_self_loops:
            raise ValueError("add_self_loops=True cannot type the added "
                             "loops; build the graph with self-loops "
                             "(e.g. complete_graph) and their edge_type")
    elif edge_type is not None:
        raise ValueError("'edge_type' was given but the layer does not "
                         "use it; construct it with num_edge_types=T or "
                         "score='location'")
    if edge_weight is not None:
        check_edge_weight(edge_weight, E)
        if layer.add_self_loops:
            raise ValueError("'edge_weight' with add_self_loops=True: the "
                             "added loops would have no weight; build "
                             "the graph with its self-loops and weights")
    return edge_attr


def with_self_loops(edge_index: Tensor, edge_attr: Optional[Tensor],
                    num_nodes: int, fill_value):
    """The graph with one self-loop per node (PyG's ``remove_self_loops`` +
    ``add_self_loops``, added edge features ``fill_value``); without edge
    features kept per ``edge_index`` tensor, so that its CSR pattern is
    built once too (:meth:`EdgePattern.build` caches per tensor)."""
    cache = tensor_cache(edge_index) if edge_attr is None and isinstance(
        edge_index, Tensor) and not compiling() else {}
    key = ('self_loops', num_nodes)
    if key in cache:
        return cache[key], None
    loops, edge_attr = remove_self_loops(edge_index, edge_attr)
    loops, edge_attr = add_self_loops(loops, edge_attr,
                                      fill_value=fill_value,
                                      num_nodes=num_nodes)
    cache[key] = loops
    return loops, edge_attr
