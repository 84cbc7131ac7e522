"""Local sparse interaction systems (pyg_relational.datasets.sparse_physics):
physics against dense oracles, the candidate graph and its labels against a
brute force, argument checks, cache and determinism."""
import math

import pytest
import torch
from torch_geometric.loader import DataLoader

from pyg_relational.datasets import (LocalChargedDataset, LocalSpringsDataset,
                                     local_knn_graph, simulate_local_charged,
                                     simulate_local_springs)
from pyg_relational.datasets.nri_physics import _simulate, _spring_force

pytestmark = pytest.mark.usefixtures('one_thread')
SMALL = dict(num_particles=12, num_steps=60, sample_every=10)


def test_local_springs_equal_the_dense_laplacian_simulation():
    # the O(edges) simulator equals NRI's dense integrator with the
    # Laplacian of the same springs (same start, walls, leapfrog)
    out = simulate_local_springs(3, seed=4, interaction_strength=0.7,
                                 **SMALL)
    n, box = 12, out['box']
    assert box == pytest.approx(0.5 * math.sqrt(n))  # density 1
    lap = torch.zeros(3, n, n, dtype=torch.float64)
    for s, (i, j) in enumerate(out['pairs']):
        lap[s, i, j] = lap[s, j, i] = -1
    lap += torch.diag_embed(-lap.sum(-1))
    gen = torch.Generator().manual_seed(4)
    loc = (torch.rand(3, n, 2, generator=gen, dtype=torch.float64) * 2 - 1
           ) * box
    vel = torch.randn(3, n, 2, generator=gen, dtype=torch.float64)
    vel = vel * 0.5 / vel.norm(dim=-1, keepdim=True)
    assert torch.allclose(loc.float(), out['start'])
    locs, vels = _simulate(_spring_force, lap, loc, vel, 60, 10, box, 0.7,
                           1e-2, 100.)
    assert torch.allclose(out['loc'], locs.float(), atol=1e-5)
    assert torch.allclose(out['vel'], vels.float(), atol=1e-5)


def test_local_charged_force_equals_dense_sum():
    from pyg_relational.datasets.sparse_physics import _pair_force
    gen = torch.Generator().manual_seed(0)
    n = 7
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    q = torch.tensor([1., -1, 1, 1, -1, -1, 1], dtype=torch.float64)
    pairs = torch.tensor([[0, 0, 2, 3, 5], [1, 4, 3, 6, 6]])
    src, dst = pairs
    qq = (q[src] * q[dst]).unsqueeze(-1)
    got = _pair_force(x, src, dst, lambda d: 2. * qq / (
        d.pow(2).sum(-1, keepdim=True) + 0.01).pow(1.5))
    want = torch.zeros(n, 2, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            linked = ((src == i) & (dst == j)) | ((src == j) & (dst == i))
            if i != j and bool(linked.any()):
                d = x[i] - x[j]
                want[i] += 2. * q[i] * q[j] * d / (d.pow(2).sum() +
                                                   0.01) ** 1.5
    assert torch.allclose(got, want, atol=1e-12)


def test_knn_graph_equals_brute_force():
    gen = torch.Generator().manual_seed(1)
    pos = torch.randn(2, 30, 2, generator=gen)
    for k in (1, 3, 8):
        graphs = local_knn_graph(pos, k, chunk=7)  # several chunks
        for s in range(2):
            d = torch.cdist(pos[s], pos[s]).fill_diagonal_(float('inf'))
            near = d.topk(k, largest=False).indices
            want = {(min(i, int(j)), max(i, int(j)))
                    for i in range(30) for j in near[i]}
            assert set(map(tuple, graphs[s].t().tolist())) == want


@pytest.mark.parametrize('cls', [LocalSpringsDataset, LocalChargedDataset])
def test_candidate_graph_and_labels_equal_brute_force(cls):
    ds = cls(None, 3, candidates=4, seed=2, **SMALL)
    sim = ds.simulation
    n = 12
    missed = total = 0
    for s in range(3):
        item = ds[s]
        src, dst = item.edge_index
        assert bool((src != dst).all())
        assert torch.equal(dst, dst.sort().values)  # sorted by target
        edges = set(zip(src.tolist(), dst.tolist()))
        assert all((j, i) in edges for i, j in edges)  # both directions
        pairs = sim['pairs'][s]
        pairs = pairs[:, pairs[0] >= 0]
        if cls is LocalChargedDataset:
            q = sim['charges'][s]
            truth = {(i, j): 2 if q[i] * q[j] > 0 else 1
                     for i, j in pairs.t().tolist()}
        else:
            truth = {(i, j): 1 for i, j in pairs.t().tolist()}
        for e in range(src.numel()):
            j, i = int(src[e]), int(dst[e])
            want = truth.get((min(i, j), max(i, j)), 0)
            assert int(item.edge_label[e]) == want
        missed += sum((i, j) not in edges for i, j in truth)
        total += len(truth)
    assert ds.missed_share == pytest.approx(missed / total)
    # mean degree 2-4 with the default 2 nearest / radius 1 at density 1
    big = cls(None, 4, num_particles=200, num_steps=20, sample_every=10)
    degree = 2 * big.num_true_pairs / (4 * 200)
    assert 2 <= degree <= 4


def test_missed_share_counts_springs_that_left_the_candidates():
    # fast particles with weak springs: by the first frame (after many
    # steps) neighbours have changed, some springs are not candidates
    ds = LocalSpringsDataset(None, 4, num_particles=50, candidates=2,
                             num_steps=400, sample_every=200, vel_norm=3.,
                             interaction_strength=0.)
    assert 0 < ds.missed_share < 1


def test_determinism_cache_and_stats(tmp_path):
    a = LocalSpringsDataset(str(tmp_path), 3, seed=5, **SMALL)
    b = LocalSpringsDataset(str(tmp_path), 3, seed=5, **SMALL)  # cache
    c = LocalSpringsDataset(None, 3, seed=5, **SMALL)  # simulated again
    assert len(list(tmp_path.iterdir())) == 1
    assert torch.equal(a._data.x, b._data.x) and torch.equal(a._data.x,
                                                             c._data.x)
    d = LocalSpringsDataset(None, 3, seed=6, stats=a.stats, **SMALL)
    assert d.stats == a.stats and not torch.equal(d._data.x, a._data.x)
    assert a.num_frames == 5 and a[0].x.shape == (12, 5, 4)
    batch = next(iter(DataLoader(a, batch_size=3)))
    assert torch.equal(batch.x, a.batch(torch.arange(3)).x)


@pytest.mark.parametrize('kwargs, name', [
    (dict(dt=float('nan')), 'dt'),
    (dict(dt=-1.), 'dt'),
    (dict(radius=-1., neighbours=None), 'radius'),
    (dict(neighbours=0), 'neighbours'),
    (dict(neighbours=12), 'neighbours'),
    (dict(edge_prob=1.5), 'edge_prob'),
    (dict(edge_prob=-0.1), 'edge_prob'),
    (dict(density=0.), 'density'),
    (dict(interaction_strength=float('inf')), 'interaction_strength'),
    (dict(vel_norm=-1.), 'vel_norm'),
    (dict(candidates=12), 'candidates'),
    (dict(candidates=0), 'candidates'),
    (dict(stats=(1., -1.)), 'stats'),
    (dict(num_steps=55), 'num_steps'),
])
def test_bad_arguments_name_the_argument(kwargs, name, tmp_path):
    with pytest.raises(ValueError, match=f"'{name}'"):
        LocalSpringsDataset(str(tmp_path), 2, **dict(SMALL, **kwargs))


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of 'neighbours'"):
        LocalSpringsDataset(None, 2, radius=1., **SMALL)
    with pytest.raises(ValueError, match="'charge_prob'"):
        LocalChargedDataset(None, 2, charge_prob=2., **SMALL)
    with pytest.raises(ValueError, match="'softening'"):
        simulate_local_charged(2, softening=float('nan'), **SMALL)
    with pytest.raises(TypeError, match='unknown arguments'):
        LocalSpringsDataset(None, 2, colour=1, **SMALL)


def test_index_out_of_range():
    ds = LocalSpringsDataset(None, 2, **SMALL)
    with pytest.raises(IndexError, match='index 2 is out of range for '
                       'LocalSpringsDataset of 2 items'):
        ds[2]


def test_thousand_particles_simulate_linearly():
    # 1000 particles, 2 systems: the springs are O(n), the step cost too
    out = simulate_local_springs(2, num_particles=1000, num_steps=20,
                                 sample_every=10)
    assert out['loc'].shape == (2, 1, 1000, 2)
    assert all(1000 <= p.size(1) <= 2000 for p in out['pairs'])
    assert bool(torch.isfinite(out['loc']).all())


@pytest.mark.parametrize('system', ['springs', 'charged'])
def test_nri_sparse_example_trains_and_tests_other_sizes(system, tmp_path):
    import importlib.util
    import json
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        'nri_sparse', osp.join(root, 'examples', 'nri_sparse.py'))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / 'run'
    result = example.main([
        '--system', system, '--particles', '16', '--train', '4', '--valid',
        '2', '--test', '2', '--test-particles', '40', '--sim-steps', '60',
        '--epochs', '2', '--hidden', '8', '--pred-steps', '2', '--root',
        str(tmp_path / 'data'), '--out', str(out)])
    assert result['epochs'] == 2 and len(result['valid_edge_accuracy']) == 2
    for n in (16, 40):
        test = result[f'test_{n}']
        assert test['particles'] == n and 0 <= test['edge_accuracy'] <= 1
        share = test['interacting_share']
        if system == 'springs':  # two types: the larger share
            assert test['majority_acc'] == pytest.approx(max(share,
                                                             1 - share))
        else:  # three types, type 0 (no interaction) the most frequent
            assert test['majority_acc'] == pytest.approx(1 - share)
        assert 0 <= test['missed_share'] <= 1
    assert json.load(open(out / 'test.json'))['command'].startswith(
        'python examples/nri_sparse.py --system')
    assert (out / 'log.csv').exists() and (out / 'model.pt').exists()
