"""No two modules of pyg_relational import each other, directly or through
others: every import statement counts, at module level or inside a
function (a function-level import hides a cycle, it does not remove it)."""
import ast
import os.path as osp
import pkgutil
from typing import Dict, List, Optional, Tuple

import pytest

import pyg_relational

PACKAGE = 'pyg_relational'
ROOT = osp.dirname(pyg_relational.__file__)

Edge = Tuple[str, str]  # (target module, "file:line: statement")


def _modules() -> Dict[str, str]:
    """Module name -> file of every module of the package."""
    out = {PACKAGE: pyg_relational.__file__}
    for info in pkgutil.walk_packages([ROOT], PACKAGE + '.'):
        spec = info.module_finder.find_spec(info.name)
        out[info.name] = spec.origin
    return out


def _resolve(name: str, modules: Dict[str, str]) -> Optional[str]:
    """``name`` or its closest enclosing module of the package."""
    while name and name not in modules:
        name = name.rpartition('.')[0]
    return name or None


def _imports(module: str, path: str, modules: Dict[str, str]) -> List[Edge]:
    is_package = path.endswith('__init__.py')
    package = module if is_package else module.rpartition('.')[0]
    source = open(path).read()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                parent = '.'.join(parts[:len(parts) - node.level + 1])
                base = f'{parent}.{base}' if base else parent
            # ``from pkg import sub`` imports the submodule ``pkg.sub``
            names = [f'{base}.{alias.name}' if f'{base}.{alias.name}'
                     in modules else base for alias in node.names]
        else:
            continue
        where = (f'{osp.relpath(path, osp.dirname(ROOT))}:{node.lineno}: '
                 f'{ast.get_source_segment(source, node)}')
        for name in names:
            target = _resolve(name, modules) \
                if name.split('.')[0] == PACKAGE else None
            if target is not None and target != module:
                out.append((target, where))
    return out


def _cycle(graph: Dict[str, List[Edge]]) -> Optional[List[Tuple[str, Edge]]]:
    """One cycle as ``[(module, (imported module, where)), ...]``, or
    None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[Tuple[str, Edge]] = []

    def visit(module: str):
        state[module] = 1
        for edge in graph.get(module, []):
            path.append((module, edge))
            if state.get(edge[0]) == 1:
                start = next(i for i, (m, _) in enumerate(path)
                             if m == edge[0])
                return path[start:]
            if edge[0] not in state:
                found = visit(edge[0])
                if found:
                    return found
            path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    cycle = _cycle(graph)
    if cycle is not None:
        pytest.fail('import cycle:\n' + '\n'.join(
            f'  {module} -> {target}  ({where})'
            for module, (target, where) in cycle), pytrace=False)


def test_a_cycle_is_reported():
    graph = {'a': [('b', 'a.py:1')], 'b': [('c', 'b.py:1')],
             'c': [('a', 'c.py:9')], 'd': [('a', 'd.py:1')]}
    cycle = _cycle(graph)
    assert [m for m, _ in cycle] == ['a', 'b', 'c']
    assert _cycle({'a': [('b', '')], 'b': []}) is None
