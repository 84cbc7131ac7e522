r"""Train an Interaction Network on 6-body gravitation to predict next-step
velocities, roll it out on held-out trajectories and compare its position MSE
with the constant-velocity baseline (see :mod:`pyg_relational.bench.physics`).

    python examples/interaction_network.py           # ~3-4 min on one CPU core
    python examples/interaction_network.py --quick   # smoke run
"""
import argparse
import time

import torch

from pyg_relational.bench.physics import run_physics


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--horizon', type=int, default=50)
    parser.add_argument('--num-test', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    rows = run_physics(quick=args.quick, device=args.device,
                       progress=lambda s: print(s, flush=True),
                       horizon=args.horizon, num_test=args.num_test,
                       seed=args.seed)
    print('\n| model | rollout MSE (positions) | baseline MSE / MSE |')
    print('|---|---|---|')
    for r in rows:
        print(f"| {r['model']} | {r['rollout_mse']:.3g} | "
              f"{r['ratio_to_baseline']:.1f}x |")
    r = rows[0]
    print(f"\n{r['bodies']} bodies, {r['num_test']} held-out trajectories, "
          f"horizon {r['horizon']} steps; {r['iterations']} iterations, "
          f"training {r['train_s']:.0f} s, total {time.time() - start:.0f} s")


if __name__ == '__main__':
    main()
