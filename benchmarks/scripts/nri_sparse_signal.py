"""How much the interaction shows in the motion of a local system, before
training NRI on it: an NRI decoder given the TRUE graph (z = one-hot true
type on the candidate edges) against the same decoder with NO interaction
(every candidate edge type 0, skipped), trained the same number of steps on
the same data; plus the constant-velocity guess (no learning). One JSON line
per configuration:

    python benchmarks/scripts/nri_sparse_signal.py --particles 100 \
        --strength 0.1 1.0 --steps 300

A ratio mse_none / mse_true well above 1 means the decoder's loss rewards
finding the graph; near 1, the encoder gets no signal.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from pyg_relational.datasets import LocalSpringsDataset
from pyg_relational.nn import NRIDecoder

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--particles', type=int, default=100)
p.add_argument('--strength', type=float, nargs='+', default=[0.1, 1.0])
p.add_argument('--vel-norm', type=float, default=0.5)
p.add_argument('--train', type=int, default=40)
p.add_argument('--valid', type=int, default=8)
p.add_argument('--sim-steps', type=int, default=500)
p.add_argument('--sample-every', type=int, default=10)
p.add_argument('--steps', type=int, default=300, help='training steps')
p.add_argument('--batch-size', type=int, default=4)
p.add_argument('--hidden', type=int, default=64)
p.add_argument('--pred-steps', type=int, default=1)
p.add_argument('--root', default=None)
p.add_argument('--threads', type=int, default=1)
args = p.parse_args()
torch.set_num_threads(args.threads)

for k in args.strength:
    sim = dict(num_particles=args.particles, num_steps=args.sim_steps,
               sample_every=args.sample_every, interaction_strength=k,
               vel_norm=args.vel_norm)
    train = LocalSpringsDataset(args.root, args.train, seed=0, **sim)
    valid = LocalSpringsDataset(args.root, args.valid, seed=1,
                                stats=train.stats, **sim)
    vb = valid.batch(torch.arange(len(valid)))
    # constant velocity: x^{t+1} = x^t + v^t dt (in normalised units)
    dt = args.sample_every * 1e-2
    x = vb.x  # [N, T, 4]
    scale = train.stats[1] / train.stats[0]
    guess = torch.cat([x[:, :-1, :2] + dt * scale * x[:, :-1, 2:],
                       x[:, :-1, 2:]], -1)
    row = dict(particles=args.particles, strength=k, vel_norm=args.vel_norm,
               frames=train.num_frames, frame_dt=dt,
               spring_share=round(train.interacting_share, 3),
               missed_share=train.missed_share, stats=train.stats,
               mse_const_velocity=float(F.mse_loss(guess, x[:, 1:])))
    for mode in ('true', 'none'):
        torch.manual_seed(0)
        dec = NRIDecoder(4, 2, args.hidden, args.hidden, args.hidden,
                         skip_first=True)
        opt = torch.optim.Adam(dec.parameters(), lr=5e-4)
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()

        def z_of(b):
            lab = b.edge_label if mode == 'true' else torch.zeros_like(
                b.edge_label)
            return F.one_hot(lab, 2).float()

        for step in range(args.steps):
            idx = torch.randint(len(train), (args.batch_size, ),
                                generator=gen)
            b = train.batch(idx)
            pred = dec(b.x, b.edge_index, z_of(b), args.pred_steps)
            loss = F.mse_loss(pred, b.x[:, 1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = dec(vb.x, vb.edge_index, z_of(vb), args.pred_steps)
            row[f'mse_{mode}'] = float(F.mse_loss(pred, vb.x[:, 1:]))
        row[f'train_s_{mode}'] = round(time.perf_counter() - start, 1)
    row['ratio_none_over_true'] = row['mse_none'] / row['mse_true']
    row['loadavg'] = open('/proc/loadavg').read().split()[:3]
    print(json.dumps(row), flush=True)
