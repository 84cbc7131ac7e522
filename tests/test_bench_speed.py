"""The speed-target benchmark of issue 12: the alternated timing helper,
compare_speed's rows, the providers' target_cases at tiny sizes and the
paths_speed.py script."""
import importlib.util
import os.path as osp
import re
import statistics

import pytest
import torch

from pyg_relational.bench import attention, classic, non_local
from pyg_relational.bench.timing import (Target, compare_speed,
                                         measure_pair, path_of)
from pyg_relational.nn import AttentionConv

from .conftest import ROOT

pytestmark = pytest.mark.usefixtures('one_thread')

FIELDS = ('path', 'baseline_path', 'max_abs_diff', 'outputs_agree',
          'target', 'met', 'graph_times_s', 'baseline_times_s', 'repeat',
          'warmup', 'threads', 'timer')


def check_row(r, repeat):
    """Every field of a target row, and ratios from the alternated
    medians."""
    assert r.alternated
    assert set(FIELDS) <= set(r.extra), set(FIELDS) - set(r.extra)
    times_g, times_t = r.extra['graph_times_s'], r.extra['baseline_times_s']
    assert len(times_g) == len(times_t) == repeat
    assert r.graph_s == statistics.median(times_g) > 0
    assert r.baseline_s == statistics.median(times_t) > 0
    assert r.time_ratio == pytest.approx(r.graph_s / r.baseline_s)
    assert isinstance(r.extra['path'], str)
    assert r.extra['outputs_agree'], (r.config, r.extra['max_abs_diff'])
    assert r.num_edges > 0


def test_measure_pair_alternates_and_takes_medians():
    calls = []
    a = lambda: calls.append('a')  # noqa: E731
    b = lambda: calls.append('b')  # noqa: E731
    ma, mb = measure_pair(a, b, repeat=3, warmup=2, memory=False)
    # 2 warm-up rounds, then 3 timed rounds, always a before b
    assert calls == ['a', 'b'] * 5
    assert len(ma.times_s) == len(mb.times_s) == 3
    assert ma.median_s == statistics.median(ma.times_s)
    assert ma.peak_bytes == mb.peak_bytes == 0


def test_measure_pair_peak_memory():
    big = lambda: torch.ones(1 << 20)  # noqa: E731 -- 4 MiB float32
    small = lambda: torch.ones(1 << 10)  # noqa: E731
    ma, mb = measure_pair(big, small, repeat=1, warmup=0)
    assert ma.peak_bytes >= 4 << 20 > mb.peak_bytes > 0


def test_target():
    target = Target(1.1, 1.2)
    assert target.met(1.1, 1.2) and not target.met(1.11, 1.0)
    assert not target.met(1.0, 1.3) and not target.met(1.0, None)
    assert Target(1.2).met(0.5, None)
    assert str(target) == 'time ≤ 1.1×, memory ≤ 1.2×'
    assert str(Target(1 / 1.5, note='faster')) == 'time ≤ 0.667× (faster)'


def test_path_of_reads_submodules():
    outer = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert path_of(outer) == 'n/a' and path_of(None) == 'n/a'
    outer[1].last_path = 'dense'
    assert path_of(outer) == 'dense'
    outer.last_path = 'sparse'
    assert path_of(outer) == 'sparse+dense'


def test_compare_speed_same_cotangent_in_both_layouts():
    # The "graph" side works on rows [B*T, F], the twin on [B, T, F]; the
    # one cotangent pulled back to both layouts gives equal gradients.
    lin = torch.nn.Linear(3, 4)
    x = torch.randn(2, 5, 3)
    x_twin = x.clone().requires_grad_()
    x_graph = x.reshape(10, 3).clone().requires_grad_()
    r = compare_speed('G', 'T', 'tiny', lambda: lin(x_graph),
                      lambda: lin(x_twin), [x_graph, *lin.parameters()],
                      [x_twin, *lin.parameters()], repeat=3, num_edges=1,
                      target=Target(1e9, 1e9))
    check_row(r, 3)
    assert r.extra['max_abs_diff'] == 0.
    assert r.extra['met'] is True and r.memory_ratio > 0
    assert r.extra['target'] == 'time ≤ 1e+09×, memory ≤ 1e+09×'
    # gradients were reset before every step: one step's worth
    assert torch.allclose(x_graph.grad.view(2, 5, 3), x_twin.grad)
    assert x_twin.grad.abs().sum() > 0


def test_compare_speed_reports_disagreement_and_missing_memory():
    x = torch.randn(4, 3, requires_grad=True)
    r = compare_speed('G', 'T', 'off by 0.5', lambda: x * 1 + 0.5,
                      lambda: x * 1, [x], [x], repeat=1, memory=False,
                      target=Target(1e9, 1.2),
                      extra={'batch': 4})
    assert r.extra['max_abs_diff'] == pytest.approx(0.5)
    assert not r.extra['outputs_agree']
    assert r.extra['met'] is None  # a memory target without memory runs
    assert r.extra['batch'] == 4 and r.memory_ratio is None


@pytest.mark.parametrize('kind,causal', [('mha', False), ('mha', True),
                                         ('encoder', True)])
def test_block_target(kind, causal):
    r = attention.block_target(kind, 4, 2, 8, 2, causal, repeat=1,
                               memory=False)
    check_row(r, 1)
    assert r.num_edges == (2 * 10 if causal else 2 * 16)
    assert r.extra['target'] == str(attention.ATTENTION_TARGET)
    with pytest.raises(ValueError, match="'kind' must be 'mha' or"):
        attention.block_target('rnn', 4, 2, 8, 2)


def test_ragged_gat_window_random_targets():
    r = attention.ragged_target(6, 3, 8, 2, repeat=1, memory=False)
    check_row(r, 1)
    lengths = r.extra['lengths']
    assert lengths[0] == 6 and all(3 <= n <= 6 for n in lengths)
    assert r.num_edges == sum(n * n for n in lengths)
    check_row(attention.gat_target(30, 90, 8, 2, repeat=1, memory=False), 1)
    r = attention.window_target(20, 2, 8, 2, repeat=2)
    check_row(r, 2)
    assert r.num_edges == 20 * 5 - 2 * 3
    assert r.memory_ratio is not None
    r = attention.random_sparse_target(30, 90, 8, 2, repeat=1, memory=False)
    check_row(r, 1)
    assert r.baseline == 'AttentionConv (message path)'
    assert r.extra['target'] is None and r.extra['met'] is None
    r = attention.random_sparse_target(30, 90, 8, 2, repeat=1, memory=False,
                                       before=AttentionConv,
                                       before_name='same')
    check_row(r, 1)
    assert r.baseline == 'AttentionConv (same)'
    assert r.extra['target'] == str(attention.BEFORE_TARGET)
    assert r.extra['max_abs_diff'] == 0.


def test_classic_and_non_local_targets():
    conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1)
    r = classic.lattice_target(conv, (6, 6), 2, repeat=1, memory=False)
    check_row(r, 1)
    assert r.baseline == 'nn.Conv2d' and 'stride 2' in r.config
    for cls in (torch.nn.LSTM, torch.nn.GRU):
        r = classic.recurrent_target(cls(4, 4, batch_first=True), 5, 2,
                                     repeat=1, memory=False)
        check_row(r, 1)
        assert r.num_edges == 2 * 4
    rows = non_local.target_cases(quick=True, repeat=1, memory=False)
    assert [r.extra['side'] for r in rows] == [4, 8]
    for r in rows:
        check_row(r, 1)


def _script():
    path = osp.join(ROOT, 'benchmarks', 'scripts', 'paths_speed.py')
    spec = importlib.util.spec_from_file_location('_paths_speed', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paths_speed_script(capsys, tmp_path):
    script = _script()
    out = tmp_path / 'rows.json'
    script.main(['--quick', '--repeat', '1', '--only', 'non_local',
                 '--no-memory', '--json', str(out)])
    text = capsys.readouterr().out
    assert '/proc/loadavg' in text and f'torch {torch.__version__}' in text
    assert 'threads 1' in text
    table = [line for line in text.splitlines() if
             line.startswith('| NonLocalBlock')]
    assert len(table) == 2
    assert re.search(r'\n[0-2]/2 targets met; outputs agree .* in 2/2 rows',
                     text)
    assert out.stat().st_size > 0
    with pytest.raises(SystemExit, match='no pyg_relational'):
        script.load_before(str(tmp_path))
