"""Packaging: what pyproject.toml declares matches what the code imports,
optional extras are never needed to import the package, the console script
exists, and data roots never point inside the installed package."""
import ast
import glob
import importlib
import os.path as osp
import sys

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = pytest.importorskip('tomli')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
with open(osp.join(ROOT, 'pyproject.toml'), 'rb') as f:
    PYPROJECT = tomllib.load(f)
PROJECT = PYPROJECT['project']
#: import name -> distribution name, where they differ
DISTRIBUTION = {'sklearn': 'scikit-learn', 'torch_sparse': 'torch-sparse',
                'torch_scatter': 'torch-scatter'}
SOURCES = sorted(glob.glob(osp.join(ROOT, 'pyg_relational', '**', '*.py'),
                           recursive=True))


def _name(requirement: str) -> str:
    """``'torch>=2.3'`` -> ``'torch'`` (normalised as pip does)."""
    for sep in '<>=!~;[ ':
        requirement = requirement.split(sep)[0]
    return requirement.lower().replace('_', '-')


def _third_party(node) -> list:
    """Top-level names of the absolute imports in ``node`` that are not in
    the standard library or this package."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module]
    else:
        return []
    tops = {n.split('.')[0] for n in names}
    return sorted(t for t in tops if t not in sys.stdlib_module_names
                  and t != 'pyg_relational')


def _imports(module_level_only: bool = False) -> dict:
    """``{import name: [files]}`` over the package; with
    ``module_level_only``, only imports run when the module is imported
    (not inside functions, not guarded by ``try``)."""
    found = {}
    for path in SOURCES:
        tree = ast.parse(open(path).read())
        nodes = tree.body if module_level_only else ast.walk(tree)
        for node in nodes:
            for name in _third_party(node):
                found.setdefault(name, []).append(osp.relpath(path, ROOT))
    return found


def test_build_system_and_license():
    assert PYPROJECT['build-system']['build-backend'] == \
        'setuptools.build_meta'
    assert PROJECT['license'] == 'MIT'
    assert PROJECT['license-files'] == ['LICENSE']
    assert open(osp.join(ROOT, 'LICENSE')).readline().strip() == \
        'MIT License'
    assert not osp.exists(osp.join(ROOT, 'setup.py'))  # one source of truth


def test_declared_dependencies_are_the_imported_ones():
    core = {_name(r) for r in PROJECT['dependencies']}
    extras = {_name(r) for group in PROJECT['optional-dependencies'].values()
              for r in group}
    imported = {_name(DISTRIBUTION.get(n, n)) for n in _imports()}
    assert imported <= core | extras, imported - core - extras
    assert core <= imported, f'declared but never imported: {core - imported}'
    assert 'numpy' in core and 'networkx' not in core | extras
    # torch is a lower bound only: an installed torch is never replaced
    torch, = [r for r in PROJECT['dependencies'] if _name(r) == 'torch']
    assert torch.replace(' ', '').startswith('torch>=')


def test_extras_are_never_needed_to_import_the_package():
    core = {_name(r) for r in PROJECT['dependencies']}
    eager = {n: files for n, files in _imports(module_level_only=True).items()
             if _name(DISTRIBUTION.get(n, n)) not in core}
    assert not eager, f'optional packages imported at module level: {eager}'


def test_test_extra_covers_the_bench_extra():
    extras = PROJECT['optional-dependencies']
    assert set(extras['bench']) <= set(extras['test'])
    assert set(extras['full']) == {'torch-scatter', 'torch-sparse'}
    text = open(osp.join(ROOT, 'pyproject.toml')).read()
    assert '../shared' not in text and 'find-links' not in text


def test_version_and_console_script():
    import pyg_relational
    assert PYPROJECT['tool']['setuptools']['dynamic']['version'] == \
        {'attr': 'pyg_relational.__version__'}
    assert pyg_relational.__version__.count('.') == 2
    module, function = PROJECT['scripts']['pyg-relational'].split(':')
    assert module in PYPROJECT['tool']['setuptools']['py-modules']
    sys.path.insert(0, ROOT)
    try:
        launcher = importlib.import_module(module)
    finally:
        sys.path.remove(ROOT)
    assert callable(getattr(launcher, function))


def test_launcher_turns_ctrl_c_during_import_into_one_line(monkeypatch,
                                                           capsys):
    """Ctrl-C while the package is still importing: status 130, one line."""
    sys.path.insert(0, ROOT)
    try:
        launcher = importlib.import_module('_pyg_relational_cli')
    finally:
        sys.path.remove(ROOT)

    class Interrupting:
        def find_spec(self, name, path=None, target=None):
            if name == 'pyg_relational.bench.cli':
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, 'pyg_relational.bench.cli',
                        raising=False)
    monkeypatch.setattr(sys, 'meta_path', [Interrupting()] + sys.meta_path)
    assert launcher.main(['--version']) == 130
    assert capsys.readouterr().err == 'pyg-relational: interrupted\n'


def test_default_data_root(monkeypatch, tmp_path):
    from pyg_relational.datasets.base import default_data_root
    monkeypatch.setenv('PYG_RELATIONAL_DATA', str(tmp_path))
    assert default_data_root() == str(tmp_path)
    monkeypatch.delenv('PYG_RELATIONAL_DATA')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert default_data_root() == str(tmp_path / 'cache' / 'pyg_relational')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    # from the user's home, never from where the package is installed
    assert default_data_root() == \
        str(tmp_path / 'home' / '.cache' / 'pyg_relational')


def test_citation_uses_the_one_data_root():
    from pyg_relational.bench import citation
    from pyg_relational.datasets import base
    assert citation.default_data_root is base.default_data_root
