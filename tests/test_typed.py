import pytest
import torch

from pyg_relational.nn import gather_typed, typed_transform


@pytest.mark.parametrize('bias', [False, True])
def test_typed_transform_and_gather(bias):
    x = torch.randn(5, 3, dtype=torch.float64)
    weight = torch.randn(4, 3, 2, dtype=torch.float64)
    b = torch.randn(4, 2, dtype=torch.float64) if bias else None
    h = typed_transform(x, weight, b)
    assert h.shape == (5, 4, 2)
    for t in range(4):
        expected = x @ weight[t] + (b[t] if bias else 0)
        torch.testing.assert_close(h[:, t], expected, rtol=0, atol=1e-12)
    index = torch.tensor([0, 4, 4, 2])
    edge_type = torch.tensor([3, 0, 1, 3])
    per_edge = gather_typed(h, index, edge_type)
    torch.testing.assert_close(per_edge, h[index, edge_type], rtol=0, atol=0)
    assert gather_typed(h, index).shape == (4, 4, 2)
    empty = gather_typed(h, index[:0], edge_type[:0])
    assert empty.shape == (0, 2)
