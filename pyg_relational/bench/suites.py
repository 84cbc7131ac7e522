r"""The suite registry of ``pyg-relational bench``.

A suite is a name, a one-line description and a function
``function(quick, device, progress, **options) -> list`` that returns plain
data: :class:`~pyg_relational.bench.results.TwinResult` /
:class:`~pyg_relational.bench.results.SpeedResult` records or flat ``dict``
rows. Suite functions never print; :mod:`pyg_relational.bench.report`
renders what they return.

``twins`` and ``speed`` gather the cases of every provider module listed in
:data:`TWIN_PROVIDERS` / :data:`SPEED_PROVIDERS` (one line per provider).
The reproduction suites import their provider lazily, inside the suite
function, so a provider that is not installed (or not written yet) gives a
:class:`ProviderMissing` error naming it instead of breaking the registry.

Example:
    >>> from pyg_relational.bench.suites import get_suite, suite_names
    >>> 'inductive-bias' in suite_names()
    True
    >>> get_suite('twins').kind
    'twins'
"""
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    'Suite', 'LinePlot', 'BarPlot', 'BenchError', 'ProviderMissing',
    'SuiteFailed', 'SuiteSkipped',
    'SUITES', 'TWIN_PROVIDERS', 'SPEED_PROVIDERS', 'TARGET_PROVIDERS',
    'register', 'get_suite',
    'suite_names', 'import_provider', 'gather_cases'
]

Progress = Optional[Callable[[str], None]]


class BenchError(Exception):
    """An error the command line reports as one clear line (unknown suite,
    missing data or provider, unavailable device), never as a traceback.

    ``rows`` holds what a suite produced before the error (the report keeps
    them and marks the suite ``incomplete``)."""

    def __init__(self, message: str, rows: Optional[list] = None):
        super().__init__(message)
        self.rows = list(rows or [])


class SuiteSkipped(BenchError):
    """A suite cannot run here for a reason outside the code under test:
    its data is absent and cannot be downloaded (no network), or an
    optional package is missing. The message says why and how to provide
    it; the report shows the suite as one ``skipped: ...`` row and the run
    still succeeds (exit status 0)."""


class ProviderMissing(BenchError):
    """A provider module of a suite cannot be imported."""


class SuiteFailed(BenchError):
    """Part of a suite raised; the message says which part and why."""


@dataclass(frozen=True)
class LinePlot:
    """How :mod:`~pyg_relational.bench.report` plots a suite's rows: one
    line per ``series`` value, ``y`` against ``x``, one panel per ``panel``
    value. Several ``y`` keys draw several lines per series (the first solid,
    the others dashed). With ``shared_first=True`` the first ``y`` is the
    same for every series of a panel (the graph layer's time against
    several baselines) and is drawn once, in black, labelled with the
    panel."""
    x: str
    y: Tuple[str, ...]
    series: Tuple[str, ...]
    panel: Optional[str] = None
    logx: bool = False
    logy: bool = False
    xlabel: str = ''
    ylabel: str = ''
    shared_first: bool = False
    chance: Optional[str] = None  # a row key: a dashed line per panel


@dataclass(frozen=True)
class BarPlot:
    """How :mod:`~pyg_relational.bench.report` plots timing rows: one
    panel, one labelled group of horizontal bars per row (``label`` keys
    joined: ``operator vs baseline (config)``), one bar per ``values`` key,
    on one log axis in ``unit`` (the report's unit). No line joins two rows:
    each row is its own configuration."""
    label: Tuple[str, ...]
    values: Tuple[str, ...]
    names: Tuple[str, ...]  # legend entry per values key
    scale: float = 1e3  # seconds -> unit
    unit: str = 'ms'
    xlabel: str = ''


@dataclass(frozen=True)
class Suite:
    """One entry of the registry.

    Args:
        name (str): command-line name, e.g. ``'speed'``.
        description (str): one line for ``--list`` and the report.
        function (callable): ``function(quick, device, progress, **options)
            -> list`` of records or ``dict`` rows.
        kind (str): ``'twins'``, ``'speed'`` or ``'rows'`` (flat dicts);
            selects the table and the terminal summary.
        plot (LinePlot or BarPlot, optional): the PNG plot of the rows, if
            any.
        default (bool): part of the default run (everything, quick).
        timing (bool, optional): the suite measures time, so it runs on one
            CPU thread unless ``--threads`` says otherwise. (default: ``kind
            == 'speed'``)
        chance (tuple, optional): ``(column, function)``: the accuracy
            column of ``dict`` rows and ``function(row)``, its chance level;
            added to every row as ``chance`` after that column.
        summary (tuple of str): the keys of a row shown in the terminal
            summary (default: every scalar key).
        rename (tuple of pairs): ``(old, new)`` column names, for keys that
            would read wrongly in the report.
    """
    name: str
    description: str
    function: Callable[..., list]
    kind: str = 'rows'
    plot: Optional[LinePlot] = None
    default: bool = True
    timing: Optional[bool] = None
    chance: Optional[Tuple[str, Callable[[dict], float]]] = None
    summary: Tuple[str, ...] = ()
    rename: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.timing is None:
            object.__setattr__(self, 'timing', self.kind == 'speed')

    def accepts(self) -> Tuple[str, ...]:
        """Names of the keyword options the function takes besides
        ``quick``, ``device`` and ``progress``."""
        params = inspect.signature(self.function).parameters
        return tuple(n for n, p in params.items()
                     if n not in ('quick', 'device', 'progress')
                     and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    def run(self, quick: bool = True, device: str = 'cpu',
            progress: Progress = None, **options) -> list:
        """Call the suite function with the options it accepts (others are
        ignored, so one set of command-line options serves every suite)."""
        accepted = self.accepts()
        kwargs = {k: v for k, v in options.items()
                  if k in accepted and v is not None}
        return self.function(quick=quick, device=device, progress=progress,
                             **kwargs)

    def present(self, rows: list, quick: bool) -> list:
        """The rows as the report shows them: columns renamed, the chance
        level added, and in quick mode (a smoke test, not a result) the
        papers' figures (``paper``) dropped. Records other than ``dict``
        pass unchanged."""
        rename = dict(self.rename)
        out = []
        for row in rows:
            if not isinstance(row, dict):
                out.append(row)
                continue
            new = {}
            for key, value in row.items():
                if quick and key == 'paper':
                    continue
                new[rename.get(key, key)] = value
                if self.chance is not None and key == self.chance[0]:
                    new['chance'] = self.chance[1](row)
            out.append(new)
        return out


# --- providers -------------------------------------------------------------

# One line per provider module; gathered by the ``twins`` / ``speed`` suites.
TWIN_PROVIDERS: List[str] = [
    'pyg_relational.bench.classic',
    'pyg_relational.bench.attention',
    'pyg_relational.bench.non_local',
    'pyg_relational.bench.graph',
]
SPEED_PROVIDERS: List[str] = [
    'pyg_relational.bench.classic',
    'pyg_relational.bench.attention',
    'pyg_relational.bench.non_local',
    'pyg_relational.bench.graph',
    'pyg_relational.bench.nri',
]
#: Providers of the execution-path targets (``target_cases``: each graph
#: layer against its PyTorch twin, alternated, with the target met or not);
#: part of the ``speed`` suite.
TARGET_PROVIDERS: List[str] = [
    'pyg_relational.bench.attention',
    'pyg_relational.bench.non_local',
    'pyg_relational.bench.classic',
]


def import_provider(module: str, attribute: str):
    """``module.attribute``, or :class:`ProviderMissing` if the module (or
    the function in it) does not exist. An import error raised *inside* an
    existing provider is a bug of that provider and propagates."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and not module.startswith(e.name) \
                and e.name != module:
            raise  # the provider exists but a module it imports does not
        raise ProviderMissing(
            f"provider module '{module}' is not available (not written or "
            f"not installed yet); its suites cannot run") from None
    if not hasattr(mod, attribute):
        raise ProviderMissing(f"provider module '{module}' has no function "
                              f"'{attribute}'")
    return getattr(mod, attribute)


def gather_cases(providers: Sequence[str], attribute: str, quick: bool,
                 device: str, progress: Progress = None) -> list:
    """Concatenate ``provider.attribute(quick=quick, device=device)`` over
    ``providers``. Missing providers are skipped and reported together at
    the end as one :class:`ProviderMissing` carrying the gathered rows."""
    rows, missing, failed = [], [], []
    for module in providers:
        try:
            fn = import_provider(module, attribute)
        except ProviderMissing:
            missing.append(module)
            continue
        name = module.rsplit('.', 1)[-1]
        kwargs = {}
        if progress is not None and \
                'progress' in inspect.signature(fn).parameters:
            kwargs['progress'] = lambda msg, name=name: progress(
                f'{name}: {msg}')
        try:
            cases = list(fn(quick=quick, device=device, **kwargs))
        except Exception as e:  # noqa: BLE001 -- reported with the others
            failed.append(f'{module}.{attribute} raised '
                          f'{type(e).__name__}: {e}')
            continue
        rows.extend(cases)
        if progress is not None and 'progress' not in kwargs:
            progress(f'{name}: {len(cases)} cases')
    if missing:
        raise ProviderMissing(
            f"{len(missing)} provider(s) missing: {', '.join(missing)} "
            f"(no '{attribute}'); the other providers' results are kept"
            + ''.join(f'; {f}' for f in failed), rows)
    if failed:
        raise SuiteFailed('; '.join(failed), rows)
    return rows


# --- suite functions ---------------------------------------------------------

def _twins(quick: bool = True, device: str = 'cpu',
           progress: Progress = None) -> list:
    return gather_cases(TWIN_PROVIDERS, 'twin_cases', quick, device, progress)


def _speed(quick: bool = True, device: str = 'cpu',
           progress: Progress = None) -> list:
    return gather_cases(SPEED_PROVIDERS, 'speed_cases', quick, device,
                        progress) + \
        gather_cases(TARGET_PROVIDERS, 'target_cases', quick, device,
                     progress)


def _need_digits():
    """The digits images ship with scikit-learn (the ``bench`` extra)."""
    if importlib.util.find_spec('sklearn') is None:
        raise SuiteSkipped(
            "scikit-learn is not installed and its bundled digits images are "
            "this suite's data; pip install scikit-learn (or, in the clone, "
            "pip install -e '.[bench]')")


def _inductive_bias(quick: bool = True, device: str = 'cpu',
                    progress: Progress = None, seeds: Optional[int] = None
                    ) -> list:
    _need_digits()
    from .inductive_bias import run_inductive_bias
    kwargs = {} if seeds is None else {'seeds': tuple(range(seeds))}
    return run_inductive_bias(quick=quick, device=device, progress=progress,
                              **kwargs)


def _citation(quick: bool = True, device: str = 'cpu',
              progress: Progress = None, seeds: Optional[int] = None,
              data_root: Optional[str] = None) -> list:
    run = import_provider('pyg_relational.bench.citation', 'run_citation')
    missing = import_provider('pyg_relational.bench.citation',
                              'DataNotFound')
    try:
        return run(seeds=range(seeds or (1 if quick else 10)), quick=quick,
                   device=device, data_root=data_root, progress=progress)
    except missing as e:  # no local copy and no download: one row
        raise SuiteSkipped(str(e)) from None


def _digits(quick: bool = True, device: str = 'cpu',
            progress: Progress = None, seeds: Optional[int] = None) -> list:
    _need_digits()
    run = import_provider('pyg_relational.bench.non_local', 'run_digits')
    return run(quick=quick,
               seeds=seeds if seeds is not None else (1 if quick else 3),
               device=device, progress=progress)


def _provider(module: str, attribute: str) -> Callable[..., list]:
    """A suite function that calls ``module.attribute(quick, device,
    progress)``, imported when the suite runs."""

    def function(quick: bool = True, device: str = 'cpu',
                 progress: Progress = None) -> list:
        run = import_provider(module, attribute)
        return run(quick=quick, device=device, progress=progress)

    function.__name__ = f'_{attribute}'
    return function


SUITES: Dict[str, Suite] = {}


def register(suite: Suite, replace: bool = False) -> Suite:
    """Add ``suite`` to the registry (``replace=True`` to overwrite)."""
    if suite.name in SUITES and not replace:
        raise ValueError(f"a suite named '{suite.name}' is already "
                         f"registered; pass replace=True to overwrite it")
    SUITES[suite.name] = suite
    return suite


def get_suite(name: str) -> Suite:
    """The registered suite ``name`` or a :class:`BenchError` listing the
    known ones."""
    if name not in SUITES:
        raise BenchError(f"unknown suite '{name}'; choose from: "
                         f"{', '.join(SUITES)}")
    return SUITES[name]


def suite_names(default_only: bool = False) -> List[str]:
    return [n for n, s in SUITES.items() if s.default or not default_only]


#: Classes of the classification data sets (chance level = 1 / classes).
_CLASSES = {'Cora': 7, 'CiteSeer': 6, 'digits': 10, 'order': 2}

register(Suite(
    'twins', 'each graph layer against the PyTorch/PyG module it reproduces '
    '(its twin), on random inputs: largest error of outputs and gradients, '
    'pass/fail', _twins, kind='twins'))
register(Suite(
    'speed', 'forward+backward time and peak memory of each graph layer '
    'against its twin on the same data, across sizes (1 CPU thread unless '
    '--threads)', _speed, kind='speed',
    plot=BarPlot(label=('operator', 'baseline', 'config'),
                 values=('graph_s', 'baseline_s'),
                 names=('graph layer', 'twin / baseline'),
                 xlabel='forward+backward time, median (ms)')))
register(Suite(
    'inductive-bias', 'the same AttentionConv trained on the same data with '
    'different graphs (complete, grid/window, chain, the data\'s own): test '
    'accuracy against training-set size', _inductive_bias,
    chance=('test_acc', lambda r: 1 / _CLASSES[r['task']]),
    plot=LinePlot(x='train_size', y=('test_acc', ), series=('graph', ),
                  panel='task', logx=True, xlabel='training-set size',
                  ylabel='test accuracy', chance='chance')))
register(Suite(
    'citation', 'GCNConv, GATConv and AttentionConv(score=\'gat\') on '
    'Planetoid Cora and CiteSeer (public split): test accuracy (%)',
    _citation,
    chance=('test_acc_std', lambda r: 100 / _CLASSES[r['dataset']]),
    summary=('dataset', 'model', 'test_acc_mean', 'chance', 'paper',
             'epochs')))
register(Suite(
    'non-local', 'a small CNN with and without a NonLocalBlock on '
    'scikit-learn digits: test accuracy over seeds', _digits,
    chance=('test_acc', lambda r: 1 / _CLASSES['digits']),
    summary=('model', 'seed', 'test_acc', 'chance')))
register(Suite(
    'seq2seq', 'RNN encoder-decoder without attention vs Bahdanau vs Luong '
    'on sequence reversal as sequences get longer: token accuracy (chance: '
    '1 / 10 tokens)',
    _provider('pyg_relational.bench.attention', 'run_seq2seq'),
    chance=('accuracy', lambda r: 0.1),
    summary=('model', 'length', 'accuracy', 'chance', 'sequence_accuracy')))
register(Suite(
    'physics', 'InteractionNetwork rollout on simulated n-body physics vs '
    'a constant-velocity baseline: position MSE (baseline_mse/mse > 1: '
    'better than the baseline)',
    _provider('pyg_relational.bench.physics', 'run_physics'),
    rename=(('ratio_to_baseline', 'baseline_mse/mse'), ),
    summary=('model', 'rollout_mse', 'baseline_mse/mse', 'iterations')))
register(Suite(
    'nri', 'Neural Relational Inference on simulated springs / charged '
    'particles: edge accuracy (chance: 0.5 for 2 edge types) and '
    'prediction error',
    _provider('pyg_relational.bench.nri', 'run_nri'),
    chance=('test_edge_accuracy', lambda r: 0.5),
    summary=('system', 'num_particles', 'test_edge_accuracy', 'chance',
             'test_mse_1', 'epochs')))
# More suites: one register(Suite(...)) call each. More
# cases for `twins` / `speed`: one provider module name in TWIN_PROVIDERS /
# SPEED_PROVIDERS.
register(Suite(
    'scale', 'beyond one full-graph pass: NeighborLoader node classification '
    'on 100k-1M-node graphs (peak RSS vs graph size, s/epoch, accuracy), NRI '
    'on kNN candidate graphs (100/1000 particles), attention on 1k-16k-token '
    'complete graphs given by structure',
    _provider('pyg_relational.bench.scale', 'run_scale'), timing=True,
    summary=('experiment', 'note', 'num_particles', 'tokens', 'step', 'path',
             'candidates', 'num_edges', 'step_s', 'peak_bytes',
             'test_edge_acc', 'majority_acc')))
