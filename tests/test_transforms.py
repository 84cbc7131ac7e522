import pytest
import torch
from torch_geometric.data import Data

from pyg_relational.graphs import chain_graph, complete_graph, grid_graph
from pyg_relational.transforms import (ImageToGraph, SequenceToGraph,
                                       image_to_nodes, nodes_to_image,
                                       nodes_to_sequence, sequence_to_nodes)


@pytest.mark.parametrize('structure,expected', [
    ('chain', chain_graph(4)),
    ('complete', complete_graph(4)),
    ('causal', complete_graph(4, causal=True)),
])
def test_sequence_to_graph(structure, expected):
    data = SequenceToGraph(structure)(Data(x=torch.randn(4, 3), y=1))
    assert torch.equal(data.edge_index, expected)
    assert torch.equal(data.pos, torch.arange(4)) and data.y == 1
    assert 'edge_type' not in data


def test_sequence_to_graph_window_and_relative():
    data = SequenceToGraph('window', radius=1, relative_clip=1)(
        Data(x=torch.randn(3, 2)))
    assert data.edge_index.tolist() == [[0, 1, 0, 1, 2, 1, 2],
                                        [0, 0, 1, 1, 1, 2, 2]]
    assert data.edge_type.tolist() == [1, 2, 0, 1, 2, 0, 1]


def test_image_to_graph():
    image = torch.randn(3, 4, 5)
    data = ImageToGraph('grid', kernel_size=3)(Data(x=image, y=7))
    assert torch.equal(data.x, image.permute(1, 2, 0).reshape(20, 3))
    assert data.pos.shape == (20, 2) and data.pos[6].tolist() == [1., 1.]
    ei, et, _ = grid_graph((4, 5), 3, padding='same')
    assert torch.equal(data.edge_index, ei) and torch.equal(data.edge_type, et)
    assert data.y == 7
    data = ImageToGraph('complete')(image)
    assert torch.equal(data.edge_index, complete_graph(20))


def test_sequence_round_trip():
    x = torch.randn(3, 5, 2)
    lengths = torch.tensor([5, 2, 0])
    flat, batch, lens = sequence_to_nodes(x, lengths)
    assert flat.shape == (7, 2) and batch.tolist() == [0] * 5 + [1] * 2
    assert torch.equal(flat[5:], x[1, :2])
    dense, mask = nodes_to_sequence(flat, batch, batch_size=3, max_length=5)
    assert torch.equal(mask, torch.arange(5) < lengths.view(-1, 1))
    assert torch.equal(dense[mask], x[mask])
    flat2, batch2, _ = sequence_to_nodes(x, mask=mask)
    assert torch.equal(flat2, flat) and torch.equal(batch2, batch)


def test_image_round_trip():
    x = torch.randn(2, 3, 4, 5)
    nodes = image_to_nodes(x)
    assert torch.equal(nodes, x.permute(0, 2, 3, 1).reshape(-1, 3))
    assert torch.equal(nodes_to_image(nodes, 2, 4, 5), x)
    x1 = torch.randn(2, 3, 7)
    assert torch.equal(nodes_to_image(image_to_nodes(x1), 2, 7), x1)


@pytest.mark.parametrize('call,match', [
    (lambda: SequenceToGraph('tree'), 'structure'),
    (lambda: SequenceToGraph('window'), 'radius'),
    (lambda: SequenceToGraph('window', radius=-2), 'radius'),
    (lambda: SequenceToGraph()(Data(x=torch.randn(2, 3, 4))), r'\[T, F\]'),
    (lambda: ImageToGraph('ring'), 'structure'),
    (lambda: ImageToGraph()(torch.randn(4, 4)), r'\[C, H, W\]'),
    (lambda: ImageToGraph(kernel_size=0)(torch.randn(1, 4, 4)),
     'kernel_size'),
    (lambda: sequence_to_nodes(torch.randn(3, 4)), r'\[B, T, F\]'),
    (lambda: sequence_to_nodes(torch.randn(2, 4, 1), torch.tensor([5, 1])),
     'lengths'),
    (lambda: sequence_to_nodes(torch.randn(2, 4, 1), torch.tensor([-1, 1])),
     'non-negative'),
    (lambda: sequence_to_nodes(torch.randn(1, 3, 1),
                               mask=torch.tensor([[False, True, True]])),
     'prefix'),
    (lambda: nodes_to_image(torch.randn(10, 3), 2, 2, 2), r'\[8, C\]'),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, IndexError), match=match):
        call()


def test_nodes_to_sequence_unsorted_batch_raises():
    x = torch.arange(5.).view(-1, 1)
    # rows used to land in the wrong sequences
    with pytest.raises(ValueError, match="'batch' must be sorted.*row 2"):
        nodes_to_sequence(x, torch.tensor([0, 1, 0, 1, 1]))
    perm = torch.tensor([0, 1, 0, 1, 1]).argsort(stable=True)
    dense, mask = nodes_to_sequence(x[perm], torch.tensor([0, 0, 1, 1, 1]))
    assert dense[0, :2, 0].tolist() == [0., 2.]
    assert dense[1, :, 0].tolist() == [1., 3., 4.]


def test_nodes_to_sequence_never_drops_rows():
    x, batch = torch.arange(5.).view(-1, 1), torch.tensor([0, 0, 0, 1, 1])
    # max_length=2 silently dropped the third row of sequence 0 before
    with pytest.raises(ValueError, match=r"'max_length' \(2\) is shorter "
                                         r"than sequence 0 \(3 rows\)"):
        nodes_to_sequence(x, batch, max_length=2)
    dense, mask = nodes_to_sequence(x, batch, max_length=4)
    assert dense.shape == (2, 4, 1) and int(mask.sum()) == 5
    with pytest.raises(ValueError, match="'batch_size' \\(1\\)"):
        nodes_to_sequence(x, batch, batch_size=1)
    with pytest.raises(ValueError, match="'batch' must be a 1-D long"):
        nodes_to_sequence(x, batch[:3])
    with pytest.raises(IndexError, match="negative"):
        nodes_to_sequence(x, batch - 1)


@pytest.mark.parametrize('call,match', [
    (lambda: nodes_to_image([[1.]], 1, 1), "'x' must be a tensor"),
    (lambda: nodes_to_image(torch.randn(8, 3), 2.0, 2, 2), "'batch_size'"),
    (lambda: nodes_to_image(torch.randn(8, 3), -2, -2, 2), "'batch_size'"),
    (lambda: nodes_to_image(torch.randn(8, 3), 2, 2, 2.0), "'spatial size'"),
    (lambda: sequence_to_nodes(torch.randn(2, 3, 1), mask=[[True] * 3] * 2),
     "'mask' must be a bool tensor"),
])
def test_helpers_name_bad_arguments(call, match):
    # raw AttributeError / view() / shape errors before
    with pytest.raises(ValueError, match=match):
        call()
