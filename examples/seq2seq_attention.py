"""Does attention fix seq2seq forgetting? A GRU encoder-decoder reverses
sequences of growing length without attention, with Bahdanau attention and
with Luong global / local-p attention (pyg_relational layers on bipartite and
window graphs). Prints token accuracy (greedy decoding) per length.

    python examples/seq2seq_attention.py            # full run (~10-20 min CPU)
    python examples/seq2seq_attention.py --steps 300 --lengths 10 20 30
    python examples/seq2seq_attention.py --quick    # seconds, smoke test
"""
import argparse
import json

import torch

from pyg_relational.bench.attention import MODELS, run_seq2seq


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--steps', type=int, default=None)
    parser.add_argument('--lengths', type=int, nargs='+', default=None)
    parser.add_argument('--hidden', type=int, default=None)
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=MODELS)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--window', type=int, default=4,
                        help='half-width D of Luong local-p')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--json', default=None,
                        help='also write the rows to this file')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run_seq2seq(quick=args.quick, lengths=args.lengths,
                       steps=args.steps, hidden=args.hidden,
                       models=args.models, seed=args.seed,
                       window=args.window,
                       progress=lambda s: print(s, flush=True))
    lengths = sorted({r['length'] for r in rows})
    models = list(dict.fromkeys(r['model'] for r in rows))
    acc = {(r['model'], r['length']): r for r in rows}
    print(f"\ntoken accuracy (sequence accuracy), {rows[0]['steps']} steps, "
          f"hidden {rows[0]['hidden']}, local-p window D={args.window}, "
          f"seed {args.seed}")
    print('| model | ' + ' | '.join(f'L={n}' for n in lengths) +
          ' | train s |')
    print('|---' * (len(lengths) + 2) + '|')
    for m in models:
        cells = [f"{acc[m, n]['accuracy']:.3f} "
                 f"({acc[m, n]['sequence_accuracy']:.2f})" for n in lengths]
        print(f'| {m} | ' + ' | '.join(cells) +
              f" | {acc[m, lengths[0]]['train_s']} |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
