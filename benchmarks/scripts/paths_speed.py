"""Issue 12's speed targets: every graph layer against its PyTorch twin on
its structured graph, forward+backward, CPU, one thread, the same data and
weights in the same run, timed in alternation (A B A B ..., medians of
`--repeat` runs after one warm-up round, `time.perf_counter` hand loop;
peak memory from the torch profiler: `pyg_relational.bench.timing`).
Prints one markdown table with the path each layer ran, the output
difference, the target and whether it is met.

    python benchmarks/scripts/paths_speed.py --quick      # < 1 min
    python benchmarks/scripts/paths_speed.py              # the issue's sizes
    python benchmarks/scripts/paths_speed.py --only attention --before DIR
    python benchmarks/scripts/paths_speed.py --only attention --cases gat_target

`--before DIR` loads the library found in DIR (a checkout of an earlier
commit, e.g. `git worktree add /tmp/before a1736f9`) under another name and
adds a row timing its AttentionConv against today's on the same random
graph (the "random sparse graphs: no slower than before" target).
"""
import argparse
import importlib
import importlib.util
import json
import os.path as osp
import sys
import time
from dataclasses import asdict

import torch

from pyg_relational.bench import attention, classic, non_local
from pyg_relational.bench.report import markdown_table

GROUPS = {'attention': attention, 'non_local': non_local,
          'classic': classic}


def table_row(r, memory: bool = True) -> dict:
    """One table row of a :class:`SpeedResult` of ``target_cases`` (the
    report formats ``*_s`` in ms, ``*_bytes`` in MiB; peaks blank when not
    measured)."""
    e = r.extra
    peaks = (r.graph_peak_bytes, r.baseline_peak_bytes, r.memory_ratio) \
        if memory else (None, None, None)
    return {'layer': r.operator, 'twin': r.baseline, 'config': r.config,
            'path': e['path'], 'graph_s': r.graph_s, 'twin_s': r.baseline_s,
            'time_ratio': r.time_ratio, 'graph_peak_bytes': peaks[0],
            'twin_peak_bytes': peaks[1], 'memory_ratio': peaks[2],
            'max_abs_err': e['max_abs_diff'],
            'target': e['target'], 'met': e['met']}


def load_before(root: str, name: str = 'pyg_relational_before'):
    """The ``pyg_relational`` package in ``root`` imported as ``name``
    (its imports are relative, so it does not clash with this one)."""
    init = osp.join(root, 'pyg_relational', '__init__.py')
    if not osp.isfile(init):
        raise SystemExit(f"--before {root!r}: no pyg_relational/__init__.py "
                         f"there; pass a checkout of the earlier commit")
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[osp.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f'{name}.nn')


def loadavg() -> str:
    try:
        with open('/proc/loadavg') as f:
            return f.read().strip()
    except OSError:
        return 'n/a'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='small sizes (under a minute)')
    parser.add_argument('--repeat', type=int, default=7,
                        help='timed alternated rounds (default 7)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch.set_num_threads (default 1)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--only', nargs='+', choices=sorted(GROUPS),
                        default=list(GROUPS), help='groups of rows to run')
    parser.add_argument('--before', metavar='DIR', default=None,
                        help='checkout of an earlier commit: adds its '
                        'AttentionConv on the random graph')
    parser.add_argument('--cases', nargs='+', default=None,
                        help="attention rows of these functions only, e.g. "
                        "gat_target (the GAT rows)")
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory runs')
    parser.add_argument('--json', metavar='PATH', default=None,
                        help='also write the rows (per-run times included)')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f'--repeat must be >= 1 (got {args.repeat})')
    missing = [n for n in args.only if not hasattr(GROUPS[n], 'target_cases')]
    if missing:
        raise SystemExit(
            f"the pyg_relational imported from "
            f"{osp.dirname(attention.__file__)} has no target_cases in "
            f"{', '.join(missing)} (an earlier version?); run this script "
            f"with today's library and pass the earlier checkout as "
            f"--before DIR")
    torch.set_num_threads(args.threads)
    before = {}
    if args.before is not None:
        before = {'before': load_before(args.before).AttentionConv,
                  'before_name': f'before: {args.before}'}

    load_start, start = loadavg(), time.perf_counter()
    results = []
    for name in args.only:
        kwargs = dict(quick=args.quick, device=args.device,
                      repeat=args.repeat, memory=not args.no_memory,
                      progress=lambda msg: print(f'  {msg}', file=sys.stderr,
                                                 flush=True))
        if name == 'attention':
            kwargs.update(before)
            if args.cases:
                kwargs['only'] = args.cases
        results += GROUPS[name].target_cases(**kwargs)
    seconds = time.perf_counter() - start

    import torch_geometric
    print(f"# Issue 12 speed targets ({'quick' if args.quick else 'full'} "
          f"sizes)\n")
    print(f"Command: `python benchmarks/scripts/paths_speed.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)}`  ")
    print(f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; device '
          f'{args.device}; torch {torch.__version__}; torch_geometric '
          f'{torch_geometric.__version__}; threads '
          f'{torch.get_num_threads()}; forward+backward float32, medians '
          f'of {args.repeat} alternated runs after 1 warm-up round; '
          f'{seconds:.0f} s  ')
    print(f'`cat /proc/loadavg` before: `{load_start}`, after: '
          f'`{loadavg()}`\n')
    print(markdown_table([table_row(r, not args.no_memory)
                          for r in results]))
    met = [r.extra['met'] for r in results if r.extra['met'] is not None]
    agree = sum(bool(r.extra['outputs_agree']) for r in results)
    print(f'\n{sum(met)}/{len(met)} targets met; outputs agree (scaled max '
          f'abs error <= 1e-4) in {agree}/{len(results)} rows.')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([dict(asdict(r), time_ratio=r.time_ratio,
                            memory_ratio=r.memory_ratio) for r in results],
                      f, indent=1, default=str)


if __name__ == '__main__':
    main()
