"""Forward+backward of FullyConnectedConv, LatticeConv and RecurrentConv
against nn.Linear, nn.Conv2d and nn.GRU on the same data: median time ratio
(graph / twin) and peak-memory ratio per case.

Run: python examples/classic_speed.py [--quick] [--threads 1] [--device cpu]
"""
import argparse
import time

import torch

from pyg_relational.bench.classic import speed_cases, twin_cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes (seconds)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch.set_num_threads (default: 1)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=None)
    parser.add_argument('--twins', action='store_true',
                        help='also check the twins (errors)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    results = speed_cases(quick=args.quick, device=args.device,
                          repeat=args.repeat)
    print(f'device={args.device} threads={torch.get_num_threads()} '
          f'torch={torch.__version__}')
    print(f"{'operator':30s} {'baseline':10s} {'config':40s} "
          f"{'graph ms':>9s} {'twin ms':>9s} {'time x':>7s} "
          f"{'graph MB':>9s} {'twin MB':>8s} {'mem x':>6s}")
    for r in results:
        mem = f'{r.memory_ratio:6.2f}' if r.memory_ratio else '     -'
        print(f'{r.operator:30s} {r.baseline:10s} {r.config:40s} '
              f'{r.graph_s * 1e3:9.1f} {r.baseline_s * 1e3:9.1f} '
              f'{r.time_ratio:7.2f} {r.graph_peak_bytes / 2**20:9.1f} '
              f'{r.baseline_peak_bytes / 2**20:8.1f} {mem}')
    if args.twins:
        print()
        for r in twin_cases(quick=args.quick, device=args.device):
            print(f"{'ok  ' if r.passed else 'FAIL'} {r.layer:20s} "
                  f'{r.twin:10s} {r.config:70s} out {r.max_abs_err:.1e} '
                  f'grad {r.max_abs_grad_err:.1e} (tol {r.tolerance:.0e})')
    print(f'({time.time() - start:.0f} s)')


if __name__ == '__main__':
    main()
