import math
import os

import pytest
import torch

from pyg_relational.bench.physics import run_physics
from pyg_relational.datasets import (BouncingBallsDataset, NBodyDataset,
                                     StringDataset)
from pyg_relational.datasets.interaction_physics import (
    simulate_bouncing_balls, simulate_nbody, simulate_string)

SIMULATORS = [
    (simulate_nbody, dict(num_bodies=4)),
    (simulate_bouncing_balls, dict(num_balls=4)),
    (simulate_string, dict(num_masses=4)),
]


@pytest.mark.parametrize('simulate,kwargs', SIMULATORS)
def test_deterministic_from_seed(simulate, kwargs):
    a = simulate(3, num_steps=5, seed=1, **kwargs)
    b = simulate(3, num_steps=5, seed=1, **kwargs)
    c = simulate(3, num_steps=5, seed=2, **kwargs)
    for key in a:
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a['pos'], c['pos'])
    assert a['pos'].shape == (3, 5, 4, 2) and a['vel'].shape == (3, 5, 4, 2)
    assert torch.isfinite(a['pos']).all()


def test_nbody_force_law_one_step():
    """One substep of two bodies equals the softened law by hand."""
    data = simulate_nbody(1, num_bodies=2, num_steps=2, dt=0.01, substeps=1,
                          G=2.0, softening=0.3, seed=3)
    x, v, m = data['pos'][0, 0], data['vel'][0, 0], data['mass'][0]
    d = x[1] - x[0]
    a0 = 2.0 * m[1] * d / (d.dot(d) + 0.09)  # attraction of body 0 to 1
    torch.testing.assert_close(data['vel'][0, 1, 0], v[0] + 0.01 * a0)
    torch.testing.assert_close(data['pos'][0, 1, 0],
                               x[0] + 0.01 * (v[0] + 0.01 * a0))


def test_nbody_conserves_momentum_and_energy():
    data = simulate_nbody(4, num_bodies=6, num_steps=50, seed=0)
    pos, vel, m = data['pos'], data['vel'], data['mass']
    momentum = (m[:, None, :, None] * vel).sum(2)  # [S, T, 2]
    assert momentum.abs().max() < 1e-12
    ke = 0.5 * (m[:, None, :, None] * vel ** 2).sum((-1, -2))
    diff = pos.unsqueeze(2) - pos.unsqueeze(3)
    r2 = (diff ** 2).sum(-1) + 0.3 ** 2
    pe = 0.25 * (m[:, None, :, None] * m[:, None, None, :] *
                 torch.log(r2)).sum((-1, -2))
    energy = ke + pe
    drift = (energy - energy[:, :1]).abs().max(1).values / ke.mean(1)
    assert drift.max() < 0.01


def test_bouncing_balls_elastic_and_inside_box():
    data = simulate_bouncing_balls(3, num_balls=5, num_steps=60,
                                   box_size=2.0, radius=0.2, speed=2.0)
    pos, vel = data['pos'], data['vel']
    assert pos.min() >= 0.2 - 1e-9 and pos.max() <= 1.8 + 1e-9
    ke = (vel ** 2).sum((-1, -2))  # equal masses
    torch.testing.assert_close(ke, ke[:, :1].expand_as(ke))
    # Collisions did happen: some velocity changed direction.
    assert (vel[:, 1:] * vel[:, :-1]).sum(-1).min() < 0


def test_string_pinned_and_springs():
    data = simulate_string(2, num_masses=5, num_steps=50, rest_length=0.5)
    pos = data['pos']
    assert torch.equal(pos[:, :, 0], torch.zeros_like(pos[:, :, 0]))
    assert data['pinned'][:, 0].all() and not data['pinned'][:, 1:].any()
    length = (pos[:, :, 1:] - pos[:, :, :-1]).norm(dim=-1)
    # Spring k holds the 4 - k masses below it: static stretch
    # (4 - k) g / stiffness; a swing from rest at most doubles it.
    bound = 2 * torch.arange(4, 0, -1) * 9.81 / 200 + 0.02
    assert ((length - 0.5).abs() <= bound.double()).all()
    assert data['edge_index'].shape == (2, 2, 8)
    # Without gravity only the small initial velocities move it.
    free = simulate_string(2, num_masses=5, num_steps=50, gravity=0.0)
    length = (free['pos'][:, :, 1:] - free['pos'][:, :, :-1]).norm(dim=-1)
    assert (length - 0.5).abs().max() < 0.05


@pytest.mark.parametrize('cls,kwargs', [
    (NBodyDataset, dict(num_bodies=3)),
    (BouncingBallsDataset, dict(num_balls=3)),
    (StringDataset, dict(num_masses=3)),
])
def test_dataset_caches_to_root(tmp_path, monkeypatch, cls, kwargs):
    ds = cls(str(tmp_path), 2, seed=4, num_steps=6, **kwargs)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and len(ds) == 2
    assert ds[1]['pos'].shape == (6, 3, 2)

    def fail(*args, **kw):
        raise AssertionError('re-simulated instead of loading the cache')
    monkeypatch.setattr(cls, 'simulate', fail)
    again = cls(str(tmp_path), 2, seed=4, num_steps=6, **kwargs)
    assert torch.equal(again[1]['pos'], ds[1]['pos'])
    monkeypatch.undo()
    cls(str(tmp_path), 2, seed=5, num_steps=6, **kwargs)  # new config
    assert len(os.listdir(tmp_path)) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="'num_bodies' must be >= 1"):
        simulate_nbody(1, num_bodies=0)
    with pytest.raises(ValueError, match="'dt' must be > 0"):
        simulate_string(1, dt=0.)
    with pytest.raises(ValueError, match="'num_samples' must be >= 1"):
        simulate_bouncing_balls(0)
    with pytest.raises(ValueError, match="do not fit in a box"):
        simulate_bouncing_balls(1, num_balls=50, box_size=1.0, radius=0.2)


def test_run_physics_quick():
    rows = run_physics(quick=True)
    assert [r['model'] for r in rows] == ['InteractionNetwork',
                                          'constant velocity']
    for r in rows:
        assert math.isfinite(r['rollout_mse']) and r['rollout_mse'] > 0
    assert rows[1]['ratio_to_baseline'] == 1.0
