"""benchmarks/scripts/gpu_check.py runs end to end on the CPU (issue 20),
so that the first GPU minute is not spent on a typo."""
import os
import os.path as osp
import re
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(ROOT, 'benchmarks', 'scripts', 'gpu_check.py')
SECTIONS = ['MultiheadAttentionConv vs nn.MultiheadAttention',
            'TransformerEncoderLayer vs nn.TransformerEncoderLayer',
            'RecurrentConv vs nn.LSTM', 'LatticeConv vs nn.Conv2d',
            'NonLocalBlock vs its dense bmm twin', 'GAT:', 'Aggregation:']


def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / 'gpu.md'
    repo_result = osp.join(ROOT, 'benchmarks', 'results', 'gpu.md')
    before = os.stat(repo_result).st_mtime if osp.exists(repo_result) \
        else None
    done = subprocess.run([sys.executable, SCRIPT, '--device', 'cpu',
                           '--quick', '--out', str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    for title in SECTIONS:
        assert f'## {title}' in text, title
    assert '| error' not in text and 'Error:' not in text, text
    # every test group ran something and nothing failed
    for group in ('conformance', 'twins', 'meta branches'):
        row = re.search(rf'^\| {group} \| (\d+) \| (\d+) \|', text, re.M)
        assert row, f'no row for {group}:\n{text}'
        assert int(row.group(1)) > 0 and int(row.group(2)) == 0, row.group(0)
    # every graph kind timed; in float32 our output equals the twin's
    rows = [[c.strip() for c in line.strip('|').split('|')]
            for line in text.splitlines()
            if line.startswith('| MultiheadAttentionConv |')]
    assert {row[1].split()[0] for row in rows} == {'complete', 'causal',
                                                   'ragged'}
    for row in rows:
        float(row[2]), float(row[3])  # times in ms
        if row[1].endswith('fp32'):
            assert float(row[9]) < 1e-4, row
    # the GAT layers (PyG's weights copied in) and every aggregation agree
    cells = [[c.strip() for c in line.strip('|').split('|')]
             for line in text.splitlines() if line.startswith('| ')]
    gat = [r for r in cells if r[0] in ('GATConv (drop-in)',
                                        "AttentionConv(score='gat')")]
    assert len(gat) == 2 and all(float(r[9]) < 1e-4 for r in gat), gat
    aggregation = [r for r in cells if r[0] in ('sum', 'mean', 'max')]
    assert len(aggregation) == 3
    assert all(float(r[-1]) < 1e-4 for r in aggregation), aggregation
    # the repository's result file is left alone
    after = os.stat(repo_result).st_mtime if osp.exists(repo_result) \
        else None
    assert after == before


def test_gpu_check_docstring_has_the_cuda_command():
    with open(SCRIPT) as f:
        source = f.read()
    assert 'python benchmarks/scripts/gpu_check.py --device cuda --out ' \
        'benchmarks/results/gpu.md' in source


def _script():
    import importlib.util
    spec = importlib.util.spec_from_file_location('gpu_check', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_outcomes_are_counted_per_group():
    """A failure, an error and a skip are reported, not taken for passes
    (what a run stopped by its timeout still prints counts too)."""
    gpu_check = _script()
    output = '\n'.join([
        'tests/test_conformance.py::test_a[cuda-x] PASSED     [  1%]',
        'tests/test_conformance.py::test_b[cuda-y] FAILED     [  2%]',
        'tests/test_conformance.py::test_c[cuda-z] SKIPPED (no) [  3%]',
        'tests/test_linear.py::test_twin_linear[cuda-1] PASSED [  4%]',
        'tests/test_meta_device.py::test_m ERROR               [  5%]',
        'tests/test_meta_device.py::test_n XFAIL (reason)      [  6%]',
    ])
    rows = {}
    gpu_check._count_outcomes(output, rows)
    assert rows['conformance'] == dict(
        group='conformance', passed=1, failed=1, skipped=1,
        failures=['tests/test_conformance.py::test_b[cuda-y]'])
    assert rows['twins']['passed'] == 1 and rows['twins']['failed'] == 0
    assert rows['meta branches']['failed'] == 1
    assert rows['meta branches']['skipped'] == 1


def test_alternate_takes_medians_in_turn():
    gpu_check = _script()
    import torch
    calls = []
    fns = {'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}
    result = gpu_check.alternate(fns, torch.device('cpu'), repeat=3)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3  # warm-up, then in turn
    assert set(result) == {'a', 'b'}
    assert all(r['s'] >= 0 and r['peak'] is None for r in result.values())
