import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_relational.graphs import (bipartite_graph, chain_graph,
                                   complete_graph, grid_graph,
                                   relative_position, window_graph)


def edges(edge_index):
    return [tuple(e) for e in edge_index.t().tolist()]


def assert_sorted_by_target(edge_index):
    key = edge_index[1] * (edge_index.max() + 1 if edge_index.numel() else 1) \
        + edge_index[0]
    assert torch.equal(key, key.sort().values)


def test_chain_graph():
    ei = chain_graph([3, 1, 2])
    assert ei.dtype == torch.long
    assert edges(ei) == [(0, 1), (1, 2), (4, 5)]
    assert edges(chain_graph([3, 1, 2], reverse=True)) == [(1, 0), (2, 1),
                                                           (5, 4)]
    assert chain_graph(torch.tensor([4, 4])).size(1) == 6


def test_complete_graph():
    ei = complete_graph([2, 1])
    assert edges(ei) == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 2)]
    ei = complete_graph([3], self_loops=False)
    assert edges(ei) == [(1, 0), (2, 0), (0, 1), (2, 1), (0, 2), (1, 2)]
    ei = complete_graph([3, 2], causal=True)
    assert edges(ei) == [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2),
                         (3, 3), (3, 4), (4, 4)]
    ei = complete_graph(3, causal=True, self_loops=False)
    assert edges(ei) == [(0, 1), (0, 2), (1, 2)]
    sizes = torch.tensor([5, 0, 7])
    assert complete_graph(sizes).size(1) == 25 + 49
    assert_sorted_by_target(complete_graph(sizes))


def test_bipartite_graph():
    ei = bipartite_graph([2, 1], [1, 2])
    assert edges(ei) == [(0, 0), (1, 0), (2, 1), (2, 2)]
    assert bipartite_graph([3, 0], [2, 4]).size(1) == 6


def test_window_graph():
    ei = window_graph(5, 5, radius=1)
    assert edges(ei) == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1), (1, 2),
                         (2, 2), (3, 2), (2, 3), (3, 3), (4, 3), (3, 4),
                         (4, 4)]
    # windows around real-valued centres, clipped to the source sequence
    ei = window_graph([4, 3], [1, 2], radius=1,
                      centers=torch.tensor([0.5, 2.0, 5.0]))
    assert edges(ei) == [(0, 0), (1, 0), (5, 1), (6, 1)]  # 3rd: no source
    assert window_graph(3, 3, radius=0).size(1) == 3
    # radius wide enough = bipartite
    assert torch.equal(window_graph([3, 2], [2, 2], radius=10),
                       bipartite_graph([3, 2], [2, 2]))


def test_empty_graphs():
    for ei in (chain_graph(0), complete_graph([0, 0]), bipartite_graph(0, 3),
               window_graph(3, 0, 2), chain_graph([]), complete_graph(1,
                                                                      False)):
        assert ei.shape == (2, 0) and ei.dtype == torch.long
    ei, et, out = grid_graph((3, 3), 3, batch_size=0)
    assert ei.shape == (2, 0) and et.shape == (0, ) and out == (1, 1)


def test_relative_position():
    ei = complete_graph(4)
    rel = relative_position(ei, torch.arange(4), clip=2)
    j, i = ei
    assert torch.equal(rel, (j - i).clamp(-2, 2) + 2)
    ei = bipartite_graph(3, 2)
    rel = relative_position(ei, (torch.arange(3), torch.tensor([0, 2])), 1)
    assert rel.tolist() == [1, 2, 2, 0, 0, 1]


def test_grid_graph_small_cases():
    ei, et, out = grid_graph(4, kernel_size=3, padding=1)
    assert out == 4
    assert edges(ei) == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1), (1, 2),
                         (2, 2), (3, 2), (2, 3), (3, 3)]
    assert et.tolist() == [1, 2, 0, 1, 2, 0, 1, 2, 0, 1]
    ei, et, out = grid_graph((2, 2), kernel_size=2, batch_size=2)
    assert out == (1, 1)
    assert edges(ei) == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 1),
                         (6, 1), (7, 1)]
    assert et.tolist() == [0, 1, 2, 3] * 2
    ei, et, out = grid_graph((3, 3), 3, padding='same')
    assert out == (3, 3) and ei.size(1) == 4 * 4 + 4 * 6 + 9


def dense_receptive_field(size, kernel_size, stride, padding, dilation):
    """[out, in, taps] 0/1 tensor from F.unfold / conv1d on a one-hot input."""
    if isinstance(size, int):
        n = size
        eye = torch.eye(n, dtype=torch.float64).view(n, 1, 1, n)
        cols = F.unfold(eye, (1, kernel_size), padding=(0, padding),
                        stride=(1, stride), dilation=(1, dilation))
    else:
        n = size[0] * size[1]
        eye = torch.eye(n, dtype=torch.float64).view(n, 1, *size)
        cols = F.unfold(eye, kernel_size, padding=padding, stride=stride,
                        dilation=dilation)
    # cols: [n_in, taps, n_out] -> [n_out, n_in, taps]
    return cols.permute(2, 0, 1)


def sparse_receptive_field(ei, et, n_in, n_out, taps):
    dense = torch.zeros(n_out, n_in, taps, dtype=torch.float64)
    dense[ei[1], ei[0], et] = 1
    return dense


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4),
       kw=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 3), two_d=st.booleans())
def test_grid_graph_matches_unfold(h, w, kh, kw, s, p, d, two_d):
    if two_d:
        size, k = (h, w), (kh, kw)
        fits = all(n + 2 * p >= d * (kk - 1) + 1 for n, kk in zip(size, k))
    else:
        size, k = w, kw
        fits = w + 2 * p >= d * (kw - 1) + 1
    if not fits:
        with pytest.raises(ValueError, match='kernel_size'):
            grid_graph(size, k, stride=s, padding=p, dilation=d)
        return
    ei, et, out = grid_graph(size, k, stride=s, padding=p, dilation=d)
    expected = dense_receptive_field(size, k, s, p, d)
    n_out, n_in, taps = expected.shape
    assert n_out == (out if isinstance(out, int) else out[0] * out[1])
    assert torch.equal(sparse_receptive_field(ei, et, n_in, n_out, taps),
                       expected)
    assert ei.size(1) == int(expected.sum())  # no duplicate edges
    assert_sorted_by_target(ei)


@pytest.mark.parametrize('kernel,dilation', [(3, 1), (4, 1), (3, 2), (2, 3)])
def test_grid_graph_same_padding_matches_conv(kernel, dilation):
    torch.manual_seed(0)
    h, w = 5, 6
    conv = torch.nn.Conv2d(1, 1, kernel, padding='same', dilation=dilation,
                           bias=False).double()
    x = torch.randn(2, 1, h, w, dtype=torch.float64)
    ei, et, out = grid_graph((h, w), kernel, padding='same', dilation=dilation,
                             batch_size=2)
    assert out == (h, w)
    weight = conv.weight.view(-1)  # row-major taps
    msg = x.view(-1)[ei[0]] * weight[et]
    y = torch.zeros(2 * h * w, dtype=torch.float64).index_add_(0, ei[1], msg)
    torch.testing.assert_close(y.view(2, 1, h, w), conv(x), atol=1e-12,
                               rtol=0)


@pytest.mark.parametrize('call,match', [
    (lambda: chain_graph(-1), 'non-negative'),
    (lambda: chain_graph([2, 1.5]), 'integers'),
    (lambda: complete_graph(torch.tensor([2.0])), 'integer'),
    (lambda: complete_graph('abc'), 'integers'),
    (lambda: bipartite_graph([1, 2], [3]), 'same number of graphs'),
    (lambda: window_graph(3, 3, radius=-1), 'radius'),
    (lambda: window_graph(3, 3, radius=1.5), 'radius'),
    (lambda: window_graph(3, 2, 1, centers=torch.zeros(3)), 'centers'),
    (lambda: grid_graph((3, 3), 5), 'kernel_size'),
    (lambda: grid_graph(3, 3, stride=0), 'stride'),
    (lambda: grid_graph(3, 3, dilation=0), 'dilation'),
    (lambda: grid_graph(3, 3, padding='valid'), 'padding'),
    (lambda: grid_graph(5, 3, stride=2, padding='same'), 'stride=1'),
    (lambda: grid_graph((3, 3, 3), 3), 'size'),
    (lambda: grid_graph((3, 3), (3, 3, 3)), 'kernel_size'),
    (lambda: relative_position(torch.zeros(3, 2, dtype=torch.long),
                               torch.arange(3), 1), r'\[2, E\]'),
    (lambda: relative_position(torch.zeros(2, 2), torch.arange(3), 1),
     'torch.long'),
    (lambda: relative_position(torch.tensor([[0], [5]]), torch.arange(3), 1),
     'target index 5'),
    (lambda: relative_position(complete_graph(2), torch.arange(2), -1),
     'clip'),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, IndexError), match=match):
        call()


@pytest.mark.parametrize('call,count', [
    (lambda: complete_graph(100000), '10,000,000,000 edges'),
    (lambda: complete_graph([60000, 60000], causal=True), 'edges'),
    (lambda: chain_graph(2**62), '4,611,686,018,427,387,904 nodes'),
    (lambda: bipartite_graph([2**40, 2**40], [2**20, 1]), 'edges'),
    (lambda: window_graph(2**40, 2**40, radius=3), 'nodes'),
    (lambda: grid_graph((10**6, 10**6), 3), 'edges'),
])
def test_absurd_graphs_refused_up_front(call, count):
    # complete_graph(100000) tried to allocate 80 GB before; now the builder
    # names the edge count and the memory it would need, allocating nothing
    with pytest.raises(ValueError, match=rf'{count}.*GiB.*memory'):
        call()


def test_sizes_beyond_int64_refused():
    with pytest.raises(ValueError, match="'sizes' entry 9223372036854775808"):
        chain_graph(2**63)  # overflowed inside torch.tensor before
    with pytest.raises(ValueError, match="'dst_sizes' entry"):
        bipartite_graph(1, [1, 2**64])


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_window_graph_non_finite_centers_raise(bad):
    # a NaN centre silently gave its target no edges (a zero context)
    with pytest.raises(ValueError, match="'centers' must be finite: target 0"):
        window_graph(3, 2, radius=1, centers=torch.tensor([bad, 1.]))
    with pytest.raises(ValueError, match="'centers' must hold real"):
        window_graph(3, 2, radius=1, centers=torch.tensor([True, False]))
