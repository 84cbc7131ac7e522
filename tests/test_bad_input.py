"""Issue 22: inputs that gave a silent wrong answer or an obscure error now
give the right answer or a clear error naming the argument and the fix."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from pyg_relational import (bipartite_graph, chain_graph, complete_graph,
                            relative_position, structure_of, window_graph)
from pyg_relational.nn import (FullyConnectedConv, LatticeConv, NonLocalBlock,
                               RecurrentConv, TransformerDecoderLayer,
                               TransformerEncoderLayer)
from pyg_relational.structure import Chains, CompleteBlocks, Grid, register
from pyg_relational.transforms import ImageToGraph, SequenceToGraph


# -- structure_of(data) checks the edges, not only their count -------------
def test_replaced_edge_index_does_not_inherit_the_structure():
    """The issue's case: a reversed chain has the edge count of the chain;
    RecurrentConv's dense path ran a forward chain on it."""
    data = SequenceToGraph('chain')(Data(x=torch.randn(6, 3)))
    assert structure_of(data) == Chains((6, ))
    data.edge_index = chain_graph(6, reverse=True)
    with pytest.raises(ValueError, match='data.structure'):
        structure_of(data)
    # the tensor keeps its own (builder's) structure, and the layer's
    # answer on it is the reversed chain's
    assert structure_of(data.edge_index) == Chains((6, ), reverse=True)
    rnn = RecurrentConv(3, 4)
    out, _ = rnn(data.x, data.edge_index)
    reference = RecurrentConv(3, 4, path='message')
    reference.load_state_dict(rnn.state_dict())
    expected, _ = reference(data.x, data.edge_index)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_plain_tensor_with_the_same_count_is_compared_edge_for_edge():
    data = SequenceToGraph('chain')(Data(x=torch.randn(5, 2)))
    data.edge_index = chain_graph(5).flip(0).clone()  # no structure known
    with pytest.raises(ValueError, match='different edges'):
        structure_of(data)
    data.edge_index = chain_graph(5)[:, :3]
    with pytest.raises(ValueError, match='describes 4 edges'):
        structure_of(data)


def test_complete_blocks_are_checked_without_building_them():
    """Complete blocks (the large graphs of dense paths) are checked by
    recognition, with the same verdicts as an edge-for-edge comparison."""
    data = Data(x=torch.randn(7, 2), structure=CompleteBlocks((3, 4)))
    data.edge_index = complete_graph([4, 3]).clone()  # 25 edges too
    with pytest.raises(ValueError, match='different edges'):
        structure_of(data)
    data.edge_index = complete_graph([3, 4], causal=True).clone()
    data.structure = CompleteBlocks((3, 4))  # 25 vs 16 edges
    with pytest.raises(ValueError, match='describes 25 edges'):
        structure_of(data)
    for sizes, causal in (((3, 0, 4), False), ((2, 3), True), ((1, 1), True)):
        data.structure = CompleteBlocks(sizes, causal=causal)
        data.edge_index = complete_graph(list(sizes), causal=causal).clone()
        assert structure_of(data) == data.structure
    data.structure = CompleteBlocks((2, 3), causal=True)
    edge_index = complete_graph([2, 3], causal=True).clone()
    edge_index[0, 1] = 1  # (0 -> 1) becomes a repeated (1 -> 1)
    data.edge_index = edge_index
    with pytest.raises(ValueError, match='different edges'):
        structure_of(data)


def test_unchanged_batch_keeps_its_structure():
    graphs = [SequenceToGraph('causal')(Data(x=torch.randn(n, 2)))
              for n in (3, 4)]
    batch = Batch.from_data_list(graphs)
    joined = structure_of(batch)
    assert joined.sizes == (3, 4) and joined.causal
    assert structure_of(batch.edge_index) == joined  # registered
    images = Batch.from_data_list([ImageToGraph()(torch.randn(2, 3, 3))
                                   for _ in range(2)])
    assert structure_of(images) == Grid((3, 3), (3, 3), (1, 1), 'same',
                                        (1, 1), batch_size=2)


# -- FullyConnectedConv: a NaN in a unit that sends nothing ----------------
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_nan_in_a_unit_without_edges_stays_out(dtype):
    # units 0 and 2 send; unit 1 has no outgoing edge
    edge_index = torch.tensor([[0, 2, 0], [0, 1, 2]])
    dense = FullyConnectedConv(3, 3, edge_index=edge_index,
                               path='dense').to(dtype)
    message = FullyConnectedConv(3, 3, edge_index=edge_index,
                                 path='message').to(dtype)
    auto = FullyConnectedConv(3, 3, edge_index=edge_index).to(dtype)
    message.load_state_dict(dense.state_dict())
    auto.load_state_dict(dense.state_dict())
    x = torch.randn(4, 3, dtype=dtype)
    x[1, 1] = float('nan')
    x[2, 1] = float('inf')
    out, expected = dense(x), message(x)
    assert dense.last_path == 'dense' and message.last_path == 'message'
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected)
    x.requires_grad_()
    dense(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[:, 1] == 0).all()
    # a NaN in a unit that does send reaches exactly its targets: 'auto'
    # steps aside to the message path and says why
    torch.testing.assert_close(auto(x), expected)
    x = torch.randn(4, 3, dtype=dtype)
    x[0, 2] = float('nan')
    out = auto(x)
    assert auto.last_path == 'message'
    assert 'NaN' in auto.why_not_faster['dense']
    assert torch.isnan(out[0, 1]) and torch.isfinite(out[0, [0, 2]]).all()
    torch.testing.assert_close(out, message(x), equal_nan=True)
    torch.testing.assert_close(auto(x[1:]), dense(x[1:]))  # finite rows
    assert auto.last_path == 'dense'
    complete = FullyConnectedConv(3, 3).to(dtype)  # as nn.Linear: all rows
    assert torch.isnan(complete(x)[0]).all() and complete.last_path == 'dense'


# -- builders --------------------------------------------------------------
@pytest.mark.parametrize('radius', [5, 2**31, 2**62, 2**63, 2**64, 10**30])
def test_window_wider_than_the_sequence_is_the_whole_sequence(radius):
    edge_index = window_graph(5, 5, radius)
    assert torch.equal(edge_index, complete_graph(5))
    centers = torch.tensor([0., 1., 2., 3., 1e6 if radius > 1e6 else 4.])
    assert window_graph(5, 5, radius, centers=centers).size(1) == 25
    ragged = window_graph([2, 3], [3, 1], radius)
    assert torch.equal(ragged, bipartite_graph([2, 3], [3, 1]))


def test_window_far_centre_with_a_small_radius_has_no_edges():
    centers = torch.tensor([0., 1e6, -1e6])
    assert window_graph(3, 3, 1, centers=centers).size(1) == 2


def test_relative_position_refuses_to_truncate():
    edge_index = chain_graph(3)
    with pytest.raises(ValueError, match="'position' must hold whole"):
        relative_position(edge_index, torch.tensor([0., 1.5, 2.]), clip=2)
    with pytest.raises(ValueError, match="'position'"):
        relative_position(edge_index, torch.tensor([0., float('nan'), 2.]),
                          clip=2)
    with pytest.raises(ValueError, match="'position' must hold integer"):
        relative_position(edge_index, torch.tensor([True, False, True]),
                          clip=2)
    whole = relative_position(edge_index, torch.tensor([0., 2., 3.]), 5)
    assert torch.equal(whole, relative_position(
        edge_index, torch.tensor([0, 2, 3]), 5))
    # uint8 positions: 0 - 5 is -5, not 251
    small = relative_position(edge_index, torch.tensor([5, 0, 2],
                                                       dtype=torch.uint8), 9)
    assert small.tolist() == [5 - 0 + 9, 0 - 2 + 9]  # p_j - p_i + k


# -- obscure errors made clear ---------------------------------------------
def test_decoder_layer_names_the_mixed_dtype():
    layer = TransformerDecoderLayer(8, 2, 16)
    x, memory = torch.randn(3, 8), torch.randn(4, 8)
    args = (complete_graph(3, causal=True), bipartite_graph(4, 3))
    with pytest.raises(ValueError, match="'memory' has dtype torch.float64"):
        layer(x, memory.double(), *args)
    with pytest.raises(ValueError, match="'memory' has dtype torch.float32"):
        layer(x.double(), memory, *args)
    with pytest.raises(ValueError, match=r"'x' has dtype .*\.to\("):
        layer(x.double(), memory.double(), *args)
    with pytest.raises(ValueError, match="'x' has dtype torch.float64"):
        TransformerEncoderLayer(8, 2, 16)(x.double(), complete_graph(3))
    assert layer(x, memory, *args).shape == (3, 8)
    assert layer.double()(x.double(), memory.double(), *args).dtype \
        == torch.float64
    with torch.autocast('cpu', dtype=torch.bfloat16):  # casts by itself
        TransformerDecoderLayer(8, 2, 16)(x, memory, *args)


@pytest.mark.parametrize('shape', [(1, 4, 1, 1), (1, 4, 1)])
def test_non_local_training_on_one_position(shape):
    block = NonLocalBlock(4).train()
    with pytest.raises(ValueError, match=r"'x' has one.*block.eval\(\)"):
        block(torch.randn(shape))
    with pytest.raises(ValueError, match="'x' has one"):
        block(torch.randn(1, 4), torch.tensor([[0], [0]]))
    with pytest.raises(ValueError, match="'x' has one"):
        block((torch.randn(3, 4), torch.randn(1, 4)),
              torch.tensor([[0, 1], [0, 0]]))
    assert block.eval()(torch.randn(shape)).shape == shape
    assert NonLocalBlock(4, batch_norm=False).train()(
        torch.randn(shape)).shape == shape
    two = list(shape)
    two[0] = 2
    assert block.train()(torch.randn(two)).shape == tuple(two)


def test_int_kernel_on_an_image_graph_says_it_is_one_dimensional():
    images = Batch.from_data_list([ImageToGraph(kernel_size=3)(
        torch.randn(3, 4, 4)) for _ in range(2)])
    conv = LatticeConv(3, 6, kernel_size=3)
    with pytest.raises(IndexError, match=r"1-D kernel.*kernel_size=\(3, 3\)"):
        conv(images.x, images.edge_index, images.edge_type)
    structure_of(images)  # the grid is now known: named in the message
    with pytest.raises(IndexError, match=r"2-D grid.*kernel_size=\(3, 3\)"):
        conv(images.x, images.edge_index, images.edge_type)
    out = LatticeConv(3, 6, kernel_size=(3, 3))(images.x, images.edge_index,
                                                images.edge_type)
    assert out.shape == (32, 6)
    fresh = Batch.from_data_list([ImageToGraph(kernel_size=3)(
        torch.randn(3, 4, 4)) for _ in range(2)])
    with pytest.raises(IndexError, match=r"kernel_size=\(2, 2\) has 4"):
        LatticeConv(3, 6, (2, 2))(fresh.x, fresh.edge_index, fresh.edge_type)


def test_registered_structure_of_an_edited_builder_output_is_dropped():
    """``register`` holds by tensor identity, version and (small CPU
    tensors) value: an edit through ``.data`` is seen."""
    edge_index = chain_graph(4)
    edge_index.data[0, 0] = 2  # no version bump
    assert structure_of(edge_index) is None
    edge_index = register(chain_graph(4), Chains((4, )))
    edge_index.numpy()[1, 2] = 1
    assert structure_of(edge_index) is None
