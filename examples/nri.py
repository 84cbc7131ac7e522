r"""Train Neural Relational Inference on simulated springs / charged particles.

    python examples/nri.py --system springs --particles 5 --out runs/springs5
    python examples/nri.py --recipe paper --system charged --out runs/charged5
    python examples/nri.py --system charged --precision bf16 --out runs/c5bf16

Two recipes fix every training choice; any flag given explicitly overrides
its recipe value (the report lists the overrides):

* ``cpu`` (default): the configuration recorded on a 2-core CPU: 20000
  training systems, batch 64, encoder/decoder hidden 128/64, 40 epochs,
  test on the last epoch; ``skip_first`` as in the paper (below).
* ``paper``: Kipf et al.'s reference commands: 50000 / 10000 / 10000
  systems, batch 128, hidden 256/256, Adam lr 5e-4 halved every 200 epochs,
  tau 0.5, 10 prediction steps, ``skip_first`` only for springs (every
  charged pair interacts), 500 epochs, test on the best-validation
  checkpoint (lowest validation NLL).

``--precision bf16`` runs every forward pass under bfloat16 autocast (CPU
or CUDA): matmuls in bfloat16, weights, gradients and Adam in float32.
float32 stays the default until bf16 is measured to reach the same accuracy
(``benchmarks/results/nri.md``).

Writes to ``--out``: ``checkpoint.pt`` (after every epoch, atomically; rerun
the same command to resume: the resumed run is the uninterrupted run bit for
bit on CPU: model, optimizer, schedule, data order and the torch / NumPy /
Python random states, hence the Gumbel noise, are restored), ``best.pt``
(best-validation weights), ``log.csv`` (one row per epoch), ``test.json``
(test edge accuracy and MSE, the recipe and the command) and ``graphs.png``
(inferred vs true interaction graphs of a few test systems). Data is
simulated once and cached in ``--root``. Ctrl-C stops with one line and
exit status 130; the last checkpoint is intact.
"""
import sys

try:  # Ctrl-C while torch loads: one line, not a traceback
    import argparse
    import csv
    import io
    import json
    import os
    import os.path as osp
    import random
    import tempfile
    import time

    import numpy as np
    import torch
    from tqdm import tqdm

    from pyg_relational.bench.nri import (PRECISIONS, build_model,
                                          evaluate, make_datasets,
                                          skip_first_for, train_nri)
except KeyboardInterrupt:
    print('interrupted during start-up', file=sys.stderr)
    raise SystemExit(130)

# Every training choice, per recipe. skip_first depends on the system in
# every recipe (None: decided in resolve()): type 0 = "no interaction" only
# for springs; every charged pair interacts (attract / repel), so a charged
# model that skips type 0 cannot express attraction.
RECIPES = {
    'cpu': dict(train=20000, valid=500, test=1000, epochs=40, batch_size=64,
                lr=5e-4, encoder_hidden=128, decoder_hidden=64,
                skip_first=None, pred_steps=10, tau=0.5, test_on='last'),
    'paper': dict(train=50000, valid=10000, test=10000, epochs=500,
                  batch_size=128, lr=5e-4, encoder_hidden=256,
                  decoder_hidden=256, skip_first=None, pred_steps=10,
                  tau=0.5, test_on='best'),
}
# Arguments a resumed run must share with its checkpoint (the others:
# --epochs, --time-limit, --threads, --device, --no-progress, --no-plot,
# --root, --out may change between runs).
SAME_RUN = ('recipe', 'system', 'particles', 'train', 'valid', 'test',
            'sim_steps', 'batch_size', 'lr', 'encoder_hidden',
            'decoder_hidden', 'decoder', 'skip_first', 'pred_steps', 'tau',
            'hard', 'seed', 'test_on', 'precision')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--recipe', default='cpu', choices=sorted(RECIPES),
                   help='preset of every training choice (default: cpu)')
    p.add_argument('--system', default='springs',
                   choices=['springs', 'charged'])
    p.add_argument('--particles', type=int, default=5)
    p.add_argument('--train', type=int)
    p.add_argument('--valid', type=int)
    p.add_argument('--test', type=int)
    p.add_argument('--sim-steps', type=int, default=5000,
                   help='simulation steps of a training trajectory (every '
                   '100th is a frame; the test set has twice as many)')
    p.add_argument('--epochs', type=int)
    p.add_argument('--batch-size', type=int)
    p.add_argument('--lr', type=float)
    p.add_argument('--encoder-hidden', type=int)
    p.add_argument('--decoder-hidden', type=int)
    p.add_argument('--decoder', default='mlp', choices=['mlp', 'rnn'])
    p.add_argument('--skip-first', action=argparse.BooleanOptionalAction,
                   default=None)
    p.add_argument('--pred-steps', type=int)
    p.add_argument('--tau', type=float)
    p.add_argument('--hard', action='store_true')
    p.add_argument('--test-on', choices=['last', 'best'],
                   help='test the last epoch or the best-validation one')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--time-limit', type=float, default=None,
                   help='stop training after this many minutes')
    p.add_argument('--root', default='data/nri')
    p.add_argument('--out', default='runs/nri')
    p.add_argument('--device', default='cpu')
    p.add_argument('--precision', default='float32', choices=PRECISIONS,
                   help='forward passes in float32 (default) or bfloat16 '
                   'autocast (CPU or CUDA; weights, gradients and Adam stay '
                   'float32)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--no-plot', action='store_true')
    return resolve(p.parse_args(argv))


def resolve(args):
    """Fill every flag left unset from the recipe; record the overrides."""
    recipe = dict(RECIPES[args.recipe])
    if recipe['skip_first'] is None:  # only springs have non-edges
        recipe['skip_first'] = skip_first_for(args.system)
    args.overrides = {}
    for key, value in recipe.items():
        given = getattr(args, key)
        if given is None:
            setattr(args, key, value)
        elif given != value:
            args.overrides[key] = given
    return args


# --------------------------------------------------------------------------
# Checkpoints: atomic writes, readable errors, exact random states.
# --------------------------------------------------------------------------
def write_atomic(path, write):
    """``write(f)`` into a unique temporary file beside ``path``, then an
    atomic rename: an interrupt while writing leaves the previous file
    intact and no temporary file behind."""
    fd, tmp = tempfile.mkstemp(prefix=osp.basename(path) + '.',
                               suffix='.tmp', dir=osp.dirname(path) or '.')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def save_atomic(obj, path):
    write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(text, path):
    write_atomic(path, lambda f: f.write(text.encode()))


def random_states():
    """The torch, NumPy and Python random states (weights-only loadable)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    states = dict(torch=torch.get_rng_state(),
                  numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)),
                             pos=int(pos), has_gauss=int(has_gauss),
                             gauss=float(gauss)),
                  python=random.getstate())
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states):
    torch.set_rng_state(states['torch'])
    n = states['numpy']
    np.random.set_state(('MT19937', n['keys'].numpy().astype(np.uint32),
                         n['pos'], n['has_gauss'], n['gauss']))
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


def load_checkpoint(path, args):
    """The checkpoint at ``path``, checked against ``args``; exits with a
    message naming the file when it cannot be used."""
    try:
        state = torch.load(path, weights_only=True)
        epoch = int(state['epoch'])
        lr = state['optimizer']['param_groups'][0]['initial_lr']
    except Exception as e:
        raise SystemExit(
            f"cannot resume: the checkpoint {path} is unreadable "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e!r})"
            f". Move it away to start over, or pass another --out.") from None
    if lr != args.lr:
        raise SystemExit(
            f"cannot resume {path} with --lr {args.lr}: the run was trained "
            f"with lr {lr}, and a resumed run takes its learning rate and "
            f"schedule from the checkpoint. Rerun with --lr {lr} to resume, "
            f"or pass a new --out to train with --lr {args.lr}.")
    saved = state.get('args', {})
    changed = {key: (saved[key], getattr(args, key)) for key in SAME_RUN
               if key in saved and saved[key] != getattr(args, key)}
    if changed:
        listed = ', '.join(f'{k}: {a!r} -> {b!r}'
                           for k, (a, b) in changed.items())
        raise SystemExit(
            f"cannot resume {path}: this command changes the run ({listed})"
            f". Rerun with the original values to resume, or pass a new "
            f"--out for a new run.")
    if 'random' not in state:
        print(f'warning: {path} predates saved random states; the resumed '
              f'run continues but is not bit-identical', file=sys.stderr)
    return state, epoch


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------
def plot_graphs(model, test, path, num_frames, num=4, device='cpu'):
    """Inferred vs true interaction graphs of ``num`` test systems."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import math
    model.eval()
    num = min(num, len(test))
    b = test.batch(torch.arange(num)).to(device)
    with torch.no_grad():
        logits = model.encoder(b.x[:, :num_frames], b.edge_index)
    prob = logits.softmax(-1)[:, 1:].sum(-1).cpu()  # P(an interaction)
    n = test.num_particles
    angle = torch.arange(n) * 2 * math.pi / n
    pos = torch.stack([angle.cos(), angle.sin()], -1)
    fig, axes = plt.subplots(2, num, figsize=(3 * num, 6), squeeze=False)
    per = n * (n - 1)
    src, dst = test[0].edge_index
    for s in range(num):
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


def log_csv(history):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(history[0]))
    w.writeheader()
    w.writerows(history)
    return out.getvalue()


def run(args, argv, progress):
    """Train and test; ``progress`` records the last checkpoint written."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = osp.join(args.out, 'checkpoint.pt')
    best_path = osp.join(args.out, 'best.pt')
    state, first = (load_checkpoint(ckpt_path, args)
                    if osp.exists(ckpt_path) else (None, 0))
    t0 = time.perf_counter()
    train, valid, test = make_datasets(args.system, args.particles,
                                       args.train, args.valid, args.test,
                                       args.root, args.seed,
                                       num_steps=args.sim_steps,
                                       test_steps=2 * args.sim_steps)
    sim_minutes = (time.perf_counter() - t0) / 60
    model = build_model(train.num_frames, 4, args.encoder_hidden,
                        args.decoder_hidden, args.decoder,
                        skip_first=args.skip_first, tau=args.tau,
                        hard=args.hard)
    best = dict(epoch=0, valid_nll=float('inf'))
    if state is not None:
        print(f"resuming from {ckpt_path} (epoch {first})", file=sys.stderr)
        if 'random' in state:  # the states at the start of the next epoch
            set_random_states(state['random'])
        best = state.get('best', best)
    batches = -(-len(train) // args.batch_size)
    bar = tqdm(total=args.epochs * batches, disable=args.no_progress,
               initial=first * batches,
               desc=f'{args.system}-{args.particles}', mininterval=5)
    progress.update(checkpoint=ckpt_path, epoch=first)

    def on_batch(loss):
        bar.update(1)
        bar.set_postfix(loss=f'{loss:.1f}', refresh=False)

    def on_epoch(row):
        state = row.pop('state')
        if row['valid_nll'] < best['valid_nll']:
            best.update(epoch=row['epoch'], valid_nll=row['valid_nll'])
            save_atomic(state['model'], best_path)
        keep = {k: getattr(args, k) for k in SAME_RUN}
        save_atomic(dict(state, random=random_states(), args=keep,
                         best=dict(best)), ckpt_path)
        progress['epoch'] = row['epoch']
        write_text_atomic(log_csv(state['history']),
                          osp.join(args.out, 'log.csv'))
        bar.write(f"epoch {row['epoch']}: train loss "
                  f"{row['train_loss']:.1f}, valid edge acc "
                  f"{row['valid_edge_accuracy']:.4f}, "
                  f"{row['minutes']:.1f} min")

    history = train_nri(
        model, train, valid, args.epochs, args.batch_size, args.lr,
        args.pred_steps, args.device, args.seed,
        None if args.time_limit is None else args.time_limit * 60,
        on_epoch, on_batch, state, args.precision)
    bar.close()
    if args.test_on == 'best' and best['epoch'] > 0:
        model.load_state_dict(torch.load(best_path, weights_only=True))
    result = evaluate(model, test, args.batch_size, train.num_frames,
                      args.pred_steps, args.device, args.precision)
    result.update(system=args.system, particles=args.particles,
                  precision=args.precision,
                  recipe=args.recipe, overrides=args.overrides,
                  tested_epoch=(best['epoch'] if args.test_on == 'best'
                                else len(history)),
                  test_on=args.test_on, num_train=len(train),
                  num_test=len(test), test_frames=test.num_frames,
                  epochs=len(history),
                  train_minutes=history[-1]['minutes'] if history else 0.,
                  simulate_minutes=sim_minutes,
                  command='python examples/nri.py ' + ' '.join(argv))
    write_text_atomic(json.dumps(result, indent=1),
                      osp.join(args.out, 'test.json'))
    if not args.no_plot:
        plot_graphs(model, test, osp.join(args.out, 'graphs.png'),
                    train.num_frames, device=args.device)
    print(json.dumps(result, indent=1))
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    progress = dict(checkpoint=None, epoch=0)
    try:
        return run(args, argv, progress)
    except KeyboardInterrupt:
        if progress['epoch'] > 0:
            msg = (f"interrupted; {progress['checkpoint']} holds epoch "
                   f"{progress['epoch']}: rerun the same command to resume")
        else:
            msg = 'interrupted before the first checkpoint'
        print(msg, file=sys.stderr)
        raise SystemExit(130)


if __name__ == '__main__':
    main()
