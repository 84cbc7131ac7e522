import pickle

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from pyg_relational import (bipartite_graph, chain_graph, complete_graph,
                            grid_graph, window_graph)
from pyg_relational.nn._paths import GraphInput, choose_path
from pyg_relational.structure import (BipartiteBlocks, Chains, CompleteBlocks,
                                      GraphStructure, Grid, Windows,
                                      recognise, register, structure_of)

BUILT = [
    (lambda: complete_graph([3, 1, 4]), CompleteBlocks((3, 1, 4))),
    (lambda: complete_graph([3, 2], causal=True),
     CompleteBlocks((3, 2), causal=True)),
    (lambda: complete_graph([3, 2], self_loops=False),
     CompleteBlocks((3, 2), self_loops=False)),
    (lambda: chain_graph([3, 1, 2]), Chains((3, 1, 2))),
    (lambda: chain_graph([3, 2], reverse=True), Chains((3, 2), reverse=True)),
    (lambda: bipartite_graph([2, 3], [1, 4]), BipartiteBlocks((2, 3), (1, 4))),
    (lambda: window_graph([5, 3], [5, 3], radius=1),
     Windows((5, 3), (5, 3), 1)),
]


@pytest.mark.parametrize('build,expected', BUILT)
def test_builders_register_what_they_built(build, expected):
    edge_index = build()
    assert structure_of(edge_index) == expected
    # the description builds exactly the same graph
    assert torch.equal(expected.build(), edge_index)
    assert expected.num_edges == edge_index.size(1)


@pytest.mark.parametrize('kw', [
    dict(size=(5, 6), kernel_size=3, stride=2, padding=1, batch_size=2),
    dict(size=(4, 4), kernel_size=(2, 3), padding='same', dilation=1),
    dict(size=7, kernel_size=3, stride=1, padding=0, dilation=2,
         batch_size=3),
])
def test_grid_structure(kw):
    edge_index, edge_type, out_size = grid_graph(**kw)
    grid = structure_of(edge_index)
    assert isinstance(grid, Grid)
    assert torch.equal(grid.edge_index(), edge_index)
    assert torch.equal(grid.edge_type(), edge_type)
    out = out_size if isinstance(out_size, tuple) else (out_size, )
    assert grid.out_size == out
    assert grid.num_dst_nodes == kw.get('batch_size', 1) * \
        int(torch.tensor(out).prod())


@pytest.mark.parametrize('build,expected', [
    (lambda: complete_graph([4, 4, 1]), CompleteBlocks((4, 4, 1))),
    (lambda: complete_graph([2, 5], causal=True),
     CompleteBlocks((2, 5), causal=True)),
    (lambda: chain_graph([3, 1, 4]), Chains((3, 1, 4))),
    (lambda: complete_graph(1), CompleteBlocks((1, ))),
])
def test_recognised_on_a_copy(build, expected):
    copy = build().clone()  # not registered: recognised
    assert recognise(copy) == expected
    assert structure_of(copy) == expected


def test_recognition_is_never_wrong():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        sizes = torch.randint(1, 5, (3, ), generator=gen).tolist()
        edge_index = complete_graph(sizes, causal=bool(_ % 2)).clone()
        E = edge_index.size(1)
        kind = _ % 4
        if kind == 0:  # drop one edge
            k = int(torch.randint(E, (1, ), generator=gen))
            edge_index = torch.cat([edge_index[:, :k], edge_index[:, k + 1:]],
                                   1)
        elif kind == 1:  # move one source
            k = int(torch.randint(E, (1, ), generator=gen))
            edge_index[0, k] = (edge_index[0, k] + 1) % sum(sizes)
        elif kind == 2:  # repeat one edge
            k = int(torch.randint(E, (1, ), generator=gen))
            edge_index = torch.cat([edge_index[:, :k + 1],
                                    edge_index[:, k:]], 1)
        else:  # shuffle: recognition needs the builders' order
            edge_index = edge_index[:, torch.randperm(E, generator=gen)]
        found = recognise(edge_index)
        if found is not None:  # only when it really is that graph
            assert torch.equal(found.build(), edge_index)


def test_recognition_is_never_wrong_on_sorted_near_misses():
    # sorted, repeat-free graphs close to blocks: subsets of complete graphs,
    # a causal block next to a complete one, blocks that overlap
    gen = torch.Generator().manual_seed(1)
    graphs = [torch.cat([complete_graph(3, causal=True),
                         complete_graph(2) + 3], 1),
              torch.tensor([[0, 1, 0, 1, 2, 1, 2], [0, 0, 1, 1, 1, 2, 2]])]
    for _ in range(300):
        n = int(torch.randint(1, 7, (1, ), generator=gen))
        full = complete_graph(n, causal=bool(_ % 2))
        keep = torch.rand(full.size(1), generator=gen) < 0.9
        graphs.append(full[:, keep])
    for edge_index in graphs:
        found = recognise(edge_index.clone())
        if found is not None:
            assert torch.equal(found.build(), edge_index)


def test_in_place_change_forgets_registration():
    edge_index = complete_graph(4)
    assert structure_of(edge_index) == CompleteBlocks((4, ))
    edge_index[0, 1] = 3  # no longer complete
    assert structure_of(edge_index) is None


def test_node_counts_must_match():
    edge_index = complete_graph(3)
    assert structure_of(edge_index, 3, 3) == CompleteBlocks((3, ))
    assert structure_of(edge_index, 4, 4) is None  # an isolated 4th node


def test_structure_travels_with_data():
    data_list = [Data(x=torch.randn(n, 2), edge_index=complete_graph(n),
                      structure=CompleteBlocks((n, ))) for n in (3, 2, 4)]
    batch = Batch.from_data_list(data_list)
    assert structure_of(batch) == CompleteBlocks((3, 2, 4))
    assert structure_of(batch.edge_index) == CompleteBlocks((3, 2, 4))
    assert batch[1].structure == CompleteBlocks((2, ))
    assert structure_of(batch.to('cpu')) == CompleteBlocks((3, 2, 4))
    loaded = next(iter(DataLoader(data_list, batch_size=2)))
    assert structure_of(loaded) == CompleteBlocks((3, 2))
    assert pickle.loads(pickle.dumps(batch[0].structure)) == \
        CompleteBlocks((3, ))


def test_data_structure_must_agree_with_edges():
    data = Data(x=torch.randn(3, 2), edge_index=chain_graph(3),
                structure=CompleteBlocks((3, )))
    with pytest.raises(ValueError, match='describes 9 edges'):
        structure_of(data)


def test_cat_refuses_mixed_kinds():
    assert GraphStructure.cat([Chains((2, )), Chains((3, 1))]) == \
        Chains((2, 3, 1))
    with pytest.raises(ValueError, match='different kinds or options'):
        GraphStructure.cat([CompleteBlocks((2, )),
                            CompleteBlocks((2, ), causal=True)])
    with pytest.raises(ValueError, match='different geometry'):
        Grid.cat([structure_of(grid_graph((4, 4), 3)[0]),
                  structure_of(grid_graph((5, 4), 3)[0])])


def test_structure_value_is_validated():
    with pytest.raises(ValueError, match="'sizes'"):
        CompleteBlocks((3, -1))
    with pytest.raises(ValueError, match="same number of blocks"):
        BipartiteBlocks((1, 2), (3, ))


def test_graph_input_resolves_every_form():
    edge_index = complete_graph(3)
    expected = CompleteBlocks((3, ))
    value = GraphInput(expected, 3, 3)
    assert value.structure == expected and not value.materialised
    assert torch.equal(value.edge_index, edge_index)
    assert GraphInput(edge_index, 3, 3).structure == expected
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(9),
                                    (3, 3))
    for sparse in (adj_t, adj_t.to_sparse_csr(), adj_t.to_sparse_csc()):
        got = GraphInput(sparse)
        assert torch.equal(got.edge_index, edge_index)
        assert got.structure == expected
    with pytest.raises(ValueError, match='describes 3 source nodes'):
        GraphInput(expected, 4, 3)


def test_choose_path_records_and_refuses():
    class Layer(torch.nn.Module):
        pass

    layer = Layer()
    assert choose_path(layer, 'auto', {'dense': None, 'sparse': None}) == \
        'dense'
    assert layer.last_path == 'dense' and layer.why_not_faster is None
    assert choose_path(layer, 'auto', {'dense': 'no structure',
                                       'sparse': None}) == 'sparse'
    assert layer.why_not_faster == {'dense': 'no structure'}
    with pytest.raises(ValueError, match='no structure'):
        choose_path(layer, 'dense', {'dense': 'no structure'})
    with pytest.raises(ValueError, match="has no 'sparse' path"):
        choose_path(layer, 'sparse', {'dense': None})
    layer._edge_mask = torch.ones(3)  # as PyG explain sets it
    assert choose_path(layer, 'auto', {'dense': None}) == 'message'


def test_register_explicitly():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    assert structure_of(edge_index) is None
    other = torch.tensor([[0, 1], [1, 0]])
    register(other, CompleteBlocks((2, ), self_loops=False))
    assert structure_of(other) == CompleteBlocks((2, ), self_loops=False)
