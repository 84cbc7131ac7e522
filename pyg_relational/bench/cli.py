r"""The ``pyg-relational bench`` command line.

.. code-block:: text

    pyg-relational bench [SUITE ...] [--quick | --full] [--device cpu|cuda]
                         [--out DIR] [--seeds N] [--data-root DIR]
                         [--threads N] [--list] [--no-plots] [--no-progress]

Without a suite it runs every suite of the registry in quick mode (under
10 minutes on a 2-core CPU); ``--full`` runs them at the sizes of the
issues. It shows tqdm progress bars, writes ``report.md``, ``results.json``
and PNG plots to ``--out`` and prints a one-screen summary.

Exit status: ``0`` when every suite ran, ``1`` when a suite failed or was
incomplete (e.g. a provider module is missing: its message is in the
summary and the report) or a twin is outside its tolerance, ``2`` for bad usage (unknown suite, ``--device
cuda`` without CUDA, a missing ``--data-root``, an ``--out`` that cannot be
created), ``130`` when interrupted — always a one-line message, never a
traceback (``--traceback`` shows a failing suite's for debugging). What
native code writes to stderr while the suites run (e.g. the torch profiler's
log lines) goes to ``DIR/native.log``.
"""
import argparse
import contextlib
import importlib.util
import os
import os.path as osp
import sys
import time
import traceback
from typing import List, Optional, Sequence, TextIO

import torch

from . import report
from .suites import SUITES, BenchError, get_suite

__all__ = ['build_parser', 'run', 'main', 'check_device']

DEFAULT_OUT = 'bench-report'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='pyg-relational bench',
        description='Run the pyg_relational benchmark suites and write a '
        'report (report.md, results.json, PNG plots).',
        epilog='suites: ' + ', '.join(SUITES) +
        '. Without SUITE: every suite, quick.')
    parser.add_argument('suites', nargs='*', metavar='SUITE',
                        help='suites to run (default: all, in quick mode)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--quick', action='store_true',
                      help='reduced sizes (seconds to minutes per suite)')
    mode.add_argument('--full', action='store_true',
                      help='the sizes of the issues, also when no SUITE is '
                      'named')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' or 'cuda' / 'cuda:N' (default: cpu)")
    parser.add_argument('--out', default=DEFAULT_OUT, metavar='DIR',
                        help=f'output folder (default: ./{DEFAULT_OUT})')
    parser.add_argument('--seeds', type=int, default=None, metavar='N',
                        help='number of seeds for suites that train models '
                        '(default: per suite)')
    parser.add_argument('--data-root', default=None, metavar='DIR',
                        help='folder holding planetoid/ (default: '
                        '$PYG_RELATIONAL_DATA or ../shared/data)')
    parser.add_argument('--threads', type=int, default=None, metavar='N',
                        help='torch.set_num_threads(N) before running')
    parser.add_argument('--list', action='store_true',
                        help='list the suites and exit')
    parser.add_argument('--no-plots', action='store_true',
                        help='skip the PNG plots')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bars')
    parser.add_argument('--traceback', action='store_true',
                        help='print the traceback of a failing suite')
    return parser


def check_device(device: str) -> str:
    """``device`` if it can run here, else :class:`BenchError` with the
    fix."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise BenchError(f"--device {device!r} is not a device; use 'cpu' "
                         f"or 'cuda'") from None
    if dev.type == 'cpu':
        return 'cpu'
    if dev.type != 'cuda':
        raise BenchError(f"--device {device!r} is not supported; use 'cpu' "
                         f"or 'cuda'")
    if not torch.cuda.is_available():
        raise BenchError(f"--device {device} was asked for but CUDA is not "
                         f"available here (torch {torch.__version__}); run "
                         f"with --device cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BenchError(f"--device {device}: only "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    return str(dev)


def _data_root(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if not osp.isdir(value):
        raise BenchError(f"--data-root {value!r} does not exist; point it at "
                         f"the folder that holds planetoid/ (or leave it out "
                         f"to use $PYG_RELATIONAL_DATA)")
    return value


class _Progress:
    """A tqdm bar for one suite; suites call it with a short string per
    finished step."""

    def __init__(self, name: str, enabled: bool, stream: TextIO):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(desc=name, unit='step', file=stream,
                            leave=False, dynamic_ncols=True)

    def __call__(self, message: str):
        if self.bar is not None:
            self.bar.set_postfix_str(str(message)[:60], refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _native_stderr(path: str, stream: TextIO):
    """Send what native code writes to file descriptor 2 (e.g. the torch
    profiler's per-call log lines) to ``path`` while the suites run, and
    yield a stream on the terminal's stderr for the progress bars. Only for
    a real terminal stream; otherwise a no-op."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd != 2:
        yield stream
        return
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    stream.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), 'w', buffering=1)
    with open(path, 'ab') as log:
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            terminal.close()


def run(names: Sequence[str], quick: bool = True, device: str = 'cpu',
        progress: bool = False, stream: TextIO = sys.stderr,
        show_traceback: bool = False, **options) -> List[report.SuiteRun]:
    """Run the suites ``names`` and return one
    :class:`~pyg_relational.bench.report.SuiteRun` each. A suite that raises
    is recorded as ``failed`` (or ``incomplete`` when a gathering suite
    misses a provider) and the others still run."""
    suites = [get_suite(n) for n in names]
    runs = []
    outer = None
    if progress and len(suites) > 1:
        from tqdm.auto import tqdm
        outer = tqdm(total=len(suites), desc='suites', unit='suite',
                     file=stream, dynamic_ncols=True)
    for suite in suites:
        bar = _Progress(suite.name, progress, stream)
        record = report.SuiteRun(suite.name, suite.description, suite.kind,
                                 plot=suite.plot)
        start = time.perf_counter()
        try:
            record.rows = list(suite.run(quick=quick, device=device,
                                         progress=bar, **options))
        except BenchError as e:  # rows: what ran before the error
            record.rows = e.rows
            record.status = 'incomplete' if e.rows else 'failed'
            record.error = str(e)
        except Exception as e:  # noqa: BLE001 -- reported, never hidden
            record.status = 'failed'
            record.error = (f'{type(e).__name__}: {e} (rerun with '
                            f'--traceback for details)')
            if show_traceback:
                traceback.print_exc(file=stream)
        finally:
            bar.close()
        record.seconds = time.perf_counter() - start
        if suite.kind == 'twins' and record.status == 'ok':
            bad = [r for r in record.table_rows() if not r.get('passed')]
            if bad:  # the suite ran, but a twin disagrees: not a success
                record.status = 'mismatch'
                record.error = (f'{len(bad)} of {len(record.rows)} twins '
                                f'outside tolerance: ' + '; '.join(
                                    f"{r['layer']} vs {r['twin']} "
                                    f"({r['config']}, {r['dtype']})"
                                    for r in bad[:3]))
        runs.append(record)
        if outer is not None:
            outer.set_postfix_str(suite.name)
            outer.update(1)
    if outer is not None:
        outer.close()
    return runs


def main(argv: Optional[Sequence[str]] = None,
         stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    """Entry point of ``pyg-relational bench`` and ``python -m
    pyg_relational.bench``; returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == 'bench':  # `pyg-relational bench ...`
        argv = argv[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its message
        return int(e.code or 0)

    if args.list:
        for suite in SUITES.values():
            stdout.write(f'{suite.name:16s} {suite.description}\n')
        return 0
    try:
        names = list(dict.fromkeys(args.suites)) or \
            [n for n, s in SUITES.items() if s.default]
        for name in names:
            get_suite(name)
        device = check_device(args.device)
        data_root = _data_root(args.data_root)
        if args.seeds is not None and args.seeds < 1:
            raise BenchError(f'--seeds must be >= 1 (got {args.seeds})')
        if args.threads is not None:
            if args.threads < 1:
                raise BenchError(f'--threads must be >= 1 (got '
                                 f'{args.threads})')
            torch.set_num_threads(args.threads)
        for needed, module, flag in ((not args.no_progress, 'tqdm',
                                      '--no-progress'),
                                     (not args.no_plots, 'matplotlib',
                                      '--no-plots')):
            if needed and importlib.util.find_spec(module) is None:
                raise BenchError(f"{module} is not installed; pip install "
                                 f"'pyg-relational[bench]' or pass {flag}")
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise BenchError(f'cannot create --out {args.out!r}: '
                             f'{e.strerror or e}; choose a writable '
                             f'folder') from None
    except BenchError as e:
        stderr.write(f'pyg-relational bench: error: {e}\n')
        return 2

    quick = args.quick or (not args.suites and not args.full)
    meta = report.environment(device, quick)
    meta['command'] = 'pyg-relational bench ' + ' '.join(argv)
    try:
        with _native_stderr(osp.join(args.out, 'native.log'),
                            stderr) as terminal:
            runs = run(names, quick=quick, device=device,
                       progress=not args.no_progress, stream=terminal,
                       show_traceback=args.traceback, seeds=args.seeds,
                       data_root=data_root)
    except KeyboardInterrupt:
        stderr.write('pyg-relational bench: interrupted\n')
        return 130
    try:
        report.write_report(runs, meta, args.out, plots=not args.no_plots)
    except OSError as e:
        stderr.write(f'pyg-relational bench: error: cannot write the report '
                     f'to {args.out!r}: {e}\n')
        return 2
    stdout.write(report.render_summary(runs, meta, args.out) + '\n')
    return 0 if all(r.status == 'ok' for r in runs) else 1
