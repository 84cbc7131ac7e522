import pytest
import torch

from pyg_relational import grid_graph
from pyg_relational.nn import gather_typed, typed_aggregate, typed_transform


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


@pytest.mark.parametrize('groups', [1, 2])
def test_typed_aggregate_nan_stays_in_its_image(groups):
    # stride-1 'same' grids take the masked shift steps: rows are selected,
    # never multiplied by 0, so a NaN reaches only its own image
    edge_index, edge_type, _ = grid_graph((4, 5), 3, padding='same',
                                          batch_size=3)
    x = torch.randn(60, 4, dtype=torch.float64)
    x[20] = float('nan')  # the first pixel of image 1
    x.requires_grad_()
    weight = torch.randn(9, 4 // groups, 6, dtype=torch.float64)
    out = typed_aggregate(x, weight, edge_index, edge_type, 60, groups)
    per_image = torch.isnan(out).any(1).view(3, 20).sum(1).tolist()
    assert per_image == [0, 4, 0]  # its 2x2 neighbourhood, nothing else
    out[:20].sum().backward()  # image 0 only
    assert torch.isfinite(x.grad).all()
