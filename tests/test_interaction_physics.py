import math
import os
import re
import shutil
import warnings

import pytest
import torch
from torch_geometric.data import InMemoryDataset
from torch_geometric.loader import DataLoader

from pyg_relational.bench.physics import run_physics
from pyg_relational.datasets import (BouncingBallsDataset, NBodyDataset,
                                     SpringsDataset, StringDataset)
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
    # one node per object, its trajectory inside: [N, T, 2]
    assert ds[1]['pos'].shape == (3, 6, 2) and ds[1].num_nodes == 3
    assert torch.equal(ds[1].pos, ds.simulation['pos'][1].transpose(0, 1))
    assert ds[1].edge_index.size(1) == (4 if cls is StringDataset else 6)

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
    with pytest.raises(ValueError, match="'dt' must be a finite number > 0"):
        simulate_string(1, dt=0.)
    with pytest.raises(ValueError, match="'num_samples' must be >= 1"):
        simulate_bouncing_balls(0)
    with pytest.raises(ValueError, match="do not fit in a box"):
        simulate_bouncing_balls(1, num_balls=50, box_size=1.0, radius=0.2)


@pytest.mark.parametrize('cls, kwargs, name', [
    (NBodyDataset, dict(dt=float('nan')), 'dt'),
    (NBodyDataset, dict(dt=-1.), 'dt'),
    (NBodyDataset, dict(dt=float('inf')), 'dt'),
    (NBodyDataset, dict(softening=-0.1), 'softening'),
    (NBodyDataset, dict(mass_range=(0., 1.)), r'mass_range\[0\]'),
    (NBodyDataset, dict(mass_range=(2., 1.)), r'mass_range\[1\]'),
    (NBodyDataset, dict(G=float('nan')), 'G'),
    (BouncingBallsDataset, dict(radius=-0.2), 'radius'),
    (BouncingBallsDataset, dict(speed=float('nan')), 'speed'),
    (StringDataset, dict(damping=-1.), 'damping'),
    (StringDataset, dict(rest_length=0.), 'rest_length'),
    (StringDataset, dict(substeps=0), 'substeps'),
])
def test_bad_physics_arguments_name_the_argument(cls, kwargs, name,
                                                  tmp_path):
    # the dataset checks before reading its cache; the simulator too
    with pytest.raises(ValueError, match=f"'{name}' must be"):
        cls(str(tmp_path), 2, num_steps=3, **kwargs)
    with pytest.raises(ValueError, match=f"'{name}' must be"):
        cls._simulator(2, num_steps=3, **kwargs)
    with pytest.raises(TypeError, match=r"unknown arguments \['colour'\]"):
        cls(None, 2, num_steps=3, colour=1)


@pytest.mark.parametrize('cls', [NBodyDataset, StringDataset])
def test_index_out_of_range_is_a_clear_index_error(cls):
    ds = cls(None, 2, num_steps=3)
    assert ds[-2].pos.shape == ds[0].pos.shape
    for i in (2, -3, torch.tensor(5)):
        with pytest.raises(IndexError, match=f"index {int(i)} is out of "
                           f"range for {cls.__name__} of 2 items"):
            ds[i]
    with pytest.raises(IndexError, match='out of range'):
        ds[1:][1]


def test_run_physics_quick():
    rows = run_physics(quick=True)
    assert [r['model'] for r in rows] == ['InteractionNetwork',
                                          'constant velocity']
    for r in rows:
        assert math.isfinite(r['rollout_mse']) and r['rollout_mse'] > 0
    assert rows[1]['ratio_to_baseline'] == 1.0


def _nbody(root, **kwargs):
    return NBodyDataset(str(root), 2, seed=4, num_steps=5, num_bodies=3,
                        **kwargs)


def test_cache_with_other_contents_is_regenerated(tmp_path):
    # a valid file holding another configuration used to be loaded as is
    # (SpringsDataset(num_particles=5) returned x of 6 particles)
    five = SpringsDataset(str(tmp_path), 2, num_particles=5, num_steps=300)
    six = SpringsDataset(str(tmp_path), 2, num_particles=6, num_steps=300)
    shutil.copy(six.cache_path, five.cache_path)
    with pytest.warns(UserWarning, match=rf"{re.escape(five.cache_path)} "
                      r"holds another configuration"):
        again = SpringsDataset(str(tmp_path), 2, num_particles=5,
                               num_steps=300)
    assert again.x.shape == five.x.shape and torch.equal(again.x, five.x)
    with warnings.catch_warnings():  # the file was replaced: loads quietly
        warnings.simplefilter('error')
        SpringsDataset(str(tmp_path), 2, num_particles=5, num_steps=300)


@pytest.mark.parametrize('damage,problem', [
    (lambda path: open(path, 'wb').close(), 'is unreadable'),  # empty
    (lambda path: open(path, 'r+b').truncate(os.path.getsize(path) // 2),
     'is unreadable'),  # truncated
    (lambda path: open(path, 'wb').write(b'not a checkpoint'),
     'is unreadable'),  # corrupt
    (lambda path: torch.save({'pos': torch.zeros(2)}, path),
     'has another layout'),  # the old layout: tensors without config
    (lambda path: torch.save({'f': os.path.join}, path),
     'is unreadable'),  # pickled code: refused by weights_only loading
])
def test_damaged_cache_is_regenerated_naming_the_file(tmp_path, damage,
                                                      problem):
    # before: PytorchStreamReader failed / UnpicklingError / EOFError
    good = _nbody(tmp_path)
    damage(good.cache_path)
    with pytest.warns(UserWarning,
                      match=rf"{re.escape(good.cache_path)} {problem}"):
        again = _nbody(tmp_path)
    assert torch.equal(again.simulation['pos'], good.simulation['pos'])
    assert _nbody(tmp_path).cache_path == good.cache_path
    assert os.listdir(tmp_path) == [os.path.basename(good.cache_path)]


def test_concurrent_writers_use_unique_temporary_files(tmp_path,
                                                        monkeypatch):
    # Two writers of the same cache shared one '.tmp' name: the second
    # replaced it, and the first died with FileNotFoundError. Interleave
    # them by starting the second writer while the first is saving.
    real_save = torch.save
    started = []

    def save_and_race(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if not started:
            started.append(True)
            _nbody(tmp_path)  # a second process writing the same file
    monkeypatch.setattr(torch, 'save', save_and_race)
    ds = _nbody(tmp_path)
    monkeypatch.undo()
    assert started and os.listdir(tmp_path) == [
        os.path.basename(ds.cache_path)]  # no temporary file left behind
    assert torch.equal(_nbody(tmp_path).simulation['pos'],
                       ds.simulation['pos'])


def test_unwritable_root_is_named(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(OSError, match=f"cannot write the cache file "
                       f"{re.escape(str(blocker))}"):
        _nbody(blocker)


def test_items_are_pyg_data(tmp_path):
    ds = _nbody(tmp_path, transform=lambda d: d.update(dict(y=d.mass * 2)))
    assert isinstance(ds, InMemoryDataset)
    assert torch.equal(ds[0].y, 2 * ds[0].mass)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch.pos.shape == (6, 5, 2) and batch.num_graphs == 2
    assert batch.edge_index.max() == 5  # incremented per graph
