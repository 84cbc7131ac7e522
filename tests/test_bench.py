"""The `pyg-relational bench` command: registry, CLI, report, and the
inductive-bias suite on tiny sizes."""
import functools
import json
import os.path as osp
import re
import subprocess
import sys
import types

import pytest
import torch

from pyg_relational.bench import cli, report, suites
from pyg_relational.bench.__main__ import main
from pyg_relational.bench.inductive_bias import (TASKS, load_task,
                                                 run_inductive_bias,
                                                 task_graphs)
from pyg_relational.bench.results import SpeedResult, TwinResult
from pyg_relational.bench.suites import LinePlot, Suite

TINY = dict(train_sizes=(8, ), steps=3, test_size=16, seeds=(0, ),
            hidden=8, heads=2, layers=1)


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _results(path):
    with open(osp.join(path, 'results.json')) as f:
        return json.load(f)


def _table(markdown, section):
    """The rows of the first table under ``## section`` as dicts."""
    body = markdown.split(f'## {section}\n', 1)[1].split('\n## ', 1)[0]
    lines = [l for l in body.splitlines() if l.startswith('|')]
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    return [dict(zip(head, (c.strip() for c in l.strip('|').split('|'))))
            for l in lines[2:]]


def _fake_rows(quick=True, device='cpu', progress=None, seeds=None):
    seeds = seeds or 1
    rows = []
    for k in range(2):
        rows.append({'graph': f'g{k}', 'train_size': 10 * (k + 1),
                     'score': 0.25 * seeds + 0.125 * k, 'quick': quick})
        if progress is not None:
            progress(f'g{k}')
    return rows


def _fake_twins(quick=True, device='cpu'):
    return [
        TwinResult('FakeConv', 'nn.Fake', 'tiny', 'float64', 1e-12, 2e-12,
                   1e-10),
        TwinResult('BadConv', 'nn.Bad', 'tiny', 'float32', 0.5, 0.0, 1e-5),
    ]


def _fake_speed(quick=True, device='cpu'):
    return [SpeedResult('FakeConv', 'nn.Fake', f'n={n}', device, 10 * n,
                        1e-3 * n, 5e-4 * n, 1024 * n, 512 * n,
                        alternated=True) for n in (1, 4, 16)]


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture
def registry(monkeypatch):
    """A registry holding only the fake suites given to it."""

    def install(*entries):
        table = {s.name: s for s in entries}
        monkeypatch.setattr(suites, 'SUITES', table)
        monkeypatch.setattr(cli, 'SUITES', table)
        return table

    return install


@pytest.fixture
def providers(monkeypatch):
    """Fake provider modules for the gathering suites."""
    mod = types.ModuleType('fake_bench_provider')
    mod.twin_cases = _fake_twins
    mod.speed_cases = _fake_speed
    monkeypatch.setitem(sys.modules, 'fake_bench_provider', mod)
    monkeypatch.setattr(suites, 'TWIN_PROVIDERS', ['fake_bench_provider'])
    monkeypatch.setattr(suites, 'SPEED_PROVIDERS', ['fake_bench_provider'])
    monkeypatch.setattr(suites, 'TARGET_PROVIDERS', [])


def test_speed_suite_adds_the_path_targets(monkeypatch):
    mod = types.ModuleType('fake_target_provider')
    mod.speed_cases = lambda quick, device: ['speed row']
    mod.target_cases = lambda quick, device: ['target row']
    monkeypatch.setitem(sys.modules, 'fake_target_provider', mod)
    monkeypatch.setattr(suites, 'SPEED_PROVIDERS', ['fake_target_provider'])
    monkeypatch.setattr(suites, 'TARGET_PROVIDERS', ['fake_target_provider'])
    rows = suites.get_suite('speed').function(quick=True, device='cpu')
    assert rows == ['speed row', 'target row']


# --- registry ----------------------------------------------------------------

def test_registry_names_every_suite_of_the_issue():
    for name in ('twins', 'speed', 'inductive-bias', 'citation', 'nri',
                 'physics', 'seq2seq'):
        assert suites.get_suite(name).name == name
    with pytest.raises(suites.BenchError, match="unknown suite 'nope'"):
        suites.get_suite('nope')
    with pytest.raises(ValueError, match='already registered'):
        suites.register(suites.get_suite('twins'))


def test_suite_passes_only_the_options_it_accepts():
    s = Suite('x', 'x', _fake_rows)
    assert s.accepts() == ('seeds', )
    rows = s.run(quick=False, seeds=2, data_root='/nowhere')
    assert rows[0]['score'] == 0.5 and rows[0]['quick'] is False


# --- CLI and report ----------------------------------------------------------

def test_report_figures_come_from_the_run(registry, tmp_path, capsys):
    registry(Suite('fake', 'a fake suite', _fake_rows,
                   plot=LinePlot('train_size', ('score', ), ('graph', )),))
    seen = {}
    for seeds in (1, 3):
        out = str(tmp_path / f's{seeds}')
        code, stdout, err = _run(['fake', '--quick', '--seeds', str(seeds),
                                  '--out', out], capsys)
        assert code == 0, err
        data = _results(out)
        assert data['meta']['torch'] == torch.__version__
        assert data['meta']['quick'] is True
        run = data['suites']['fake']
        assert run['status'] == 'ok'
        assert [r['score'] for r in run['rows']] == \
            [0.25 * seeds, 0.25 * seeds + 0.125]
        md = open(osp.join(out, 'report.md')).read()
        assert f'torch {torch.__version__}' in md and 'device `cpu`' in md
        table = _table(md, 'fake')
        assert [float(r['score']) for r in table] == \
            [r['score'] for r in run['rows']]
        assert osp.getsize(osp.join(out, 'fake.png')) > 0
        assert '![fake](fake.png)' in md
        assert 'fake' in stdout and 'report:' in stdout
        seen[seeds] = table[0]['score']
    assert seen[1] != seen[3]  # the input changed, so did the figure


def test_default_runs_every_suite_quick(registry, tmp_path, capsys):
    registry(Suite('a', 'first', _fake_rows), Suite('b', 'second',
                                                     _fake_rows))
    code, stdout, err = _run(['bench', '--out', str(tmp_path),
                              '--no-plots'], capsys)
    assert code == 0, err
    data = _results(tmp_path)
    assert list(data['suites']) == ['a', 'b']
    assert data['meta']['quick'] is True
    assert all(r['quick'] for r in data['suites']['a']['rows'])
    assert len(stdout.splitlines()) < 40  # one screen


def test_twins_and_speed_gather_providers(providers, tmp_path, capsys):
    code, stdout, err = _run(['twins', 'speed', '--quick', '--out',
                              str(tmp_path)], capsys)
    assert code == 1  # BadConv is outside its tolerance
    data = _results(tmp_path)
    assert data['suites']['twins']['status'] == 'mismatch'
    assert '1 of 2 twins outside tolerance: BadConv vs nn.Bad' in \
        data['suites']['twins']['error']
    assert data['suites']['speed']['status'] == 'ok'
    twins = data['suites']['twins']['rows']
    assert [r['passed'] for r in twins] == [True, False]
    speed = data['suites']['speed']['rows']
    assert [r['num_edges'] for r in speed] == [10, 40, 160]
    assert speed[1]['time_ratio'] == pytest.approx(2.0)
    assert speed[1]['memory_ratio'] == pytest.approx(2.0)
    md = open(tmp_path / 'report.md').read()
    assert '1/2 twins within tolerance.' in md
    table = _table(md, 'speed')
    assert table[1]['graph (ms)'] == '4'  # 4e-3 s shown in ms
    assert table[1]['graph_peak (MiB)'] == '0.00391'  # 4096 bytes
    assert osp.getsize(tmp_path / 'speed.png') > 0
    assert 'FAIL BadConv vs nn.Bad' in stdout
    assert 'FakeConv vs nn.Fake: 2.00× time at 160 edges' in stdout


def test_missing_provider_is_a_clear_error(providers, monkeypatch, tmp_path,
                                           capsys):
    monkeypatch.setattr(suites, 'TWIN_PROVIDERS',
                        ['fake_bench_provider', 'pyg_relational.bench.nope'])
    code, stdout, err = _run(['twins', '--out', str(tmp_path)], capsys)
    assert code == 1
    assert 'Traceback' not in err + stdout
    assert 'provider(s) missing: pyg_relational.bench.nope' in stdout
    run = _results(tmp_path)['suites']['twins']
    assert run['status'] == 'incomplete' and len(run['rows']) == 2
    # a provider that raises: the others' rows are kept, the error named
    broken = types.ModuleType('fake_broken_provider')

    def twin_cases(quick=True, device='cpu'):
        raise RuntimeError('provider bug')

    broken.twin_cases = twin_cases
    monkeypatch.setitem(sys.modules, 'fake_broken_provider', broken)
    monkeypatch.setattr(suites, 'TWIN_PROVIDERS',
                        ['fake_broken_provider', 'fake_bench_provider'])
    code, stdout, err = _run(['twins', '--out', str(tmp_path)], capsys)
    assert code == 1 and 'Traceback' not in err + stdout
    assert 'fake_broken_provider.twin_cases raised RuntimeError: provider ' \
        'bug' in stdout
    run = _results(tmp_path)['suites']['twins']
    assert run['status'] == 'incomplete' and len(run['rows']) == 2
    # a reproduction suite whose provider is missing
    fn = suites._provider('pyg_relational.bench.nope', 'run_nope')
    with pytest.raises(suites.ProviderMissing, match='bench.nope'):
        fn(quick=True)


def test_failing_suite_is_reported_not_raised(registry, tmp_path, capsys):
    def broken(quick=True, device='cpu', progress=None):
        raise RuntimeError('simulated failure')

    registry(Suite('broken', 'fails', broken), Suite('ok', 'works',
                                                     _fake_rows))
    code, stdout, err = _run(['broken', 'ok', '--out', str(tmp_path)],
                             capsys)
    assert code == 1
    assert 'RuntimeError: simulated failure' in stdout
    assert 'Traceback' not in err + stdout
    data = _results(tmp_path)
    assert data['suites']['broken']['status'] == 'failed'
    assert data['suites']['ok']['status'] == 'ok'  # the others still ran


@pytest.mark.parametrize('argv, message', [
    (['nope'], "unknown suite 'nope'"),
    (['twins', '--device', 'tpu'], "--device 'tpu' is not"),
    (['twins', '--data-root', '/no/such/folder'], 'does not exist'),
    (['twins', '--seeds', '0'], '--seeds must be >= 1'),
    (['twins', '--threads', '0'], '--threads must be >= 1'),
    (['twins', '--seeds', 'two'], "invalid int value: 'two'"),
    (['twins', '--quick', '--full'], 'not allowed with argument'),
])
def test_bad_input_exits_nonzero_with_a_message(argv, message, tmp_path,
                                                capsys):
    code, stdout, err = _run(argv + ['--out', str(tmp_path)], capsys)
    assert code == 2
    assert message in err
    assert 'Traceback' not in err
    assert not osp.exists(tmp_path / 'report.md')


def test_unwritable_out_folder(tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    code, _, err = _run(['twins', '--out', str(blocker / 'sub')], capsys)
    assert code == 2 and 'cannot create --out' in err
    assert 'Traceback' not in err


def test_missing_optional_dependency(monkeypatch, tmp_path, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'tqdm'
                        else real(name, *a))
    code, _, err = _run(['twins', '--out', str(tmp_path)], capsys)
    assert code == 2 and 'tqdm is not installed' in err
    assert '--no-progress' in err
    # the extra is not on the package index: say how to get it
    assert "pip install -e '.[bench]'" in err
    assert "'pyg-relational[bench]'" not in err


def test_cuda_without_cuda(tmp_path, capsys):
    argv = ['twins', '--device', 'cuda:99', '--out', str(tmp_path)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert ('CUDA is not available' in err) or ('CUDA device(s)' in err)


def test_module_entry_point_lists_suites():
    out = subprocess.run([sys.executable, '-m', 'pyg_relational.bench',
                          '--list'], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r'^inductive-bias\s', out.stdout, re.M)


def test_format_value_units():
    assert report.format_value('graph_s', 0.0125) == '12.5'
    assert report.format_value('graph_peak_bytes', 3 * 2**20) == '3'
    assert report.format_value('max_abs_err', 1.5e-12) == '1.50e-12'
    assert report.format_value('passed', False) == 'NO'
    assert report.format_value('x', None) == '–'


# --- inductive bias ----------------------------------------------------------

def test_order_task_needs_order():
    data = load_task('order', test_size=64)
    tokens, labels = data.tokens, data.labels
    # same multiset of tokens 1 and 2 in every sequence ...
    assert ((tokens == 1).sum(1) == 2).all() and \
        ((tokens == 2).sum(1) == 2).all()
    # ... and exactly one adjacent (1, 2) or (2, 1) pair giving the label
    a, b = tokens[:, :-1], tokens[:, 1:]
    assert (((a == 1) & (b == 2)) | ((a == 2) & (b == 1))).sum(1).eq(1).all()
    assert ((a == 2) & (b == 1)).any(1).long().equal(labels)
    assert 0.3 < labels.float().mean() < 0.7
    torch.testing.assert_close(load_task('order', 64).tokens, tokens)


def test_inductive_bias_graphs():
    from pyg_relational.bench.inductive_bias import _Graphs
    data = load_task('digits', test_size=16)
    edges = {g: _Graphs(data, g).batch(data.test[:2]) for g in
             task_graphs('digits')}
    n = 64
    assert edges['none'].size(1) == 2 * n
    assert edges['complete'].size(1) == 2 * n * n
    assert edges['grid'].size(1) == 2 * (36 * 9 + 24 * 6 + 4 * 4)
    assert edges['chain'].size(1) == 2 * (n + n - 1)
    for g, ei in edges.items():  # every node keeps its self-loop, no more
        loops = ei[0] == ei[1]
        assert loops.sum() == 2 * n, g
        assert ei.max() < 2 * n and ei.min() >= 0
        assert ((ei[0] < n) == (ei[1] < n)).all()  # no edge across images
    ink = data.values[data.test[:2], :, 0] > 0
    src, dst = edges['ink'][:, edges['ink'][0] != edges['ink'][1]]
    assert ink.view(-1)[src].all() and ink.view(-1)[dst].all()
    with pytest.raises(ValueError, match="Unknown task='cifar'"):
        task_graphs('cifar')


def test_inductive_bias_rows_tiny():
    rows = run_inductive_bias(**TINY)
    assert [(r['task'], r['graph']) for r in rows] == \
        [(t, g) for t in TASKS for g in task_graphs(t)]
    for r in rows:
        assert 0.0 <= r['test_acc'] <= 1.0
        assert r['test_acc_per_seed'] == [r['test_acc']]
        assert r['train_size'] == 8 and r['steps'] == 3
    again = run_inductive_bias(tasks=('order', ), graphs=('chain', ), **TINY)
    assert again[0]['test_acc'] == rows[-1]['test_acc']  # deterministic


@pytest.mark.parametrize('kwargs, message', [
    (dict(tasks=('cifar', )), "Unknown task='cifar'"),
    (dict(tasks=('order', ), graphs=('grid', )), "Unknown graphs=['grid']"),
    (dict(tasks=('order', ), train_sizes=(5000, )), 'use sizes <= 1200'),
])
def test_inductive_bias_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_inductive_bias(**dict(TINY, **kwargs))


def test_inductive_bias_learns_order_on_the_chain():
    """The experiment measures something: on the order task the chain
    graph learns what the bag of tokens (self-loops only) cannot."""
    kw = dict(TINY, train_sizes=(200, ), steps=100, test_size=100, hidden=16,
              layers=2, lr=1e-2)
    rows = run_inductive_bias(tasks=('order', ), graphs=('none', 'chain'),
                              **kw)
    acc = {r['graph']: r['test_acc'] for r in rows}
    assert acc['chain'] >= 0.9
    assert acc['none'] <= 0.7


def test_inductive_bias_suite_report(registry, tmp_path, capsys):
    real = suites.get_suite('inductive-bias')
    registry(Suite(real.name, real.description,
                   functools.partial(run_inductive_bias, **TINY),
                   plot=real.plot))
    code, stdout, err = _run(['inductive-bias', '--quick', '--out',
                              str(tmp_path)], capsys)
    assert code == 0, err
    rows = _results(tmp_path)['suites']['inductive-bias']['rows']
    assert len(rows) == sum(len(task_graphs(t)) for t in TASKS)
    table = _table(open(tmp_path / 'report.md').read(), 'inductive-bias')
    for r, t in zip(rows, table):
        assert (t['task'], t['graph']) == (r['task'], r['graph'])
        assert t['test_acc'] == f"{r['test_acc']:.4f}"
    assert osp.getsize(tmp_path / 'inductive-bias.png') > 0
    assert 'digits (n=8):' in stdout and 'order (n=8):' in stdout


# --- the real providers ---------------------------------------------------------

@pytest.mark.parametrize('name', ['twins', 'speed', 'citation', 'non-local',
                                  'seq2seq', 'physics', 'nri'])
def test_suites_call_providers_with_their_signature(name, monkeypatch):
    """Each suite calls its provider with arguments the provider's real
    signature accepts (checked without running the provider)."""
    import inspect
    calls, real_import = [], suites.import_provider

    def fake_import(module, attribute):
        real = real_import(module, attribute)

        def record(*args, **kwargs):
            calls.append((real, args, kwargs))
            return '/data' if attribute == 'default_data_root' else []

        return record

    monkeypatch.setattr(suites, 'import_provider', fake_import)
    try:
        suites.get_suite(name).run(quick=True, progress=lambda s: None,
                                   seeds=2)
    except suites.ProviderMissing as e:
        pytest.skip(f'provider not in this checkout: {e}')
    assert calls
    for real, args, kwargs in calls:
        inspect.signature(real).bind(*args, **kwargs)


def test_twins_suite_real_providers_quick(tmp_path, capsys):
    code, stdout, err = _run(['twins', '--quick', '--no-plots', '--out',
                              str(tmp_path)], capsys)
    run = _results(tmp_path)['suites']['twins']
    assert run['rows'], run['error']
    failed = [r for r in run['rows'] if not r['passed']]
    assert not failed
    assert code == 0, run['error']
    assert len(_table(open(tmp_path / 'report.md').read(), 'twins')) == \
        len(run['rows'])


def test_missing_citation_data_is_a_clear_error(monkeypatch, tmp_path,
                                                capsys):
    """No planetoid/ under the data root and no network: one clear line
    naming the folder and the fix, the suite skipped, exit status 0, no
    traceback (the real loader, with PyG's download failing as it does
    offline)."""
    from torch_geometric.datasets import Planetoid

    from pyg_relational.bench import citation

    def offline(self):
        raise OSError('Cannot connect to host github.com:443')

    monkeypatch.setattr(Planetoid, 'download', offline)
    from pyg_relational._cache import BoundedCache
    monkeypatch.setattr(citation, '_CACHE', BoundedCache('test', 8))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(citation.DataNotFound) as info:
        citation.load_planetoid('Cora', str(empty))
    message = str(info.value)
    assert '\n' not in message and str(empty / 'planetoid' / 'Cora') in message
    assert 'Cannot connect' in message and 'PYG_RELATIONAL_DATA' in message
    code, stdout, err = _run(['citation', '--no-progress', '--data-root',
                              str(empty), '--out', str(tmp_path / 'out')],
                             capsys)
    # issue 22: absent data skips the suite (one row saying why and how to
    # provide it) and the run still succeeds
    assert code == 0
    assert '[   skipped] citation' in stdout
    assert 'could not be downloaded' in stdout and 'Traceback' not in err
    run = _results(tmp_path / 'out')['suites']['citation']
    assert run['status'] == 'skipped' and 'empty' in run['error']
    assert run['error'].startswith('skipped: Planetoid Cora')
    report_md = (tmp_path / 'out' / 'report.md').read_text()
    row = next(line for line in report_md.splitlines()
               if line.startswith('| citation |'))
    assert '| skipped: Planetoid Cora is not in' in row
    assert '--data-root DIR' in row and 'PYG_RELATIONAL_DATA' in row


# --- the command tells the truth ----------------------------------------------

def test_bare_command_prints_help_and_runs_nothing(tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = _run([], capsys)
    assert code == 0 and 'usage: pyg-relational bench' in stdout
    assert 'smoke test' in stdout and '--full' in stdout
    assert not osp.exists(tmp_path / cli.DEFAULT_OUT)  # nothing ran
    for word in ('provider', 'the issues', 'SpeedResult', 'registry'):
        assert word not in stdout, word  # no internal jargon


def test_version(capsys):
    import torch_geometric
    code, stdout, _ = _run(['--version'], capsys)
    assert code == 0
    assert stdout.startswith('pyg-relational ')
    assert f'torch {torch.__version__}' in stdout
    assert f'torch_geometric {torch_geometric.__version__}' in stdout


def _accuracy_rows(quick=True, device='cpu', progress=None):
    return [{'dataset': 'Cora', 'model': 'M', 'test_acc': 0.5,
             'paper': 0.9, 'epochs': 5.0}]


@pytest.mark.parametrize('quick', [True, False])
def test_quick_mode_is_a_smoke_test(quick, registry, tmp_path, capsys):
    """Quick mode says it is a smoke test (screen and report) and shows
    accuracies next to chance, not next to papers; --full keeps them."""
    registry(Suite('acc', 'accuracies', _accuracy_rows,
                   chance=('test_acc', lambda r: 1 / 7),
                   summary=('model', 'test_acc', 'chance', 'paper')))
    code, stdout, err = _run(['acc', '--no-progress', '--out',
                              str(tmp_path)] + ([] if quick else ['--full']),
                             capsys)
    assert code == 0, err
    md = open(tmp_path / 'report.md').read()
    row = _table(md, 'acc')[0]
    assert row['chance'] == f'{1 / 7:.4f}' and row['epochs'] == '5'
    assert list(row)[:4] == ['dataset', 'model', 'test_acc', 'chance']
    assert ('smoke test' in md) == quick and ('smoke test' in err) == quick
    assert ('smoke test' in stdout) == quick
    assert ('paper' in row) != quick
    assert ('paper=' in stdout) != quick
    assert _results(tmp_path)['meta']['quick'] is quick


def test_real_suites_drop_paper_figures_in_quick_mode():
    row = {'dataset': 'CiteSeer', 'model': 'GCNConv', 'test_acc_mean': 20.,
           'test_acc_std': 0., 'paper': 70.3}
    quick, = suites.get_suite('citation').present([row], quick=True)
    assert 'paper' not in quick and quick['chance'] == pytest.approx(100 / 6)
    full, = suites.get_suite('citation').present([row], quick=False)
    assert full['paper'] == 70.3
    # physics: the baseline/model ratio gets a name that says so
    phys, = suites.get_suite('physics').present(
        [{'model': 'IN', 'rollout_mse': 0.5, 'ratio_to_baseline': 4.0}],
        quick=True)
    assert phys['baseline_mse/mse'] == 4.0 and 'ratio_to_baseline' not in phys
    for name in ('non-local', 'seq2seq', 'nri', 'inductive-bias'):
        assert suites.get_suite(name).chance is not None, name


def _threads_row(quick=True, device='cpu', progress=None):
    return [{'threads_seen': torch.get_num_threads()}]


def test_timing_suites_run_on_one_thread(registry, tmp_path, capsys,
                                         monkeypatch):
    monkeypatch.setattr(cli, '_DEFAULT_THREADS', 2)
    registry(Suite('timed', 'times', _threads_row, timing=True),
             Suite('trained', 'trains', _threads_row))
    assert suites.Suite('s', 's', _threads_row, kind='speed').timing
    for argv, want in (([], {'timed': 1, 'trained': 2}),
                       (['--threads', '2'], {'timed': 2, 'trained': 2})):
        code, _, err = _run(['timed', 'trained', '--no-progress', '--out',
                             str(tmp_path)] + argv, capsys)
        assert code == 0, err
        data = _results(tmp_path)['suites']
        for name, threads in want.items():
            assert data[name]['rows'][0]['threads_seen'] == threads
            assert data[name]['threads'] == threads
            assert len(data[name]['load_average']) == 2


def test_load_above_cores_warns(registry, tmp_path, capsys, monkeypatch):
    import os
    monkeypatch.setattr(report, 'load_average',
                        lambda: float(os.cpu_count() + 3))
    registry(Suite('a', 'first', _fake_rows))
    code, stdout, err = _run(['a', '--no-progress', '--out', str(tmp_path)],
                             capsys)
    assert code == 0
    assert 'warning: load average' in err and 'unreliable' in err
    md = open(tmp_path / 'report.md').read()
    assert '**Warning**: load average' in md
    assert _results(tmp_path)['meta']['load_average'] == os.cpu_count() + 3


def test_ratios_only_from_alternated_runs(providers, monkeypatch, tmp_path,
                                          capsys):
    def sequential(quick=True, device='cpu'):
        return [SpeedResult('SeqConv', 'nn.Seq', 'n=1', device, 10, 2e-3,
                            1e-3, 2048, 1024)]  # alternated=False

    monkeypatch.setattr(sys.modules['fake_bench_provider'], 'speed_cases',
                        sequential)
    code, stdout, err = _run(['speed', '--no-progress', '--out',
                              str(tmp_path)], capsys)
    assert code == 0, err
    row = _results(tmp_path)['suites']['speed']['rows'][0]
    assert row['time_ratio'] is None and row['memory_ratio'] == 2.0
    table = _table(open(tmp_path / 'report.md').read(), 'speed')
    assert table[0]['time_ratio (×)'] == '–'
    assert 'not timed in alternation: no ratio' in stdout


def test_units_and_counts():
    assert report.column_name('graph_s') == 'graph (ms)'
    assert report.column_name('graph_peak_bytes') == 'graph_peak (MiB)'
    assert report.format_value('epochs', 5.0) == '5'
    assert report.format_value('epochs', 37.25) == '37.2'
    # one unit per column: seconds when durations reach 10 s
    md = report.markdown_table([{'train_s': 0.15}, {'train_s': 12.34}])
    assert md.splitlines()[0] == '| train (s) |'
    assert md.splitlines()[2:] == ['| 0.15 |', '| 12.3 |']  # 3 figures < 10 s
    md = report.markdown_table([{'train_s': 0.15}])
    assert md.splitlines()[0] == '| train (ms) |' and '| 150 |' in md


def _long_rows(quick=True, device='cpu', progress=None):
    return [{f'key_{k}': 1234.5 + k for k in range(20)}]


def test_summary_wraps_instead_of_cutting(registry, tmp_path, capsys):
    registry(Suite('long', 'many columns', _long_rows))
    code, stdout, _ = _run(['long', '--no-progress', '--out',
                            str(tmp_path)], capsys)
    assert code == 0 and '…' not in stdout
    for k in range(20):  # every figure appears whole
        assert f'key_{k}={1234.5 + k:.4g}' in stdout
    assert max(len(line) for line in stdout.splitlines()) <= 100


def test_interrupted_run_keeps_finished_suites(registry, tmp_path, capsys):
    def interrupted(quick=True, device='cpu', progress=None):
        raise KeyboardInterrupt

    registry(Suite('a', 'first', _fake_rows),
             Suite('b', 'interrupted', interrupted),
             Suite('c', 'never run', _fake_rows))
    code, stdout, err = _run(['--no-progress', '--no-plots', '--out',
                              str(tmp_path)], capsys)
    assert code == 130 and 'Traceback' not in err
    assert err.splitlines()[-1].startswith('pyg-relational bench: '
                                           'interrupted; 1 finished suite')
    data = _results(tmp_path)
    assert list(data['suites']) == ['a'] and data['meta']['interrupted']
    assert data['meta']['not_run'] == ['b', 'c']
    md = open(tmp_path / 'report.md').read()
    assert len(_table(md, 'a')) == 2 and 'not run: b, c' in md


def test_native_log_kept_only_when_written(tmp_path):
    import os
    path = str(tmp_path / 'native.log')
    with cli._native_stderr(path, sys.__stderr__):
        pass
    assert not osp.exists(path)  # nothing written: no unexplained file
    with cli._native_stderr(path, sys.__stderr__):
        os.write(2, b'profiler noise\n')
    assert open(path).read() == 'profiler noise\n'
    assert cli._native_lines(path) == 1


def _interrupt_during_start_up(root):
    """Start ``bench --list`` and send SIGINT once torch is being loaded
    (inside the launcher's import), not while the interpreter itself is
    still starting; ``(returncode, stderr)``. The child gets SIGINT's
    default disposition, as from a terminal: a shell's background job
    (``nohup cmd &``, some CI runners) ignores SIGINT, and its children
    inherit that."""
    import signal
    import time
    proc = subprocess.Popen([sys.executable, '-m', '_pyg_relational_cli',
                             'bench', '--list'], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(
                                signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(f'/proc/{proc.pid}/maps') as f:
                if 'libtorch' in f.read():
                    break
        except OSError:  # no /proc: fall back to a pause
            time.sleep(0.5)
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_ctrl_c_during_start_up_is_one_line():
    """Ctrl-C while torch is still importing (the launcher of the console
    script): exit status 130, one line, no traceback. The signal races the
    command, which could finish first: tried up to 10 times, and at least
    one try must be interrupted."""
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for _ in range(10):
        code, err = _interrupt_during_start_up(root)
        if code != 0:
            break
    assert code == 130, f'exit status {code} in 10 tries: {err}'
    assert 'Traceback' not in err
    assert err.strip().splitlines() == ['pyg-relational: interrupted'] or \
        err.strip().splitlines()[-1] == 'pyg-relational bench: interrupted'


# --- issue 22: offline runs, honest smoke-test speed rows, readable plots -----

def _skipping(quick=True, device='cpu', progress=None):
    raise suites.SuiteSkipped("the data of 'x' is not in /nowhere; pass "
                              "--data-root DIR")


def test_skipped_suite_is_one_row_and_the_run_succeeds(registry, tmp_path,
                                                       capsys):
    registry(Suite('a', 'first', _fake_rows), Suite('b', 'needs data',
                                                    _skipping))
    code, stdout, err = _run(['--no-progress', '--out', str(tmp_path)],
                             capsys)
    assert code == 0, err
    assert '[   skipped] b' in stdout and '--data-root DIR' in stdout
    data = _results(tmp_path)['suites']
    assert data['a']['status'] == 'ok' and data['b']['status'] == 'skipped'
    md = open(tmp_path / 'report.md').read()
    assert "| b | skipped: the data of 'x' is not in /nowhere; pass " \
        "--data-root DIR | 0 |" in md
    # a failure next to a skip still fails the run
    registry(Suite('b', 'needs data', _skipping),
             Suite('c', 'broken', lambda **_: 1 / 0))
    code, *_ = _run(['--no-progress', '--out', str(tmp_path / 'c')], capsys)
    assert code == 1


def test_digits_suites_skip_without_scikit_learn(monkeypatch):
    real = suites.importlib.util.find_spec
    monkeypatch.setattr(suites.importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'sklearn'
                        else real(name, *a))
    for name in ('non-local', 'inductive-bias'):
        with pytest.raises(suites.SuiteSkipped, match='pip install'):
            suites.get_suite(name).function(quick=True, device='cpu')


def test_quick_speed_rows_carry_the_smoke_test_caveat(providers, tmp_path,
                                                      capsys):
    code, stdout, err = _run(['speed', '--no-progress', '--out',
                              str(tmp_path)], capsys)
    assert code == 0, err
    flat = ' '.join(stdout.split())
    assert 'Smoke-test speed rows: tiny graphs on one CPU thread' in flat
    md = open(tmp_path / 'report.md').read()
    assert f'**{report.SPEED_QUICK_NOTE}**' in md
    code, stdout, err = _run(['speed', '--full', '--no-progress', '--out',
                              str(tmp_path / 'full')], capsys)
    assert 'Smoke-test speed rows' not in stdout
    assert 'Smoke-test speed rows' not in open(
        tmp_path / 'full' / 'report.md').read()


def test_speed_plot_is_one_panel_of_bars_in_ms():
    rows = _fake_speed() + [SpeedResult('OtherConv', 'nn.Other', 'gru',
                                        'cpu', 5, 2e-3, 1e-3, 1, 1)]
    run = report.SuiteRun('speed', 'speed', 'speed', rows=rows,
                          plot=suites.get_suite('speed').plot)
    [(name, fig)] = list(report.figures([run], quick=True))
    [ax] = [a for a in fig.axes if a.get_visible()]
    assert 'ms' in ax.get_xlabel() and not ax.lines  # bars, no lines
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ['FakeConv vs nn.Fake (n=1)', 'FakeConv vs nn.Fake '
                      '(n=4)', 'FakeConv vs nn.Fake (n=16)',
                      'OtherConv vs nn.Other (gru)']
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths[-1] == 16.0  # 1e-3 s * 16 in ms
    assert 'SMOKE TEST' in fig._suptitle.get_text()
    assert any(t.get_text() == 'smoke test' for t in fig.texts)


def test_inductive_bias_plot_has_a_chance_line():
    suite = suites.get_suite('inductive-bias')
    rows = [dict(task='order', graph=g, train_size=n, test_acc=a)
            for g, n, a in (('chain', 50, 0.6), ('chain', 200, 0.9),
                            ('none', 50, 0.5), ('none', 200, 0.52))]
    run = report.SuiteRun('inductive-bias', '', 'rows',
                          rows=suite.present(rows, True), plot=suite.plot)
    [(_, fig)] = list(report.figures([run], quick=False))
    [ax] = [a for a in fig.axes if a.get_visible()]
    chance = [ln for ln in ax.lines if ln.get_label().startswith('chance')]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.5, 0.5]
    assert 'SMOKE' not in fig._suptitle.get_text()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ['50', '200']  # the sizes, no overlapping 10^k labels


def test_experiment_tables_drop_empty_columns_and_explain_units():
    rows = [dict(experiment='a', tokens=4, step_s=0.001),
            dict(experiment='a', tokens=8, step_s=0.002),
            dict(experiment='b', test_nll=3.5, rollout_mse=0.1,
                 final_loss=0.2)]
    run = report.SuiteRun('scale', 'scale', 'rows', rows=rows)
    md = report.render_markdown([run], {'date': 'd', 'device': 'cpu',
                                        'torch': 't', 'torch_geometric': 'g'})
    assert '### scale: a' in md and '### scale: b' in md
    part_a = md.split('### scale: a')[1].split('### scale: b')[0]
    assert '| tokens | step (ms) |' in part_a and 'test_nll' not in part_a
    part_b = md.split('### scale: b')[1]
    assert 'tokens' not in part_b
    for key in ('test_nll', 'rollout_mse', 'final_loss'):
        assert f'- `{key}`: ' in part_b
    assert 'nats per particle' in part_b and 'squared simulation' in part_b


def test_full_extra_hint_says_how_to_install_from_the_clone(monkeypatch):
    import torch_geometric.typing as pyg_typing

    from pyg_relational.bench import scale
    monkeypatch.setattr(pyg_typing, 'WITH_PYG_LIB', False)
    monkeypatch.setattr(pyg_typing, 'WITH_TORCH_SPARSE', False)
    reason = scale.sampler_missing()
    assert "pip install -e '.[full]'" in reason
    assert "'pyg-relational[full]'" not in reason
