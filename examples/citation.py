r"""GCN, GAT and AttentionConv(score='gat') on Planetoid Cora and CiteSeer
(public split) with the papers' hyper-parameters; mean +- std test accuracy
over seeds (see :mod:`pyg_relational.bench.citation` for the protocol).

    python examples/citation.py                    # 10 seeds, both datasets
    python examples/citation.py --seeds 1 --quick  # smoke run

Data: ``--data-root DIR`` (a folder holding ``planetoid/``), else
``$PYG_RELATIONAL_DATA``, else ``~/.cache/pyg_relational``; PyG downloads the
raw files there when they are missing.
"""
import argparse
import sys
import time

import torch

from pyg_relational.bench.citation import (DATASETS, MODELS, DataNotFound,
                                           run_citation)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+', default=list(DATASETS))
    parser.add_argument('--models', nargs='+', default=list(MODELS))
    parser.add_argument('--seeds', type=int, default=10,
                        help='number of seeds (runs) per model and dataset')
    parser.add_argument('--first-seed', type=int, default=0,
                        help='seeds first-seed .. first-seed + seeds - 1')
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--data-root', default=None,
                        help='folder holding planetoid/ (default: '
                        '$PYG_RELATIONAL_DATA, else ~/.cache/pyg_relational)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    try:
        rows = run_citation(args.datasets, args.models, seeds,
                            quick=args.quick, device=args.device,
                            data_root=args.data_root,
                            progress=lambda s: print(s, flush=True))
    except DataNotFound as e:
        sys.exit(f'citation.py: error: {e}')
    print('\n| dataset | model | seeds | test acc (%) | paper | '
          'mean best epoch |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['seeds']} | "
              f"{r['test_acc_mean']:.1f} ± {r['test_acc_std']:.1f} | "
              f"{r['paper']:.1f} | {r['epochs']:.0f} |")
    print('\nprotocol: ' + '; '.join(sorted({r['model'] + ': ' +
                                             r['protocol'] for r in rows})))
    print(f'total time {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
