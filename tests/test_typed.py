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


def _plan_cases():
    """Typed edges whose types are translations, translations with holes,
    repeated targets, several offsets, unsorted targets and empty types."""
    edge_index, edge_type, _ = grid_graph((5, 6), kernel_size=3, padding=1,
                                          batch_size=2)
    yield 'grid', edge_index, edge_type, 9
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(0, 12, (40, ), generator=gen)
    dst = torch.randint(0, 12, (40, ), generator=gen)
    yield 'random', torch.stack([src, dst]), torch.randint(
        0, 6, (40, ), generator=gen), 7  # type 6 has no edge
    # type 0: one offset, increasing targets with holes; type 1: a repeated
    # target; type 2: decreasing targets; type 3: two offsets
    yield 'handmade', torch.tensor([[1, 3, 6, 0, 0, 5, 4, 2, 4],
                                    [0, 2, 5, 1, 1, 4, 3, 1, 2]]), \
        torch.tensor([0, 0, 0, 1, 1, 2, 2, 3, 3]), 5
    yield 'no-edges', torch.empty(2, 0, dtype=torch.long), \
        torch.empty(0, dtype=torch.long), 3


@pytest.mark.parametrize('shifts', [True, False])
@pytest.mark.parametrize('case', list(_plan_cases()), ids=lambda c: c[0])
def test_plan_describes_every_type(case, shifts):
    """Every type's step says what its edges are: a translation (one offset,
    targets strictly increasing) as ``('shift', lo, hi, delta, mask)``,
    anything else as its edges ``('gather', src, dst)`` in edge order."""
    from pyg_relational.nn.typed import _plan
    _, edge_index, edge_type, num_types = case
    plan = _plan(edge_index, edge_type, num_types, shifts=shifts)
    assert len(plan) == num_types
    for t, step in enumerate(plan):
        mine = (edge_type == t).nonzero().view(-1)  # edge order kept
        s, d = edge_index[0, mine], edge_index[1, mine]
        if mine.numel() == 0:
            assert step is None
            continue
        translation = bool((s - d).unique().numel() == 1) and bool(
            (d[1:] > d[:-1]).all())
        if shifts and translation:
            kind, lo, hi, delta, mask = step
            assert kind == 'shift' and (lo, hi) == (int(d[0]),
                                                    int(d[-1]) + 1)
            assert delta == int(s[0] - d[0])
            rows = torch.zeros(hi - lo, dtype=torch.bool)
            rows[d - lo] = True
            if bool(rows.all()):
                assert mask is None
            else:
                assert torch.equal(mask.view(-1), rows)
        else:
            kind, src, dst = step
            assert kind == 'gather'
            assert torch.equal(src, s) and torch.equal(dst, d)


@pytest.mark.parametrize('num_types', [3, 9, 40])
def test_plan_reads_the_device_once(num_types):
    """One read back to the host for the whole plan, not a few per edge
    type (each is a sync on CUDA)."""
    from pyg_relational.nn.typed import _plan
    from tests.helpers import count_host_reads
    gen = torch.Generator().manual_seed(1)
    edge_index = torch.randint(0, 50, (2, 400), generator=gen)
    edge_type = torch.randint(0, num_types, (400, ), generator=gen)
    with count_host_reads() as reads:
        _plan(edge_index, edge_type, num_types)
    assert reads.count == 1, reads.names
    grid, grid_type, _ = grid_graph((6, 6), kernel_size=3, padding=1)
    with count_host_reads() as reads:
        plan = _plan(grid, grid_type, 9)
    assert all(step[0] == 'shift' for step in plan)
    assert reads.count == 1, reads.names
