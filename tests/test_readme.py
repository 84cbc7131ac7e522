"""Every Python example in README.md runs as written (docs must not drift
from the code)."""
import os.path as osp
import re

import pytest

README = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                  'README.md')
BLOCKS = re.findall(r'```python\n(.*?)```', open(README).read(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize('k', range(len(BLOCKS)))
def test_readme_example_runs(k, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # examples may cache data under ./data
    exec(compile(BLOCKS[k], f'README.md python block {k}', 'exec'), {})


def test_ci_runs_the_readme_test_command():
    text = open(README).read()
    marker = text.index('<!-- test-command -->')
    block = re.search(r'```bash\n(.*?)```', text[marker:], re.S).group(1)
    assert 'python -m pytest' in block and 'torch==2.13.0' in block
    ci = open(osp.join(osp.dirname(README), '.ci', 'run')).read()
    assert 'test-command' in ci  # .ci/run reads the block after the marker
