"""networkx as an independent oracle: the graph builders and the topological
schedule of :class:`RecurrentConv`'s message path are compared with graphs
and orders that networkx computes its own way.

What is compared, and why it is comparable:

* ``chain_graph(n)`` is networkx's directed ``path_graph(n)`` (``t -> t+1``);
  ``reverse=True`` is its reverse.
* ``complete_graph(n)`` is ``complete_graph(n)`` in both directions plus a
  self-loop per node (``self_loops=False``: without them); ``causal=True``
  (``j <= i``) is the reflexive transitive closure of the directed path.
* ``bipartite_graph(m, n)`` is ``complete_bipartite_graph(m, n)`` with the
  edges pointing from the ``m`` side (sources) to the ``n`` side (targets);
  networkx numbers the targets ``m, m+1, ...``, we number them from 0.
* ``grid_graph`` encodes a convolution's receptive fields (input pixel ->
  output pixel, typed by kernel offset), which networkx has no builder for.
  What is comparable is the case where the output grid is the input grid:
  odd kernel ``2r+1`` with padding ``r`` (stride 1, dilation 1). Its edges,
  types ignored, are the graph joining pixels at Chebyshev distance ``<= r``
  (``strong_product`` of two ``power(path_graph, r)``; for ``r = 1`` the
  king's, or 8-neighbourhood, graph) in both directions, plus one self-loop
  per pixel (the centre tap). For ``r = 1`` the four axial kernel offsets
  alone give ``grid_2d_graph`` (the 4-neighbourhood) in both directions and
  the centre offset alone the self-loops. In 1-D it is ``power(path_graph(n),
  r)`` plus self-loops — the same graph as ``window_graph(n, n, r)``.
* Batches: the builders lay graphs end to end; networkx's
  ``disjoint_union_all`` does the same relabelling.
* Every builder's edges are also checked to be free of repeats and sorted
  by target, then source (the documented order).
* The DAG schedule (``_recurrent_kernels._schedule``): its levels are networkx's
  ``topological_generations`` (a node's generation is its longest path from
  a source, as our level), nodes sorted by id inside a level; the final
  states sit at the nodes with no successors; a graph with a cycle is refused
  naming a node that networkx finds on or after a cycle. End to end, the
  message path equals a loop over ``nx.topological_sort`` applying PyTorch's
  ``RNNCell`` / ``GRUCell`` to the sum of the predecessors' states.
"""
import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_relational import (bipartite_graph, chain_graph, complete_graph,
                            grid_graph, window_graph)
from pyg_relational.nn import RecurrentConv
from pyg_relational.nn._recurrent_kernels import _schedule

SETTINGS = settings(max_examples=30, deadline=None)
sizes_st = st.lists(st.integers(0, 7), min_size=1, max_size=4)


def _edges(edge_index: torch.Tensor) -> list:
    """``[(source, target), ...]`` in the tensor's order."""
    return [tuple(e) for e in edge_index.t().tolist()]


def _check_order_and_no_repeats(edges: list):
    assert len(set(edges)) == len(edges), 'repeated edges'
    assert edges == sorted(edges, key=lambda e: (e[1], e[0]))


def _directed(graph: nx.Graph) -> set:
    """Every undirected edge as two directed ones (self-loops once)."""
    return set(graph.to_directed().edges())


def _batch(graphs) -> nx.Graph:
    """Disjoint union, nodes relabelled 0, 1, ... graph after graph."""
    graphs = [nx.convert_node_labels_to_integers(g, ordering='sorted')
              for g in graphs]
    if not graphs:
        return nx.Graph()
    return nx.disjoint_union_all(graphs)


def _with_self_loops(edges: set, num_nodes: int) -> set:
    return edges | {(v, v) for v in range(num_nodes)}


# ---------------------------------------------------------------- builders
@SETTINGS
@given(sizes=sizes_st, reverse=st.booleans())
def test_chain_graph_is_a_directed_path(sizes, reverse):
    paths = [nx.path_graph(n, create_using=nx.DiGraph) for n in sizes]
    if reverse:
        paths = [p.reverse() for p in paths]
    expected = set(_batch(paths).edges())
    edges = _edges(chain_graph(sizes, reverse=reverse))
    _check_order_and_no_repeats(edges)
    assert set(edges) == expected


@SETTINGS
@given(sizes=sizes_st, self_loops=st.booleans(), causal=st.booleans())
def test_complete_graph(sizes, self_loops, causal):
    if causal:  # j -> i for j < i: the transitive closure of t -> t+1
        graphs = [nx.transitive_closure(
            nx.path_graph(n, create_using=nx.DiGraph), reflexive=self_loops)
            for n in sizes]
        expected = set(_batch(graphs).edges())
    else:
        expected = _directed(_batch([nx.complete_graph(n) for n in sizes]))
        if self_loops:
            expected = _with_self_loops(expected, sum(sizes))
    edges = _edges(complete_graph(sizes, self_loops=self_loops,
                                  causal=causal))
    _check_order_and_no_repeats(edges)
    assert set(edges) == expected


@SETTINGS
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)),
                      min_size=1, max_size=4))
def test_bipartite_graph_is_complete_bipartite(pairs):
    src_sizes, dst_sizes = zip(*pairs)
    expected = set()
    src_offset = dst_offset = 0
    for m, n in pairs:
        graph = nx.complete_bipartite_graph(m, n)  # sides 0..m-1, m..m+n-1
        for u, v in graph.edges():
            u, v = min(u, v), max(u, v)  # u on the source side
            expected.add((src_offset + u, dst_offset + v - m))
        src_offset, dst_offset = src_offset + m, dst_offset + n
    edges = _edges(bipartite_graph(list(src_sizes), list(dst_sizes)))
    _check_order_and_no_repeats(edges)
    assert set(edges) == expected
    assert len(edges) == sum(m * n for m, n in pairs)


@SETTINGS
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       radius=st.integers(0, 3), batch_size=st.integers(0, 2))
def test_1d_grid_and_window_are_path_powers(sizes, radius, batch_size):
    """``grid_graph(n, 2r + 1, padding=r)`` and ``window_graph(n, n, r)``:
    ``j -> i`` for ``|i - j| <= r``, i.e. the ``r``-th power of a path plus
    self-loops."""
    def power(n):
        return nx.power(nx.path_graph(n), radius) if radius else \
            nx.empty_graph(n)

    expected = _with_self_loops(_directed(_batch(power(n) for n in sizes)),
                                sum(sizes))
    edges = _edges(window_graph(sizes, sizes, radius))
    _check_order_and_no_repeats(edges)
    assert set(edges) == expected

    n = sizes[0]
    expected = _with_self_loops(
        _directed(_batch([power(n)] * batch_size)), n * batch_size)
    edge_index, edge_type, out_size = grid_graph(
        n, kernel_size=2 * radius + 1, padding=radius, batch_size=batch_size)
    assert out_size == n
    edges = _edges(edge_index)
    _check_order_and_no_repeats(edges)
    assert set(edges) == expected
    # the type is the kernel offset: source - target + r
    assert edge_type.tolist() == [j - i + radius for j, i in edges]


@SETTINGS
@given(height=st.integers(1, 6), width=st.integers(1, 6),
       radius=st.integers(1, 2), batch_size=st.integers(1, 2))
def test_2d_grid_with_same_size_output(height, width, radius, batch_size):
    """Kernel ``2r+1``, padding ``r``: pixels at Chebyshev distance ``<= r``
    (the strong product of two path powers), plus self-loops."""
    def chebyshev():
        return nx.strong_product(nx.power(nx.path_graph(height), radius),
                                 nx.power(nx.path_graph(width), radius))

    num_nodes = batch_size * height * width
    expected = _with_self_loops(
        _directed(_batch(chebyshev() for _ in range(batch_size))), num_nodes)
    k = 2 * radius + 1
    edge_index, edge_type, out_size = grid_graph(
        (height, width), kernel_size=k, padding=radius,
        batch_size=batch_size)
    assert out_size == (height, width)
    edges = _edges(edge_index)
    _check_order_and_no_repeats(edges)
    assert set(edges) == expected
    assert edge_index.size(1) == len(expected)
    # the type is the kernel offset (dy, dx), row-major: dy * k + dx
    # with (dy, dx) = source pixel - target pixel + (r, r)
    pixels = height * width
    offsets = []
    for j, i in edges:
        (jy, jx), (iy, ix) = (divmod(j % pixels, width),
                              divmod(i % pixels, width))
        offsets.append((jy - iy + radius) * k + (jx - ix + radius))
    assert edge_type.tolist() == offsets


@SETTINGS
@given(height=st.integers(1, 7), width=st.integers(1, 7),
       batch_size=st.integers(1, 3))
def test_3x3_grid_offsets_are_grid_2d_graph_and_self_loops(height, width,
                                                            batch_size):
    """3x3 kernel, padding 1: the axial offsets (types 1, 3, 5, 7 =
    (dy, dx) in {(0, 1), (1, 0), (1, 2), (2, 1)}) are networkx's
    ``grid_2d_graph`` (4-neighbourhood); the centre (type 4) the
    self-loops; all nine the king's graph plus self-loops."""
    edge_index, edge_type, _ = grid_graph((height, width), kernel_size=3,
                                          padding=1, batch_size=batch_size)
    num_nodes = batch_size * height * width
    edges = _edges(edge_index)
    types = edge_type.tolist()

    axial = {e for e, t in zip(edges, types) if t in (1, 3, 5, 7)}
    grids = [nx.grid_2d_graph(height, width) for _ in range(batch_size)]
    assert axial == _directed(_batch(grids))

    centre = {e for e, t in zip(edges, types) if t == 4}
    assert centre == {(v, v) for v in range(num_nodes)}

    kings = [nx.strong_product(nx.path_graph(height), nx.path_graph(width))
             for _ in range(batch_size)]
    assert set(edges) == _with_self_loops(_directed(_batch(kings)),
                                          num_nodes)


# ------------------------------------------------------------ DAG schedule
def _random_dag(seed: int, num_nodes: int, num_edges: int):
    """Edges drawn forward along a random permutation (repeats kept: a
    multigraph is still a DAG)."""
    g = torch.Generator().manual_seed(seed)
    rank = torch.randperm(num_nodes, generator=g)
    if num_nodes < 2:
        return torch.empty(2, 0, dtype=torch.long)
    a = torch.randint(num_nodes, (num_edges, ), generator=g)
    b = torch.randint(num_nodes, (num_edges, ), generator=g)
    keep = a != b
    a, b = a[keep], b[keep]
    forward = rank[a] < rank[b]
    return torch.stack([torch.where(forward, a, b),
                        torch.where(forward, b, a)])


def _digraph(edge_index: torch.Tensor, num_nodes: int) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from(_edges(edge_index))
    return graph


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), num_nodes=st.integers(0, 40),
       density=st.floats(0, 3))
def test_schedule_levels_are_topological_generations(seed, num_nodes,
                                                     density):
    edge_index = _random_dag(seed, num_nodes, int(density * num_nodes))
    graph = _digraph(edge_index, num_nodes)
    sched = _schedule(edge_index, num_nodes)

    generations = [sorted(gen) for gen in nx.topological_generations(graph)]
    order = sched.order.tolist()
    levels, start = [], 0
    for size in sched.level_sizes:
        levels.append(order[start:start + size])
        start += size
    assert start == num_nodes
    assert levels == generations  # same levels, node id order inside
    # position is the inverse of order
    assert [order[p] for p in sched.position.tolist()] == \
        list(range(num_nodes))
    # the level order is a topological order of the graph
    position = sched.position.tolist()
    assert all(position[u] < position[v] for u, v in graph.edges())
    # final states: the nodes without successors, in node order
    sinks = [order[p] for p in sched.sinks.tolist()]
    assert sinks == [v for v in range(num_nodes)
                     if graph.out_degree(v) == 0]
    assert sched.identity == (order == list(range(num_nodes)))


@pytest.mark.parametrize('seed', range(5))
def test_schedule_refuses_cycles_naming_a_node_after_one(seed):
    g = torch.Generator().manual_seed(seed)
    num_nodes = 12
    edge_index = torch.randint(num_nodes, (2, 20), generator=g)
    graph = _digraph(edge_index, num_nodes)
    if nx.is_directed_acyclic_graph(graph):  # close a cycle
        u, v = _edges(edge_index)[0]
        edge_index = torch.cat([edge_index, torch.tensor([[v], [u]])], 1)
        graph.add_edge(v, u)
    assert not nx.is_directed_acyclic_graph(graph)
    with pytest.raises(ValueError, match='cycle') as info:
        _schedule(edge_index, num_nodes)
    node = int(str(info.value).split('node ')[1].split(' ')[0])
    on_cycles = {v for scc in nx.strongly_connected_components(graph)
                 if len(scc) > 1 for v in scc}
    on_cycles |= {v for v, _ in nx.selfloop_edges(graph)}
    assert ({node} | nx.ancestors(graph, node)) & on_cycles


@pytest.mark.parametrize('cell', ['rnn', 'gru'])
@pytest.mark.parametrize('seed', range(3))
def test_message_path_follows_networkx_topological_order(cell, seed):
    """RecurrentConv on a random DAG equals a node-by-node loop in
    networkx's topological order with PyTorch's cells:
    ``h_i = cell(x_i, sum_{j -> i} h_j)``."""
    num_nodes, features, hidden = 30, 3, 4
    edge_index = _random_dag(seed, num_nodes, 45)
    graph = _digraph(edge_index, num_nodes)
    torch.manual_seed(seed)
    x = torch.randn(num_nodes, features, dtype=torch.float64)
    layer = RecurrentConv(features, hidden, cell=cell,
                          path='message').double()
    reference = {'rnn': torch.nn.RNNCell, 'gru': torch.nn.GRUCell}[cell](
        features, hidden).double()
    with torch.no_grad():
        for name in ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'):
            getattr(reference, name).copy_(getattr(layer, f'{name}_l0'))

    out, h_n = layer(x, edge_index)
    assert layer.last_path == 'message'

    # repeated edges are separate messages: count them
    multiplicity = {}
    for e in _edges(edge_index):
        multiplicity[e] = multiplicity.get(e, 0) + 1
    state = {}
    for v in nx.topological_sort(graph):
        h = sum((multiplicity[(u, v)] * state[u]
                 for u in graph.predecessors(v)),
                torch.zeros(1, hidden, dtype=torch.float64))
        state[v] = reference(x[v:v + 1], h)
    expected = torch.cat([state[v] for v in range(num_nodes)])
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    sinks = [v for v in range(num_nodes) if graph.out_degree(v) == 0]
    torch.testing.assert_close(h_n, expected[sinks].unsqueeze(0), atol=1e-10,
                               rtol=1e-10)
