import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from pyg_relational.graphs import grid_graph
from pyg_relational.nn.lattice import LatticeConv, _typed_plan
from pyg_relational.structure import Grid, structure_of
from pyg_relational.transforms import ImageToGraph
from pyg_relational.nn.typed import (_plan, _ShiftAggregate, _TypedAggregate,
                                     gather_typed, typed_aggregate,
                                     typed_transform)
from pyg_relational.transforms import image_to_nodes, nodes_to_image

from .helpers import (assert_close, assert_edge_order_invariant,
                      assert_twin, empty_graph, graph_to)
from .helpers import device  # noqa: F401 (fixture: every available device)

CONVS = {
    '1d': lambda: torch.nn.Conv1d(3, 4, 3),
    '1d-stride-pad-dil': lambda: torch.nn.Conv1d(3, 4, 3, stride=2,
                                                 padding=1, dilation=2),
    '1d-groups-same': lambda: torch.nn.Conv1d(4, 6, 2, padding='same',
                                              groups=2, bias=False),
    '2d-3x3-pad': lambda: torch.nn.Conv2d(3, 5, 3, padding=1),
    '2d-strided-dilated-groups': lambda: torch.nn.Conv2d(
        4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
        groups=2),
    '2d-same-nobias': lambda: torch.nn.Conv2d(2, 3, (2, 3), padding='same',
                                              bias=False),
    '2d-valid-stride': lambda: torch.nn.Conv2d(2, 3, 2, stride=3,
                                               padding='valid'),
}


def graph_conv(layer, spatial, batch_size):
    """The graph layer in the twin's layout: images/sequences in and out."""
    edge_index, edge_type, out_size = layer.grid_graph(
        spatial if len(spatial) > 1 else spatial[0], batch_size)
    out_spatial = out_size if isinstance(out_size, tuple) else (out_size, )
    num_in = batch_size * int(torch.tensor(spatial).prod())
    num_out = batch_size * int(torch.tensor(out_spatial).prod())

    def run(image):
        x = image_to_nodes(image)
        out = layer(x, graph_to(edge_index, x.device),
                    edge_type.to(x.device), size=(num_in, num_out))
        return nodes_to_image(out, batch_size, *out_spatial)

    return run


PATHS = ['dense', 'sparse', 'message']


@pytest.mark.filterwarnings('ignore:Using padding=.same')
@pytest.mark.parametrize('name', list(CONVS))
@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_twin_conv(name, path, dtype, device):
    conv = CONVS[name]().to(device, dtype)
    layer = LatticeConv.from_module(conv, path=path)
    spatial = (7, ) if isinstance(conv, torch.nn.Conv1d) else (5, 6)
    image = torch.randn(3, conv.in_channels, *spatial, dtype=dtype).to(device)
    params = [(lambda: layer.weight.grad,
               lambda: conv.weight.grad.flatten(2).permute(2, 1, 0))]
    if conv.bias is not None:
        params.append((lambda: layer.bias.grad, lambda: conv.bias.grad))
    assert_twin(graph_conv(layer, spatial, 3), conv, [image], params=params)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       groups=st.sampled_from([1, 2]), path=st.sampled_from(PATHS))
def test_twin_conv2d_random_options(kernel, stride, padding, dilation,
                                    groups, path, device):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 4, kernel, stride, padding, dilation,
                           groups).double().to(device)
    layer = LatticeConv.from_module(conv, path=path)
    image = torch.randn(2, 2, 6, 5, dtype=torch.double).to(device)
    params = [(lambda: layer.weight.grad,
               lambda: conv.weight.grad.flatten(2).permute(2, 1, 0)),
              (lambda: layer.bias.grad, lambda: conv.bias.grad)]
    assert_twin(graph_conv(layer, (6, 5), 2), conv, [image], params=params)


def random_typed_graph(num_src, num_dst, num_edges, num_types, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.stack([
        torch.randint(num_src, (num_edges, ), generator=gen),
        torch.randint(num_dst, (num_edges, ), generator=gen)])
    return edge_index, torch.randint(num_types, (num_edges, ), generator=gen)


def test_sparse_plan_cached_per_graph():
    edge_index, edge_type = random_typed_graph(9, 6, 40, 5)
    plan = _typed_plan(edge_index, edge_type, 5)
    assert _typed_plan(edge_index, edge_type, 5) is plan
    assert _typed_plan(edge_index, edge_type.clone(), 5) is not plan
    layer = LatticeConv(4, 6, (5, ))
    reference = LatticeConv(4, 6, (5, ), path='message')
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(9, 4)
    layer(x, edge_index, edge_type, size=(9, 6))
    edge_type[edge_type == 2] = 0  # in place: the cached plan is stale
    assert_close(layer(x, edge_index, edge_type, size=(9, 6)),
                 reference(x, edge_index, edge_type, size=(9, 6)))
    assert layer.last_path == 'sparse'


def test_typed_aggregate_bad_input():
    edge_index, edge_type = random_typed_graph(7, 5, 30, 3, seed=1)
    x, weight = torch.randn(7, 4), torch.randn(3, 4, 2)
    with pytest.raises(IndexError, match=r"'edge_type' values must lie in "
                       r"\[0, 3\)"):
        typed_aggregate(x, weight, edge_index, edge_type + 300, 5)
    with pytest.raises(ValueError, match='do not fit'):
        typed_aggregate(x, weight, edge_index, edge_type, 5, groups=2)


def test_typed_aggregate_matches_gather_typed():
    edge_index, edge_type = random_typed_graph(7, 5, 30, 3, seed=1)
    x = torch.randn(7, 4, dtype=torch.double)
    weight = torch.randn(3, 4, 2, dtype=torch.double)
    per_edge = gather_typed(typed_transform(x, weight), edge_index[0],
                            edge_type)  # [E, 2]
    expected = torch.zeros(5, 2, dtype=torch.double).index_add_(
        0, edge_index[1], per_edge)
    assert_close(typed_aggregate(x, weight, edge_index, edge_type, 5),
                 expected)


@pytest.mark.parametrize('groups', [1, 3])
@pytest.mark.parametrize('variant', ['grid', 'missing-type', 'mixed'])
def test_shift_paths_equal_gather_path(groups, variant, monkeypatch):
    # Stride-1 'same' grids: every offset is a translation with holes at
    # the borders. groups=1 runs the block-wise im2col (_ShiftAggregate,
    # blocks of 7 rows here), groups=3 and mixed plans the per-type loop;
    # all equal the gather path, forward and backward.
    monkeypatch.setattr(_ShiftAggregate, '_rows',
                        staticmethod(lambda x, weight: 7))
    edge_index, edge_type, _ = grid_graph((4, 5), 3, padding=1, batch_size=2)
    kinds = ['shift'] * 9
    if variant == 'missing-type':
        keep = edge_type != 2
        edge_index, edge_type = edge_index[:, keep], edge_type[keep]
        kinds[2] = None
    elif variant == 'mixed':  # two extra edges of type 0: no translation
        edge_index = torch.cat([edge_index, torch.tensor([[0, 39], [0, 0]])],
                               dim=1)
        edge_type = torch.cat([edge_type, torch.tensor([0, 0])])
        kinds[0] = 'gather'
    plan = _plan(edge_index, edge_type, 9, dtype=torch.double)
    assert [step and step[0] for step in plan] == kinds
    assert plan[4][4] is None and plan[1][4] is not None  # centre: no holes
    assert all(step is None or step[0] == 'gather' for step in
               _plan(edge_index, edge_type, 9, shifts=False))
    x = torch.randn(40, 6, dtype=torch.double)
    weight = torch.randn(9, 6 // groups, 9, dtype=torch.double)
    gather_plan = _plan(edge_index, edge_type, 9, shifts=False)
    assert_twin(
        lambda x, w: typed_aggregate(x, w, edge_index, edge_type, 40, groups),
        lambda x, w: _TypedAggregate.apply(x, w, gather_plan, 40, groups),
        [x, weight])


def test_strided_grid_is_gathered():
    edge_index, edge_type, _ = grid_graph((4, 5), 3, stride=2)
    assert {step[0] for step in _plan(edge_index, edge_type, 9)} == \
        {'gather'}


def test_edge_order_invariant():
    layer = LatticeConv(3, 4, (3, 3)).double()
    x = torch.randn(2 * 25, 3, dtype=torch.double)
    edge_index, edge_type, _ = layer.grid_graph((5, 5), 2)
    assert_edge_order_invariant(
        lambda ei, et: layer(x, ei, et, size=(50, 18)), edge_index, edge_type)


@pytest.mark.parametrize('path', ['auto', 'message'])
def test_empty_and_isolated(path):
    layer = LatticeConv(3, 4, 3, path=path)
    # 0 nodes, 0 edges
    out = layer(torch.randn(0, 3), empty_graph(), torch.empty(0).long())
    assert out.shape == (0, 4)
    # nodes without incoming edges get the bias (no bias: zeros), no NaN
    x = torch.randn(5, 3)
    out = layer(x, empty_graph(), torch.empty(0).long())
    assert_close(out, layer.bias.expand(5, 4))
    layer = LatticeConv(3, 4, 3, bias=False, path=path)
    out = layer(x, empty_graph(), torch.empty(0).long(), size=(5, 2))
    assert torch.equal(out, torch.zeros(2, 4))
    out.sum().backward()
    assert not torch.isnan(layer.weight.grad).any()
    # an empty batch of images
    edge_index, edge_type, _ = layer.grid_graph(4, batch_size=0)
    assert layer(torch.randn(0, 3), edge_index, edge_type).shape == (0, 4)


def test_repr():
    assert repr(LatticeConv(3, 8, (3, 3))) == \
        'LatticeConv(3, 8, kernel_size=(3, 3))'
    assert repr(LatticeConv(4, 8, 5, groups=2)) == \
        'LatticeConv(4, 8, kernel_size=(5,), groups=2)'


def test_bad_input():
    layer = LatticeConv(3, 4, (3, 3))
    edge_index, edge_type, _ = layer.grid_graph((4, 4))
    x = torch.randn(16, 3)
    with pytest.raises(ValueError, match='3 features'):
        layer(torch.randn(16, 2), edge_index, edge_type)
    with pytest.raises(ValueError, match='image_to_nodes'):
        layer(torch.randn(1, 3, 4, 4), edge_index, edge_type)
    with pytest.raises(IndexError, match=r"'edge_type' values must lie in "
                       r"\[0, 9\)"):
        layer(x, edge_index, edge_type + 1)
    with pytest.raises(ValueError, match="'edge_type' has 3 entries"):
        layer(x, edge_index, edge_type[:3])
    with pytest.raises(IndexError, match='target index'):
        layer(x, edge_index, edge_type, size=(16, 2))
    with pytest.raises(ValueError, match="'size' says 9 source nodes"):
        layer(x, edge_index, edge_type, size=(9, 4))
    with pytest.raises(ValueError, match=r"'size' must be \(H, W\)"):
        layer.grid_graph(4)
    with pytest.raises(ValueError, match='divisible'):
        LatticeConv(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match='nn.Conv1d or nn.Conv2d'):
        LatticeConv.from_module(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        LatticeConv.from_module(torch.nn.Conv2d(2, 2, 3, padding=1,
                                                padding_mode='circular'))


# --------------------------------------------------------------------------
# Execution paths: that every path gives the message path's numbers
# (forward, backward, second order, NaN isolation, bfloat16, empty batches,
# one-pixel images, torch.compile of a Grid) is the conformance suite's
# (tests/conformance_cases.py: the lattice-* cases). Here: one-pixel
# images against their formula, graph forms, path choice.
# --------------------------------------------------------------------------
def test_one_pixel_images():
    # 1x1 images: only the centre tap has an edge
    layer = LatticeConv(3, 4, (3, 3), padding='same')
    x = torch.randn(3, 3)
    edge_index, edge_type, _ = layer.grid_graph((1, 1), 3)
    out = layer(x, edge_index, edge_type)
    assert_close(out, x @ layer.weight[4] + layer.bias)


@pytest.mark.parametrize('path', PATHS)
def test_grid_value_equals_edge_index(path):
    layer = LatticeConv(3, 4, (3, 3), stride=2, padding=1, path=path)
    edge_index, edge_type, (h, w) = layer.grid_graph((5, 6), 2)
    grid = structure_of(edge_index)
    assert grid == Grid((5, 6), (3, 3), (2, 2), (1, 1), (1, 1), 2)
    x = torch.randn(60, 3)
    expected = layer(x, edge_index, edge_type, size=(60, 2 * h * w))
    assert_close(layer(x, grid), expected)
    assert_close(layer(x, grid, edge_type), expected)
    assert layer.last_path == path


def test_last_path_and_reasons():
    layer = LatticeConv(3, 4, (3, 3), padding=1)
    edge_index, edge_type, _ = layer.grid_graph((4, 4), 2)
    x = torch.randn(32, 3)
    layer(x, edge_index, edge_type)
    assert layer.last_path == 'dense' and layer.why_not_faster is None
    # other types than the grid's kernel offsets: not a convolution
    layer(x, edge_index, edge_type.flip(0))
    assert layer.last_path == 'sparse'
    assert 'kernel offsets' in layer.why_not_faster['dense']
    # a plain edge_index: nothing says it is a grid
    layer(x, edge_index.clone(), edge_type)
    assert 'not a known grid' in layer.why_not_faster['dense']
    # a grid of another kernel
    ei5, et5, _ = grid_graph((4, 4), 5, padding=2, batch_size=2)
    with pytest.raises(ValueError, match=r"kernel_size=\(5, 5\)"):
        LatticeConv(3, 4, (3, 3), path='dense')(x, ei5, et5 % 9)
    layer(x, ei5, et5 % 9)
    assert 'kernel_size=(5, 5)' in layer.why_not_faster['dense']
    # a strided grid without size=: as many targets as sources
    strided = LatticeConv(3, 4, (3, 3), stride=2)
    ei, et, _ = strided.grid_graph((5, 5))
    strided(torch.randn(25, 3), ei, et)
    assert 'pass size=(25, 4)' in strided.why_not_faster['dense']
    with pytest.raises(ValueError, match="path='auto'"):
        LatticeConv(3, 4, 3, path='dense')(torch.randn(5, 3), empty_graph(),
                                           torch.empty(0).long())
    with pytest.raises(ValueError, match="'edge_type' is needed"):
        layer(x, edge_index)
    with pytest.raises(ValueError, match='Unknown path'):
        LatticeConv(3, 4, 3, path='fast')


def test_image_to_graph_structure_survives_batching():
    transform = ImageToGraph('grid', kernel_size=3)
    data = [transform(torch.randn(3, 4, 5)) for _ in range(3)]
    grid = Grid((4, 5), (3, 3), (1, 1), 'same', (1, 1), 1)
    assert data[0].structure == grid
    batch = Batch.from_data_list(data)
    assert batch[1].structure == grid and batch.to('cpu')[2].structure == grid
    joined = structure_of(batch)
    assert joined == Grid((4, 5), (3, 3), (1, 1), 'same', (1, 1), 3)
    layer = LatticeConv(3, 4, (3, 3))
    out = layer(batch.x, batch.edge_index, batch.edge_type)
    assert layer.last_path == 'dense'  # structure_of registered the batch
    for i, d in enumerate(data):
        assert_close(out[20 * i:20 * (i + 1)],
                     layer(d.x, d.edge_index, d.edge_type))
    loaded = next(iter(DataLoader(data, batch_size=2)))
    assert structure_of(loaded) == Grid((4, 5), (3, 3), (1, 1), 'same',
                                        (1, 1), 2)
    assert_close(layer(loaded.x, structure_of(loaded)), out[:40])
