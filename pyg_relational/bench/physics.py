r"""Interaction Network on n-body gravitation (6 bodies): trained to predict
the next-step velocity, evaluated by rolling out held-out trajectories and
compared with the constant-velocity baseline.

Setup (:func:`run_physics`):

* data: :func:`~pyg_relational.datasets.interaction_physics.simulate_nbody`
  (``dt = 0.01``, 10 substeps); training and held-out trajectories come from
  different seeds.
* graph: the complete graph without self-loops on the bodies of each state;
  object state :math:`\mathbf{o}_i = [\mathbf{v}_i, m_i]`, relation
  attribute :math:`\mathbf{r}_{ji} = [\mathbf{x}_j - \mathbf{x}_i,
  \lVert \mathbf{x}_j - \mathbf{x}_i \rVert]` (translation invariant;
  absolute positions are not given), each standardised with training
  statistics.
* target: the velocity change over one step, standardised; the loss is its
  MSE.
* rollout: :math:`\mathbf{v}_{t+1} = \mathbf{v}_t + \widehat{\Delta
  \mathbf{v}}`, :math:`\mathbf{x}_{t+1} = \mathbf{x}_t + \Delta t
  (\mathbf{v}_t + \mathbf{v}_{t+1}) / 2`, fed back for ``horizon`` steps;
  the baseline keeps :math:`\mathbf{v}_{t+1} = \mathbf{v}_t`. The figure is
  the position MSE averaged over all steps, bodies and held-out
  trajectories.
"""
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

from ..datasets.interaction_physics import simulate_nbody
from ..graphs import complete_graph
from ..nn.interaction import InteractionNetwork

__all__ = ['run_physics', 'train_nbody', 'rollout', 'NBODY_CONFIG']

#: Simulation settings shared by training and evaluation.
NBODY_CONFIG = dict(num_bodies=6, dt=0.01, substeps=10, G=1.0,
                    softening=0.3)


class _Scaler:
    """Standardisation statistics (from the training set)."""
    def __init__(self, pos: Tensor, vel: Tensor):
        rel = pos.unsqueeze(-2) - pos.unsqueeze(-3)  # [..., N, N, 2]
        self.rel = float(rel.std())
        self.vel = float(vel.std())
        self.dv = float((vel[:, 1:] - vel[:, :-1]).std())


def _features(pos: Tensor, vel: Tensor, mass: Tensor, edge_index: Tensor,
              scale: _Scaler):
    """Object states ``[B*N, 3]`` and relation attributes ``[E, 3]`` of a
    batch of states ``pos, vel [B, N, 2]``, ``mass [B, N]``."""
    pos = pos.reshape(-1, 2)  # [B*N, 2]
    x = torch.cat([vel.reshape(-1, 2) / scale.vel, mass.reshape(-1, 1)], -1)
    rel = (pos[edge_index[0]] - pos[edge_index[1]]) / scale.rel  # [E, 2]
    edge_attr = torch.cat([rel, rel.norm(dim=-1, keepdim=True)], -1)
    return x, edge_attr


def _model(hidden: int, layers: int) -> InteractionNetwork:
    return InteractionNetwork(3, 2, edge_channels=3, effect_channels=50,
                              relation_hidden_channels=hidden,
                              relation_layers=layers,
                              object_hidden_channels=100, object_layers=2)


def train_nbody(num_train: int = 400, num_steps: int = 100,
                iterations: int = 3000, batch_size: int = 100,
                lr: float = 1e-3, hidden: int = 128, layers: int = 4,
                seed: int = 0, device='cpu',
                time_limit: Optional[float] = None,
                progress: Optional[Callable[[str], None]] = None):
    """Train an :class:`InteractionNetwork` on one-step velocity changes.

    Returns ``(model, scaler, info)`` with ``info`` holding the number of
    iterations run, the last training loss and the training time."""
    data = simulate_nbody(num_train, num_steps=num_steps, seed=seed,
                          **NBODY_CONFIG)
    pos, vel, mass = (data[k].float().to(device)
                      for k in ('pos', 'vel', 'mass'))
    scale = _Scaler(pos, vel)
    S, T, N, _ = pos.shape
    torch.manual_seed(seed)
    model = _model(hidden, layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    edge_index = complete_graph([N] * batch_size, self_loops=False).to(
        device)
    start, loss_value, it = time.perf_counter(), float('nan'), 0
    for it in range(1, iterations + 1):
        s = torch.randint(S, (batch_size, ), device=device)
        t = torch.randint(T - 1, (batch_size, ), device=device)
        x, edge_attr = _features(pos[s, t], vel[s, t], mass[s], edge_index,
                                 scale)
        target = (vel[s, t + 1] - vel[s, t]).reshape(-1, 2) / scale.dv
        loss = torch.nn.functional.mse_loss(model(x, edge_index, edge_attr),
                                            target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if progress is not None and it % 500 == 0:
            progress(f'iteration {it}: loss {loss_value:.4f}')
        if time_limit is not None and \
                time.perf_counter() - start > time_limit:
            break
    info = dict(iterations=it, final_loss=loss_value,
                train_s=time.perf_counter() - start)
    return model, scale, info


@torch.no_grad()
def rollout(model: Optional[InteractionNetwork], scale: Optional[_Scaler],
            pos0: Tensor, vel0: Tensor, mass: Tensor, horizon: int,
            dt: float) -> Tensor:
    """Positions ``[B, horizon, N, 2]`` after steps ``1..horizon`` from the
    states ``pos0, vel0 [B, N, 2]``; ``model=None`` is the constant-velocity
    baseline."""
    B, N, _ = pos0.shape
    edge_index = complete_graph([N] * B, self_loops=False).to(pos0.device)
    pos, vel, out = pos0, vel0, []
    for _ in range(horizon):
        if model is None:
            new_vel = vel
        else:
            x, edge_attr = _features(pos, vel, mass, edge_index, scale)
            dv = model(x, edge_index, edge_attr).view(B, N, 2) * scale.dv
            new_vel = vel + dv
        pos = pos + dt * (vel + new_vel) / 2
        vel = new_vel
        out.append(pos)
    return torch.stack(out, 1)


def run_physics(quick: bool = True, device='cpu',
                progress: Optional[Callable[[str], None]] = None,
                horizon: int = 50, num_test: int = 50,
                seed: int = 0) -> List[Dict]:
    """Rollout position MSE of the Interaction Network and of the
    constant-velocity baseline on held-out n-body trajectories.

    ``quick=True`` trains for a few iterations on a few trajectories (a
    smoke test, not a result); ``quick=False`` uses the settings of
    ``examples/interaction_network.py`` (400 training trajectories, 3000
    iterations).

    Returns one dict per model: ``model``, ``rollout_mse``, ``horizon``,
    ``num_test``, ``bodies``, ``ratio_to_baseline`` (the baseline's MSE
    divided by this model's: above 1 is better than constant velocity) and,
    for the network, the training info (``iterations``, ``final_loss``,
    ``train_s``).
    """
    if quick:
        model, scale, info = train_nbody(num_train=8, num_steps=20,
                                         iterations=20, batch_size=8,
                                         hidden=32, layers=2, seed=seed,
                                         device=device, progress=progress)
        horizon, num_test = min(horizon, 10), min(num_test, 4)
    else:
        model, scale, info = train_nbody(seed=seed, device=device,
                                         progress=progress)
    model.eval()
    test = simulate_nbody(num_test, num_steps=horizon + 1,
                          seed=seed + 10_000, **NBODY_CONFIG)
    pos, vel, mass = (test[k].float().to(device)
                      for k in ('pos', 'vel', 'mass'))
    truth = pos[:, 1:horizon + 1]
    rows = []
    for name, m in (('InteractionNetwork', model),
                    ('constant velocity', None)):
        pred = rollout(m, scale, pos[:, 0], vel[:, 0], mass, horizon,
                       NBODY_CONFIG['dt'])
        mse = float(((pred - truth) ** 2).mean())
        rows.append(dict(model=name, rollout_mse=mse, horizon=horizon,
                         num_test=num_test, bodies=NBODY_CONFIG['num_bodies'],
                         **(info if m is not None else {})))
        if progress is not None:
            progress(f'{name}: rollout MSE {mse:.3g}')
    for row in rows:
        row['ratio_to_baseline'] = rows[1]['rollout_mse'] / row['rollout_mse']
    return rows
