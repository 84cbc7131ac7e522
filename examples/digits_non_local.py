"""A small CNN with and without one NonLocalBlock on scikit-learn's bundled
8x8 digits: test accuracy over seeds, printed as a table.

Run: python examples/digits_non_local.py            (3 seeds, 30 epochs)
     python examples/digits_non_local.py --quick    (seconds)

The convolutions are LatticeConv (graph convolution on grid graphs) when
pyg_relational.nn exports it, else torch.nn.Conv2d; the table says which.
"""
import argparse
import statistics
import time

import torch

from pyg_relational.bench.non_local import run_digits


def summarise(rows):
    """Mean and standard deviation of the test accuracy per model."""
    out = []
    for model in dict.fromkeys(r['model'] for r in rows):
        acc = [r['test_acc'] for r in rows if r['model'] == model]
        secs = [r['train_s'] for r in rows if r['model'] == model]
        first = next(r for r in rows if r['model'] == model)
        out.append({
            'model': model, 'params': first['params'],
            'seeds': len(acc), 'epochs': first['epochs'],
            'test acc mean': statistics.mean(acc),
            'test acc std': statistics.stdev(acc) if len(acc) > 1 else 0.,
            'per seed': ' '.join(f'{a:.4f}' for a in acc),
            'train s / seed': statistics.mean(secs),
        })
    return out


def table(rows):
    cols = list(rows[0])
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    for r in rows:
        cells = [f'{v:.4f}' if isinstance(v, float) else str(v)
                 for v in r.values()]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=None)
    parser.add_argument('--pairwise', default='embedded_gaussian')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = run_digits(quick=args.quick, seeds=tuple(range(args.seeds)),
                      epochs=args.epochs, pairwise=args.pairwise,
                      progress=lambda s: print(' ', s, flush=True))
    r = rows[0]
    print(f"\nsklearn digits 8x8: {r['train_size']} train / {r['test_size']}"
          f" test images, {args.threads} thread(s), "
          f"{time.perf_counter() - start:.0f} s in total\n")
    print(table(summarise(rows)))


if __name__ == '__main__':
    main()
