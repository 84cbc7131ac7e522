r"""Springs and charged particles: the simulations of Neural Relational
Inference (`Kipf et al., 2018 <https://arxiv.org/abs/1802.04687>`_).

The simulators follow the paper's data generator (Kipf and Fetaya's
``data/synthetic_sim.py``) constant for constant: particles in a box of half
width 5 with elastic walls, time step :math:`\Delta t = 0.001`, every force
component clamped to :math:`\pm 100`, a half step of velocity before the
leapfrog loop, and trajectories of 5000 steps sampled every 100 (49 frames;
10000 steps, 99 frames, for the paper's test set).

* **springs**: start positions :math:`\mathcal{N}(0, 0.5^2)`, speed 0.5 in a
  random direction, each undirected pair joined by a spring with probability
  0.5, spring constant 0.1, rest length 0:
  :math:`F_i = -k \sum_j e_{ij} (x_i - x_j)`. Edge label :math:`e_{ij}`.
* **charged**: start positions :math:`\mathcal{N}(0, 1)`, speed 0.5, charges
  :math:`q_i = \pm 1` with probability 0.5 each:
  :math:`F_i = \sum_{j \ne i} q_i q_j (x_i - x_j) / \lVert x_i - x_j \rVert^3`.
  Edge label :math:`(q_i q_j + 1) / 2` (1: like charges, they repel).

Unlike the reference (one NumPy trajectory per process), every sample of a
dataset is simulated at once as a batch of ``torch`` tensors (float64), from
one seeded :class:`torch.Generator`, so a dataset is reproducible bit for bit
from its seed.
"""
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_int
from ..graphs import complete_graph
from ._args import (check_frames, check_non_negative, check_positive,
                    check_probability, simulator_config)
from .base import SimulatedDataset, stacked_storage

__all__ = ['simulate_springs', 'simulate_charged', 'SpringsDataset',
           'ChargedDataset']


def _walls(loc: Tensor, vel: Tensor, box_size: float):
    r"""Elastic walls at :math:`\pm` ``box_size`` (in place)."""
    over = loc > box_size
    loc[over] = 2 * box_size - loc[over]
    vel[over] = -vel[over].abs()
    under = loc < -box_size
    loc[under] = -2 * box_size - loc[under]
    vel[under] = vel[under].abs()


def _spring_force(loc: Tensor, laplacian: Tensor, strength: float) -> Tensor:
    # F_i = -k sum_j e_ij (x_i - x_j) = -k (L x)_i with L = D - E
    return -strength * torch.bmm(laplacian, loc)  # [S, n, 2]


def _charge_force(loc: Tensor, qq: Tensor, strength: float) -> Tensor:
    diff = loc.unsqueeze(2) - loc.unsqueeze(1)  # [S, n, n, 2]: x_i - x_j
    dist3 = diff.pow(2).sum(-1).pow(1.5)  # [S, n, n]
    eye = torch.eye(loc.size(1), dtype=torch.bool, device=loc.device)
    size = torch.where(eye, torch.zeros_like(dist3),
                       strength * qq / dist3.masked_fill(eye, 1.))
    return (size.unsqueeze(-1) * diff).sum(2)  # [S, n, 2]


def _leapfrog(force, loc: Tensor, vel: Tensor, num_steps: int,
              sample_every: int, box_size: float, dt: float,
              max_force: float) -> Tuple[Tensor, Tensor]:
    r"""NRI's integrator (walls, a half step of velocity, then leapfrog) on
    states of any shape ``[..., 2]`` (updated in place); ``force(loc)``
    gives the forces. Returns the recorded frames ``[T, ...]``."""
    num_frames = num_steps // sample_every - 1
    locs = loc.new_zeros(num_frames, *loc.shape)
    vels = loc.new_zeros(num_frames, *loc.shape)
    _walls(loc, vel, box_size)
    vel += dt * force(loc).clamp(-max_force, max_force)
    counter = 0
    for step in range(1, num_steps):
        loc += dt * vel
        _walls(loc, vel, box_size)
        if step % sample_every == 0:
            locs[counter], vels[counter] = loc, vel
            counter += 1
        vel += dt * force(loc).clamp(-max_force, max_force)
    return locs, vels


def _simulate(force, force_arg, loc: Tensor, vel: Tensor, num_steps: int,
              sample_every: int, box_size: float, strength: float, dt: float,
              max_force: float) -> Tuple[Tensor, Tensor]:
    locs, vels = _leapfrog(lambda x: force(x, force_arg, strength), loc, vel,
                           num_steps, sample_every, box_size, dt, max_force)
    return locs.transpose(0, 1), vels.transpose(0, 1)  # [S, T, n, 2]


def _check_sim_args(num_samples, num_particles, num_steps, sample_every):
    check_int(num_samples, 'num_samples', 0)
    check_int(num_particles, 'num_particles', 1)
    check_frames(num_steps, sample_every, example=(5000, 100))


def _check_physics(box_size, loc_std, vel_norm, interaction_strength, dt,
                   max_force, **probabilities):
    check_positive(box_size, 'box_size')
    check_non_negative(loc_std, 'loc_std')
    check_non_negative(vel_norm, 'vel_norm')
    check_non_negative(interaction_strength, 'interaction_strength')
    check_positive(dt, 'dt')
    check_positive(max_force, 'max_force')
    for name, value in probabilities.items():
        check_probability(value, name)


def _initial_state(num_samples: int, num_particles: int, loc_std: float,
                   vel_norm: float, gen: torch.Generator):
    shape = (num_samples, num_particles, 2)
    loc = torch.randn(shape, generator=gen, dtype=torch.float64) * loc_std
    vel = torch.randn(shape, generator=gen, dtype=torch.float64)
    vel = vel * vel_norm / vel.norm(dim=-1, keepdim=True)
    return loc, vel


def simulate_springs(num_samples: int, num_particles: int = 5,
                     num_steps: int = 5000, sample_every: int = 100,
                     seed: int = 0, box_size: float = 5., loc_std: float = .5,
                     vel_norm: float = .5, interaction_strength: float = .1,
                     edge_prob: float = .5, dt: float = 1e-3,
                     max_force: float = 100.) -> Dict[str, Tensor]:
    r"""Simulate ``num_samples`` spring systems at once.

    Returns:
        dict with ``loc`` and ``vel`` ``[S, T, n, 2]`` (float32, unnormalised,
        :math:`T` = ``num_steps // sample_every - 1``) and ``edges``
        ``[S, n, n]`` (long, symmetric, zero diagonal: 1 = spring).

    Example:
        >>> out = simulate_springs(2, num_particles=3, num_steps=300,
        ...                        sample_every=100)
        >>> out['loc'].shape, out['edges'].shape
        (torch.Size([2, 2, 3, 2]), torch.Size([2, 3, 3]))
    """
    _check_sim_args(num_samples, num_particles, num_steps, sample_every)
    _check_physics(box_size, loc_std, vel_norm, interaction_strength, dt,
                   max_force, edge_prob=edge_prob)
    gen = torch.Generator().manual_seed(int(seed))
    n = num_particles
    pair = torch.rand(num_samples, n, n, generator=gen, dtype=torch.float64)
    edges = (pair < edge_prob).double().tril(-1)
    edges = edges + edges.transpose(1, 2)  # [S, n, n] symmetric, 0 diagonal
    laplacian = torch.diag_embed(edges.sum(-1)) - edges
    loc, vel = _initial_state(num_samples, n, loc_std, vel_norm, gen)
    locs, vels = _simulate(_spring_force, laplacian, loc, vel, num_steps,
                           sample_every, box_size, interaction_strength, dt,
                           max_force)
    return dict(loc=locs.float(), vel=vels.float(), edges=edges.long())


def simulate_charged(num_samples: int, num_particles: int = 5,
                     num_steps: int = 5000, sample_every: int = 100,
                     seed: int = 0, box_size: float = 5., loc_std: float = 1.,
                     vel_norm: float = .5, interaction_strength: float = 1.,
                     charge_prob: float = .5, dt: float = 1e-3,
                     max_force: float = 100.) -> Dict[str, Tensor]:
    r"""Simulate ``num_samples`` systems of charged particles at once.

    ``charge_prob`` is the probability of a charge :math:`-1` (else
    :math:`+1`).

    Returns:
        dict with ``loc`` and ``vel`` ``[S, T, n, 2]`` (float32),
        ``charges`` ``[S, n]`` and ``edges`` ``[S, n, n]`` (long, zero
        diagonal: 1 = like charges, 0 = opposite charges).

    Example:
        >>> out = simulate_charged(2, num_particles=3, num_steps=300,
        ...                        sample_every=100)
        >>> out['vel'].shape, out['charges'].shape
        (torch.Size([2, 2, 3, 2]), torch.Size([2, 3]))
    """
    _check_sim_args(num_samples, num_particles, num_steps, sample_every)
    _check_physics(box_size, loc_std, vel_norm, interaction_strength, dt,
                   max_force, charge_prob=charge_prob)
    gen = torch.Generator().manual_seed(int(seed))
    n = num_particles
    u = torch.rand(num_samples, n, generator=gen, dtype=torch.float64)
    charges = torch.where(u < charge_prob, -1., 1.).double()  # [S, n]
    qq = charges.unsqueeze(2) * charges.unsqueeze(1)  # [S, n, n]
    loc, vel = _initial_state(num_samples, n, loc_std, vel_norm, gen)
    locs, vels = _simulate(_charge_force, qq, loc, vel, num_steps,
                           sample_every, box_size, interaction_strength, dt,
                           max_force)
    edges = ((qq + 1) / 2).long() * (1 - torch.eye(n, dtype=torch.long))
    return dict(loc=locs.float(), vel=vels.float(), charges=charges.float(),
                edges=edges)


class _ParticleDataset(SimulatedDataset):
    r"""Trajectories and their interaction graphs as node features on a
    complete candidate graph (shared by :class:`SpringsDataset` and
    :class:`ChargedDataset`)."""
    _simulator = None

    def __init__(self, root: Optional[str], num_samples: int,
                 num_particles: int = 5, num_steps: int = 5000,
                 sample_every: int = 100, seed: int = 0,
                 stats: Optional[Tuple[float, float, float, float]] = None,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None, **physics):
        _check_sim_args(num_samples, num_particles, num_steps, sample_every)
        if stats is not None:
            stats = tuple(float(s) for s in stats)
            if len(stats) != 4 or not stats[0] < stats[1] or \
                    not stats[2] < stats[3]:
                raise ValueError(f"'stats' must be (loc_min, loc_max, "
                                 f"vel_min, vel_max) with min < max (got "
                                 f"{stats}); pass the training set's .stats")
        self._requested_stats = stats
        self._pair = complete_graph(int(num_particles), self_loops=False)
        super().__init__(root, num_samples, seed, transform, pre_transform,
                         pre_filter, num_particles=int(num_particles),
                         num_steps=int(num_steps),
                         sample_every=int(sample_every), **physics)

    def simulate(self, num_samples, seed, **config):
        return type(self)._simulator(num_samples, seed=seed, **config)

    def check_config(self, **config):
        full = simulator_config(self, config)
        _check_physics(**{k: full[k] for k in (
            'box_size', 'loc_std', 'vel_norm', 'interaction_strength', 'dt',
            'max_force')}, **{k: v for k, v in full.items()
                              if k.endswith('_prob')})

    def storage(self, simulation):
        loc, vel = simulation['loc'], simulation['vel']
        stats = self._requested_stats
        if stats is None:
            stats = (float(loc.min()), float(loc.max()), float(vel.min()),
                     float(vel.max())) if loc.numel() > 0 else (-1., 1., -1.,
                                                                1.)
        self.stats = tuple(float(s) for s in stats)
        lo_l, hi_l, lo_v, hi_v = self.stats
        loc = (loc - lo_l) * 2 / (hi_l - lo_l) - 1
        vel = (vel - lo_v) * 2 / (hi_v - lo_v) - 1
        # [S, T, n, 4] -> [S, n, T, 4]: one node per particle, time inside
        x = torch.cat([loc, vel], -1).transpose(1, 2).contiguous()
        one = self._pair  # [2, n(n-1)], by target
        edge_label = simulation['edges'][:, one[1], one[0]]  # e_{ij}
        return stacked_storage(len(x), dict(x=x), dict(edge_label=edge_label),
                               one)

    @property
    def num_particles(self) -> int:
        return self.config['num_particles']

    @property
    def num_frames(self) -> int:
        return self.config['num_steps'] // self.config['sample_every'] - 1

    @property
    def _stacked(self) -> bool:
        # items still in the simulator's layout (no pre_transform/filter)
        return self.pre_transform is None and self.pre_filter is None

    def _per_sample(self, key: str) -> Tensor:
        if not self._stacked:
            raise ValueError(
                f"'{key}' as one [S, ...] tensor is only kept without "
                f"pre_transform / pre_filter; iterate the items instead")
        value = self._data[key]
        value = value.view(self.len(), -1, *value.shape[1:])  # [S, rows, ...]
        if self._indices is None:
            return value
        return value[torch.as_tensor(list(self.indices()), dtype=torch.long)]

    @property
    def x(self) -> Tensor:
        r"""Normalised positions and velocities ``[S, n, T, 4]`` of the
        items, in the dataset's order."""
        return self._per_sample('x')

    @property
    def edge_label(self) -> Tensor:
        r"""True edge type ``[S, n(n-1)]`` of every candidate edge."""
        return self._per_sample('edge_label')

    def batch(self, index: Tensor):
        r"""The items ``index`` laid end to end as one
        :class:`~torch_geometric.data.Batch`, exactly as
        :class:`torch_geometric.loader.DataLoader` collates them (tested);
        without ``transform`` / ``pre_transform`` it gathers the stacked
        tensors directly: ``x [B*n, T, 4]``, ``edge_index``
        ``[2, B*n(n-1)]``, ``edge_label``, ``batch``."""
        from torch_geometric.data import Batch
        index = torch.as_tensor(index, dtype=torch.long).view(-1)
        if not self._stacked or self.transform is not None:
            return Batch.from_data_list([self[int(i)] for i in index])
        B, n = index.numel(), self.num_particles
        x = self.x[index].reshape(B * n, self.num_frames, -1)  # [B*n, T, 4]
        offset = (torch.arange(B) * n).repeat_interleave(self._pair.size(1))
        edge_index = self._pair.repeat(1, B) + offset
        return Batch(x=x, edge_index=edge_index,
                     edge_label=self.edge_label[index].reshape(-1),
                     batch=torch.arange(B).repeat_interleave(n),
                     ptr=torch.arange(B + 1) * n, num_graphs=B)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({len(self)}, '
                f'num_particles={self.num_particles}, '
                f'num_frames={self.num_frames})')


class SpringsDataset(_ParticleDataset):
    r"""Particles joined by random springs (NRI's *springs*), simulated by
    :func:`simulate_springs` and cached to ``root``.

    Positions and velocities are min-max normalised to :math:`[-1, 1]`, as in
    the paper; pass the training set's :attr:`stats` to a validation or test
    set so they share its scale.

    Args:
        root (str, optional): cache folder (:obj:`None`: memory only).
        num_samples (int): number of systems.
        num_particles (int, optional): particles per system. (default: :obj:`5`)
        num_steps (int, optional): simulation steps; 10000 for the paper's
            test set. (default: :obj:`5000`)
        sample_every (int, optional): steps between frames.
            (default: :obj:`100`)
        seed (int, optional): random seed. (default: :obj:`0`)
        stats (tuple, optional): ``(loc_min, loc_max, vel_min, vel_max)`` for
            the normalisation (default: this dataset's own).
        transform, pre_transform, pre_filter (callable, optional): as in
            :class:`~torch_geometric.data.InMemoryDataset` (the cache holds
            the raw simulation; ``pre_transform`` / ``pre_filter`` run once
            per construction). (default: :obj:`None`)
        **physics: other arguments of :func:`simulate_springs`.

    A :class:`~torch_geometric.data.InMemoryDataset`: slicing
    (``ds[:100]``), index lists, masks and :meth:`shuffle` give datasets;
    :meth:`batch` collates items fast for training loops.

    Example:
        >>> ds = SpringsDataset(None, 4, num_particles=3, num_steps=400)
        >>> ds
        SpringsDataset(4, num_particles=3, num_frames=3)
        >>> ds[0]
        Data(x=[3, 3, 4], edge_index=[2, 6], edge_label=[6])
    """
    name = 'springs'
    _simulator = staticmethod(simulate_springs)


class ChargedDataset(_ParticleDataset):
    r"""Charged particles (NRI's *charged*), simulated by
    :func:`simulate_charged`; edge label 1 for like charges. Arguments as in
    :class:`SpringsDataset` (``**physics`` goes to :func:`simulate_charged`).

    Example:
        >>> ChargedDataset(None, 2, num_particles=3, num_steps=300)
        ChargedDataset(2, num_particles=3, num_frames=2)
    """
    name = 'charged'
    _simulator = staticmethod(simulate_charged)
