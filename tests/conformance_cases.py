r"""The case table of the conformance suite (``tests/test_conformance.py``).

A :class:`Case` is one layer on one kind of graph with the list of the
execution paths it has there (``'dense'``, ``'sparse'``, ``'message'``).
Every test of the suite runs on every ``(case, path)`` pair of this table:
a new path joins the suite by being added to a case's ``paths``, a new
layer by adding a case, never by writing new tests.

A :class:`Kind` builds the graphs of a case from a list of graph sizes (a
batch of graphs laid end to end, as :class:`torch_geometric.data.Batch`
does) and knows which graph of the batch every node belongs to, so the
suite can check that a NaN in one graph stays there. Kinds also build an
empty batch (``sizes=[0]``), a batch of one-node graphs and, where the
kind allows it, a graph with targets that receive no edge.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from torch_geometric import EdgeIndex

from pyg_relational import graphs
from pyg_relational.structure import structure_of
from pyg_relational.nn import _dense
from pyg_relational.nn import (AttentionConv, BahdanauAttention, EdgeBlock,
                               FullyConnectedConv, GatedGraphConv, GATConv,
                               GATv2Conv, GlobalBlock, GraphNetwork,
                               InteractionNetwork, LatticeConv,
                               LuongAttention, MPNNConv,
                               MultiheadAttentionConv, NodeBlock,
                               NonLocalBlock, NRIDecoder, NRIEncoder,
                               NRIRNNDecoder, RecurrentConv,
                               TransformerDecoderLayer,
                               TransformerEncoderLayer)
from tests.helpers import graph_to as _to

F_IN = 4  # node features of every case


# --------------------------------------------------------------------------
# Graphs.
# --------------------------------------------------------------------------
@dataclass
class Graph:
    r"""A batch of graphs.

    Attributes:
        edge_index: ``[2, E]``, sources first.
        src_graph, dst_graph: graph of every source / target node.
        num_graphs: number of graphs (empty graphs count).
        edge_type: ``[E]`` edge types, for typed kinds.
        info: what a case needs besides (sizes, grid geometry, ...).
    """
    edge_index: Tensor
    src_graph: Tensor
    dst_graph: Tensor
    num_graphs: int
    edge_type: Optional[Tensor] = None
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_src(self) -> int:
        return self.src_graph.numel()

    @property
    def num_dst(self) -> int:
        return self.dst_graph.numel()

    def to(self, device) -> 'Graph':
        """The same graphs on ``device`` (a builder's graph keeps its
        registered structure there)."""
        return Graph(_to(self.edge_index, device),
                     self.src_graph.to(device), self.dst_graph.to(device),
                     self.num_graphs, None if self.edge_type is None
                     else self.edge_type.to(device), dict(self.info))

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def isolated_targets(self) -> Tensor:
        """Targets without an incoming edge (mask ``[N_dst]``)."""
        degree = torch.zeros(self.num_dst, dtype=torch.long,
                             device=self.device)
        degree.index_add_(0, self.edge_index[1],
                          torch.ones_like(self.edge_index[1]))
        return degree == 0


def _graph_of(sizes: Sequence[int]) -> Tensor:
    sizes = torch.tensor(list(sizes), dtype=torch.long)
    return torch.repeat_interleave(torch.arange(sizes.numel()), sizes)


def _same_nodes(edge_index: Tensor, sizes: Sequence[int], **info) -> Graph:
    node_graph = _graph_of(sizes)
    return Graph(edge_index, node_graph, node_graph, len(sizes),
                 info=dict(sizes=list(sizes), **info))


def _random_edges(sizes: Sequence[int], keep: float, seed: int,
                  acyclic: bool = False, isolate: bool = False) -> Tensor:
    """Random edges inside every graph (no repeated edge, never all pairs,
    shuffled so that no path may rely on sorted edges). ``isolate``: the
    last node of every graph with more than one node receives nothing."""
    gen = torch.Generator().manual_seed(seed)
    edges, start = [], 0
    for n in sizes:
        src, dst = torch.meshgrid(torch.arange(n), torch.arange(n),
                                  indexing='ij')
        src, dst = src.reshape(-1), dst.reshape(-1)
        mask = torch.rand(src.numel(), generator=gen) < keep
        if acyclic:
            mask &= src < dst
        if isolate and n > 1:
            mask &= dst != n - 1
        if n > 1 and bool(mask.all()):  # never the complete graph
            mask[0] = False
        edges.append(torch.stack([src[mask], dst[mask]]) + start)
        start += n
    edge_index = torch.cat(edges, dim=1) if edges else \
        torch.empty(2, 0, dtype=torch.long)
    perm = torch.randperm(edge_index.size(1), generator=gen)
    return edge_index[:, perm]


class Kind:
    r"""A family of graphs. ``batch(sizes)`` builds one batch;
    ``isolated()`` a batch with targets that receive no edge (None where
    the kind has none)."""
    name = 'graph'
    one_node_sizes: Optional[List[int]] = [1, 1]
    ragged = True  # graphs of different sizes (an empty one among others)

    def batch(self, sizes: Sequence[int]) -> Graph:  # pragma: no cover
        raise NotImplementedError

    def isolated(self) -> Optional[Graph]:
        return None

    def __repr__(self) -> str:
        return self.name


class Complete(Kind):
    def __init__(self, causal: bool = False):
        self.causal = causal
        self.name = 'causal' if causal else 'complete'

    def batch(self, sizes):
        return _same_nodes(graphs.complete_graph(list(sizes),
                                                 causal=self.causal), sizes)

    def isolated(self):
        # Still complete blocks: without self-loops the first node of a
        # causal block, and a one-node block, receive nothing.
        sizes = [3, 1, 2]
        return _same_nodes(graphs.complete_graph(sizes, self_loops=False,
                                                 causal=self.causal), sizes)


class Random(Kind):
    name = 'random'

    def __init__(self, acyclic: bool = False, num_types: Optional[int] = None,
                 repeats: bool = False):
        self.acyclic = acyclic
        self.num_types = num_types
        self.repeats = repeats
        if acyclic:
            self.name = 'dag'
        if num_types:
            self.name = 'typed'
        if repeats:
            self.name = 'multigraph'

    def _build(self, sizes, isolate):
        edge_index = _random_edges(sizes, 0.5, seed=sum(sizes) + 7,
                                   acyclic=self.acyclic, isolate=isolate)
        if self.repeats:  # every third edge twice more (two repeats)
            again = edge_index[:, ::3]
            edge_index = torch.cat([edge_index, again, again], dim=1)
        g = _same_nodes(edge_index, sizes)
        if self.num_types:
            gen = torch.Generator().manual_seed(3)
            g.edge_type = torch.randint(self.num_types, (edge_index.size(1),),
                                        generator=gen)
        return g

    def batch(self, sizes):
        return self._build(sizes, False)

    def isolated(self):
        return None if self.acyclic else self._build([3, 4, 2], True)


class Chain(Kind):
    r"""Chains :math:`t-1 \to t` (``reverse=True``: :math:`t+1 \to t`, the
    backward direction of a bidirectional RNN)."""
    name = 'chain'

    def __init__(self, reverse: bool = False):
        self.reverse = reverse
        if reverse:
            self.name = 'reversed-chain'

    def batch(self, sizes):
        return _same_nodes(graphs.chain_graph(list(sizes),
                                              reverse=self.reverse), sizes)


class Bipartite(Kind):
    r"""Sources of block :math:`b` to targets of block :math:`b`
    (cross-attention); block :math:`b` has ``n`` sources and
    ``max(n - 1, 1)`` targets (none when ``n = 0``)."""
    name = 'bipartite'

    def __init__(self, targets: Optional[Dict[Tuple[int, ...],
                                              List[int]]] = None):
        # targets per block for given source sizes (ragged in both: blocks
        # without sources among blocks without targets)
        self.targets = dict(targets or {})

    def _build(self, src_sizes, dst_sizes):
        edge_index = graphs.bipartite_graph(src_sizes, dst_sizes)
        return Graph(edge_index, _graph_of(src_sizes), _graph_of(dst_sizes),
                     len(src_sizes), info=dict(src_sizes=list(src_sizes),
                                                dst_sizes=list(dst_sizes)))

    def batch(self, sizes):
        if tuple(sizes) in self.targets:
            return self._build(list(sizes), self.targets[tuple(sizes)])
        return self._build(list(sizes), [max(n - 1, 1) if n else 0
                                         for n in sizes])

    def isolated(self):  # a block without sources
        return self._build([2, 0, 3], [2, 2, 1])


class Window(Bipartite):
    r"""Local windows of radius 1 (targets past the sources receive
    nothing: :func:`~pyg_relational.graphs.window_graph`)."""
    name = 'window'

    def _build(self, src_sizes, dst_sizes):
        g = super()._build(src_sizes, dst_sizes)
        g.edge_index = graphs.window_graph(src_sizes, dst_sizes, radius=1)
        return g

    def batch(self, sizes):
        return self._build(list(sizes), list(sizes))

    def isolated(self):
        return self._build([1, 3], [4, 3])


class Grid(Kind):
    r"""``batch_size = len(sizes)`` images of ``size`` (one-node graphs:
    1-pixel images, where the geometry allows them)."""
    ragged = False

    def __init__(self, size, kernel_size, stride=1, padding=0, dilation=1):
        self.geometry = dict(kernel_size=kernel_size, stride=stride,
                             padding=padding, dilation=dilation)
        self.size = size
        self.dims = 1 if isinstance(size, int) else 2
        self.name = f'grid{self.dims}d-s{stride}-p{padding}-d{dilation}'
        one_pixel = 1 if self.dims == 1 else (1, 1)
        try:
            graphs.grid_graph(one_pixel, **self.geometry)
        except ValueError:  # the kernel does not fit a 1-pixel image
            self.one_node_sizes = None
        else:
            self.one_node_sizes = [1, 1]

    def batch(self, sizes):
        if sizes == [0]:
            size, batch_size = self.size, 0
        elif all(n == 1 for n in sizes):  # one-pixel images
            size, batch_size = (1 if self.dims == 1 else (1, 1)), len(sizes)
        else:
            size, batch_size = self.size, len(sizes)
        edge_index, edge_type, out_size = graphs.grid_graph(
            size, batch_size=batch_size, **self.geometry)
        pixels = size if self.dims == 1 else size[0] * size[1]
        out_pixels = out_size if self.dims == 1 else out_size[0] * out_size[1]
        return Graph(edge_index, _graph_of([pixels] * batch_size),
                     _graph_of([out_pixels] * batch_size), batch_size,
                     edge_type=edge_type,
                     info=dict(size=size, out_size=out_size))


class Images(Kind):
    r"""A dense batch ``[B, C, H, W]`` (``NonLocalBlock`` builds the
    complete graph of every image itself); one graph per image, of
    ``shape`` (one-node graphs: 1-pixel images, unless ``pooled``: a
    ``sub_sample`` block max-pools 2x2 windows and needs 2x2 pixels)."""
    name = 'images'
    ragged = False

    def __init__(self, shape: Tuple[int, int] = (2, 2),
                 pooled: bool = False):
        self.shape = tuple(shape)
        if shape != (2, 2):
            self.name = f'images{shape[0]}x{shape[1]}'
        if pooled:
            self.one_node_sizes = None

    def batch(self, sizes):
        shape = (1, 1) if min(sizes) == 1 else self.shape
        count = 0 if sizes == [0] else len(sizes)
        # dim 0 of the input and of the output is the image
        return Graph(torch.empty(2, 0, dtype=torch.long), torch.arange(count),
                     torch.arange(count), count, info=dict(shape=shape))


class Examples(Kind):
    r"""Rows of examples (the graph of :class:`FullyConnectedConv` is over
    its units; the examples of a batch must not mix)."""
    name = 'examples'

    def batch(self, sizes):
        rows = _graph_of(sizes)
        return Graph(torch.empty(2, 0, dtype=torch.long), rows, rows,
                     len(sizes))


class TypedBipartite(Kind):
    r"""Random typed edges from the sources of block :math:`b` to its
    targets (``max(n - 1, 1)`` of them, none when ``n = 0``), drawn with
    replacement (repeated edges, with the same or another type), type
    ``missing`` never used, and targets that receive nothing: any typed
    graph, not a grid."""
    name = 'typed-bipartite'

    def __init__(self, num_types: int, missing: int):
        self.num_types, self.missing = num_types, missing

    def _build(self, src_sizes, isolate):
        gen = torch.Generator().manual_seed(sum(src_sizes) + 11)
        dst_sizes = [max(n - 1, 1) if n else 0 for n in src_sizes]
        edges, s0, d0 = [], 0, 0
        for n, m in zip(src_sizes, dst_sizes):
            if n and m:
                count = 2 * n * m
                dst = torch.randint(m, (count, ), generator=gen)
                if isolate:  # the last target of the block gets nothing
                    dst = dst % max(m - 1, 1) if m > 1 else dst[:0]
                src = torch.randint(n, (dst.numel(), ), generator=gen)
                edges.append(torch.stack([src + s0, dst + d0]))
            s0, d0 = s0 + n, d0 + m
        edge_index = torch.cat(edges, 1) if edges else \
            torch.empty(2, 0, dtype=torch.long)
        edge_type = torch.randint(self.num_types, (edge_index.size(1), ),
                                  generator=gen)
        edge_type[edge_type == self.missing] = (self.missing + 1) % \
            self.num_types
        return Graph(edge_index, _graph_of(src_sizes), _graph_of(dst_sizes),
                     len(src_sizes), edge_type=edge_type)

    def batch(self, sizes):
        return self._build(list(sizes), False)

    def isolated(self):
        return self._build([3, 4, 2], True)


# --------------------------------------------------------------------------
# Cases.
# --------------------------------------------------------------------------
Inputs = Dict[str, Tensor]


@dataclass
class Case:
    r"""One layer on one kind of graph.

    Args:
        name: test id.
        make: builds the layer (default path, float64 later cast).
        kind: the graphs.
        paths: every path the layer has on these graphs; the parameter
            list of the suite.
        auto: the path ``'auto'`` must take on ``kind.batch(sizes)``.
        inputs: ``inputs(graph, gen)`` -> named float64 tensors.
        call: ``call(layer, graph, inputs)`` -> output(s).
        poison: the input that gets a NaN/inf (dim 0 over ``poison_nodes``
            nodes: ``'src'`` or ``'dst'``).
        out_graph: graph of every row of the first output (default: the
            target's graph).
        isolated: ``'zero'`` if rows of targets without incoming edges
            must be exactly 0, ``'finite'`` if only finite (the layer adds
            a residual or an update of the target itself).
        compile: include in the ``torch.compile`` (eager backend) tests
            (dynamo tracing costs seconds per layer: one case per layer
            family and path mechanism).
        compiled_path: the path the default must take under
            ``torch.compile`` (None: not checked; a plain ``edge_index``
            is not recognised while tracing, so 'auto' falls back).
        train: run in training mode (``False`` for layers whose BatchNorm
            mixes the graphs of a batch by design).
    """
    name: str
    make: Callable[[], torch.nn.Module]
    kind: Kind
    paths: Tuple[str, ...]
    auto: str
    inputs: Callable[[Graph, torch.Generator], Inputs]
    call: Callable[[torch.nn.Module, Graph, Inputs], Any]
    sizes: Tuple[int, ...] = (3, 4, 2)
    poison: str = 'x'
    poison_nodes: str = 'src'
    out_graph: Optional[Callable[[Graph], Tensor]] = None
    isolated: Optional[str] = 'zero'
    compile: bool = False
    compiled_path: Optional[str] = None
    train: bool = True

    def __repr__(self) -> str:
        return self.name

    def rows_graph(self, g: Graph) -> Tensor:
        return g.dst_graph if self.out_graph is None else self.out_graph(g)


def _randn(gen, *shape) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def node_x(g, gen):
    return {'x': _randn(gen, g.num_src, F_IN)}


def pair_x(g, gen):
    return {'x_src': _randn(gen, g.num_src, F_IN),
            'x_dst': _randn(gen, g.num_dst, F_IN)}


def _x(inputs):
    return inputs['x'] if 'x' in inputs else \
        (inputs['x_src'], inputs['x_dst'])


def call_graph(layer, g, inputs):
    return layer(_x(inputs), g.edge_index)


def _seeded(factory):
    def make():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return factory()
    return make


def _attention(score, **kwargs):
    return _seeded(lambda: AttentionConv(F_IN, 3, heads=2, score=score,
                                         **kwargs))


def _nonlocal(pairwise, **kwargs):
    return _seeded(lambda: NonLocalBlock(F_IN, 3, pairwise=pairwise,
                                         output_projection=False, **kwargs))


def _with_weights(call):
    """Also return the attention weights (checked like any output)."""
    def run(layer, g, inputs):
        return call(layer, g, inputs, return_attention_weights=True)
    return run


def _attend(layer, g, inputs, **kwargs):
    return layer(_x(inputs), g.edge_index, **kwargs)


def _relative(layer, g, inputs, **kwargs):
    return layer(_x(inputs), g.edge_index, position=_positions(g), **kwargs)


def _adj_t(g: Graph) -> Tensor:
    """The graph as a ``torch.sparse`` ``adj_t [N_dst, N_src]``."""
    row, col = g.edge_index[1], g.edge_index[0]
    return torch.sparse_coo_tensor(torch.stack([row, col]),
                                   torch.ones(row.numel(), device=g.device),
                                   (g.num_dst, g.num_src),
                                   check_invariants=True).coalesce()


def _edge_rows(g):
    return g.src_graph[g.edge_index[0]]


def _lattice(layer, g, inputs):
    return layer(inputs['x'], g.edge_index, g.edge_type,
                 size=(g.num_src, g.num_dst))


def _images(g, gen):
    return {'x': _randn(gen, g.num_graphs, F_IN, *g.info['shape'])}


def _recurrent(layer, g, inputs):
    return layer(inputs['x'], g.edge_index)


def _examples(g, gen):
    return {'x': _randn(gen, g.num_src, F_IN)}


def _bahdanau(layer, g, inputs):
    return layer(inputs['x_dst'], inputs['x_src'], g.edge_index)


def _luong(layer, g, inputs):
    return layer(inputs['x_dst'], inputs['x_src'], g.info['src_sizes'],
                 g.info['dst_sizes'])


def _gn_inputs(g, gen):
    return {'x': _randn(gen, g.num_src, F_IN),
            'edge_attr': _randn(gen, g.edge_index.size(1), 2),
            'u': _randn(gen, g.num_graphs, 1)}


def _gn(layer, g, inputs):
    return layer(inputs['x'], g.edge_index, inputs['edge_attr'], inputs['u'],
                 g.dst_graph, g.num_graphs)


def _edge_block(layer, g, inputs):
    return layer(inputs['x'], g.edge_index, inputs['edge_attr'], inputs['u'],
                 g.dst_graph)


def _global_block(layer, g, inputs):
    return layer(inputs['x'], g.edge_index, inputs['edge_attr'], inputs['u'],
                 g.dst_graph, g.num_graphs)


def _nri_inputs(frames):
    def inputs(g, gen):
        z = torch.softmax(_randn(gen, g.edge_index.size(1), 2), dim=-1)
        return {'x': _randn(gen, g.num_src, frames, 2), 'z': z}
    return inputs


def _nri_decoder(layer, g, inputs):
    return layer(inputs['x'], g.edge_index, inputs['z'], 1)


def _graph_rows(g):
    return torch.arange(g.num_graphs, device=g.device)


def _structure(call):
    """The same call with the graph given as its structure (no edges)."""
    def run(layer, g, inputs, **kwargs):
        return call(layer, _graph_as(g, structure_of(g.edge_index)), inputs,
                    **kwargs)
    return run


def _graph_as(g: Graph, graph) -> Graph:
    """``g`` with ``graph`` (a structure) in place of its edge_index."""
    out = Graph(g.edge_index, g.src_graph, g.dst_graph, g.num_graphs,
                g.edge_type, dict(g.info))
    out.edge_index = graph
    return out


def _small_blocks_fused(call):
    """The call with the fused attention kernel (SDPA) also for one-head
    blocks of fewer than ``_dense.SDPA_MIN_SOURCES`` sources (the small
    blocks of the table otherwise take the two batched products)."""
    def run(layer, g, inputs, **kwargs):
        saved = _dense.SDPA_MIN_SOURCES
        _dense.SDPA_MIN_SOURCES = 1
        try:
            return call(layer, g, inputs, **kwargs)
        finally:
            _dense.SDPA_MIN_SOURCES = saved
    return run


def _typed(num_types, call=_attend):
    """``edge_type`` drawn at random per edge (the same for every path and
    device: seeded by the number of edges, drawn on the CPU)."""
    def run(layer, g, inputs, **kwargs):
        num_edges = _num_edges(g)
        gen = torch.Generator().manual_seed(num_edges)
        edge_type = torch.randint(num_types, (num_edges, ), generator=gen)
        return call(layer, g, inputs, edge_type=edge_type.to(g.device),
                    **kwargs)
    return run


def _num_edges(g: Graph) -> int:
    ei = g.edge_index
    return ei.size(1) if isinstance(ei, Tensor) else ei.num_edges


def _nonlocal_full(pairwise, **kwargs):
    """The whole block: output projection W_z and BatchNorm with random
    affine and running statistics (zero-initialised BN would hide W_z;
    run in eval mode, as batch statistics mix the graphs of a batch)."""
    def make():
        block = NonLocalBlock(F_IN, 3, pairwise=pairwise, **kwargs)
        with torch.no_grad():
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(-0.5, 0.5)
            block.bn.running_mean.uniform_(-0.5, 0.5)
            block.bn.running_var.uniform_(0.5, 1.5)
        return block
    return _seeded(make)


def _rnn_inputs(states: int, lstm: bool):
    """Node features and given initial states ``h_0`` (and ``c_0``)
    ``[states, chains, 3]``, one per non-empty chain."""
    def inputs(g, gen):
        starts = sum(1 for n in g.info['sizes'] if n > 0)
        out = {'x': _randn(gen, g.num_src, F_IN),
               'h_0': _randn(gen, states, starts, 3)}
        if lstm:
            out['c_0'] = _randn(gen, states, starts, 3)
        return out
    return inputs


def _rnn_with_state(layer, g, inputs):
    h = inputs['h_0'] if 'c_0' not in inputs else (inputs['h_0'],
                                                   inputs['c_0'])
    return layer(inputs['x'], g.edge_index, h)


def _conv(cls, **options):
    """``LatticeConv.from_module`` of a seeded ``nn.Conv1d/2d``."""
    return _seeded(lambda: LatticeConv.from_module(cls(F_IN, 6, **options)))


ATTENTION_PATHS = ('dense', 'sparse', 'message')
SPARSE_PATHS = ('sparse', 'message')
MESSAGE = ('message', )

CASES: List[Case] = [
    # ---- AttentionConv: dot-product scores have all three paths -------
    Case('attention-scaled_dot-complete', _attention('scaled_dot'),
         Complete(), ATTENTION_PATHS, 'dense', node_x,
         _with_weights(_attend)),
    # the graph given as its structure: no edge list, and the dense path
    # needs no recognition, so it runs under torch.compile too
    Case('attention-scaled_dot-structure', _attention('scaled_dot'),
         Complete(), ATTENTION_PATHS, 'dense', node_x,
         lambda layer, g, inputs: layer(inputs['x'],
                                        structure_of(g.edge_index)),
         compile=True, compiled_path='dense'),
    Case('attention-scaled_dot-causal', _attention('scaled_dot'),
         Complete(causal=True), ATTENTION_PATHS, 'dense', node_x,
         _with_weights(_attend)),
    # a plain edge_index from elsewhere: the structure is recognised
    Case('attention-scaled_dot-recognised', _attention('scaled_dot'),
         Complete(causal=True), ATTENTION_PATHS, 'dense', node_x,
         lambda layer, g, inputs: layer(inputs['x'], g.edge_index.clone())),
    # PyG's adj_t layout (torch.sparse, [N_dst, N_src])
    Case('attention-scaled_dot-adj_t', _attention('scaled_dot'), Random(),
         SPARSE_PATHS, 'sparse', node_x,
         lambda layer, g, inputs: layer(inputs['x'], _adj_t(g))),
    # PyG's EdgeIndex
    Case('attention-scaled_dot-EdgeIndex', _attention('scaled_dot'), Random(),
         SPARSE_PATHS, 'sparse', node_x,
         lambda layer, g, inputs: layer(inputs['x'], EdgeIndex(
             g.edge_index, sparse_size=(g.num_src, g.num_dst)))),
    Case('attention-dot-complete', _attention('dot'), Complete(),
         ATTENTION_PATHS, 'dense', node_x, call_graph),
    Case('attention-scaled_dot-random', _attention('scaled_dot'), Random(),
         SPARSE_PATHS, 'sparse', node_x, _with_weights(_attend),
         compile=True),
    Case('attention-general-random', _attention('general'), Random(),
         SPARSE_PATHS, 'sparse', node_x, call_graph),
    Case('attention-scaled_dot-bipartite',
         _seeded(lambda: AttentionConv((F_IN, F_IN), 3, heads=2,
                                       score='scaled_dot')),
         Bipartite(), ATTENTION_PATHS, 'dense', pair_x, call_graph,
         poison='x_src'),
    Case('attention-scaled_dot-window', _attention('scaled_dot'), Window(),
         SPARSE_PATHS, 'sparse', pair_x, call_graph, poison='x_src'),
    Case('attention-relative-complete',
         _attention('scaled_dot', num_edge_types=5), Complete(),
         ATTENTION_PATHS, 'dense', node_x,
         lambda layer, g, inputs: layer(
             inputs['x'], g.edge_index, edge_type=graphs.relative_position(
                 g.edge_index, _positions(g), clip=2))),
    # ---- the dense path on every block kind and score (issue 21) -------
    # equal blocks: the [B, T] view, no padding
    Case('attention-dot-equal-structure', _attention('dot'), Complete(),
         ATTENTION_PATHS, 'dense', node_x,
         _with_weights(_structure(_attend)), sizes=(4, 4, 4)),
    # ragged causal blocks with an empty and a one-node block
    Case('attention-general-causal-ragged', _attention('general'),
         Complete(causal=True), ATTENTION_PATHS, 'dense', node_x,
         _with_weights(_structure(_attend)), sizes=(5, 2, 0, 1, 3)),
    # blocks without sources and blocks without targets, x_src and x_dst
    # of different widths; no weights: the fused kernel
    Case('attention-dot-bipartite-ragged',
         _seeded(lambda: AttentionConv((F_IN, 3), 3, heads=2, score='dot')),
         Bipartite({(2, 3, 0, 4): [3, 3, 2, 0]}), ATTENTION_PATHS, 'dense',
         lambda g, gen: {'x_src': _randn(gen, g.num_src, F_IN),
                         'x_dst': _randn(gen, g.num_dst, 3)}, call_graph,
         sizes=(2, 3, 0, 4), poison='x_src'),
    Case('attention-general-bipartite-structure',
         _seeded(lambda: AttentionConv((F_IN, 3), 3, heads=2,
                                       score='general')),
         Bipartite(), ATTENTION_PATHS, 'dense',
         lambda g, gen: {'x_src': _randn(gen, g.num_src, F_IN),
                         'x_dst': _randn(gen, g.num_dst, 3)},
         _with_weights(_structure(_attend)), sizes=(3, 3, 3),
         poison='x_src'),
    # relative positions (Shaw et al.) with random edge types
    Case('attention-relative-causal-ragged',
         _attention('scaled_dot', num_edge_types=3), Complete(causal=True),
         ATTENTION_PATHS, 'dense', node_x, _with_weights(_typed(3)),
         sizes=(5, 2, 0, 3)),
    Case('attention-relative-bipartite-ragged',
         _seeded(lambda: AttentionConv((F_IN, 3), 3, heads=2,
                                       score='scaled_dot', num_edge_types=3)),
         Bipartite({(2, 3, 0, 4): [3, 3, 2, 0]}), ATTENTION_PATHS, 'dense',
         lambda g, gen: {'x_src': _randn(gen, g.num_src, F_IN),
                         'x_dst': _randn(gen, g.num_dst, 3)},
         _with_weights(_typed(3, _structure(_attend))), sizes=(2, 3, 0, 4),
         poison='x_src'),
    # scores that are not dot products: sparse (gathered logits) and message
    Case('attention-gat-random', _attention('gat'), Random(), SPARSE_PATHS,
         'sparse', node_x, _with_weights(_attend)),
    Case('attention-additive-random', _attention('additive'), Random(),
         SPARSE_PATHS, 'sparse', node_x, call_graph),
    Case('attention-gatv2-random', _attention('gatv2'), Random(),
         SPARSE_PATHS, 'sparse', node_x, _with_weights(_attend)),
    Case('attention-gatv2-complete', _attention('gatv2'), Complete(),
         SPARSE_PATHS, 'sparse', node_x, _with_weights(_attend)),
    # ---- multigraphs: a repeated edge is two messages on every path -----
    Case('attention-gat-multigraph', _attention('gat'), Random(repeats=True),
         SPARSE_PATHS, 'sparse', node_x, _with_weights(_attend)),
    Case('attention-scaled_dot-multigraph', _attention('scaled_dot'),
         Random(repeats=True), SPARSE_PATHS, 'sparse', node_x,
         _with_weights(_attend)),
    # ---- the drop-in PyG layers -----------------------------------------
    Case('gatconv-multigraph', _seeded(lambda: GATConv(
        F_IN, 3, heads=2, residual=True)), Random(repeats=True),
        SPARSE_PATHS, 'sparse', node_x, _with_weights(_attend),
        isolated='finite', compile=True),
    Case('gatv2conv-edge_dim-random', _seeded(lambda: GATv2Conv(
        F_IN, 3, heads=2, edge_dim=2, add_self_loops=False)), Random(),
        SPARSE_PATHS, 'sparse', _gn_inputs, lambda layer, g, inputs: layer(
            inputs['x'], g.edge_index, inputs['edge_attr'],
            return_attention_weights=True), isolated='finite'),
    Case('gated-graph-conv-multigraph', _seeded(lambda: GatedGraphConv(
        5, 2)), Random(repeats=True), SPARSE_PATHS, 'sparse',
        lambda g, gen: {'x': _randn(gen, g.num_src, F_IN),
                        'edge_weight': _randn(gen, g.edge_index.size(1))},
        lambda layer, g, inputs: layer(inputs['x'], g.edge_index,
                                       inputs['edge_weight']),
        isolated='finite', compile=True),
    # ---- MultiheadAttentionConv and the Transformer layers --------------
    Case('mha-complete', _seeded(lambda: MultiheadAttentionConv(6, 2)),
         Complete(), ATTENTION_PATHS, 'dense', lambda g, gen: {
             'x': _randn(gen, g.num_src, 6)}, _with_weights(_attend),
         compile=True),
    Case('mha-causal-ragged', _seeded(lambda: MultiheadAttentionConv(6, 2)),
         Complete(causal=True), ATTENTION_PATHS, 'dense', lambda g, gen: {
             'x': _randn(gen, g.num_src, 6)}, call_graph, sizes=(2, 5, 3)),
    Case('mha-random', _seeded(lambda: MultiheadAttentionConv(6, 2)),
         Random(), SPARSE_PATHS, 'sparse', lambda g, gen: {
             'x': _randn(gen, g.num_src, 6)}, call_graph),
    Case('mha-relative-complete',
         _seeded(lambda: MultiheadAttentionConv(6, 2, relative_clip=2)),
         Complete(), ATTENTION_PATHS, 'dense', lambda g, gen: {
             'x': _randn(gen, g.num_src, 6)}, _relative),
    Case('transformer-encoder-causal',
         _seeded(lambda: TransformerEncoderLayer(6, 2, 8, dropout=0.)),
         Complete(causal=True), ATTENTION_PATHS, 'dense', lambda g, gen: {
             'x': _randn(gen, g.num_src, 6)}, call_graph, isolated='finite'),
    Case('transformer-decoder-bipartite',
         _seeded(lambda: TransformerDecoderLayer(6, 2, 8, dropout=0.)),
         Bipartite(), ATTENTION_PATHS, 'dense', lambda g, gen: {
             'memory': _randn(gen, g.num_src, 6),
             'x': _randn(gen, g.num_dst, 6)},
         lambda layer, g, inputs: layer(
             inputs['x'], inputs['memory'],
             _to(graphs.complete_graph(g.info['dst_sizes'], causal=True),
                 g.device),
             g.edge_index), poison='memory', isolated='finite'),
    # ---- NonLocalBlock -------------------------------------------------
    Case('nonlocal-embedded_gaussian-complete',
         _nonlocal('embedded_gaussian'), Complete(), ATTENTION_PATHS, 'dense',
         node_x, _with_weights(_attend), compile=True),
    Case('nonlocal-gaussian-complete', _nonlocal('gaussian'), Complete(),
         ATTENTION_PATHS, 'dense', node_x, call_graph),
    Case('nonlocal-embedded_gaussian-random',
         _nonlocal('embedded_gaussian'), Random(), SPARSE_PATHS, 'sparse',
         node_x, call_graph),
    Case('nonlocal-dot-random', _nonlocal('dot'), Random(), SPARSE_PATHS,
         'sparse', node_x, call_graph),
    Case('nonlocal-concat-random', _nonlocal('concat'), Random(),
         SPARSE_PATHS, 'sparse', node_x, call_graph),
    Case('nonlocal-images',
         _seeded(lambda: NonLocalBlock(F_IN, 3, batch_norm=False)), Images(),
         ATTENTION_PATHS, 'dense', _images,
         lambda layer, g, inputs: layer(inputs['x']), isolated=None,
         compile=True, compiled_path='dense'),
    # the whole block (W_z, BatchNorm, residual) on every pairwise form and
    # graph kind: multigraphs (unsorted, repeated edges), equal blocks (the
    # only dense blocks of 'dot' / 'concat'), a structure, bipartite
    # blocks, images, pooled images (sub_sample); the fused kernel forced
    # on small one-head blocks
    *[Case(f'nonlocal-{pairwise}-multigraph-full', _nonlocal_full(pairwise),
           Random(repeats=True), SPARSE_PATHS, 'sparse', node_x,
           _with_weights(_attend), isolated='finite', train=False)
      for pairwise in NonLocalBlock.PAIRWISE],
    *[Case(f'nonlocal-{pairwise}-equal-full', _nonlocal_full(pairwise),
           Complete(), ATTENTION_PATHS, 'dense', node_x,
           _with_weights(_attend), sizes=(3, 3, 3), isolated='finite',
           train=False) for pairwise in ('dot', 'concat')],
    Case('nonlocal-embedded_gaussian-structure-fused',
         _nonlocal_full('embedded_gaussian'), Complete(), ATTENTION_PATHS,
         'dense', node_x, _small_blocks_fused(_structure(call_graph)),
         isolated='finite', train=False),
    Case('nonlocal-gaussian-bipartite-full', _nonlocal_full('gaussian'),
         Bipartite(), ATTENTION_PATHS, 'dense', pair_x,
         _with_weights(_attend), poison='x_src', isolated='finite',
         train=False),
    Case('nonlocal-embedded_gaussian-bipartite-fused',
         _nonlocal_full('embedded_gaussian'), Bipartite(), ATTENTION_PATHS,
         'dense', pair_x, _small_blocks_fused(call_graph), poison='x_src',
         isolated='finite', train=False),
    Case('nonlocal-concat-bipartite-equal-full', _nonlocal_full('concat'),
         Bipartite(), ATTENTION_PATHS, 'dense', pair_x,
         _with_weights(_attend), sizes=(3, 3, 3), poison='x_src',
         isolated='finite', train=False),
    *[Case(f'nonlocal-images-{pairwise}-full', _nonlocal_full(pairwise),
           Images(), ATTENTION_PATHS, 'dense', _images,
           lambda layer, g, inputs: layer(inputs['x']), isolated=None,
           train=False) for pairwise in ('gaussian', 'dot', 'concat')],
    Case('nonlocal-images-embedded_gaussian-fused',
         _nonlocal_full('embedded_gaussian'), Images((2, 3)),
         ATTENTION_PATHS, 'dense', _images, _small_blocks_fused(
             lambda layer, g, inputs: layer(inputs['x'])), isolated=None,
         train=False),
    *[Case(f'nonlocal-images-{pairwise}-sub_sample',
           _nonlocal_full(pairwise, sub_sample=True),
           Images((4, 5), pooled=True), ATTENTION_PATHS, 'dense', _images,
           lambda layer, g, inputs: layer(inputs['x'],
                                          return_attention_weights=True),
           isolated=None, train=False)
      for pairwise in ('embedded_gaussian', 'dot')],
    # ---- LatticeConv: grids are convolutions ---------------------------
    Case('lattice-grid2d-same',
         _seeded(lambda: LatticeConv(F_IN, 3, (3, 3), bias=False)),
         Grid((3, 3), 3, padding=1), ATTENTION_PATHS, 'dense', node_x,
         _lattice, sizes=(9, 9, 9), isolated=None),
    Case('lattice-grid2d-structure',
         _seeded(lambda: LatticeConv(F_IN, 3, (3, 3), bias=False)),
         Grid((3, 3), 3, padding=1), ATTENTION_PATHS, 'dense', node_x,
         lambda layer, g, inputs: layer(inputs['x'],
                                        structure_of(g.edge_index), None),
         sizes=(9, 9, 9), isolated=None, compile=True, compiled_path='dense'),
    Case('lattice-grid2d-stride2-groups',
         _seeded(lambda: LatticeConv(F_IN, 4, (3, 3), groups=2)),
         Grid((5, 5), 3, stride=2), ATTENTION_PATHS, 'dense', node_x,
         _lattice, sizes=(25, 25), isolated=None),
    Case('lattice-grid1d-dilated',
         _seeded(lambda: LatticeConv(F_IN, 3, 3)),
         Grid(7, 3, padding=2, dilation=2), ATTENTION_PATHS, 'dense', node_x,
         _lattice, sizes=(7, 7, 7), isolated=None),
    Case('lattice-typed-random',
         _seeded(lambda: LatticeConv(F_IN, 3, (3, 3), bias=False)),
         Random(num_types=9), SPARSE_PATHS, 'sparse', node_x, _lattice),
    # even kernel with 'same' padding (uneven padding), anisotropic
    # dilation, 1-d stride with dilation (from nn.Conv1d/2d)
    Case('lattice-grid2d-same-even-kernel',
         _conv(torch.nn.Conv2d, kernel_size=(2, 3), padding='same'),
         Grid((4, 5), (2, 3), padding='same'), ATTENTION_PATHS, 'dense',
         node_x, _lattice, sizes=(20, 20), isolated=None),
    Case('lattice-grid2d-dilated',
         _conv(torch.nn.Conv2d, kernel_size=(3, 2), padding=(2, 1),
               dilation=(2, 1)),
         Grid((5, 4), (3, 2), padding=(2, 1), dilation=(2, 1)),
         ATTENTION_PATHS, 'dense', node_x, _lattice, sizes=(20, 20),
         isolated=None),
    Case('lattice-grid1d-stride-dilation',
         _conv(torch.nn.Conv1d, kernel_size=3, stride=2, padding=1,
               dilation=2),
         Grid(9, 3, stride=2, padding=1, dilation=2), ATTENTION_PATHS,
         'dense', node_x, _lattice, sizes=(9, 9), isolated=None),
    # any typed bipartite graph: repeated edges, a type never used,
    # isolated targets; grouped channels
    Case('lattice-typed-bipartite-groups',
         _seeded(lambda: LatticeConv(F_IN, 6, (5, ), groups=2)),
         TypedBipartite(5, missing=3), SPARSE_PATHS, 'sparse', node_x,
         _lattice, isolated='finite'),
    # ---- RecurrentConv: chains are RNNs --------------------------------
    Case('recurrent-gru-chain', _seeded(lambda: RecurrentConv(F_IN, 3)),
         Chain(), ('dense', 'message'), 'dense', node_x, _recurrent,
         sizes=(3, 1, 4), isolated=None),
    Case('recurrent-gru-structure', _seeded(lambda: RecurrentConv(F_IN, 3)),
         Chain(), ('dense', 'message'), 'dense', node_x,
         lambda layer, g, inputs: layer(inputs['x'],
                                        structure_of(g.edge_index)),
         sizes=(3, 1, 4), isolated=None, compile=True, compiled_path='dense'),
    Case('recurrent-lstm-bidirectional-chain',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=2, cell='lstm',
                                       bidirectional=True)),
         Chain(), ('dense', 'message'), 'dense', node_x, _recurrent,
         sizes=(3, 1, 4), isolated=None),
    # given initial states; equal lengths (a [B, T, F] view) and packed
    # (ragged, empty and one-node chains); chains in either direction;
    # every cell, tanh and relu, bias or none, one to three layers
    Case('recurrent-rnn-relu-nobias-h0-equal',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=3, cell='rnn',
                                       bias=False, nonlinearity='relu')),
         Chain(), ('dense', 'message'), 'dense', _rnn_inputs(3, False),
         _rnn_with_state, sizes=(4, 4, 4), isolated=None),
    Case('recurrent-rnn-bidirectional-reversed-h0',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=2, cell='rnn',
                                       bidirectional=True)),
         Chain(reverse=True), ('dense', 'message'), 'dense',
         _rnn_inputs(4, False), _rnn_with_state, sizes=(5, 2, 0, 1, 3),
         isolated=None),
    Case('recurrent-gru-bidirectional-reversed-h0',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=2, cell='gru',
                                       bidirectional=True)),
         Chain(reverse=True), ('dense', 'message'), 'dense',
         _rnn_inputs(4, False), _rnn_with_state, sizes=(5, 2, 0, 1, 3),
         isolated=None),
    Case('recurrent-gru-nobias-h0-equal',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=3, cell='gru',
                                       bias=False)),
         Chain(), ('dense', 'message'), 'dense', _rnn_inputs(3, False),
         _rnn_with_state, sizes=(4, 4, 4), isolated=None),
    Case('recurrent-lstm-bidirectional-h0-equal',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=2, cell='lstm',
                                       bidirectional=True)),
         Chain(), ('dense', 'message'), 'dense', _rnn_inputs(4, True),
         _rnn_with_state, sizes=(4, 4, 4), isolated=None),
    Case('recurrent-lstm-nobias-reversed-h0-structure',
         _seeded(lambda: RecurrentConv(F_IN, 3, num_layers=3, cell='lstm',
                                       bias=False)),
         Chain(reverse=True), ('dense', 'message'), 'dense',
         _rnn_inputs(3, True), _structure(_rnn_with_state),
         sizes=(5, 2, 0, 1, 3), isolated=None, compile=True,
         compiled_path='dense'),
    Case('recurrent-rnn-dag',
         _seeded(lambda: RecurrentConv(F_IN, 3, cell='rnn')),
         Random(acyclic=True), MESSAGE, 'message', node_x, _recurrent,
         isolated=None),
    # ---- message-only layers: the default path keeps the same contract -
    Case('fully-connected', _seeded(lambda: FullyConnectedConv(F_IN, 3)),
         Examples(), MESSAGE, 'message', _examples,
         lambda layer, g, inputs: layer(inputs['x']), isolated=None),
    Case('bahdanau-bipartite', _seeded(lambda: BahdanauAttention(F_IN, F_IN)),
         Bipartite(), MESSAGE, 'message', pair_x, _bahdanau, poison='x_src'),
    Case('luong-global', _seeded(lambda: LuongAttention(F_IN)), Bipartite(),
         MESSAGE, 'message', pair_x, _luong, poison='x_src'),
    Case('luong-local-m', _seeded(lambda: LuongAttention(
        F_IN, score='dot', mode='local-m', window=1)), Window(), MESSAGE,
        'message', pair_x, _luong, poison='x_src'),
    Case('luong-local-p', _seeded(lambda: LuongAttention(
        F_IN, score='concat', mode='local-p', window=1)), Bipartite(),
        MESSAGE, 'message', pair_x, _luong, poison='x_src', isolated=None),
    Case('graph-network', _seeded(lambda: GraphNetwork.from_sizes(
        F_IN, 2, 1, 3, hidden_channels=5)), Random(), MESSAGE, 'message',
        _gn_inputs, _gn, isolated='finite'),
    Case('edge-block', _seeded(lambda: EdgeBlock.from_sizes(
        2, F_IN, 1, 3, hidden_channels=5, node_first=True)), Random(),
        MESSAGE, 'message', _gn_inputs, _edge_block, out_graph=_edge_rows,
        isolated=None),
    Case('node-block', _seeded(lambda: NodeBlock.from_sizes(
        2, F_IN, 1, 3, hidden_channels=5)), Random(), MESSAGE, 'message',
        _gn_inputs, _edge_block, isolated='finite'),
    Case('global-block', _seeded(lambda: GlobalBlock.from_sizes(
        2, F_IN, 1, 3, hidden_channels=5)), Random(), MESSAGE, 'message',
        _gn_inputs, _global_block, out_graph=_graph_rows, isolated=None),
    Case('interaction-network', _seeded(lambda: InteractionNetwork(
        F_IN, 3, edge_channels=2, effect_channels=5,
        relation_hidden_channels=5, relation_layers=2,
        object_hidden_channels=5)), Random(), MESSAGE, 'message', _gn_inputs,
        lambda layer, g, inputs: layer(inputs['x'], g.edge_index,
                                       inputs['edge_attr']),
        isolated='finite'),
    Case('mpnn', _seeded(lambda: MPNNConv(F_IN, 5, num_steps=2)), Random(),
         MESSAGE, 'message', node_x, call_graph, isolated='finite'),
    Case('nri-encoder', _seeded(lambda: NRIEncoder(3 * 2, 5)), Random(),
         MESSAGE, 'message', _nri_inputs(3),
         lambda layer, g, inputs: layer(inputs['x'], g.edge_index),
         out_graph=_edge_rows, isolated=None, train=False),
    Case('nri-decoder', _seeded(lambda: NRIDecoder(2, 2, 5, 5, 5)), Random(),
         MESSAGE, 'message', _nri_inputs(3), _nri_decoder,
         isolated='finite'),
    Case('nri-rnn-decoder', _seeded(lambda: NRIRNNDecoder(2, 2, 5)),
         Random(), MESSAGE, 'message', _nri_inputs(3), _nri_decoder,
         isolated='finite'),
]


def _positions(g: Graph) -> Tensor:
    """Position of every node inside its graph."""
    sizes = g.info['sizes']
    if not sizes or sum(sizes) == 0:
        return torch.zeros(0, dtype=torch.long, device=g.device)
    return torch.cat([torch.arange(n) for n in sizes]).to(g.device)
