r"""Train Neural Relational Inference on simulated springs / charged particles.

    python examples/nri.py --system springs --particles 5 --out runs/springs5

Defaults are the configuration recorded on the 2-core CPU (20000 training
systems, batch 64, encoder/decoder hidden 128/64, type 0 = no interaction);
the paper's are ``--train 50000 --batch-size 128 --encoder-hidden 256
--decoder-hidden 256 --epochs 500``.

Writes to ``--out``: ``checkpoint.pt`` (after every epoch; rerun the same
command to resume), ``log.csv`` (one row per epoch), ``test.json`` (test
edge accuracy and MSE) and ``graphs.png`` (inferred vs true interaction
graphs of a few test systems). Data is simulated once and cached in
``--root``.
"""
import argparse
import csv
import json
import os
import os.path as osp
import sys
import time

import torch
from tqdm import tqdm

from pyg_relational.bench.nri import (build_model, evaluate, make_datasets,
                                      train_nri)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--system', default='springs',
                   choices=['springs', 'charged'])
    p.add_argument('--particles', type=int, default=5)
    p.add_argument('--train', type=int, default=20000)
    p.add_argument('--valid', type=int, default=500)
    p.add_argument('--test', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=40)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=5e-4)
    p.add_argument('--encoder-hidden', type=int, default=128)
    p.add_argument('--decoder-hidden', type=int, default=64)
    p.add_argument('--decoder', default='mlp', choices=['mlp', 'rnn'])
    p.add_argument('--skip-first', action=argparse.BooleanOptionalAction,
                   default=True)
    p.add_argument('--pred-steps', type=int, default=10)
    p.add_argument('--tau', type=float, default=0.5)
    p.add_argument('--hard', action='store_true')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--time-limit', type=float, default=None,
                   help='stop training after this many minutes')
    p.add_argument('--root', default='data/nri')
    p.add_argument('--out', default='runs/nri')
    p.add_argument('--device', default='cpu')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def plot_graphs(model, test, path, num_frames, num=4, device='cpu'):
    """Inferred vs true interaction graphs of ``num`` test systems."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import math
    model.eval()
    b = test.batch(torch.arange(num)).to(device)
    with torch.no_grad():
        logits = model.encoder(b.x[:, :num_frames], b.edge_index)
    prob = logits.softmax(-1)[:, 1:].sum(-1).cpu()  # P(an interaction)
    n = test.num_particles
    angle = torch.arange(n) * 2 * math.pi / n
    pos = torch.stack([angle.cos(), angle.sin()], -1)
    fig, axes = plt.subplots(2, num, figsize=(3 * num, 6))
    per = n * (n - 1)
    for s in range(num):
        src, dst = (test._pair[0], test._pair[1])
        for row, (weights, title) in enumerate(
                ((b.edge_label[s * per:(s + 1) * per].float(), 'true'),
                 (prob[s * per:(s + 1) * per], 'inferred'))):
            ax = axes[row, s]
            for e in range(per):
                if src[e] < dst[e]:  # undirected: draw each pair once
                    w = float(weights[e])
                    ends = pos[torch.stack([src[e], dst[e]])]  # [2, 2]
                    ax.plot(ends[:, 0], ends[:, 1], color='k',
                            alpha=max(min(w, 1.), 0.), lw=2)
            ax.scatter(pos[:, 0], pos[:, 1], s=80, zorder=3)
            ax.set_title(f'system {s}: {title}')
            ax.set_aspect('equal')
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    train, valid, test = make_datasets(args.system, args.particles,
                                       args.train, args.valid, args.test,
                                       args.root, args.seed)
    sim_minutes = (time.perf_counter() - t0) / 60
    model = build_model(train.num_frames, 4, args.encoder_hidden,
                        args.decoder_hidden, args.decoder,
                        skip_first=args.skip_first, tau=args.tau,
                        hard=args.hard)
    ckpt_path = osp.join(args.out, 'checkpoint.pt')
    state = None
    if osp.exists(ckpt_path):
        state = torch.load(ckpt_path, weights_only=False)
        print(f"resuming from {ckpt_path} (epoch {state['epoch']})",
              file=sys.stderr)
    log_path = osp.join(args.out, 'log.csv')
    batches = -(-len(train) // args.batch_size)
    bar = tqdm(total=args.epochs * batches, disable=args.no_progress,
               initial=(state['epoch'] if state else 0) * batches,
               desc=f'{args.system}-{args.particles}', mininterval=5)

    def on_batch(loss):
        bar.update(1)
        bar.set_postfix(loss=f'{loss:.1f}', refresh=False)

    def on_epoch(row):
        state = row.pop('state')
        tmp = ckpt_path + '.tmp'
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)
        new = not osp.exists(log_path)
        with open(log_path, 'a', newline='') as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        bar.write(f"epoch {row['epoch']}: train loss "
                  f"{row['train_loss']:.1f}, valid edge acc "
                  f"{row['valid_edge_accuracy']:.4f}, "
                  f"{row['minutes']:.1f} min")

    history = train_nri(
        model, train, valid, args.epochs, args.batch_size, args.lr,
        args.pred_steps, args.device, args.seed,
        None if args.time_limit is None else args.time_limit * 60,
        on_epoch, on_batch, state)
    bar.close()
    result = evaluate(model, test, args.batch_size, train.num_frames,
                      args.pred_steps, args.device)
    result.update(system=args.system, particles=args.particles,
                  num_train=len(train), num_test=len(test),
                  test_frames=test.num_frames,
                  epochs=len(history),
                  train_minutes=history[-1]['minutes'] if history else 0.,
                  simulate_minutes=sim_minutes,
                  command='python examples/nri.py ' + ' '.join(
                      sys.argv[1:] if argv is None else argv))
    with open(osp.join(args.out, 'test.json'), 'w') as f:
        json.dump(result, f, indent=1)
    plot_graphs(model, test, osp.join(args.out, 'graphs.png'),
                train.num_frames, device=args.device)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
