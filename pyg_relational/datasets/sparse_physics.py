r"""Local, sparse interaction systems: springs and charges between nearby
particles only, for Neural Relational Inference on hundreds or thousands of
particles.

In NRI's own systems (:mod:`~pyg_relational.datasets.nri_physics`) every
pair may interact, so the true graph is dense and the candidate graph must be
complete. Here the true interaction graph is *local and sparse* (mean degree
2 to 4, whatever the number of particles), so a sparse candidate graph built
from the first observed frame (the :math:`k` nearest neighbours) contains
(nearly) every true edge, and inference costs grow with :math:`n`, not
:math:`n^2`.

Physics (2-D, elastic walls at :math:`\pm L`, leapfrog integration with time
step :math:`\Delta t`, every force component clamped to ``max_force``):

* Particles start uniformly in the box :math:`[-L, L]^2` with
  :math:`L = \frac{1}{2}\sqrt{n / \rho}` (density :math:`\rho` =
  ``density`` particles per unit area, so the spacing is the same at every
  :math:`n`), with speed ``vel_norm`` in a random direction.
* **Interaction graph** (fixed, from the positions at :math:`t = 0`): each
  particle is tied to its ``neighbours`` nearest particles (the relation is
  symmetrised: :math:`i \sim j` if either is among the other's nearest), or,
  with ``radius``, to every particle closer than ``radius``; each such pair
  is kept with probability ``edge_prob``.
* :func:`simulate_local_springs`: Hookean springs of rest length 0 and
  constant :math:`k` = ``interaction_strength`` (NRI's springs, on the local
  graph): :math:`F_i = -k \sum_{j \sim i} (x_i - x_j)`. Edge label 1 =
  spring.
* :func:`simulate_local_charged`: charges :math:`q_i = \pm 1`, Coulomb forces
  :math:`F_i = c \sum_{j \sim i} q_i q_j (x_i - x_j) / (\lVert x_i - x_j
  \rVert^2 + \epsilon^2)^{3/2}` (softening :math:`\epsilon` = ``softening``)
  between the pairs of the interaction graph only: a cutoff applied to the
  distances at :math:`t = 0` (a fixed bond list), not re-evaluated as
  particles move. Edge label: 0 no interaction, 1 opposite charges
  (attract), 2 like charges (repel).

Every step costs :math:`O(\text{edges})` (gather, multiply, ``index_add``),
so 1000-particle systems simulate in seconds; building the graph at
:math:`t = 0` and the candidate graph compares each particle with every
other of its system once (in chunks of rows, so memory stays bounded).

The datasets (:class:`LocalSpringsDataset`, :class:`LocalChargedDataset`)
give each system as a :class:`~torch_geometric.data.Data` on the
**candidate graph**: the ``candidates`` nearest neighbours in the first
observed frame, symmetrised (``edge_index``, both directions), with the true
type of every candidate edge (``edge_label``). True edges the candidate graph
misses (particles that moved apart before the first frame) are counted in
:attr:`~LocalSpringsDataset.missed_share`.
"""
import math
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from .._checks import check_int
from ._args import (check_frames, check_non_negative, check_positive,
                    check_probability, simulator_config)
from .base import SimulatedDataset
from .nri_physics import _leapfrog

__all__ = ['simulate_local_springs', 'simulate_local_charged',
           'local_knn_graph', 'LocalSpringsDataset', 'LocalChargedDataset']


# --------------------------------------------------------------------------
# Graphs.
# --------------------------------------------------------------------------
def local_knn_graph(pos: Tensor, k: int, chunk: int = 1024) -> Tensor:
    r"""The symmetrised :math:`k`-nearest-neighbour graph of each system:
    :math:`i \sim j` if :math:`j` is among the ``k`` nearest of :math:`i` or
    :math:`i` among those of :math:`j`, as undirected pairs.

    Args:
        pos (Tensor): positions ``[S, n, D]``.
        k (int): neighbours, ``1 <= k <= n - 1``.
        chunk (int, optional): rows of distances held at once.

    Returns:
        a list of ``S`` long tensors ``[2, P_s]``, one per system: the pairs
        ``i < j``, sorted.

    Example:
        >>> pos = torch.tensor([[[0.], [1.], [3.], [7.]]])
        >>> local_knn_graph(pos, 1)[0]
        tensor([[0, 1, 2],
                [1, 2, 3]])
    """
    S, n, _ = pos.shape
    k = check_int(k, 'k', 1)
    if k > n - 1:
        raise ValueError(f"'k' ({k}) must be at most the number of particles"
                         f" - 1 ({n - 1})")
    out = []
    for s in range(S):
        nbr = []
        for start in range(0, n, chunk):
            d = torch.cdist(pos[s, start:start + chunk], pos[s])  # [c, n]
            rows = torch.arange(start, min(start + chunk, n))
            d[torch.arange(rows.numel()), rows] = float('inf')
            nbr.append(d.topk(k, dim=1, largest=False).indices)  # [c, k]
        nbr = torch.cat(nbr)  # [n, k]
        i = torch.arange(n).repeat_interleave(k)
        j = nbr.reshape(-1)
        out.append(_undirected(i, j, n))
    return out


def _radius_pairs(pos: Tensor, radius: float, chunk: int = 1024):
    S, n, _ = pos.shape
    out = []
    for s in range(S):
        parts = []
        for start in range(0, n, chunk):
            d = torch.cdist(pos[s, start:start + chunk], pos[s])  # [c, n]
            i, j = (d < radius).nonzero(as_tuple=True)
            parts.append(torch.stack([i + start, j]))
        i, j = torch.cat(parts, 1)
        out.append(_undirected(i, j, n))
    return out


def _undirected(i: Tensor, j: Tensor, n: int) -> Tensor:
    """Unique pairs ``[2, P]`` with ``i < j`` (self pairs dropped)."""
    lo, hi = torch.minimum(i, j), torch.maximum(i, j)
    key = torch.unique(lo[lo != hi] * n + hi[lo != hi])  # sorted
    return torch.stack([key // n, key % n])


# --------------------------------------------------------------------------
# Simulation.
# --------------------------------------------------------------------------
def _check_local(num_samples, num_particles, num_steps, sample_every,
                 neighbours, radius, edge_prob, density, vel_norm,
                 interaction_strength, dt, max_force):
    check_int(num_samples, 'num_samples', 0)
    check_int(num_particles, 'num_particles', 2)
    check_frames(num_steps, sample_every, example=(500, 10))
    if (neighbours is None) == (radius is None):
        raise ValueError(f"give exactly one of 'neighbours' and 'radius' "
                         f"(got neighbours={neighbours!r}, radius={radius!r})")
    if neighbours is not None:
        check_int(neighbours, 'neighbours', 1)
        if neighbours > num_particles - 1:
            raise ValueError(f"'neighbours' ({neighbours}) must be at most "
                             f"num_particles - 1 ({num_particles - 1})")
    else:
        check_positive(radius, 'radius')
    check_probability(edge_prob, 'edge_prob')
    check_positive(density, 'density')
    check_non_negative(vel_norm, 'vel_norm')
    check_non_negative(interaction_strength, 'interaction_strength')
    check_positive(dt, 'dt')
    check_positive(max_force, 'max_force')


def _local_start(num_samples, n, neighbours, radius, edge_prob, density,
                 vel_norm, gen):
    r"""Start state and the fixed interaction pairs (one ``[2, P_s]`` per
    system)."""
    box = 0.5 * math.sqrt(n / density)
    opt = dict(generator=gen, dtype=torch.float64)
    loc = (torch.rand(num_samples, n, 2, **opt) * 2 - 1) * box
    vel = torch.randn(num_samples, n, 2, **opt)
    vel = vel * vel_norm / vel.norm(dim=-1, keepdim=True)
    pairs = (local_knn_graph(loc, neighbours) if radius is None
             else _radius_pairs(loc, radius))
    kept = []
    for p in pairs:
        keep = torch.rand(p.size(1), **opt) < edge_prob
        kept.append(p[:, keep])
    return loc, vel, kept, box


def _flat_pairs(pairs, n: int) -> Tensor:
    """The systems' pairs as one ``[2, P]`` on ``S * n`` flat nodes."""
    return torch.cat([p + s * n for s, p in enumerate(pairs)], 1) \
        if pairs else torch.zeros(2, 0, dtype=torch.long)


def _pair_force(loc: Tensor, src: Tensor, dst: Tensor, size) -> Tensor:
    r""":math:`F_i = \sum_{j \sim i} s_{ij}(d_{ij}) (x_i - x_j)` over the
    undirected pairs ``(src, dst)``: ``size(diff)`` gives :math:`s_{ij}`
    ``[P, 1]``; cost :math:`O(P)`."""
    diff = loc[dst] - loc[src]  # [P, 2]: x_dst - x_src
    f = size(diff) * diff  # force on dst; -f on src
    out = torch.zeros_like(loc)
    out.index_add_(0, dst, f)
    out.index_add_(0, src, -f)
    return out


def _frames(locs: Tensor, vels: Tensor, S: int, n: int):
    T = locs.size(0)
    shape = (T, S, n, 2)
    return (locs.view(shape).transpose(0, 1).float(),
            vels.view(shape).transpose(0, 1).float())  # [S, T, n, 2]


def simulate_local_springs(num_samples: int, num_particles: int = 100,
                           num_steps: int = 500, sample_every: int = 10,
                           seed: int = 0, neighbours: Optional[int] = 2,
                           radius: Optional[float] = None,
                           edge_prob: float = 1., density: float = 1.,
                           vel_norm: float = .5,
                           interaction_strength: float = 1.,
                           dt: float = 1e-2, max_force: float = 100.
                           ) -> Dict[str, object]:
    r"""Simulate ``num_samples`` systems of particles joined by springs to
    their nearest neighbours at :math:`t = 0` (module docstring).

    Returns:
        dict with ``loc`` and ``vel`` ``[S, T, n, 2]`` (float32, physical
        units), ``box`` (the half width :math:`L`) and ``pairs``: one
        ``[2, P_s]`` tensor of springs per system (``i < j``).

    Example:
        >>> out = simulate_local_springs(2, num_particles=20, num_steps=40)
        >>> out['loc'].shape, len(out['pairs'])
        (torch.Size([2, 3, 20, 2]), 2)
    """
    _check_local(num_samples, num_particles, num_steps, sample_every,
                 neighbours, radius, edge_prob, density, vel_norm,
                 interaction_strength, dt, max_force)
    gen = torch.Generator().manual_seed(int(seed))
    S, n = num_samples, num_particles
    loc, vel, pairs, box = _local_start(S, n, neighbours, radius, edge_prob,
                                        density, vel_norm, gen)
    src, dst = _flat_pairs(pairs, n)
    k = float(interaction_strength)

    def force(x):  # F_dst = -k (x_dst - x_src)
        return _pair_force(x, src, dst, lambda d: -k)

    locs, vels = _leapfrog(force, loc.reshape(S * n, 2).clone(),
                           vel.reshape(S * n, 2).clone(), num_steps,
                           sample_every, box, dt, max_force)
    loc_out, vel_out = _frames(locs, vels, S, n)
    return dict(loc=loc_out, vel=vel_out, pairs=pairs, box=box,
                start=loc.float())


def simulate_local_charged(num_samples: int, num_particles: int = 100,
                           num_steps: int = 500, sample_every: int = 10,
                           seed: int = 0, neighbours: Optional[int] = None,
                           radius: Optional[float] = 1.,
                           edge_prob: float = 1., density: float = 1.,
                           vel_norm: float = .5,
                           interaction_strength: float = 1.,
                           charge_prob: float = .5, softening: float = .1,
                           dt: float = 1e-2, max_force: float = 100.
                           ) -> Dict[str, object]:
    r"""Simulate ``num_samples`` systems of charges interacting within a
    cutoff (``radius`` at :math:`t = 0`, or ``neighbours``; module
    docstring). ``charge_prob`` is the probability of a charge :math:`-1`.

    Returns:
        as :func:`simulate_local_springs`, plus ``charges`` ``[S, n]``.

    Example:
        >>> out = simulate_local_charged(2, num_particles=20, num_steps=40)
        >>> out['charges'].shape
        torch.Size([2, 20])
    """
    _check_local(num_samples, num_particles, num_steps, sample_every,
                 neighbours, radius, edge_prob, density, vel_norm,
                 interaction_strength, dt, max_force)
    check_probability(charge_prob, 'charge_prob')
    check_non_negative(softening, 'softening')
    gen = torch.Generator().manual_seed(int(seed))
    S, n = num_samples, num_particles
    loc, vel, pairs, box = _local_start(S, n, neighbours, radius, edge_prob,
                                        density, vel_norm, gen)
    u = torch.rand(S, n, generator=gen, dtype=torch.float64)
    charges = torch.where(u < charge_prob, -1., 1.).double()  # [S, n]
    src, dst = _flat_pairs(pairs, n)
    q = charges.reshape(-1)
    qq = (q[src] * q[dst]).unsqueeze(-1)  # [P, 1]
    c, eps2 = float(interaction_strength), float(softening) ** 2

    def force(x):  # F_dst = c q q (x_dst - x_src) / (d^2 + eps^2)^1.5
        return _pair_force(x, src, dst, lambda d: c * qq / (
            d.pow(2).sum(-1, keepdim=True) + eps2).pow(1.5))

    locs, vels = _leapfrog(force, loc.reshape(S * n, 2).clone(),
                           vel.reshape(S * n, 2).clone(), num_steps,
                           sample_every, box, dt, max_force)
    loc_out, vel_out = _frames(locs, vels, S, n)
    return dict(loc=loc_out, vel=vel_out, pairs=pairs, box=box,
                start=loc.float(), charges=charges.float())


# --------------------------------------------------------------------------
# Datasets.
# --------------------------------------------------------------------------
class _LocalDataset(SimulatedDataset):
    r"""Systems on their candidate graph (shared by the two datasets)."""
    _simulator = None

    def __init__(self, root: Optional[str], num_samples: int,
                 num_particles: int = 100, candidates: int = 8,
                 seed: int = 0,
                 stats: Optional[Tuple[float, float]] = None,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None, **physics):
        check_int(num_particles, 'num_particles', 2)
        check_int(candidates, 'candidates', 1)
        if candidates > num_particles - 1:
            raise ValueError(f"'candidates' ({candidates}) must be at most "
                             f"num_particles - 1 ({num_particles - 1})")
        if stats is not None:
            try:
                stats = tuple(float(s) for s in stats)
            except (TypeError, ValueError):
                stats = (float('nan'), )
            if len(stats) != 2 or not all(math.isfinite(s) and s > 0
                                          for s in stats):
                raise ValueError(f"'stats' must be (loc_scale, vel_scale), "
                                 f"both finite and > 0 (got {stats}); pass "
                                 f"the training set's .stats")
        self._requested_stats = stats
        self.candidates = int(candidates)
        super().__init__(root, num_samples, seed, transform, pre_transform,
                         pre_filter, num_particles=int(num_particles),
                         **physics)

    def check_config(self, **config):
        full = simulator_config(self, config)
        _check_local(*(full[k] for k in (
            'num_samples', 'num_particles', 'num_steps', 'sample_every',
            'neighbours', 'radius', 'edge_prob', 'density', 'vel_norm',
            'interaction_strength', 'dt', 'max_force')))
        for name in ('charge_prob', ):
            if name in full:
                check_probability(full[name], name)
        if 'softening' in full:
            check_non_negative(full['softening'], 'softening')

    def simulate(self, num_samples, seed, **config):
        out = type(self)._simulator(num_samples, seed=seed, **config)
        # the cache holds tensors whose first dimension is the sample: the
        # variable-length pair lists as one padded tensor (-1: none)
        P = max([p.size(1) for p in out['pairs']] + [0])
        pairs = torch.full((num_samples, 2, P), -1, dtype=torch.long)
        for s, p in enumerate(out['pairs']):
            pairs[s, :, :p.size(1)] = p
        out['pairs'] = pairs
        out['box'] = torch.full((num_samples, ), float(out['box']))
        return out

    def _true_types(self, simulation, s: int, pairs: Tensor) -> Tensor:
        """Edge type ``[P]`` of the interacting pairs of system ``s``."""
        return torch.ones(pairs.size(1), dtype=torch.long)

    def storage(self, simulation):
        loc, vel = simulation['loc'], simulation['vel']  # [S, T, n, 2]
        S, T, n, _ = loc.shape
        stats = self._requested_stats
        if stats is None:
            # lengths in units of 3 x the mean interaction length at t = 0,
            # velocities in units of the largest speed component
            lengths = []
            for s in range(S):
                p = simulation['pairs'][s]
                p = p[:, p[0] >= 0]
                lengths.append((simulation['start'][s, p[0]] -
                                simulation['start'][s, p[1]]).norm(dim=-1))
            lengths = torch.cat(lengths) if lengths else torch.ones(1)
            mean = float(lengths.mean()) if lengths.numel() else 1.
            stats = (3 * mean if mean > 0 else 1.,
                     float(vel.abs().max()) if vel.numel() else 1.)
            stats = tuple(s if s > 0 else 1. for s in stats)
        self.stats = tuple(float(s) for s in stats)
        x = torch.cat([loc / self.stats[0], vel / self.stats[1]], -1)
        x = x.transpose(1, 2)  # [S, n, T, 4]
        first = loc[:, 0]  # [S, n, 2]: the first observed frame
        cand = local_knn_graph(first, self.candidates)
        items, missed, total, positive = [], 0, 0, 0
        for s in range(S):
            p = simulation['pairs'][s]
            p = p[:, p[0] >= 0]
            types = self._true_types(simulation, s, p)
            c = cand[s]  # [2, C] undirected i < j
            # true type of each candidate pair (0 = none) by pair key
            table = torch.zeros(n * n, dtype=torch.long)
            table[p[0] * n + p[1]] = types
            label = table[c[0] * n + c[1]]  # [C]
            hit = torch.zeros(n * n, dtype=torch.bool)
            hit[c[0] * n + c[1]] = True
            missed += int((~hit[p[0] * n + p[1]]).sum())
            total += p.size(1)
            positive += int((label > 0).sum())
            # both directions, sorted by target (j -> i)
            src = torch.cat([c[0], c[1]])
            dst = torch.cat([c[1], c[0]])
            order = torch.argsort(dst * n + src)
            items.append(Data(x=x[s].contiguous(),
                              edge_index=torch.stack([src, dst])[:, order],
                              edge_label=torch.cat([label, label])[order],
                              num_nodes=n))
        self.missed_share = missed / total if total else 0.
        self.num_true_pairs = total
        self.interacting_share = positive / max(sum(
            c.size(1) for c in cand), 1)
        if not items:
            return Data(), {}
        return self.collate(items)

    @property
    def num_particles(self) -> int:
        return self.config['num_particles']

    @property
    def num_frames(self) -> int:
        return self.simulation['loc'].size(1)

    def batch(self, index: Tensor):
        r"""The items ``index`` as one :class:`~torch_geometric.data.Batch`
        (as :class:`torch_geometric.loader.DataLoader` collates them)."""
        from torch_geometric.data import Batch
        index = torch.as_tensor(index, dtype=torch.long).view(-1)
        return Batch.from_data_list([self[int(i)] for i in index])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({len(self)}, '
                f'num_particles={self.num_particles}, '
                f'num_frames={self.num_frames}, '
                f'candidates={self.candidates})')


class LocalSpringsDataset(_LocalDataset):
    r"""Particles joined by springs to their nearest neighbours at
    :math:`t = 0` (:func:`simulate_local_springs`), on the candidate graph
    of the ``candidates`` nearest neighbours in the first observed frame,
    cached to ``root``.

    Item ``s``: ``x [n, T, 4]`` (positions divided by
    ``stats[0]``, three times the mean spring length of the training set;
    velocities divided by ``stats[1]``, its largest speed component; pass
    the training set's :attr:`stats` to validation and test sets),
    ``edge_index`` the candidate graph (both directions, sorted by target)
    and ``edge_label`` (1 = spring, 0 = none).

    Attributes:
        missed_share (float): share of the true springs that are not
            candidate edges.
        interacting_share (float): share of candidate edges that are
            springs (the majority guess scores ``max(share, 1 - share)``).

    Args:
        root (str, optional): cache folder (:obj:`None`: memory only).
        num_samples (int): number of systems.
        num_particles (int, optional): particles per system.
            (default: :obj:`100`)
        candidates (int, optional): nearest neighbours of the candidate
            graph (symmetrised). (default: :obj:`8`)
        seed (int, optional): random seed. (default: :obj:`0`)
        stats (tuple, optional): ``(loc_scale, vel_scale)``.
            (default: this dataset's own)
        transform, pre_transform, pre_filter (callable, optional): as in
            :class:`~torch_geometric.data.InMemoryDataset`.
        **physics: other arguments of :func:`simulate_local_springs`.

    Example:
        >>> ds = LocalSpringsDataset(None, 2, num_particles=20, num_steps=40,
        ...                          candidates=4)
        >>> ds
        LocalSpringsDataset(2, num_particles=20, num_frames=3, candidates=4)
        >>> ds.missed_share <= 1.0
        True
    """
    name = 'local_springs'
    _simulator = staticmethod(simulate_local_springs)


class LocalChargedDataset(_LocalDataset):
    r"""Charges interacting within a cutoff at :math:`t = 0`
    (:func:`simulate_local_charged`), on the candidate graph as in
    :class:`LocalSpringsDataset`. ``edge_label``: 0 no interaction, 1
    opposite charges (attract), 2 like charges (repel); train with three
    edge types and ``skip_first=True``.

    Example:
        >>> LocalChargedDataset(None, 2, num_particles=20, num_steps=40,
        ...                     candidates=4)
        LocalChargedDataset(2, num_particles=20, num_frames=3, candidates=4)
    """
    name = 'local_charged'
    _simulator = staticmethod(simulate_local_charged)

    def _true_types(self, simulation, s, pairs):
        q = simulation['charges'][s]
        return torch.where(q[pairs[0]] * q[pairs[1]] > 0, 2, 1).long()
