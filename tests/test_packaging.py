"""Packaging: what pyproject.toml declares matches what the code imports,
optional extras are never needed to import the package, the console script
exists, data roots never point inside the installed package, and the sdist
and wheel that ``python -m build`` makes install into a fresh environment
and run the README's first model there."""
import ast
import glob
import importlib
import importlib.metadata
import importlib.util
import math
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

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


def test_setup_py_is_the_classic_entry_point_without_metadata():
    """The design card's top level has a ``setup.py``; the metadata stays in
    pyproject.toml (one source of truth): it calls ``setup()`` bare."""
    tree = ast.parse(open(osp.join(ROOT, 'setup.py')).read())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert len(calls) == 1, 'setup.py should only call setup()'
    call, = calls
    assert isinstance(call.func, ast.Name) and call.func.id == 'setup'
    assert not call.args and not call.keywords, \
        'metadata belongs in pyproject.toml, not in setup.py'
    imports = [node for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == \
        [('setuptools', ['setup'])]


def test_declared_dependencies_are_the_imported_ones():
    core = {_name(r) for r in PROJECT['dependencies']}
    extras = {_name(r) for group in PROJECT['optional-dependencies'].values()
              for r in group}
    imported = {_name(DISTRIBUTION.get(n, n)) for n in _imports()}
    assert imported <= core | extras, imported - core - extras
    assert core <= imported, f'declared but never imported: {core - imported}'
    assert 'numpy' in core and 'networkx' not in core
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


def test_networkx_is_the_test_oracle():
    """networkx checks the builders and DAG schedules (tests only): it is
    in the ``test`` extra, not a dependency of the package."""
    test = {_name(r) for r in PROJECT['optional-dependencies']['test']}
    assert 'networkx' in test
    assert 'networkx' not in _imports()  # the package never imports it
    oracle = ast.parse(open(osp.join(ROOT, 'tests',
                                     'test_networkx_oracle.py')).read())
    assert any('networkx' in _third_party(node)
               for node in ast.walk(oracle))
    # tests/test_packaging.py builds with `build`, installs with setuptools
    assert {'build', 'setuptools'} <= test


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


# ------------------------------------------- sdist and wheel, installed
#: Not part of a release: VCS data, build output, caches, local data.
_NOT_SOURCES = {'.git', 'build', 'dist', 'data', 'runs', 'bench-out',
                'bench-report', 'venv', '.venv', '.hypothesis',
                '.pytest_cache'}
_RUN_TIMEOUT = 300  # seconds per subprocess (normally a few)


def _copy_sources(dest: str) -> str:
    """The checkout without build output or caches (a fresh clone's view):
    building never writes into the working tree, and stale ``*.egg-info``
    cannot leak files into the sdist."""
    def ignore(folder, names):
        top = osp.samefile(folder, ROOT)
        return {n for n in names
                if (top and n in _NOT_SOURCES) or n == '__pycache__'
                or n.endswith(('.egg-info', '.pyc', '.pt'))}
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _run(command, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'PIP_REQUIRE_VIRTUALENV')}
    env.update(PYTHONNOUSERSITE='1', OMP_NUM_THREADS='1',
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=_RUN_TIMEOUT, **kwargs)
    assert done.returncode == 0, (
        f'{" ".join(map(str, command))} failed ({done.returncode}):\n'
        f'{done.stdout[-3000:]}\n{done.stderr[-3000:]}')
    return done.stdout


def _can_build_offline() -> bool:
    """The build backend pyproject.toml asks for is installed here, so
    ``python -m build --no-isolation`` needs no network."""
    try:
        version = importlib.metadata.version('setuptools')
    except importlib.metadata.PackageNotFoundError:
        return False
    required, = PYPROJECT['build-system']['requires']
    minimum = tuple(int(v) for v in required.split('>=')[1].split('.'))
    return tuple(int(v) for v in re.findall(r'\d+', version)[:len(
        minimum)]) >= minimum


def _fresh_venv(path: str) -> str:
    """A new virtual environment that sees torch, PyG and numpy (and pip,
    setuptools) where they are installed for this interpreter, so they are
    not installed again — but not this checkout, nor an editable install of
    it (a ``.pth`` path entry is not a site dir: its own ``.pth`` files,
    such as an editable finder, are not run). Returns its ``python``."""
    import venv
    venv.create(path, system_site_packages=True, with_pip=False)
    python = osp.join(path, 'bin', 'python')
    site_packages = _run([python, '-c', 'import sysconfig; '
                          'print(sysconfig.get_path("purelib"))'],
                         cwd=path).strip()
    parents = []
    for module in ('torch', 'torch_geometric', 'numpy', 'pip', 'setuptools'):
        spec = importlib.util.find_spec(module)
        assert spec is not None, f'{module} is needed to run this test'
        parent = osp.dirname(list(spec.submodule_search_locations)[0])
        inside = osp.commonpath([osp.realpath(parent), osp.realpath(ROOT)])
        if parent not in parents and inside != osp.realpath(ROOT):
            parents.append(parent)
    with open(osp.join(site_packages, '_parent_environment.pth'), 'w') as f:
        f.write('\n'.join(parents) + '\n')
    return python


def _pip_install(python: str, *args: str):
    # --ignore-installed: never touch (uninstall) the copy this interpreter
    # sees through the parent environment; --no-index: nothing downloaded.
    _run([python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
          '--ignore-installed', '--no-index', '--quiet', *args],
         cwd=osp.dirname(osp.dirname(python)))


def _first_model() -> str:
    """The README's first ```python block under "A first model"."""
    text = open(osp.join(ROOT, 'README.md')).read()
    section = re.search(r'^## A first model\n(.*?)(?=^## )', text,
                        re.S | re.M)
    assert section, 'README.md has no "## A first model" section'
    block = re.search(r'```python\n(.*?)```', section.group(1), re.S)
    assert block, 'the "A first model" section has no python block'
    return block.group(1)


@pytest.fixture(scope='module')
def distributions(tmp_path_factory):
    """``python -m build`` on a clean copy of the checkout:
    ``{'sdist': path, 'wheel': path, 'source': copy}``."""
    assert importlib.util.find_spec('build'), \
        '`build` is missing: install the test extra (pip install -e ".[test]")'
    tmp = tmp_path_factory.mktemp('build')
    source = _copy_sources(str(tmp / 'source'))
    out = str(tmp / 'dist')
    command = [sys.executable, '-m', 'build', '--sdist', '--wheel',
               '--outdir', out, source]
    if _can_build_offline():  # else an isolated build fetches setuptools
        command.insert(3, '--no-isolation')
    _run(command, cwd=str(tmp))
    sdists = glob.glob(osp.join(out, '*.tar.gz'))
    wheels = glob.glob(osp.join(out, '*.whl'))
    assert len(sdists) == 1 and len(wheels) == 1, os.listdir(out)
    return {'sdist': sdists[0], 'wheel': wheels[0], 'source': source}


def _package_files(source: str) -> set:
    """``pyg_relational/...`` module paths and the console script's
    launcher, as the checkout has them."""
    files = {osp.relpath(p, source).replace(os.sep, '/') for p in glob.glob(
        osp.join(source, 'pyg_relational', '**', '*.py'), recursive=True)}
    return files | {'_pyg_relational_cli.py'}


@pytest.mark.slow
def test_sdist_holds_what_a_user_needs(distributions):
    import pyg_relational
    with tarfile.open(distributions['sdist']) as sdist:
        names = sdist.getnames()
    top = f'pyg_relational-{pyg_relational.__version__}'
    assert osp.basename(distributions['sdist']) == f'{top}.tar.gz'
    assert all(n == top or n.startswith(top + '/') for n in names), names
    inside = {n[len(top) + 1:] for n in names if n != top}
    needed = {'README.md', 'LICENSE', 'CHANGELOG.md', 'pyproject.toml',
              'setup.py', 'PKG-INFO'}
    assert needed <= inside, needed - inside
    missing = _package_files(distributions['source']) - inside
    assert not missing, f'package files missing from the sdist: {missing}'
    assert not any('__pycache__' in n or n.endswith('.pyc') for n in names)
    # the test suite needs the repository (README, CI script, data): it is
    # not shipped half (tests/test*.py without their helpers)
    assert not any(n.startswith('tests/') for n in inside)


@pytest.mark.slow
def test_wheel_holds_the_package_and_its_metadata(distributions):
    import pyg_relational
    with zipfile.ZipFile(distributions['wheel']) as wheel:
        names = set(wheel.namelist())
        info = f'pyg_relational-{pyg_relational.__version__}.dist-info'
        metadata = wheel.read(f'{info}/METADATA').decode()
        entry_points = wheel.read(f'{info}/entry_points.txt').decode()
    missing = _package_files(distributions['source']) - names
    assert not missing, f'package files missing from the wheel: {missing}'
    tops = {n.split('/')[0] for n in names}
    assert tops == {'pyg_relational', '_pyg_relational_cli.py', info}, tops
    assert f'{info}/licenses/LICENSE' in names
    assert 'Name: pyg-relational\n' in metadata
    assert f'Version: {pyg_relational.__version__}\n' in metadata
    assert 'Requires-Dist: networkx; extra == "test"' in metadata
    assert 'pyg-relational = _pyg_relational_cli:main' in entry_points


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['wheel', 'sdist'])
def test_installed_distribution_runs_the_first_model(kind, distributions,
                                                     tmp_path):
    """Install the wheel (or the sdist, built again by pip) into a fresh
    venv and run the README's first model from outside the checkout: it
    must import the installed copy."""
    venv_dir = str(tmp_path / 'venv')
    python = _fresh_venv(venv_dir)
    _pip_install(python, distributions[kind])
    work = tmp_path / 'elsewhere'  # not the checkout, not the venv
    work.mkdir()
    script = work / 'first_model.py'
    script.write_text(
        _first_model() + '\n'
        'import _pyg_relational_cli, pyg_relational\n'
        'print("PACKAGE", pyg_relational.__file__)\n'
        'print("LAUNCHER", _pyg_relational_cli.__file__)\n')
    out = _run([python, str(script)], cwd=str(work))

    loss = re.search(r'training loss after 50 steps: (\S+)', out)
    assert loss and math.isfinite(float(loss.group(1))), out
    site = osp.realpath(venv_dir)
    for line in ('PACKAGE', 'LAUNCHER'):
        path = osp.realpath(re.search(rf'^{line} (.*)$', out, re.M).group(1))
        assert path.startswith(site + os.sep), (line, path)
    # the console script is there, for this venv's python
    with open(osp.join(venv_dir, 'bin', 'pyg-relational')) as f:
        assert osp.realpath(f.readline()[2:].strip()) == osp.realpath(python)


@pytest.mark.slow
def test_setup_py_version_and_editable_install(distributions, tmp_path):
    """The classic entry point: ``python setup.py --version`` prints the
    version pyproject.toml declares, and ``pip install -e`` works (the
    import then resolves to the checkout)."""
    import pyg_relational
    source = distributions['source']
    out = _run([sys.executable, 'setup.py', '--version'], cwd=source)
    assert out.strip().splitlines()[-1] == pyg_relational.__version__

    python = _fresh_venv(str(tmp_path / 'venv'))
    _pip_install(python, '--editable', source)
    work = tmp_path / 'elsewhere'
    work.mkdir()
    origin = _run([python, '-c', 'import importlib.util; print(importlib.'
                   'util.find_spec("pyg_relational").origin)'],
                  cwd=str(work)).strip()
    assert osp.realpath(origin) == osp.realpath(
        osp.join(source, 'pyg_relational', '__init__.py'))
