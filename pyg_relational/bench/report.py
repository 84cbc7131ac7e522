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
from typing import Any, Dict, List, Optional, Sequence

import torch

from .results import SpeedResult, TwinResult

__all__ = [
    'SuiteRun', 'environment', 'to_row', 'markdown_table', 'render_markdown',
    'render_json', 'render_plots', 'render_summary', 'write_report',
    'format_value'
]


@dataclass
class SuiteRun:
    """What one suite produced in one invocation."""
    name: str
    description: str
    kind: str  # 'twins' | 'speed' | 'rows'
    rows: List[Any] = field(default_factory=list)
    status: str = 'ok'  # 'ok' | 'incomplete' | 'failed'
    error: Optional[str] = None
    seconds: float = 0.0
    plot: Any = None  # a suites.LinePlot or None

    def table_rows(self) -> List[Dict[str, Any]]:
        return [to_row(r) for r in self.rows]


def environment(device: str, quick: bool) -> Dict[str, Any]:
    """Versions, device and date stamped on every report."""
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
        row['time_ratio'] = record.time_ratio
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

def _unit(key: str) -> str:
    """Column header with its unit, from the naming convention of the
    result records (``*_s`` seconds shown as ms, ``*_bytes`` as MiB)."""
    if key.endswith('_s'):
        return f'{key} (ms)'
    if key.endswith('_bytes'):
        return f'{key} (MiB)'
    if key.endswith('ratio'):
        return f'{key} (×)'
    return key


def _suffix(key: str, value) -> str:
    """The unit :func:`format_value` implies, for inline text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ''
    if key.endswith('_bytes'):
        return ' MiB'
    if key.endswith('_s') and isinstance(value, float):
        return ' ms'
    return ''


def format_value(key: str, value) -> str:
    """One table cell. Floats keep 4 significant figures (errors in
    scientific notation), times are shown in ms and bytes in MiB."""
    if value is None:
        return '–'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float) and math.isnan(value):
        return 'nan'
    if isinstance(value, (int, float)) and key.endswith('_bytes'):
        return f'{value / 2**20:.3g}'
    if isinstance(value, float):
        if key.endswith('_s'):  # ms: 4 significant figures, no exponent
            ms = value * 1e3
            return f'{ms:.0f}' if abs(ms) >= 1e4 else f'{ms:.4g}'
        if 'err' in key or key == 'tolerance':
            return f'{value:.2e}'
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f'{value:.3e}'
        return f'{value:.4f}' if abs(value) < 10 else f'{value:.4g}'
    if isinstance(value, (list, tuple)):
        return ' '.join(format_value(key, v) for v in value)
    return str(value).replace('|', '\\|')


def _columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    cols: List[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def markdown_table(rows: Sequence[Dict[str, Any]],
                   columns: Optional[Sequence[str]] = None) -> str:
    """A GitHub markdown table of flat rows (union of their keys)."""
    if not rows:
        return '_no results_'
    columns = list(columns or _columns(rows))
    lines = ['| ' + ' | '.join(_unit(c) for c in columns) + ' |',
             '|' + '---|' * len(columns)]
    for r in rows:
        lines.append('| ' + ' | '.join(
            format_value(c, r.get(c)) for c in columns) + ' |')
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
    """``results.json``: the environment and, per suite, its status and
    every row as returned (plus derived ratios / pass flags)."""
    return json.dumps(_jsonable({
        'meta': meta,
        'suites': {r.name: {
            'description': r.description,
            'kind': r.kind,
            'status': r.status,
            'error': r.error,
            'seconds': r.seconds,
            'rows': r.table_rows(),
        } for r in runs},
    }), indent=2)


def _meta_line(meta: Dict[str, Any]) -> str:
    mode = 'quick' if meta.get('quick') else 'full'
    return (f"{meta['date']} · device `{meta['device']}` "
            f"({meta.get('device_name', '')}, {meta.get('cpu_threads')} CPU "
            f"threads) · torch {meta['torch']} · torch_geometric "
            f"{meta['torch_geometric']} · python {meta.get('python')} · "
            f"{mode} mode")


def render_markdown(runs: Sequence[SuiteRun], meta: Dict[str, Any],
                    plots: Optional[Dict[str, str]] = None) -> str:
    """``report.md``: one section and one table per suite, with units,
    device, versions and date."""
    plots = plots or {}
    out = ['# pyg-relational bench report', '', _meta_line(meta), '']
    if meta.get('command'):
        out += [f"Command: `{meta['command']}`", '']
    out += ['| suite | status | rows | time (s) |', '|---|---|---|---|']
    for r in runs:
        out.append(f'| {r.name} | {r.status} | {len(r.rows)} | '
                   f'{r.seconds:.1f} |')
    out.append('')
    for r in runs:
        out += [f'## {r.name}', '', r.description, '']
        out.append(f'Device `{meta["device"]}`, torch {meta["torch"]}, '
                   f'torch_geometric {meta["torch_geometric"]}, '
                   f'{meta["date"]}; {r.seconds:.1f} s.')
        out.append('')
        if r.error:
            out += [f'**{r.status}**: {r.error}', '']
        rows = r.table_rows()
        columns = None
        if r.kind == 'speed' and rows:  # per-run times etc.: results.json
            columns = [c for c in _columns(rows)
                       if not c.startswith('extra.') and c != 'device']
            out += ['Medians of forward+backward; per-run times and extra '
                    'fields are in results.json.', '']
        out += [markdown_table(rows, columns), '']
        if r.kind == 'twins' and r.rows:
            passed = sum(bool(row.get('passed')) for row in r.table_rows())
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


def render_plots(runs: Sequence[SuiteRun], out_dir: str) -> Dict[str, str]:
    """One PNG per suite that declares a :class:`~.suites.LinePlot` and has
    rows: one panel per ``panel`` value (at most 4 per row), one line per
    series and ``y`` key; rows with the same series and ``x`` (e.g. several
    seeds) are drawn as their mean. Returns ``{suite: path}``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    paths = {}
    for run in runs:
        spec, rows = run.plot, run.table_rows()
        if spec is None:
            continue
        rows = [r for r in rows if r.get(spec.x) is not None
                and any(r.get(y) is not None for y in spec.y)]
        if not rows:
            continue
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
            if spec.logx:
                ax.set_xscale('log')
            if spec.logy:
                ax.set_yscale('log')
            ax.set_xlabel(spec.xlabel or spec.x)
            ax.set_ylabel(spec.ylabel or ', '.join(spec.y))
            ax.set_title(panel or run.name, fontsize=9)
            ax.grid(True, which='both', alpha=0.3)
            ax.legend(fontsize=6)
        fig.suptitle(run.name)
        fig.tight_layout()
        path = osp.join(out_dir, f'{run.name}.png')
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths[run.name] = path
    return paths


# --- terminal summary -------------------------------------------------------

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
        return [f"{k}: {r['time_ratio']:.2f}× time at {r['num_edges']} "
                f"edges" for k, r in list(last.items())[:8]]
    if run.name == 'inductive-bias':
        lines = []
        for task in sorted({r['task'] for r in rows}):
            size = max(r['train_size'] for r in rows if r['task'] == task)
            cells = {}
            for r in rows:
                if r['task'] == task and r['train_size'] == size:
                    cells.setdefault(r['graph'], []).append(r['test_acc'])
            lines.append(f'{task} (n={size}): ' + ', '.join(
                f'{g} {sum(v) / len(v):.3f}' for g, v in cells.items()))
        return lines
    lines = []
    for r in rows[:4]:
        text = ', '.join(f'{k}={format_value(k, v)}{_suffix(k, v)}'
                         for k, v in r.items())
        lines.append(text if len(text) <= width else text[:width - 1] + '…')
    if len(rows) > 4:
        lines.append(f'… {len(rows) - 4} more rows in report.md')
    return lines


def render_summary(runs: Sequence[SuiteRun], meta: Dict[str, Any],
                   out_dir: Optional[str] = None, width: int = 100) -> str:
    """A one-screen summary: status line and a few key figures per
    suite."""
    out = [f"pyg-relational bench — {_meta_line(meta)}"[:width]]
    for r in runs:
        out.append(f'[{r.status:>10}] {r.name} ({len(r.rows)} rows, '
                   f'{r.seconds:.1f} s)')
        if r.error:
            out += textwrap.wrap(r.error, width, initial_indent='    ',
                                 subsequent_indent='    ')[:4]
        out += ['    ' + line for line in _summary_lines(r, width - 4)]
    if out_dir:
        out.append(f'report: {osp.join(out_dir, "report.md")}')
    return '\n'.join(out)


def write_report(runs: Sequence[SuiteRun], meta: Dict[str, Any],
                 out_dir: str, plots: bool = True) -> Dict[str, str]:
    """Write ``report.md``, ``results.json`` and the PNG plots to
    ``out_dir``; return the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    images = render_plots(runs, out_dir) if plots else {}
    paths = {'report.md': osp.join(out_dir, 'report.md'),
             'results.json': osp.join(out_dir, 'results.json')}
    with open(paths['report.md'], 'w') as f:
        f.write(render_markdown(runs, meta, images) + '\n')
    with open(paths['results.json'], 'w') as f:
        f.write(render_json(runs, meta) + '\n')
    paths.update(images)
    return paths
