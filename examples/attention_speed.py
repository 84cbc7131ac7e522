"""Forward+backward speed of MultiheadAttentionConv on complete graphs vs
nn.MultiheadAttention, PyG TransformerConv and GATConv, and on a window graph
(radius 16, N = 4096) vs dense full attention. Prints a markdown table.

    python examples/attention_speed.py --quick     # seconds
    python examples/attention_speed.py             # full sizes (minutes)
    python examples/attention_speed.py --twins     # twin errors instead
"""
import argparse
import json

import torch

from pyg_relational.bench.attention import speed_cases, twin_cases
from pyg_relational.bench.results import asdict


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=None)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--json', default=None)
    parser.add_argument('--message-path', action='store_true',
                        help="time the per-edge message path (path='message')")
    parser.add_argument('--twins', action='store_true',
                        help='print the twin table (largest differences)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.twins:
        print('| layer | twin | config | dtype | max abs err | '
              'max abs grad err | tol | passed |')
        print('|---|---|---|---|---|---|---|---|')
        for r in twin_cases(quick=args.quick, device=args.device):
            print(f'| {r.layer} | {r.twin} | {r.config} | {r.dtype} | '
                  f'{r.max_abs_err:.1e} | {r.max_abs_grad_err:.1e} | '
                  f'{r.tolerance:.0e} | {r.passed} |')
        return
    results = speed_cases(quick=args.quick, device=args.device,
                          repeat=args.repeat, path='message' if args.message_path else 'auto',
                          progress=lambda s: print(s, flush=True))
    print('\n| graph layer | baseline | config | edges | graph s | '
          'baseline s | time ratio | memory ratio |')
    print('|---|---|---|---|---|---|---|---|')
    for r in results:
        mem = 'n/a' if r.memory_ratio is None else f'{r.memory_ratio:.2f}'
        print(f'| {r.operator} | {r.baseline} | {r.config} | {r.num_edges} '
              f'| {r.graph_s:.4f} | {r.baseline_s:.4f} | '
              f'{r.time_ratio:.2f} | {mem} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([dict(asdict(r), time_ratio=r.time_ratio,
                            memory_ratio=r.memory_ratio) for r in results],
                      f, indent=1)


if __name__ == '__main__':
    main()
