r"""NRI where the dense formulation cannot go: springs with hundreds or
thousands of particles, on a sparse candidate graph (the k nearest
neighbours of each particle in the first frame) instead of the complete
graph the reference's dense ``rel_rec`` / ``rel_send`` matrices
(``[n(n-1), n]`` each: 8 GB for 1000 particles in float32) describe.

    python examples/nri_sparse.py --particles 100 --train 200 --epochs 10
    python examples/nri_sparse.py --particles 1000 --train 16 --test 4 \
        --epochs 3 --batch-size 1 --root data/nri-sparse

Prints one JSON line per measurement: the time and peak memory of one
training step (whole NRI and encoder alone) on the kNN graph, the complete
graph and, for the encoder, the dense reference formulation — each only
where its estimated size fits a third of the free memory — then the test
edge accuracy on the candidate edges after ``--epochs`` of training, with
the share of candidate edges that are springs (the majority guess is the
baseline). ``--root`` caches the simulation (1000 particles take minutes).
"""
import argparse
import json

import torch

from pyg_relational.bench.scale import nri_step_rows, nri_train_row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--particles', type=int, default=100)
    p.add_argument('--k', type=int, default=8, help='candidate neighbours')
    p.add_argument('--train', type=int, default=200,
                   help='training systems')
    p.add_argument('--test', type=int, default=20)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--time-limit', type=float, default=None,
                   help='stop training after the epoch that reaches this '
                   'many minutes')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--sim-steps', type=int, default=1000,
                   help='simulation steps (a frame every 100)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--root', default=None, help='simulation cache folder')
    p.add_argument('--no-steps', action='store_true',
                   help='skip the step time / memory comparison')
    p.add_argument('--no-train', action='store_true',
                   help='skip training')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.no_steps:
        for row in nri_step_rows(args.particles, batch_size=1,
                                 hidden_channels=args.hidden,
                                 num_frames=args.sim_steps // 100 - 1,
                                 k=args.k, seed=args.seed):
            print(json.dumps(row), flush=True)
    if not args.no_train:
        row = nri_train_row(args.particles, args.train, args.test,
                            args.epochs, args.batch_size, k=args.k,
                            num_steps=args.sim_steps,
                            hidden_channels=args.hidden, root=args.root,
                            seed=args.seed, time_limit_s=None
                            if args.time_limit is None
                            else args.time_limit * 60)
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
