r"""Neural Relational Inference where the dense formulation cannot go:
hundreds or thousands of particles whose true interaction graph is local and
sparse (:class:`~pyg_relational.datasets.LocalSpringsDataset`: each particle
tied by a spring to its 2 nearest at t = 0, mean degree about 2.6), inferred
on a sparse candidate graph (the k nearest neighbours in the first observed
frame) instead of the complete graph the reference's dense
``rel_rec`` / ``rel_send`` matrices (``[n(n-1), n]`` each: 8 GB for 1000
particles in float32) describe.

    python examples/nri_sparse.py --particles 100 --out runs/sparse100
    python examples/nri_sparse.py --particles 100 --candidates 99 \
        --out runs/sparse100_complete        # the complete candidate graph
    python examples/nri_sparse.py --particles 1000 --train 20 --valid 2 \
        --test 10 --batch-size 1 --epochs 1000 --time-limit 115 \
        --out runs/sparse1000    # the measured 1000-particle recipe
    python examples/nri_sparse.py --particles 100 --test-particles 1000 \
        --out runs/sparse100    # also test the trained model at 1000

Writes to ``--out``: ``log.csv`` (one row per epoch: training loss,
validation edge accuracy, minutes), ``model.pt`` (the weights after every
epoch; ``--init`` starts a run from such a file) and ``test.json`` (test edge
accuracy on the candidate edges, best relabelling of the types as in the
paper; the majority baseline; the share of true edges the candidate graph
misses; seconds per epoch; the command). Data is simulated once and cached
in ``--root``. ``--step-costs`` first prints the time and peak memory of one
training step on the kNN, complete and dense formulations.
"""
import argparse
import csv
import io
import json
import os
import os.path as osp
import sys
import time

import torch

from pyg_relational.bench.nri import build_model, evaluate, train_nri
from pyg_relational.datasets import LocalChargedDataset, LocalSpringsDataset

SYSTEMS = {'springs': (LocalSpringsDataset, 2),
           'charged': (LocalChargedDataset, 3)}  # dataset, edge types


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--system', default='springs', choices=sorted(SYSTEMS))
    p.add_argument('--particles', type=int, default=100)
    p.add_argument('--candidates', type=int, default=8,
                   help='nearest neighbours of the candidate graph '
                   '(particles - 1: the complete graph)')
    p.add_argument('--train', type=int, default=200,
                   help='training systems')
    p.add_argument('--valid', type=int, default=10)
    p.add_argument('--test', type=int, default=20)
    p.add_argument('--test-particles', type=int, nargs='*', default=[],
                   help='also test the trained model on systems of these '
                   'sizes (same physics and normalisation)')
    p.add_argument('--sim-steps', type=int, default=500,
                   help='simulation steps (dt 0.01; a frame every '
                   '--sample-every)')
    p.add_argument('--sample-every', type=int, default=10)
    p.add_argument('--strength', type=float, default=1.0,
                   help='spring constant / charge strength')
    p.add_argument('--vel-norm', type=float, default=0.5)
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--time-limit', type=float, default=None,
                   help='stop training after the epoch that reaches this '
                   'many minutes')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--lr', type=float, default=5e-4)
    p.add_argument('--pred-steps', type=int, default=10)
    p.add_argument('--precision', default='float32',
                   choices=['float32', 'bf16'])
    p.add_argument('--init', default=None,
                   help='start from these weights (a model.pt)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--root', default='data/nri-sparse',
                   help='simulation cache folder')
    p.add_argument('--out', default='runs/nri_sparse')
    p.add_argument('--device', default='cpu')
    p.add_argument('--step-costs', action='store_true',
                   help='first print the step time / memory comparison')
    return p.parse_args(argv)


def datasets(args, num_particles, stats=None):
    cls, _ = SYSTEMS[args.system]
    sim = dict(num_particles=num_particles, num_steps=args.sim_steps,
               sample_every=args.sample_every,
               interaction_strength=args.strength, vel_norm=args.vel_norm,
               candidates=min(args.candidates, num_particles - 1))
    if stats is None:
        train = cls(args.root, args.train, seed=args.seed, **sim)
        valid = cls(args.root, args.valid, seed=args.seed + 1,
                    stats=train.stats, **sim)
    else:
        train = valid = None
    test = cls(args.root, args.test, seed=args.seed + 2,
               stats=stats or train.stats, **sim)
    return train, valid, test


def describe(ds) -> dict:
    counts = torch.bincount(ds._data.edge_label).float()
    return dict(systems=len(ds), particles=ds.num_particles,
                candidate_edges_per_system=int(ds._data.edge_index.size(1)
                                               // max(len(ds), 1)),
                interacting_share=ds.interacting_share,
                # always guessing the most frequent type
                majority_acc=float(counts.max() / counts.sum()),
                missed_share=ds.missed_share,
                mean_degree=2 * ds.num_true_pairs / max(
                    len(ds) * ds.num_particles, 1))


def write_csv(rows, path):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    with open(path, 'w') as f:
        f.write(out.getvalue())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    if args.step_costs:
        from pyg_relational.bench.scale import nri_step_rows
        for row in nri_step_rows(args.particles, batch_size=1,
                                 hidden_channels=args.hidden,
                                 num_frames=args.sim_steps //
                                 args.sample_every - 1,
                                 k=args.candidates, seed=args.seed):
            print(json.dumps(row), flush=True)
    start = time.perf_counter()
    train, valid, test = datasets(args, args.particles)
    simulate_min = (time.perf_counter() - start) / 60
    _, num_types = SYSTEMS[args.system]
    # type 0 = no interaction: it sends no message (skip_first)
    model = build_model(train.num_frames, 4, args.hidden, args.hidden,
                        num_edge_types=num_types, skip_first=True)
    if args.init:
        model.load_state_dict(torch.load(args.init, weights_only=True))
    model_path = osp.join(args.out, 'model.pt')

    def on_epoch(row):
        state = row.pop('state')
        torch.save(state['model'], model_path)
        rows = [{k: v for k, v in r.items() if k != 'state'}
                for r in state['history']]
        write_csv(rows, osp.join(args.out, 'log.csv'))
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.1f}, "
              f"train edge acc {row['train_edge_accuracy']:.4f}, valid edge "
              f"acc {row['valid_edge_accuracy']:.4f}, "
              f"{row['minutes']:.1f} min", flush=True)

    history = train_nri(model, train, valid, args.epochs, args.batch_size,
                        args.lr, args.pred_steps, args.device, args.seed,
                        None if args.time_limit is None
                        else args.time_limit * 60, on_epoch,
                        precision=args.precision)
    result = dict(system=args.system, candidates=args.candidates,
                  train=describe(train), epochs=len(history),
                  train_minutes=history[-1]['minutes'] if history else 0.,
                  seconds_per_epoch=(60 * history[-1]['minutes'] /
                                     len(history)) if history else None,
                  simulate_minutes=simulate_min,
                  valid_edge_accuracy=[round(r['valid_edge_accuracy'], 4)
                                       for r in history])
    tests = {args.particles: test}
    for n in args.test_particles:
        tests[n] = datasets(args, n, stats=train.stats)[2]
    for n, ds in tests.items():
        res = evaluate(model, ds, args.batch_size, pred_steps=args.pred_steps,
                       device=args.device, precision=args.precision)
        result[f'test_{n}'] = dict(describe(ds), **res)
    result.update(loadavg_end=open('/proc/loadavg').read().split()[:3],
                  command='python examples/nri_sparse.py ' + ' '.join(argv))
    with open(osp.join(args.out, 'test.json'), 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    main()
