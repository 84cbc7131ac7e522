"""README.md: every Python example runs as written, and the install and
test commands are the ones CI runs, usable on a machine without this
workshop's ``../shared`` folder (docs must not drift from the code)."""
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
README = osp.join(ROOT, 'README.md')
TEXT = open(README).read()
BLOCKS = re.findall(r'```python\n(.*?)```', TEXT, re.S)


def _command(marker: str) -> str:
    """The ```bash block after ``<!-- marker -->``."""
    rest = TEXT[TEXT.index(f'<!-- {marker} -->'):]
    return re.search(r'```bash\n(.*?)```', rest, re.S).group(1)


def test_readme_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize('k', range(len(BLOCKS)))
def test_readme_example_runs(k, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # examples may cache data under ./data
    exec(compile(BLOCKS[k], f'README.md python block {k}', 'exec'), {})


def test_install_and_test_commands_work_without_shared():
    install, tests = _command('install-command'), _command('test-command')
    assert install.splitlines() == ['pip install torch==2.13.0',
                                    'pip install -e ".[test]"']
    assert tests.strip() == 'python -m pytest -q'
    for command in (install, tests):  # nothing a user's machine lacks
        assert '../shared' not in command and '--find-links' not in command
    # ../shared appears only as CI's optional speed-up
    for line in TEXT.splitlines():
        if '../shared' in line:
            assert 'CI' in line or 'optional' in line, line


def test_ci_runs_the_readme_commands():
    ci = open(osp.join(ROOT, '.ci', 'run')).read()
    assert 'readme_block install-command' in ci
    assert 'readme_block test-command' in ci
    assert '--only-binary :all:' in ci  # the optional wheels: never compiled
