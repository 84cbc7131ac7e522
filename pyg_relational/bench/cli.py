r"""The ``pyg-relational bench`` command line.

.. code-block:: text

    pyg-relational bench [SUITE ...] [--full] [--device cpu|cuda]
                         [--out DIR] [--seeds N] [--data-root DIR]
                         [--threads N] [--list] [--no-plots] [--no-progress]
    pyg-relational --version

Bare ``pyg-relational`` prints the help. ``pyg-relational bench`` runs every
suite in quick mode: a smoke test at tiny sizes (minutes), which says so on
screen and in the report; its accuracy rows carry a chance level and no
paper figure. ``--full`` runs the real sizes and training budgets (hours on
a CPU). Suites that measure time run on one CPU thread unless ``--threads``
says otherwise, and a warning is printed when the load average exceeds the
core count. ``report.md`` and ``results.json`` in ``--out`` are rewritten
after every suite, so an interrupted run keeps what finished.

Exit status: ``0`` when every suite ran or was skipped (a suite whose data
is absent here and cannot be downloaded, e.g. offline: one row
``skipped: <why>, <how to provide it>`` in the summary and the report),
``1`` when a suite failed or was incomplete (its message is in the summary
and the report) or a twin is outside its tolerance, ``2`` for bad usage (unknown suite, ``--device cuda``
without CUDA, a missing ``--data-root``, an ``--out`` that cannot be
created), ``130`` when interrupted (Ctrl-C) — always a one-line message,
never a traceback (``--traceback`` shows a failing suite's for debugging).
What libraries write to stderr while the suites run (e.g. the torch
profiler, which measures CPU peak memory, or PyG preparing a data set) goes
to ``DIR/native.log``, kept and mentioned in the report only when not empty.
"""
import argparse
import contextlib
import importlib.util
import os
import os.path as osp
import sys
import time
import traceback
from typing import Callable, List, Optional, Sequence, TextIO

import torch

from . import report
from .suites import SUITES, BenchError, Suite, SuiteSkipped, get_suite

__all__ = ['build_parser', 'run', 'main', 'check_device', 'version']

DEFAULT_OUT = 'bench-report'


def version() -> str:
    """``pyg-relational X (torch Y, torch_geometric Z)``."""
    import torch_geometric

    from .. import __version__
    return (f'pyg-relational {__version__} (torch {torch.__version__}, '
            f'torch_geometric {torch_geometric.__version__})')


def build_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in SUITES) + 2
    parser = argparse.ArgumentParser(
        prog='pyg-relational bench',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Check and measure the pyg_relational layers: each '
        'layer against the PyTorch/PyG module it reproduces (errors, speed, '
        'memory), and the experiments of the papers they come from. Writes '
        'report.md, results.json and PNG plots.\n\n'
        'Without --full this is a smoke test (minutes): every suite at tiny '
        'sizes, to check that it runs. Its accuracies are not results; '
        '--full gives the real figures (hours on a CPU).',
        epilog='suites:\n' + '\n'.join(
            f'  {n:{width}s}{s.description}' for n, s in SUITES.items()) +
        '\n\nexamples:\n'
        '  pyg-relational bench                  every suite, smoke test\n'
        '  pyg-relational bench twins speed      two suites, smoke test\n'
        '  pyg-relational bench citation --full  real figures of one suite')
    parser.add_argument('suites', nargs='*', metavar='SUITE',
                        help='suites to run (default: all of them)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--quick', action='store_true',
                      help='smoke test at tiny sizes (the default)')
    mode.add_argument('--full', action='store_true',
                      help='real sizes and training budgets (hours on a '
                      'CPU)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' or 'cuda' / 'cuda:N' (default: cpu)")
    parser.add_argument('--out', default=DEFAULT_OUT, metavar='DIR',
                        help=f'output folder (default: ./{DEFAULT_OUT})')
    parser.add_argument('--seeds', type=int, default=None, metavar='N',
                        help='number of seeds for suites that train models '
                        '(default: 1 in the smoke test, more with --full)')
    parser.add_argument('--data-root', default=None, metavar='DIR',
                        help='folder holding planetoid/ (default: '
                        '$PYG_RELATIONAL_DATA, else ~/.cache/pyg_relational; '
                        'missing data is downloaded there; offline, the '
                        'citation suite is skipped, saying so)')
    parser.add_argument('--threads', type=int, default=None, metavar='N',
                        help='CPU threads (default: 1 for suites that '
                        'measure time, torch\'s default for the others)')
    parser.add_argument('--list', action='store_true',
                        help='list the suites and exit')
    parser.add_argument('--no-plots', action='store_true',
                        help='skip the PNG plots')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bars')
    parser.add_argument('--traceback', action='store_true',
                        help='print the traceback of a failing suite')
    parser.add_argument('--version', action='version', version=version())
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
                         f"to use $PYG_RELATIONAL_DATA, else "
                         f"~/.cache/pyg_relational)")
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
    a real terminal stream; otherwise a no-op. An empty ``path`` is removed
    afterwards."""
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
    try:
        with open(path, 'ab') as log:
            os.dup2(log.fileno(), 2)
            try:
                yield terminal
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                terminal.close()
    finally:
        if osp.exists(path) and osp.getsize(path) == 0:
            os.remove(path)


def _native_lines(path: str) -> int:
    if not osp.exists(path):
        return 0
    with open(path, 'rb') as f:
        return sum(1 for _ in f)


def _threads_for(suite: Suite, threads: Optional[int]) -> int:
    """``--threads`` if given, else 1 for a suite that measures time (other
    threads and processes would make its times noise), else torch's
    default."""
    if threads is not None:
        return threads
    return 1 if suite.timing else _DEFAULT_THREADS


_DEFAULT_THREADS = torch.get_num_threads()


def run(names: Sequence[str], quick: bool = True, device: str = 'cpu',
        progress: bool = False, stream: TextIO = sys.stderr,
        show_traceback: bool = False, threads: Optional[int] = None,
        on_done: Optional[Callable[[report.SuiteRun], None]] = None,
        **options) -> List[report.SuiteRun]:
    """Run the suites ``names`` and return one
    :class:`~pyg_relational.bench.report.SuiteRun` each. A suite that raises
    is recorded as ``failed`` (or ``incomplete`` when a gathering suite
    misses a provider) and the others still run. Each suite runs on
    ``threads`` CPU threads (default: see :func:`_threads_for`);
    ``on_done(record)`` is called as soon as a suite has finished."""
    suites = [get_suite(n) for n in names]
    runs = []
    outer = None
    if progress and len(suites) > 1:
        from tqdm.auto import tqdm
        outer = tqdm(total=len(suites), desc='suites', unit='suite',
                     file=stream, dynamic_ncols=True)
    before_threads = torch.get_num_threads()
    try:
        for suite in suites:
            runs.append(_run_one(suite, quick, device, progress, stream,
                                 show_traceback, threads, options))
            if on_done is not None:
                on_done(runs[-1])
            if outer is not None:
                outer.set_postfix_str(suite.name)
                outer.update(1)
    finally:
        torch.set_num_threads(before_threads)
        if outer is not None:
            outer.close()
    return runs


def _run_one(suite: Suite, quick: bool, device: str, progress: bool,
             stream: TextIO, show_traceback: bool, threads: Optional[int],
             options) -> report.SuiteRun:
    bar = _Progress(suite.name, progress, stream)
    record = report.SuiteRun(suite.name, suite.description, suite.kind,
                             plot=suite.plot, summary=suite.summary,
                             threads=_threads_for(suite, threads))
    torch.set_num_threads(record.threads)
    load = report.load_average()
    start = time.perf_counter()
    try:
        record.rows = suite.present(list(suite.run(
            quick=quick, device=device, progress=bar, **options)), quick)
    except SuiteSkipped as e:  # data absent here: says why and how
        record.rows = []
        record.status = 'skipped'
        record.error = f'skipped: {e}'
    except BenchError as e:  # rows: what ran before the error
        record.rows = suite.present(e.rows, quick)
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
    record.load = (load, report.load_average())
    if suite.kind == 'twins' and record.status == 'ok':
        bad = [r for r in record.table_rows() if not r.get('passed')]
        if bad:  # the suite ran, but a twin disagrees: not a success
            record.status = 'mismatch'
            record.error = (f'{len(bad)} of {len(record.rows)} twins '
                            f'outside tolerance: ' + '; '.join(
                                f"{r['layer']} vs {r['twin']} "
                                f"({r['config']}, {r['dtype']})"
                                for r in bad[:3]))
    return record


def main(argv: Optional[Sequence[str]] = None,
         stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    """Entry point of ``pyg-relational`` and ``python -m
    pyg_relational.bench``; returns the exit status. Ctrl-C at any point
    ends it with one line and status 130."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        return _main(argv, stdout, stderr)
    except KeyboardInterrupt:
        stderr.write('pyg-relational bench: interrupted\n')
        return 130


def _main(argv, stdout: TextIO, stderr: TextIO) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # bare `pyg-relational`: say what it does, run nothing
        stdout.write(parser.format_help())
        return 0
    if argv[0] == 'bench':  # `pyg-relational bench ...`
        argv = argv[1:]
    try:
        with contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its message (or --version)
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
        if args.threads is not None and args.threads < 1:
            raise BenchError(f'--threads must be >= 1 (got {args.threads})')
        for needed, module, flag in ((not args.no_progress, 'tqdm',
                                      '--no-progress'),
                                     (not args.no_plots, 'matplotlib',
                                      '--no-plots')):
            if needed and importlib.util.find_spec(module) is None:
                raise BenchError(f"{module} is not installed; pip install "
                                 f"{module} (or, in the clone, pip install "
                                 f"-e '.[bench]'), or pass {flag}")
        try:
            writer = report.ReportWriter(args.out, {}, plots=not
                                         args.no_plots)
        except OSError as e:
            raise BenchError(f'cannot create --out {args.out!r}: '
                             f'{e.strerror or e}; choose a writable '
                             f'folder') from None
    except BenchError as e:
        stderr.write(f'pyg-relational bench: error: {e}\n')
        return 2

    quick = not args.full
    meta = writer.meta
    meta.update(report.environment(device, quick))
    meta['command'] = 'pyg-relational bench ' + ' '.join(argv)
    meta['not_run'] = list(names)
    for line in ([report.QUICK_NOTE] if quick else []) + \
            [f'warning: {w}' for w in [report.load_warning(meta)] if w]:
        stderr.write(line + '\n')

    def done(record):
        meta['not_run'].remove(record.name)
        writer.add(record)

    log = osp.join(args.out, 'native.log')
    try:
        with _native_stderr(log, stderr) as terminal:
            runs = run(names, quick=quick, device=device,
                       progress=not args.no_progress, stream=terminal,
                       show_traceback=args.traceback, threads=args.threads,
                       on_done=done, seeds=args.seeds, data_root=data_root)
    except KeyboardInterrupt:
        meta['interrupted'] = True
        meta['native_log'] = _native_lines(log)
        _write(writer, args.out, stderr)
        stderr.write(f'pyg-relational bench: interrupted; '
                     f'{len(writer.runs)} finished suite(s) are in '
                     f'{osp.join(args.out, "report.md")}\n')
        return 130
    except OSError as e:
        stderr.write(f'pyg-relational bench: error: cannot write the report '
                     f'to {args.out!r}: {e}\n')
        return 2
    meta['native_log'] = _native_lines(log)
    if not _write(writer, args.out, stderr):
        return 2
    stdout.write(report.render_summary(runs, meta, args.out) + '\n')
    return 0 if all(r.status in ('ok', 'skipped') for r in runs) else 1


def _write(writer: report.ReportWriter, out: str, stderr: TextIO) -> bool:
    try:
        writer.write()
        return True
    except OSError as e:
        stderr.write(f'pyg-relational bench: error: cannot write the report '
                     f'to {out!r}: {e}\n')
        return False
