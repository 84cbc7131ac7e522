import copy

import pytest
import torch
import torch_geometric

from pyg_relational import complete_graph
from pyg_relational.nn import InteractionNetwork
from tests.helpers import (assert_close, assert_edge_order_invariant,
                           assert_twin, dtypes, empty_graph)
from tests.helpers import device  # noqa: F401 (fixture: every device)


def _net(dtype=torch.float64, **kwargs):
    kwargs = dict(dict(edge_channels=2, external_channels=1,
                       effect_channels=6, relation_hidden_channels=8,
                       relation_layers=3, object_hidden_channels=8),
                  **kwargs)
    return InteractionNetwork(4, 3, **kwargs).to(dtype)


def _reference(net):
    """The paper's B = m(G), E = f_R(B), C = a(G, X, E), P = f_O(C), with
    dense receiver/sender matrices R_r, R_s ([N, E] one-hot)."""
    f_R = net.relation_block.edge_model
    f_O = net.object_block.node_model

    def run(O, Ra, X, edge_index):
        N, E = O.size(0), edge_index.size(1)
        R_s = torch.zeros(N, E, dtype=O.dtype, device=O.device)
        R_r = torch.zeros(N, E, dtype=O.dtype, device=O.device)
        edges = torch.arange(E, device=O.device)
        R_s[edge_index[0], edges] = 1.
        R_r[edge_index[1], edges] = 1.
        B = torch.cat([Ra, R_s.t() @ O, R_r.t() @ O], -1)  # [E, 2D_S + D_R]
        effects = f_R(B)  # [E, D_E]
        C = torch.cat([R_r @ effects, O, X], -1)  # [N, D_E + D_S + D_X]
        return f_O(C), effects
    return run


@pytest.mark.parametrize('dtype', dtypes())
def test_matches_dense_paper_formulation(dtype, device):
    net = _net(dtype).to(device)
    twin = copy.deepcopy(net)
    ref = _reference(twin)
    edge_index = torch.tensor([[0, 1, 2, 3, 3, 1],
                               [1, 2, 0, 0, 2, 0]]).to(device)
    O = torch.randn(5, 4, dtype=dtype).to(device)  # node 4: no relation
    Ra = torch.randn(6, 2, dtype=dtype).to(device)
    X = torch.randn(5, 1, dtype=dtype).to(device)
    params = [(lambda p=p: p.grad, lambda q=q: q.grad)
              for p, q in zip(net.parameters(), twin.parameters())]
    assert_twin(lambda O, Ra, X: net(O, edge_index, Ra, X,
                                     return_effects=True),
                lambda O, Ra, X: ref(O, Ra, X, edge_index), [O, Ra, X],
                params=params, dtype=dtype)


def test_is_a_rewiring_of_gn_blocks():
    net = _net()
    O, X = torch.randn(4, 4, dtype=torch.float64), \
        torch.randn(4, 1, dtype=torch.float64)
    edge_index = complete_graph(4)
    Ra = torch.randn(edge_index.size(1), 2, dtype=torch.float64)
    e = net.relation_block(O, edge_index, Ra)
    p = net.object_block(torch.cat([O, X], -1), edge_index, e)
    assert torch.equal(net(O, edge_index, Ra, X), p)
    assert not net.relation_block.use_globals
    assert not net.object_block.use_globals


def test_no_attributes_edge_order_batches_and_empty():
    net = _net(edge_channels=0, external_channels=0)
    O = torch.randn(6, 4, dtype=torch.float64)
    edge_index = complete_graph([3, 3])
    assert_edge_order_invariant(lambda ei: net(O, ei), edge_index)
    out = net(O, edge_index)
    assert_close(out[:3], net(O[:3], complete_graph(3)))
    assert net(O[:0], empty_graph()).shape == (0, 3)
    lone = net(O, empty_graph())  # no relations: zero effects
    assert not torch.isnan(lone).any()
    assert_close(lone, net.object_block.node_model(
        torch.cat([torch.zeros(6, 6, dtype=O.dtype), O], -1)))


def test_repr_and_paper_defaults():
    net = InteractionNetwork(5, 2)
    assert repr(net) == 'InteractionNetwork(5, 2)'
    assert repr(_net()) == \
        'InteractionNetwork(4, 3, edge_channels=2, external_channels=1)'
    linears = [m for m in net.relation_block.modules()
               if isinstance(m, torch_geometric.nn.Linear)]
    assert [m.out_channels for m in linears] == [150] * 4 + [50]


def test_bad_input_errors():
    net = _net()
    O, X = torch.randn(3, 4), torch.randn(3, 1)
    edge_index = complete_graph(3)
    Ra = torch.randn(9, 2)
    with pytest.raises(ValueError, match="'x' must have 4 features"):
        net(torch.randn(3, 5), edge_index, Ra, X)
    with pytest.raises(ValueError, match="'edge_attr' is None but "
                       "edge_channels=2"):
        net(O, edge_index, None, X)
    with pytest.raises(ValueError, match="'external' is None"):
        net(O, edge_index, Ra)
    with pytest.raises(ValueError, match="'external' has 2 rows"):
        net(O, edge_index, Ra, X[:2])
    with pytest.raises(ValueError, match="'edge_attr' must have shape "
                       r"\[E=9, F\]"):
        net(O, edge_index, Ra[:4], X)
    plain = _net(edge_channels=0, external_channels=0)
    with pytest.raises(ValueError, match="edge_channels=0; build"):
        plain(O, edge_index, Ra)
    with pytest.raises(ValueError, match="external_channels=0; build"):
        plain(O, edge_index, None, X)
    with pytest.raises(ValueError, match="'edge_channels' must be >= 0"):
        InteractionNetwork(4, 3, edge_channels=-1)
