r"""Rendering of benchmark results: ``report.md`` (one table per suite),
``results.json`` (raw numbers), PNG plots and a one-screen terminal summary.

Suites return data (see :mod:`pyg_relational.bench.suites`); everything a
human reads is made here from :class:`SuiteRun` records, so the figures in
the report are exactly the numbers the suites returned.

Example:
    >>> from pyg_relational.bench.report import SuiteRun, markdown_table
    >>> run = SuiteRun('demo', 'a demo', 'rows',
    ...                rows=[{'graph': 'chain', 'test_acc': 0.5}])
    >>> print(markdown_table(run.table_rows()))
    | graph | test_acc |
    |---|---|
    | chain | 0.5000 |
"""
import datetime
import json
import math
import os
import os.path as osp
import platform
import textwrap
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .results import SpeedResult, TwinResult

__all__ = [
    'SuiteRun', 'ReportWriter', 'environment', 'load_average',
    'load_warning', 'to_row', 'markdown_table', 'render_markdown',
    'render_json', 'render_plots', 'figures', 'render_summary',
    'write_report',
    'format_value', 'column_name', 'time_unit', 'QUICK_NOTE',
    'SPEED_QUICK_NOTE'
]


@dataclass
class SuiteRun:
    """What one suite produced in one invocation: its rows, status, wall
    time, the number of CPU threads it ran with and the 1-minute load
    average before and after it."""
    name: str
    description: str
    kind: str  # 'twins' | 'speed' | 'rows'
    rows: List[Any] = field(default_factory=list)
    # 'ok' | 'skipped' | 'incomplete' | 'failed' | 'mismatch'
    status: str = 'ok'
    error: Optional[str] = None
    seconds: float = 0.0
    plot: Any = None  # a suites.LinePlot or None
    threads: Optional[int] = None
    load: Optional[Tuple[float, float]] = None  # (before, after)
    summary: Tuple[str, ...] = ()  # keys for the terminal summary

    def table_rows(self) -> List[Dict[str, Any]]:
        return [to_row(r) for r in self.rows]


def load_average() -> Optional[float]:
    """The 1-minute load average (:obj:`None` where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def environment(device: str, quick: bool) -> Dict[str, Any]:
    """Versions, device, date, core count and load average stamped on every
    report."""
    import torch_geometric
    dev = torch.device(device)
    name = 'cpu: ' + (platform.processor() or platform.machine())
    if dev.type == 'cuda' and torch.cuda.is_available():
        name = 'cuda: ' + torch.cuda.get_device_name(dev)
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'),
        'device': str(device),
        'device_name': name,
        'cpu_threads': torch.get_num_threads(),
        'cpu_count': os.cpu_count(),
        'load_average': load_average(),
        'quick': bool(quick),
        'torch': torch.__version__,
        'torch_geometric': torch_geometric.__version__,
        'python': platform.python_version(),
    }


def to_row(record) -> Dict[str, Any]:
    """A flat ``dict`` for any record a suite returns (derived figures of
    :class:`TwinResult` / :class:`SpeedResult` included)."""
    if isinstance(record, TwinResult):
        row = asdict(record)
        row['passed'] = record.passed
        return row
    if isinstance(record, SpeedResult):
        row = asdict(record)
        extra = row.pop('extra') or {}
        # A ratio of two medians taken at different moments of a loaded
        # machine means nothing: only alternated runs give one.
        row['time_ratio'] = record.time_ratio if record.alternated else None
        row['memory_ratio'] = record.memory_ratio
        row.update({f'extra.{k}': v for k, v in extra.items()})
        return row
    if is_dataclass(record):
        return asdict(record)
    if isinstance(record, dict):
        return dict(record)
    raise TypeError(f'a suite returned a {type(record).__name__}; expected '
                    f'TwinResult, SpeedResult, a dataclass or a dict')


# --- formatting --------------------------------------------------------------

#: Integer-valued counts (a mean over seeds may make them fractional).
_COUNTS = ('epochs', 'epoch', 'steps', 'iterations', 'seeds', 'seed',
           'horizon', 'params', 'length', 'repeat', 'warmup', 'threads')


def _is_count(key: str) -> bool:
    return key in _COUNTS or key.startswith('num_') or key.endswith('_size')


def time_unit(values: Sequence[Any]) -> str:
    """``'s'`` for a column of durations (``*_s`` keys, in seconds) whose
    largest value is 10 s or more, else ``'ms'``: one unit per column."""
    largest = max((abs(v) for v in values if isinstance(v, (int, float))
                   and not isinstance(v, bool)), default=0.)
    return 's' if largest >= 10 else 'ms'


def column_name(key: str, unit: Optional[str] = None) -> str:
    """Table header of ``key`` with the unit its cells are shown in:
    ``graph_s`` -> ``graph (ms)``, ``graph_peak_bytes`` -> ``graph_peak
    (MiB)``, ``time_ratio`` -> ``time_ratio (×)``."""
    if key.endswith('_s'):
        return f'{key[:-2]} ({unit or "ms"})'
    if key.endswith('_bytes'):
        return f'{key[:-6]} (MiB)'
    if key.endswith('ratio'):
        return f'{key} (×)'
    return key


def format_value(key: str, value, unit: Optional[str] = None) -> str:
    """One table cell. Floats keep 4 significant figures (errors in
    scientific notation, counts as integers), durations (``*_s`` keys,
    seconds) are shown in ``unit`` (``'ms'`` by default, or ``'s'``) and
    bytes in MiB."""
    if value is None:
        return '–'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float) and math.isnan(value):
        return 'nan'
    if isinstance(value, (int, float)) and key.endswith('_bytes'):
        return f'{value / 2**20:.3g}'
    if isinstance(value, float):
        if key.endswith('_s'):
            if unit == 's':  # 3 significant figures below 10 s
                return f'{value:.1f}' if abs(value) >= 10 else \
                    f'{value:.3g}'
            ms = value * 1e3  # 4 significant figures, no exponent
            return f'{ms:.0f}' if abs(ms) >= 1e4 else f'{ms:.4g}'
        if _is_count(key):
            return f'{value:.0f}' if value.is_integer() else f'{value:.1f}'
        if 'err' in key or key == 'tolerance':
            return f'{value:.2e}'
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f'{value:.3e}'
        return f'{value:.4f}' if abs(value) < 10 else f'{value:.4g}'
    if isinstance(value, (list, tuple)):
        return ' '.join(format_value(key, v, unit) for v in value)
    return str(value).replace('|', '\\|')


def _columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    cols: List[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


#: What a column means and its unit, where the name alone does not say;
#: printed under every table that has the column.
COLUMN_NOTES = {
    'rollout_mse': 'mean squared error of the predicted body positions over '
                   'all rollout steps, bodies and held-out trajectories, in '
                   'squared simulation length units (G = 1, positions of '
                   'order 1); lower is better',
    'final_loss': 'training loss at the last iteration: MSE of the '
                  'standardised one-step velocity change (no unit; 1 = '
                  'predicting the training mean)',
    'baseline_mse/mse': 'the constant-velocity baseline\'s rollout_mse '
                        'divided by this row\'s (×; above 1 beats the '
                        'baseline)',
    'test_nll': 'Gaussian negative log-likelihood of the NRI paper with the '
                'model\'s fixed variance σ² (no constant term): '
                'Σ (x̂ − x)² / (2σ²) over time steps and features, averaged '
                'over particles, on trajectories normalised to [−1, 1] '
                '(nats per particle; lower is better)',
    'test_mse_1': 'MSE of one-step predictions on the normalised '
                  'trajectories (no unit)',
    'test_edge_accuracy': 'share of edges whose type is recovered, under '
                          'the best relabelling of the types',
    'test_edge_acc': 'share of edges whose type is recovered, under the '
                     'best relabelling of the types',
    'majority_acc': 'accuracy of always answering the most common edge '
                    'type: the bar test_edge_acc must clear',
    'full_epoch_est_s': 'batch time × batches in one pass over all '
                        'training nodes (an estimate, not a measurement)',
    'sampled_nodes': 'mean number of nodes in one sampled subgraph',
    'peak_reset': 'whether the peak-RSS mark could be reset before '
                  'training (Linux), so train_extra is training alone',
    'train_extra_bytes': 'peak RSS during training minus the RSS after '
                         'building the graph',
    'loadavg': 'the machine\'s 1-, 5- and 15-minute load averages',
    'estimate_bytes': 'memory the path was expected to need',
}


def _notes(columns: Sequence[str], rows: Sequence[Dict[str, Any]]
           ) -> List[str]:
    units = {c: time_unit([r.get(c) for r in rows]) for c in columns
             if c.endswith('_s')}
    lines = []
    for c in columns:
        note = COLUMN_NOTES.get(c)
        if note is None and c.startswith('test_mse_'):
            note = (f'MSE of {c[len("test_mse_"):]}-step predictions on '
                    f'the normalised trajectories (no unit)')
        if note is not None:
            lines.append(f'- `{column_name(c, units.get(c))}`: {note}.')
    return lines


def _groups(rows: Sequence[Dict[str, Any]], key: str = 'experiment'):
    """``[(name, rows)]``: one table per value of ``key`` when every row
    has it and there are several (the scale suite's experiments share
    few columns), else one table. Columns empty in every row of a table
    are left out."""
    values = [r.get(key) for r in rows]
    if not rows or None in values or len(set(values)) < 2:
        return [('', list(rows))]
    return [(v, [r for r in rows if r.get(key) == v])
            for v in dict.fromkeys(values)]


def _filled(rows: Sequence[Dict[str, Any]],
            columns: Optional[Sequence[str]] = None) -> List[str]:
    columns = list(columns or _columns(rows))
    return [c for c in columns if any(r.get(c) is not None for r in rows)]


def markdown_table(rows: Sequence[Dict[str, Any]],
                   columns: Optional[Sequence[str]] = None) -> str:
    """A GitHub markdown table of flat rows (union of their keys), every
    header naming the unit of its cells."""
    if not rows:
        return '_no results_'
    columns = list(columns or _columns(rows))
    units = {c: time_unit([r.get(c) for r in rows]) for c in columns
             if c.endswith('_s')}
    lines = ['| ' + ' | '.join(column_name(c, units.get(c))
                               for c in columns) + ' |',
             '|' + '---|' * len(columns)]
    for r in rows:
        lines.append('| ' + ' | '.join(
            format_value(c, r.get(c), units.get(c)) for c in columns) + ' |')
    return '\n'.join(lines)


# --- report.md / results.json ------------------------------------------------

def _jsonable(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def render_json(runs: Sequence[SuiteRun], meta: Dict[str, Any]) -> str:
    """``results.json``: the environment and, per suite, its status, threads,
    load average and every row as returned (plus derived ratios / pass
    flags)."""
    return json.dumps(_jsonable({
        'meta': meta,
        'suites': {r.name: {
            'description': r.description,
            'kind': r.kind,
            'status': r.status,
            'error': r.error,
            'seconds': r.seconds,
            'threads': r.threads,
            'load_average': r.load,
            'rows': r.table_rows(),
        } for r in runs},
    }), indent=2)


#: What quick mode is, on screen and in the report.
QUICK_NOTE = ('Quick mode is a smoke test: every suite runs at tiny sizes '
              'to check that it works end to end. Its accuracies and errors '
              'are not results: read them against the chance column, not '
              'against papers. `pyg-relational bench --full` gives the real '
              'figures (hours on a CPU); recorded full runs are in '
              'benchmarks/results/.')


#: What quick-mode speed rows are, next to them on screen and in the report.
SPEED_QUICK_NOTE = ('Smoke-test speed rows: tiny graphs on one CPU thread, '
                    'where the fixed cost of every call (input checks, path '
                    'choice, Python) outweighs the arithmetic, so graph '
                    'layers can look slower than their twins here. These '
                    'are not speed results: the full-size figures are in '
                    'benchmarks/results/paths_speed.md and classic.md '
                    '(pyg-relational bench speed --full).')


def _status_cell(r: 'SuiteRun') -> str:
    """The status column: a skipped suite says why and how to run it."""
    if r.status == 'skipped' and r.error:
        return r.error.replace('|', '\\|')
    return r.status


def _meta_line(meta: Dict[str, Any]) -> str:
    mode = 'quick mode (smoke test)' if meta.get('quick') else 'full mode'
    load = meta.get('load_average')
    load = '' if load is None else f', load average {load:.2f}'
    return (f"{meta['date']} · device `{meta['device']}` "
            f"({meta.get('device_name', '')}, {meta.get('cpu_count')} "
            f"cores{load}) · torch {meta['torch']} · torch_geometric "
            f"{meta['torch_geometric']} · python {meta.get('python')} · "
            f"{mode}")


def load_warning(meta: Dict[str, Any]) -> Optional[str]:
    """A warning when the load average exceeded the core count at the
    start: other processes competed for the CPU, so times are unreliable."""
    load, cores = meta.get('load_average'), meta.get('cpu_count')
    if load is None or not cores or load <= cores:
        return None
    return (f'load average {load:.1f} is above the {cores} cores: other '
            f'processes compete for the CPU, so times (and time ratios) '
            f'are unreliable; rerun on a quiet machine')


def _suite_line(r: SuiteRun, meta: Dict[str, Any]) -> str:
    threads = '' if r.threads is None else f', {r.threads} CPU thread' + (
        's' if r.threads != 1 else '')
    load = '' if r.load is None or None in r.load else \
        f', load average {r.load[0]:.2f} → {r.load[1]:.2f}'
    return (f'Device `{meta["device"]}`{threads}{load}; torch '
            f'{meta["torch"]}, torch_geometric {meta["torch_geometric"]}; '
            f'{r.seconds:.1f} s.')


def _speed_note(rows: Sequence[Dict[str, Any]]) -> str:
    timers = sorted({str(r['extra.timer']) for r in rows
                     if r.get('extra.timer')})
    note = ('Medians of forward+backward; per-run times and extra fields '
            'are in results.json. A time ratio (graph / baseline) is shown '
            'only where the two sides were timed in alternation (A B A B '
            '..., the same machine load for both); elsewhere it is "–".')
    if timers:
        note += ' Timer: ' + '; '.join(timers) + '.'
    if not any('torch.utils.benchmark' in t for t in timers):
        note += (' Not torch.utils.benchmark.Timer: it times one statement '
                 'at a time, so the two sides could not be alternated.')
    return note


def render_markdown(runs: Sequence[SuiteRun], meta: Dict[str, Any],
                    plots: Optional[Dict[str, str]] = None) -> str:
    """``report.md``: the environment, what the mode means, then one
    section and one table per suite, with units, threads and load."""
    plots = plots or {}
    out = ['# pyg-relational bench report', '', _meta_line(meta), '']
    if meta.get('quick'):
        out += [f'**{QUICK_NOTE}**', '']
    if meta.get('command'):
        out += [f"Command: `{meta['command']}`", '']
    warning = load_warning(meta)
    if warning:
        out += [f'**Warning**: {warning}.', '']
    out += ['| suite | status | rows | time (s) | CPU threads |',
            '|---|---|---|---|---|']
    for r in runs:
        out.append(f'| {r.name} | {_status_cell(r)} | {len(r.rows)} | '
                   f'{r.seconds:.1f} | {r.threads or "–"} |')
    out.append('')
    if meta.get('not_run'):
        state = 'Interrupted (Ctrl-C)' if meta.get('interrupted') else \
            'Still running'
        out += [f"**{state}**: not run: {', '.join(meta['not_run'])}.", '']
    if meta.get('native_log'):
        out += [f"`native.log`: {meta['native_log']} line(s) that libraries "
                f"wrote to stderr while the suites ran (e.g. the torch "
                f"profiler, which measures CPU peak memory, or PyG's "
                f"'Processing...' when it prepares a data set); kept for "
                f"debugging, not errors of the suites.", '']
    for r in runs:
        out += [f'## {r.name}', '', r.description, '',
                _suite_line(r, meta), '']
        if r.status == 'skipped':
            out += [f'**{r.error}**', '']
            continue
        if r.error:
            out += [f'**{r.status}**: {r.error}', '']
        rows = r.table_rows()
        columns = None
        if r.kind == 'speed' and rows:  # per-run times etc.: results.json
            columns = [c for c in _columns(rows)
                       if not c.startswith('extra.') and c != 'device']
            if meta.get('quick'):
                out += [f'**{SPEED_QUICK_NOTE}**', '']
            out += [_speed_note(rows), '']
        for group, sub in _groups(rows):
            # speed tables keep every column ('–': no alternated ratio)
            shown = _filled(sub) if columns is None else list(columns)
            if group:
                out += [f'### {r.name}: {group}', '']
                shown = [c for c in shown if c != 'experiment']
            out += [markdown_table(sub, shown), '']
            notes = _notes(shown, sub)
            if notes:
                out += ['Columns:', ''] + notes + ['']
        if r.kind == 'twins' and r.rows:
            passed = sum(bool(row.get('passed')) for row in rows)
            out += [f'{passed}/{len(r.rows)} twins within tolerance.', '']
        if r.name in plots:
            out += [f'![{r.name}]({osp.basename(plots[r.name])})', '']
    return '\n'.join(out)


# --- plots ----------------------------------------------------------------

def _series_label(row: Dict[str, Any], keys: Sequence[str]) -> str:
    return ' vs '.join(str(row.get(k)) for k in keys)


def _mean_curve(rows: Sequence[Dict[str, Any]], x: str, y: str):
    """``(xs, ys)`` with the rows sharing an ``x`` averaged (e.g. seeds)."""
    points: Dict[float, List[float]] = {}
    for r in rows:
        if r.get(y) is not None:
            points.setdefault(float(r[x]), []).append(float(r[y]))
    xs = sorted(points)
    return xs, [sum(points[v]) / len(points[v]) for v in xs]


def render_plots(runs: Sequence[SuiteRun], out_dir: str,
                 quick: bool = False) -> Dict[str, str]:
    """One PNG per suite that declares a plot spec and has rows (see
    :func:`figures`). Returns ``{suite: path}``."""
    paths = {}
    for name, fig in figures(runs, quick):
        import matplotlib.pyplot as plt
        path = osp.join(out_dir, f'{name}.png')
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths[name] = path
    return paths


def figures(runs: Sequence[SuiteRun], quick: bool = False):
    """``(suite name, matplotlib figure)`` for every suite that declares a
    plot spec and has rows: a :class:`~.suites.LinePlot` (one panel per
    ``panel`` value, at most 4 per row, one line per series and ``y`` key,
    rows with the same series and ``x`` averaged, a dashed chance line) or
    a :class:`~.suites.BarPlot` (one panel, one group of bars per row, no
    line joining two configurations). ``quick``: every figure is marked as
    a smoke test in its title and across its background."""
    if not any(run.plot is not None and run.rows for run in runs):
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from .suites import BarPlot
    for run in runs:
        spec, rows = run.plot, run.table_rows()
        if spec is None or not rows:
            continue
        draw = _bar_plot if isinstance(spec, BarPlot) else _line_plot
        fig = draw(plt, spec, rows, run.name)
        if fig is None:
            continue
        title = run.name
        if quick:
            title += ' — SMOKE TEST (tiny sizes): not results'
            fig.text(0.5, 0.5, 'smoke test', fontsize=40, color='grey',
                     alpha=0.15, ha='center', va='center', rotation=20)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        yield run.name, fig


def _line_plot(plt, spec, rows, name):
    rows = [r for r in rows if r.get(spec.x) is not None
            and any(r.get(y) is not None for y in spec.y)]
    if not rows:
        return None
    panels = list(dict.fromkeys(str(r.get(spec.panel)) for r in rows)) \
        if spec.panel else ['']
    ncols = min(len(panels), 4)
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(4.6 * ncols, 3.6 * nrows))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        sub = [r for r in rows
               if not spec.panel or str(r.get(spec.panel)) == panel]
        ys = list(spec.y)
        if spec.shared_first:
            xs, vals = _mean_curve(sub, spec.x, ys[0])
            ax.plot(xs, vals, 'o-', ms=3, color='black',
                    label=f'{panel} ({ys[0]})')
            ys = ys[1:]
        labels = list(dict.fromkeys(
            _series_label(r, spec.series) for r in sub))
        cmap = plt.get_cmap('tab10')
        for n, lab in enumerate(labels):
            pts = [r for r in sub if _series_label(r, spec.series) == lab]
            for k, y in enumerate(ys):
                xs, vals = _mean_curve(pts, spec.x, y)
                dashed = spec.shared_first or k > 0
                ax.plot(xs, vals, marker='o', ms=3,
                        linestyle='--' if dashed else '-',
                        color=cmap(n % cmap.N),
                        label=lab if len(ys) == 1 else f'{lab}: {y}')
        chance = [float(r[spec.chance]) for r in sub
                  if spec.chance and r.get(spec.chance) is not None]
        if chance:
            level = sum(chance) / len(chance)
            ax.axhline(level, color='grey', linestyle=':', linewidth=1.2,
                       label=f'chance ({level:.3g})')
        if spec.logx:
            ax.set_xscale('log')
            _plain_log_ticks(ax.xaxis, sorted({float(r[spec.x])
                                               for r in sub}))
        if spec.logy:
            ax.set_yscale('log')
        ax.set_xlabel(spec.xlabel or spec.x)
        ax.set_ylabel(spec.ylabel or ', '.join(spec.y))
        ax.set_title(panel or name, fontsize=9)
        ax.grid(True, which='major', alpha=0.3)
        ax.legend(fontsize=6)
    return fig


def _plain_log_ticks(axis, values):
    """Ticks at the data's own x values, written plainly (50, 200, 1000),
    and no minor labels: log axes otherwise print overlapping 10^k
    labels."""
    from matplotlib.ticker import (FixedLocator, FuncFormatter,
                                   NullFormatter, NullLocator)
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _bar_plot(plt, spec, rows, name):
    rows = [r for r in rows if all(isinstance(r.get(v), (int, float))
                                   for v in spec.values)]
    if not rows:
        return None
    labels = [_bar_label(r, spec.label) for r in rows]
    height = 0.8 / len(spec.values)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.34 * len(rows)))
    cmap = plt.get_cmap('tab10')
    for k, (key, legend) in enumerate(zip(spec.values, spec.names)):
        ys = [n + (k - (len(spec.values) - 1) / 2) * height
              for n in range(len(rows))]
        ax.barh(ys, [float(r[key]) * spec.scale for r in rows], height,
                color=cmap(k), label=legend)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()  # the report's order, top to bottom
    ax.set_xscale('log')
    ax.set_xlabel(spec.xlabel or f'time ({spec.unit})')
    ax.grid(True, axis='x', which='major', alpha=0.3)
    ax.legend(fontsize=8, loc='lower right')
    return fig


def _bar_label(row: Dict[str, Any], keys: Sequence[str]) -> str:
    head = ' vs '.join(str(row.get(k)) for k in keys[:2] if row.get(k))
    rest = ', '.join(str(row.get(k)) for k in keys[2:] if row.get(k))
    label = f'{head} ({rest})' if rest else head
    return label if len(label) <= 90 else label[:87] + '...'


# --- terminal summary -------------------------------------------------------

def _wrap(text: str, width: int) -> List[str]:
    """``text`` on as many lines as it needs, broken between items, never
    inside a number."""
    return textwrap.wrap(text, width, subsequent_indent='  ',
                         break_long_words=False, break_on_hyphens=False)


def _speed_line(key: str, r: Dict[str, Any]) -> str:
    if r.get('time_ratio') is not None:
        return (f"{key}: {r['time_ratio']:.2f}× time at {r['num_edges']} "
                f"edges")
    return (f"{key}: {format_value('graph_s', r['graph_s'])} ms vs "
            f"{format_value('baseline_s', r['baseline_s'])} ms at "
            f"{r['num_edges']} edges (not timed in alternation: no ratio)")


def _summary_lines(run: SuiteRun, width: int) -> List[str]:
    rows = run.table_rows()
    if not rows:
        return []
    if run.kind == 'twins':
        passed = [r for r in rows if r.get('passed')]

        def err(r):
            return max(r['max_abs_err'], r['max_abs_grad_err'])

        worst = max(rows, key=err)
        lines = [f'{len(passed)}/{len(rows)} within tolerance; worst: '
                 f"{worst['layer']} vs {worst['twin']} err {err(worst):.1e}"]
        lines += [f"FAIL {r['layer']} vs {r['twin']} ({r['config']})"
                  for r in rows if not r.get('passed')][:4]
        return lines
    if run.kind == 'speed':
        # Largest size per (operator, baseline): the scaling end point.
        last: Dict[str, Dict[str, Any]] = {}
        for r in rows:
            key = f"{r['operator']} vs {r['baseline']}"
            if key not in last or r['num_edges'] >= last[key]['num_edges']:
                last[key] = r
        lines = [_speed_line(k, r) for k, r in list(last.items())[:8]]
        return [line for text in lines for line in _wrap(text, width)]
    if run.name == 'inductive-bias':
        lines = []
        for task in sorted({r['task'] for r in rows}):
            size = max(r['train_size'] for r in rows if r['task'] == task)
            cells = {}
            for r in rows:
                if r['task'] == task and r['train_size'] == size:
                    cells.setdefault(r['graph'], []).append(r['test_acc'])
            chance = next((r.get('chance') for r in rows
                           if r['task'] == task), None)
            lines.append(f'{task} (n={size}): ' + ', '.join(
                f'{g} {sum(v) / len(v):.3f}' for g, v in cells.items())
                + ('' if chance is None else f' (chance {chance:.3f})'))
        return [line for text in lines for line in _wrap(text, width)]
    lines = []
    for r in rows[:4]:
        keys = [k for k in (run.summary or r) if k in r
                and not isinstance(r[k], (list, tuple, dict))]
        lines += _wrap(', '.join(f'{k}={format_value(k, r[k])}'
                                 f'{_suffix(k, r[k])}' for k in keys), width)
    if len(rows) > 4:
        lines.append(f'… {len(rows) - 4} more rows in report.md')
    return lines


def _suffix(key: str, value) -> str:
    """The unit :func:`format_value` implies, for inline text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ''
    if key.endswith('_bytes'):
        return ' MiB'
    if key.endswith('_s') and isinstance(value, float):
        return ' ms'
    return ''


def render_summary(runs: Sequence[SuiteRun], meta: Dict[str, Any],
                   out_dir: Optional[str] = None, width: int = 100) -> str:
    """A one-screen summary: what the mode means, then a status line and a
    few key figures per suite."""
    out = _wrap(f"pyg-relational bench — {_meta_line(meta)}", width)
    if meta.get('quick'):
        out += _wrap(QUICK_NOTE, width)
    warning = load_warning(meta)
    if warning:
        out += _wrap(f'warning: {warning}', width)
    for r in runs:
        threads = '' if r.threads is None else f', {r.threads} thr'
        out.append(f'[{r.status:>10}] {r.name} ({len(r.rows)} rows, '
                   f'{r.seconds:.1f} s{threads})')
        if r.error:
            out += textwrap.wrap(r.error, width, initial_indent='    ',
                                 subsequent_indent='    ')[:4]
        if r.kind == 'speed' and r.rows and meta.get('quick'):
            out += textwrap.wrap(SPEED_QUICK_NOTE, width,
                                 initial_indent='    ',
                                 subsequent_indent='    ')
        out += ['    ' + line for line in _summary_lines(r, width - 4)]
    if meta.get('not_run'):
        out += _wrap(f"not run: {', '.join(meta['not_run'])}", width)
    if out_dir:
        out.append(f'report: {osp.join(out_dir, "report.md")}')
    return '\n'.join(out)


class ReportWriter:
    """Writes ``report.md``, ``results.json`` and the PNG plots to
    ``out_dir`` after every suite (:meth:`add`), so an interrupted run keeps
    what finished.

    Args:
        out_dir (str): output folder (created).
        meta (dict): :func:`environment` and the command; ``not_run``,
            ``interrupted`` and ``native_log`` may be set while it runs.
        plots (bool, optional): render the PNG plots. (default: :obj:`True`)
    """

    def __init__(self, out_dir: str, meta: Dict[str, Any],
                 plots: bool = True):
        self.out_dir, self.meta, self.plots = out_dir, meta, plots
        self.runs: List[SuiteRun] = []
        self.images: Dict[str, str] = {}
        os.makedirs(out_dir, exist_ok=True)

    def add(self, run: SuiteRun) -> Dict[str, str]:
        """Record a finished suite (its plot rendered now) and rewrite the
        report."""
        self.runs.append(run)
        if self.plots:
            self.images.update(render_plots([run], self.out_dir,
                                            bool(self.meta.get('quick'))))
        return self.write()

    def write(self) -> Dict[str, str]:
        """Rewrite ``report.md`` and ``results.json``; return the paths."""
        paths = {name: osp.join(self.out_dir, name)
                 for name in ('report.md', 'results.json')}
        for name, text in (
                ('report.md', render_markdown(self.runs, self.meta,
                                              self.images)),
                ('results.json', render_json(self.runs, self.meta))):
            tmp = paths[name] + '.tmp'  # never a half-written report
            with open(tmp, 'w') as f:
                f.write(text + '\n')
            os.replace(tmp, paths[name])
        return dict(paths, **self.images)


def write_report(runs: Sequence[SuiteRun], meta: Dict[str, Any],
                 out_dir: str, plots: bool = True) -> Dict[str, str]:
    """Write ``report.md``, ``results.json`` and the PNG plots of ``runs``
    to ``out_dir``; return the paths written."""
    writer = ReportWriter(out_dir, meta, plots)
    writer.runs = list(runs)
    if plots:
        writer.images = render_plots(runs, out_dir, bool(meta.get('quick')))
    return writer.write()
