r"""The three physical systems of the Interaction Network paper
(`Battaglia et al., 2016 <https://arxiv.org/abs/1612.00222>`_), simulated
deterministically from a seed, and their cached datasets.

* :func:`simulate_nbody`: gravitating bodies, softened pairwise force
  :math:`\mathbf{F}_{ij} = G m_i m_j (\mathbf{x}_j - \mathbf{x}_i) /
  (\lVert \mathbf{x}_j - \mathbf{x}_i \rVert^2 + \epsilon^2)` on body
  :math:`i` (attractive; the issue's 1/r magnitude, i.e. 2-D gravity).
* :func:`simulate_bouncing_balls`: balls in a square box, elastic collisions
  with the walls and with each other.
* :func:`simulate_string`: masses on a chain of springs (rest length
  :math:`L`, stiffness :math:`k`) under gravity, with the first mass pinned.

All simulators integrate with semi-implicit Euler (``substeps`` per recorded
step), in float64, vectorised over samples, and return a dict of tensors
``pos [S, T, N, 2]``, ``vel [S, T, N, 2]``, ``mass [S, N]`` (plus
system-specific entries). Example:

    >>> data = simulate_nbody(2, num_bodies=3, num_steps=5, seed=0)
    >>> data['pos'].shape, data['mass'].shape
    (torch.Size([2, 5, 3, 2]), torch.Size([2, 3]))
"""
import inspect
from typing import Dict

import torch
from torch import Tensor

from .._checks import check_int
from ..graphs import complete_graph
from ._args import (check_interval, check_non_negative, check_positive,
                    check_real, simulator_config)
from .base import SimulatedDataset, stacked_storage

__all__ = ['simulate_nbody', 'simulate_bouncing_balls', 'simulate_string',
           'NBodyDataset', 'BouncingBallsDataset', 'StringDataset']


def _check_common(num_samples, num_objects, num_steps, substeps, dt,
                  objects_name):
    check_int(num_samples, 'num_samples', 1)
    check_int(num_objects, objects_name, 1)
    check_int(num_steps, 'num_steps', 1)
    check_int(substeps, 'substeps', 1)
    check_positive(dt, 'dt')


def _check_values(simulator, config):
    """Check ``config`` (arguments of ``simulator``) as the simulator
    would, without simulating: every numeric argument goes through the same
    checks, with the defaults filling what is not given."""
    params = inspect.signature(simulator).parameters
    full = {k: p.default for k, p in params.items()
            if p.default is not inspect.Parameter.empty}
    full.update(config)
    objects = next(k for k in params if k.startswith('num_') and
                   k not in ('num_samples', 'num_steps'))
    _check_common(full['num_samples'], full[objects], full['num_steps'],
                  full['substeps'], full['dt'], objects)
    for name, check in _PHYSICS_CHECKS.get(simulator.__name__, ()):
        check(full[name], name)


def _gravity_acc(pos: Tensor, mass: Tensor, G: float,
                 softening: float) -> Tensor:
    """Acceleration ``[S, N, 2]`` of every body."""
    diff = pos.unsqueeze(1) - pos.unsqueeze(2)  # [S, N(i), N(j), 2]: x_j - x_i
    dist2 = (diff ** 2).sum(-1, keepdim=True) + softening ** 2  # [S, N, N, 1]
    # a_i = sum_j G m_j (x_j - x_i) / (|x_j - x_i|^2 + eps^2); i = j adds 0.
    return G * (mass[:, None, :, None] * diff / dist2).sum(2)


def _rollout(pos: Tensor, vel: Tensor, num_steps: int, substeps: int,
             step) -> Dict[str, Tensor]:
    """Record ``(pos, vel)`` at ``num_steps`` frames, advancing each frame
    by ``substeps`` calls of ``step(pos, vel) -> (pos, vel)``; returns
    ``pos``/``vel`` of shape ``[S, num_steps, N, 2]``."""
    all_pos, all_vel = [], []
    for _ in range(num_steps):
        all_pos.append(pos)
        all_vel.append(vel)
        for _ in range(substeps):
            pos, vel = step(pos, vel)
    return dict(pos=torch.stack(all_pos, 1), vel=torch.stack(all_vel, 1))


def simulate_nbody(num_samples: int, num_bodies: int = 6,
                   num_steps: int = 100, dt: float = 0.01, substeps: int = 10,
                   G: float = 1.0, softening: float = 0.3,
                   mass_range=(0.5, 1.5), radius: float = 2.0,
                   seed: int = 0) -> Dict[str, Tensor]:
    r"""Softened 2-D gravitation of ``num_bodies`` bodies.

    Initial positions are uniform in a disc of ``radius``; initial velocities
    are a random rotation about the centre of mass plus noise, with the total
    momentum removed (the system stays in view).

    Returns:
        ``pos``, ``vel`` ``[S, T, N, 2]`` and ``mass`` ``[S, N]``.
    """
    _check_values(simulate_nbody, locals())
    gen = torch.Generator().manual_seed(int(seed))
    S, N = num_samples, num_bodies
    opt = dict(generator=gen, dtype=torch.float64)
    lo, hi = mass_range
    mass = lo + (hi - lo) * torch.rand(S, N, **opt)
    r = radius * torch.rand(S, N, 1, **opt).sqrt()
    theta = 2 * torch.pi * torch.rand(S, N, 1, **opt)
    pos = torch.cat([r * theta.cos(), r * theta.sin()], -1)  # [S, N, 2]
    com = (mass[..., None] * pos).sum(1, keepdim=True) / mass.sum(
        1)[:, None, None]
    pos = pos - com
    omega = 0.3 * (torch.rand(S, 1, 1, **opt) - 0.5)
    vel = omega * torch.stack([-pos[..., 1], pos[..., 0]], -1) + \
        0.2 * torch.randn(S, N, 2, **opt)
    momentum = (mass[..., None] * vel).sum(1, keepdim=True)
    vel = vel - momentum / mass.sum(1)[:, None, None]
    h = dt / substeps

    def step(pos, vel):  # semi-implicit Euler
        vel = vel + h * _gravity_acc(pos, mass, G, softening)
        return pos + h * vel, vel

    return dict(**_rollout(pos, vel, num_steps, substeps, step), mass=mass)


def simulate_bouncing_balls(num_samples: int, num_balls: int = 6,
                            num_steps: int = 100, dt: float = 0.01,
                            substeps: int = 10, box_size: float = 4.0,
                            radius: float = 0.2, speed: float = 1.0,
                            seed: int = 0) -> Dict[str, Tensor]:
    r"""Balls of ``radius`` (mass proportional to area, all equal here) in
    the box :math:`[0, \text{box\_size}]^2`, elastic collisions with walls
    and between balls (resolved pairwise once per substep, only for
    approaching pairs).

    Balls start on a jittered grid (no overlap) with random velocities of
    typical size ``speed``.

    Returns:
        ``pos``, ``vel`` ``[S, T, N, 2]``, ``mass`` ``[S, N]`` and
        ``radius`` ``[S, N]``.
    """
    _check_values(simulate_bouncing_balls, locals())
    S, N = num_samples, num_balls
    side = int(torch.ceil(torch.tensor(N ** 0.5)))
    cell = box_size / side
    if cell < 2 * radius:
        raise ValueError(f"{N} balls of radius {radius} do not fit in a box "
                         f"of size {box_size}; use a larger 'box_size'")
    gen = torch.Generator().manual_seed(int(seed))
    opt = dict(generator=gen, dtype=torch.float64)
    slots = torch.stack([torch.randperm(side * side, generator=gen)[:N]
                         for _ in range(S)])  # [S, N]
    grid = torch.stack([slots % side, slots // side], -1).double()
    slack = cell / 2 - radius
    pos = (grid + 0.5) * cell + slack * (2 * torch.rand(S, N, 2, **opt) - 1)
    vel = speed * torch.randn(S, N, 2, **opt)
    mass = torch.ones(S, N, dtype=torch.float64)
    rad = torch.full((S, N), float(radius), dtype=torch.float64)
    h = dt / substeps
    iu = torch.triu_indices(N, N, 1)

    def step(pos, vel):
        pos = pos + h * vel
        # Walls: reflect the velocity and mirror the position.
        low, high = pos < radius, pos > box_size - radius
        pos = torch.where(low, 2 * radius - pos, pos)
        pos = torch.where(high, 2 * (box_size - radius) - pos, pos)
        vel = torch.where(low | high, -vel, vel)
        # Ball-ball collisions (equal masses: exchange the normal parts).
        for a, b in iu.t().tolist():
            d = pos[:, b] - pos[:, a]  # [S, 2]
            dist = d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            n = d / dist
            rel = ((vel[:, a] - vel[:, b]) * n).sum(-1, keepdim=True)
            hit = (dist < 2 * radius) & (rel > 0)
            dv = torch.where(hit, rel * n, torch.zeros_like(n))
            vel = vel.clone()
            vel[:, a] = vel[:, a] - dv
            vel[:, b] = vel[:, b] + dv
        return pos, vel

    return dict(**_rollout(pos, vel, num_steps, substeps, step),
                mass=mass, radius=rad)


def simulate_string(num_samples: int, num_masses: int = 10,
                    num_steps: int = 100, dt: float = 0.01,
                    substeps: int = 20, rest_length: float = 0.5,
                    stiffness: float = 200.0, gravity: float = 9.81,
                    damping: float = 0.1, seed: int = 0
                    ) -> Dict[str, Tensor]:
    r"""A string of ``num_masses`` unit masses joined by springs of
    ``rest_length`` and ``stiffness`` (force
    :math:`k (\lVert\mathbf{d}\rVert - L)\,\hat{\mathbf{d}}`), under gravity
    :math:`-g\,\hat{\mathbf{y}}` with linear ``damping``; mass 0 is pinned at
    the origin. The string starts straight at a random angle, with small
    random velocities.

    .. note::
        The paper's string also collides with a rigid floor; that floor is
        left out here.

    Returns:
        ``pos``, ``vel`` ``[S, T, N, 2]``, ``mass`` ``[S, N]``, ``pinned``
        ``[S, N]`` (bool) and ``edge_index`` ``[2, 2(N-1)]`` (the springs,
        both directions).
    """
    _check_values(simulate_string, locals())
    S, N = num_samples, num_masses
    gen = torch.Generator().manual_seed(int(seed))
    opt = dict(generator=gen, dtype=torch.float64)
    angle = -torch.pi * torch.rand(S, 1, **opt)  # below the pin
    k = torch.arange(N, dtype=torch.float64)[None, :]  # [1, N]
    pos = torch.stack([rest_length * k * angle.cos(),
                       rest_length * k * angle.sin()], -1)  # [S, N, 2]
    vel = 0.1 * torch.randn(S, N, 2, **opt)
    pinned = torch.zeros(S, N, dtype=torch.bool)
    pinned[:, 0] = True
    vel[:, 0] = 0.
    mass = torch.ones(S, N, dtype=torch.float64)
    g = torch.tensor([0., -gravity], dtype=torch.float64)
    h = dt / substeps

    def step(pos, vel):
        d = pos[:, 1:] - pos[:, :-1]  # [S, N-1, 2]
        length = d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        f = stiffness * (length - rest_length) * d / length  # on a
        force = torch.zeros_like(pos)
        force[:, :-1] += f
        force[:, 1:] -= f
        acc = force / mass[..., None] + g - damping * vel
        acc = torch.where(pinned[..., None], torch.zeros_like(acc), acc)
        vel = vel + h * acc
        pos = pos + h * vel
        return pos, vel

    trajectory = _rollout(pos, vel, num_steps, substeps, step)
    src = torch.arange(N - 1)
    edge_index = torch.stack([torch.cat([src, src + 1]),
                              torch.cat([src + 1, src])])
    return dict(**trajectory, mass=mass, pinned=pinned,
                edge_index=edge_index.expand(S, 2, 2 * (N - 1)).clone())


_PHYSICS_CHECKS = {
    'simulate_nbody': (('G', check_real), ('softening', check_non_negative),
                       ('mass_range', check_interval),
                       ('radius', check_positive)),
    'simulate_bouncing_balls': (('box_size', check_positive),
                                ('radius', check_positive),
                                ('speed', check_non_negative)),
    'simulate_string': (('rest_length', check_positive),
                        ('stiffness', check_non_negative),
                        ('gravity', check_real),
                        ('damping', check_non_negative)),
}


class _BodiesDataset(SimulatedDataset):
    r"""Items of the three systems: one node per object, its trajectory
    inside (``pos``, ``vel`` ``[N, T, 2]``), per-object entries ``[N]`` and
    the relation graph ``edge_index``."""
    _simulator = None

    def simulate(self, num_samples, seed, **config):
        return type(self)._simulator(num_samples, seed=seed, **config)

    def check_config(self, **config):
        # the simulator's own checks, on an empty-size dry run of arguments
        simulator_config(self, config)  # unknown arguments refused
        _check_values(type(self)._simulator, config)

    def relations(self, simulation: Dict[str, Tensor]) -> Tensor:
        """The relation graph of one sample: every ordered pair."""
        return complete_graph(simulation['mass'].size(1), self_loops=False)

    def storage(self, simulation):
        node = {key: value.transpose(1, 2)  # [S, T, N, 2] -> [S, N, T, 2]
                for key, value in simulation.items() if key in ('pos', 'vel')}
        node.update({key: value for key, value in simulation.items()
                     if key not in ('pos', 'vel', 'edge_index')})  # [S, N]
        return stacked_storage(self.config['num_samples'], node, {},
                               self.relations(simulation))


class NBodyDataset(_BodiesDataset):
    r"""Trajectories of :func:`simulate_nbody`, cached to ``root``
    (a :class:`~torch_geometric.data.InMemoryDataset`). Item ``k`` is a
    :class:`~torch_geometric.data.Data` with one node per body: ``pos``
    and ``vel`` ``[N, T, 2]``, ``mass [N]`` and ``edge_index`` every
    ordered pair of bodies (the relations of an Interaction Network).

    Args:
        root (str, optional): cache folder (:obj:`None`: memory only).
        num_samples (int): number of trajectories.
        seed (int, optional): simulation seed. (default: :obj:`0`)
        transform, pre_transform, pre_filter (callable, optional): as in
            :class:`~torch_geometric.data.InMemoryDataset`.
        **config: arguments of :func:`simulate_nbody`.

    Example:
        >>> NBodyDataset(None, 2, num_bodies=3, num_steps=4)[0]
        Data(pos=[3, 4, 2], vel=[3, 4, 2], mass=[3], edge_index=[2, 6])
    """
    name = 'nbody'
    _simulator = staticmethod(simulate_nbody)


class BouncingBallsDataset(_BodiesDataset):
    r"""Trajectories of :func:`simulate_bouncing_balls`, cached to
    ``root`` (items as :class:`NBodyDataset`, plus ``radius [N]``)."""
    name = 'bouncing_balls'
    _simulator = staticmethod(simulate_bouncing_balls)


class StringDataset(_BodiesDataset):
    r"""Trajectories of :func:`simulate_string`, cached to ``root`` (items
    as :class:`NBodyDataset`, plus ``pinned [N]``; ``edge_index`` is the
    springs ``[2, 2(N-1)]``)."""
    name = 'string'
    _simulator = staticmethod(simulate_string)

    def relations(self, simulation: Dict[str, Tensor]) -> Tensor:
        return simulation['edge_index'][0]  # the same springs in every sample
