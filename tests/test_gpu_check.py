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
    # the repository's result file is left alone
    after = os.stat(repo_result).st_mtime if osp.exists(repo_result) \
        else None
    assert after == before


def test_gpu_check_docstring_has_the_cuda_command():
    with open(SCRIPT) as f:
        source = f.read()
    assert 'python benchmarks/scripts/gpu_check.py --device cuda --out ' \
        'benchmarks/results/gpu.md' in source
