import os.path as osp

import numpy as np
import pytest
import torch
from torch_geometric.data import InMemoryDataset
from torch_geometric.loader import DataLoader

from pyg_relational.datasets import (ChargedDataset, SpringsDataset,
                                     simulate_charged, simulate_springs)
from pyg_relational.datasets.nri_physics import (_charge_force,
                                                 _simulate,
                                                 _spring_force)
from pyg_relational.graphs import complete_graph


pytestmark = pytest.mark.usefixtures('one_thread')

# A literal, one-system-at-a-time transcription of the paper's generator
# loop (NumPy, [2, n] layout), against which the batched torch simulator is
# checked.


def _reference_walls(loc, vel, box):
    over = loc > box
    loc[over] = 2 * box - loc[over]
    vel[over] = -np.abs(vel[over])
    under = loc < -box
    loc[under] = -2 * box - loc[under]
    vel[under] = np.abs(vel[under])
    return loc, vel


def _reference_force(kind, loc, edges, strength, max_f):
    dx = np.subtract.outer(loc[0], loc[0])  # x_i - x_j
    dy = np.subtract.outer(loc[1], loc[1])
    if kind == 'springs':
        size = -strength * edges
    else:
        with np.errstate(divide='ignore'):
            size = strength * edges / (dx**2 + dy**2)**1.5
    np.fill_diagonal(size, 0)
    f = np.stack([(size * dx).sum(-1), (size * dy).sum(-1)])
    return np.clip(f, -max_f, max_f)


def _reference_trajectory(kind, loc, vel, edges, T, freq, strength,
                          box=5., dt=1e-3, max_f=100.):
    loc, vel = loc.copy(), vel.copy()  # [2, n]
    T_save = T // freq - 1
    locs = np.zeros((T_save, 2, loc.shape[1]))
    vels = np.zeros_like(locs)
    loc, vel = _reference_walls(loc, vel, box)
    vel += dt * _reference_force(kind, loc, edges, strength, max_f)
    counter = 0
    for i in range(1, T):
        loc += dt * vel
        loc, vel = _reference_walls(loc, vel, box)
        if i % freq == 0:
            locs[counter], vels[counter] = loc, vel
            counter += 1
        vel += dt * _reference_force(kind, loc, edges, strength, max_f)
    return locs, vels


@pytest.mark.parametrize('kind', ['springs', 'charged'])
def test_simulator_matches_reference_loop(kind):
    gen = torch.Generator().manual_seed(3)
    S, n, T, freq = 3, 4, 600, 50
    loc = torch.randn(S, n, 2, generator=gen, dtype=torch.float64)
    # start fast enough to hit the walls, so the elastic walls are tested
    vel = torch.randn(S, n, 2, generator=gen, dtype=torch.float64) * 8
    if kind == 'springs':
        e = (torch.rand(S, n, n, generator=gen) < .5).double().tril(-1)
        edges = e + e.transpose(1, 2)
        arg = torch.diag_embed(edges.sum(-1)) - edges
        force, strength = _spring_force, .1
    else:
        q = torch.where(torch.rand(S, n, generator=gen) < .5, -1., 1.)
        edges = (q.unsqueeze(2) * q.unsqueeze(1)).double()
        arg, force, strength = edges, _charge_force, 1.
    locs, vels = _simulate(force, arg, loc.clone(), vel.clone(), T, freq, 5.,
                           strength, 1e-3, 100.)
    assert locs.shape == (S, T // freq - 1, n, 2)
    for s in range(S):
        ref_l, ref_v = _reference_trajectory(
            kind, loc[s].t().numpy(), vel[s].t().numpy(), edges[s].numpy(),
            T, freq, strength)
        np.testing.assert_allclose(locs[s].transpose(1, 2).numpy(), ref_l,
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(vels[s].transpose(1, 2).numpy(), ref_v,
                                   rtol=1e-9, atol=1e-9)
    # the walls really were hit: speeds were flipped at some point
    assert locs.abs().max() <= 5.


def test_simulate_springs_layout_and_determinism():
    out = simulate_springs(40, num_particles=5, num_steps=500, seed=1)
    assert out['loc'].shape == (40, 4, 5, 2)
    assert out['vel'].dtype == torch.float32
    e = out['edges']
    assert torch.equal(e, e.transpose(1, 2))
    assert e.diagonal(dim1=1, dim2=2).abs().sum() == 0
    assert set(e.unique().tolist()) <= {0, 1}
    assert 0.3 < e.float().sum() / (40 * 20) < 0.7  # p = 0.5
    again = simulate_springs(40, num_particles=5, num_steps=500, seed=1)
    assert all(torch.equal(out[k], again[k]) for k in out)
    other = simulate_springs(40, num_particles=5, num_steps=500, seed=2)
    assert not torch.equal(out['loc'], other['loc'])
    assert out['loc'].abs().max() <= 5.


def test_simulate_charged_labels():
    out = simulate_charged(30, num_particles=4, num_steps=300, seed=0)
    q = out['charges']
    assert set(q.unique().tolist()) <= {-1., 1.}
    like = (q.unsqueeze(2) * q.unsqueeze(1) > 0).long()
    like = like * (1 - torch.eye(4, dtype=torch.long))
    assert torch.equal(out['edges'], like)
    assert torch.isfinite(out['loc']).all()


def test_frames_of_paper_lengths():
    # T // every - 1 frames: 5000 / 100 -> 49 and 10000 / 100 -> 99 in the
    # paper; the same ratios at a tenth of the steps
    assert simulate_springs(1, num_particles=2, num_steps=500,
                            sample_every=10)['loc'].size(1) == 49
    assert simulate_charged(1, num_particles=2, num_steps=1000,
                            sample_every=10)['loc'].size(1) == 99
    assert SpringsDataset(None, 1, 2, num_steps=500,
                          sample_every=10).num_frames == 49


@pytest.mark.parametrize('cls', [SpringsDataset, ChargedDataset])
def test_dataset_cache_normalisation_and_batching(cls, tmp_path):
    root = str(tmp_path)
    ds = cls(root, 6, num_particles=3, num_steps=400, seed=5)
    assert osp.exists(ds.cache_path)
    again = cls(root, 6, num_particles=3, num_steps=400, seed=5)
    assert torch.equal(ds.x, again.x)
    # normalised to [-1, 1] per quantity (position: 0, 1; velocity: 2, 3)
    assert torch.allclose(ds.x[..., :2].min(), torch.tensor(-1.))
    assert torch.allclose(ds.x[..., 2:].max(), torch.tensor(1.))
    test = cls(None, 2, num_particles=3, num_steps=600, seed=7,
               stats=ds.stats)
    assert test.stats == ds.stats and test.num_frames == 5
    lo, hi = ds.stats[:2]
    loc = test.simulation['loc'].transpose(1, 2)  # [S, n, T, 2]
    assert torch.allclose(test.x[..., :2], (loc - lo) * 2 / (hi - lo) - 1)
    # edge_label of edge j -> i is e_ij
    d = ds[1]
    e = ds.simulation['edges'][1]
    assert torch.equal(d.edge_label, e[d.edge_index[1], d.edge_index[0]])
    assert torch.equal(d.edge_index, complete_graph(3, self_loops=False))
    # the fast batch equals PyG's DataLoader collation
    fast = ds.batch(torch.tensor([0, 1, 2]))
    slow = next(iter(DataLoader([ds[i] for i in range(3)], batch_size=3)))
    for key in ('x', 'edge_index', 'edge_label', 'batch'):
        assert torch.equal(fast[key], slow[key]), key


def test_mixed_sizes_with_dataloader():
    a = SpringsDataset(None, 2, num_particles=3, num_steps=400)
    b = SpringsDataset(None, 2, num_particles=5, num_steps=400)
    batch = next(iter(DataLoader([a[0], b[0]], batch_size=2)))
    assert batch.x.shape == (8, 3, 4)
    assert batch.edge_index.size(1) == 6 + 20


def test_bad_arguments():
    with pytest.raises(ValueError, match='multiple of'):
        simulate_springs(2, num_steps=450, sample_every=100)
    with pytest.raises(ValueError, match='num_particles'):
        simulate_charged(2, num_particles=0)
    with pytest.raises(ValueError, match="'stats'"):
        SpringsDataset(None, 2, num_particles=3, num_steps=300,
                       stats=(1., 0., -1., 1.))


@pytest.mark.parametrize('cls, kwargs, name', [
    (SpringsDataset, dict(dt=float('nan')), 'dt'),
    (SpringsDataset, dict(dt=-1), 'dt'),
    (SpringsDataset, dict(edge_prob=2), 'edge_prob'),
    (SpringsDataset, dict(edge_prob=float('nan')), 'edge_prob'),
    (SpringsDataset, dict(interaction_strength=-0.1),
     'interaction_strength'),
    (SpringsDataset, dict(box_size=0.), 'box_size'),
    (SpringsDataset, dict(loc_std=float('inf')), 'loc_std'),
    (ChargedDataset, dict(charge_prob=-0.5), 'charge_prob'),
    (ChargedDataset, dict(max_force=0), 'max_force'),
    (ChargedDataset, dict(vel_norm='fast'), 'vel_norm'),
])
def test_bad_physics_arguments_name_the_argument(cls, kwargs, name,
                                                  tmp_path):
    # checked by the dataset before its cache is read, and by the simulator
    with pytest.raises(ValueError, match=f"'{name}' must be"):
        cls(str(tmp_path), 2, num_particles=3, num_steps=300, **kwargs)
    with pytest.raises(ValueError, match=f"'{name}' must be"):
        cls._simulator(2, num_particles=3, num_steps=300, **kwargs)
    with pytest.raises(TypeError, match=r"unknown arguments \['colour'\]"):
        cls(None, 2, num_particles=3, num_steps=300, colour=1)


def test_index_out_of_range_is_a_clear_index_error():
    ds = SpringsDataset(None, 3, num_particles=3, num_steps=300)
    assert torch.equal(ds[-3].x, ds[0].x)
    for i in (3, -4, torch.tensor(7)):
        with pytest.raises(IndexError, match=f"index {int(i)} is out of "
                           f"range for SpringsDataset of 3 items"):
            ds[i]
    with pytest.raises(IndexError, match='of 1 items'):
        ds[2:][1]


def test_pyg_dataset_protocol():
    """Slicing, index lists, masks, shuffle, transform, pre_transform and
    pre_filter behave as for any InMemoryDataset."""
    ds = SpringsDataset(None, 8, num_particles=3, num_steps=400, seed=2)
    assert isinstance(ds, InMemoryDataset) and len(ds) == 8
    sub = ds[2:6]
    assert len(sub) == 4 and torch.equal(sub[0].x, ds[2].x)
    assert torch.equal(sub.x, ds.x[2:6])
    picked = ds[[5, 1]]
    assert torch.equal(picked[0].edge_label, ds[5].edge_label)
    assert torch.equal(picked.batch(torch.tensor([1, 0])).x,
                       ds.batch(torch.tensor([1, 5])).x)
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[0, 7]] = True
    assert len(ds[mask]) == 2
    shuffled, perm = ds.shuffle(return_perm=True)
    assert torch.equal(shuffled[0].x, ds[int(perm[0])].x)

    def double(data):
        data = data.clone()
        data.x = 2 * data.x
        return data

    t = SpringsDataset(None, 8, num_particles=3, num_steps=400, seed=2,
                       transform=double)
    assert torch.equal(t[3].x, 2 * ds[3].x)
    assert torch.equal(t.x, ds.x)  # the stored items are untouched
    loader = next(iter(DataLoader(t, batch_size=3)))
    assert torch.equal(t.batch(torch.arange(3)).x, loader.x)
    pre = SpringsDataset(None, 8, num_particles=3, num_steps=400, seed=2,
                         pre_transform=double,
                         pre_filter=lambda d: int(d.edge_label.sum()) > 0)
    kept = [i for i in range(8) if int(ds[i].edge_label.sum()) > 0]
    assert len(pre) == len(kept) < 8
    assert torch.equal(pre[0].x, 2 * ds[kept[0]].x)
    assert torch.equal(pre.batch(torch.tensor([0, 1])).x,
                       torch.cat([2 * ds[kept[0]].x, 2 * ds[kept[1]].x]))
    with pytest.raises(ValueError, match='pre_transform'):
        pre.x
