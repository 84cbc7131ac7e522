r"""One conformance suite for every execution path of every layer (issue 12).

Every ``(case, path)`` pair of :data:`tests.conformance_cases.CASES` is held
to the same contract, against the *same* module switched to
``path='message'`` (the reference):

* forward, backward (inputs and parameters) and second order equal the
  message path (float64 1e-10, float32 1e-5), integer outputs (the
  ``edge_index`` returned with attention weights) exactly; the message
  path itself passes ``gradcheck`` / ``gradgradcheck``;
* a NaN/inf at the first and last node of one graph of a batch poisons
  exactly what the message path poisons and nothing in the other graphs,
  forward and in the input gradients of the other graphs' rows;
* empty graphs, graphs of one node, targets without incoming edges (zeros,
  never NaN);
* bfloat16 / float16 / CPU bf16 autocast run and stay near float32;
* ``layer.last_path`` is the forced path, and ``'auto'`` picks the
  expected one;
* the default path compiles (``torch.compile``, eager and inductor
  backends) and runs under PyG's explainers.

Every test runs on every available device (the ``device`` fixture of
``tests/helpers.py``: ``cpu``, and ``cuda`` where there is one; an absent
device is not collected), with that device's tolerances and TF32 off.

A path joins the suite by being added to a case's ``paths``.
"""
import functools
import math
from typing import List, Optional, Sequence

import pytest
import torch
from torch import Tensor

from pyg_relational.nn import (AttentionConv, GATConv, GATv2Conv,
                               MultiheadAttentionConv)
from tests.conformance_cases import CASES, Case, Complete, Graph, Random
from tests.helpers import _flatten, assert_close, device  # noqa: F401

pytestmark = pytest.mark.usefixtures('one_thread')

POISONED = 1  # the graph of a batch that gets the NaN/inf


def _pairs(robust: bool = False, fast_only: bool = False):
    """``(case, path)`` parameters. ``robust``: also ``'auto'`` for layers
    with several paths (the default path must pass too)."""
    out = []
    for case in CASES:
        paths = list(case.paths)
        if fast_only:
            paths = [p for p in paths if p != 'message']
        if robust and len(case.paths) > 1:
            paths.append('auto')
        out.extend(pytest.param(case, p, id=f'{case.name}-{p}')
                   for p in paths)
    return out


# --------------------------------------------------------------------------
# Running a case.
# --------------------------------------------------------------------------
def _use_path(layer, case: Case, path: str):
    """Force ``path`` ('auto': the default). A layer with one path (the
    message path) need not have the ``path`` attribute."""
    if path == 'auto' or (path == 'message' and case.paths == ('message', )
                          and not hasattr(layer, 'path')):
        return
    assert hasattr(layer, 'path'), (
        f"{type(layer).__name__} has no 'path' attribute: the case lists "
        f"paths {case.paths}")
    layer.path = path


def _check_ran(layer, path: str):
    if path != 'auto' and hasattr(layer, 'path'):
        assert getattr(layer, 'last_path', None) == path, (
            f"path={path!r} was forced but last_path="
            f"{getattr(layer, 'last_path', None)!r}")


def _inputs(case: Case, g: Graph, dtype=torch.float64, seed: int = 0):
    """The case's inputs, drawn on the CPU (the same numbers everywhere),
    on the graph's device."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v.to(g.device, dtype) for k, v in case.inputs(g, gen).items()}


def _leaves(inputs):
    return {k: v.detach().clone().requires_grad_(v.is_floating_point())
            for k, v in inputs.items()}


def _layer(case: Case, dtype=torch.float64, device='cpu'):
    return case.make().to(device, dtype).train(case.train)


class Declined(Exception):
    """A forced path declined this input with the chooser's clear error,
    and ``'auto'`` ran another path on it (checked in :func:`_forward`)."""


def _declines_pass(test):
    """The test passes when its forced path declines the input: that the
    path refuses clearly and 'auto' falls back *is* the contract there
    (nothing is skipped)."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        except Declined:
            return None
    return wrapper


def _forward(case: Case, layer, g: Graph, inputs, path: str,
             integers: Optional[List[Tensor]] = None) -> List[Tensor]:
    """Floating outputs of ``layer`` on ``path`` (the other outputs, e.g.
    the ``edge_index`` returned with attention weights, are appended to
    ``integers`` if given). A forced path that declines this input must do
    so with the chooser's ValueError naming the path and the fall-back, and
    'auto' must then run another path on the same input; :class:`Declined`
    is raised after checking both."""
    _use_path(layer, case, path)
    try:
        out = case.call(layer, g, inputs)
    except ValueError as error:
        if 'cannot run here' in str(error) and path != 'auto':
            assert f"path={path!r}" in str(error) and "path='auto'" in \
                str(error), str(error)
            layer.path = 'auto'
            case.call(layer, g, inputs)
            assert layer.last_path != path
            raise Declined(str(error)) from error
        raise
    _check_ran(layer, path)
    if integers is not None:
        integers.extend(o for o in _flatten(out) if not o.is_floating_point())
    return [o for o in _flatten(out) if o.is_floating_point()]


def _cotangents(outputs: Sequence[Tensor], seed: int) -> List[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(
        o.device, o.dtype) for o in outputs]


def _derivatives(case: Case, layer, g: Graph, inputs, path: str,
                 integers: Optional[List[Tensor]] = None):
    """Outputs, first and second derivatives (of a random scalar of the
    first derivatives) with respect to the inputs and parameters."""
    leaves = _leaves(inputs)
    outputs = _forward(case, layer, g, leaves, path, integers)
    wrt = [v for v in leaves.values() if v.requires_grad] + \
        [p for p in layer.parameters() if p.requires_grad]
    names = [k for k, v in leaves.items() if v.requires_grad] + \
        [n for n, p in layer.named_parameters() if p.requires_grad]
    loss = sum((o * c).sum() for o, c in
               zip(outputs, _cotangents(outputs, 0)) if o.requires_grad)
    first = torch.autograd.grad(loss, wrt, create_graph=True,
                                allow_unused=True, materialize_grads=True)
    scalar = sum((f * r).sum() for f, r in
                 zip(first, _cotangents(first, 1)) if f.requires_grad)
    if isinstance(scalar, Tensor) and scalar.requires_grad:
        second = torch.autograd.grad(scalar, wrt, allow_unused=True,
                                     materialize_grads=True)
    else:
        second = [torch.zeros_like(w) for w in wrt]
    detach = lambda ts: [t.detach() for t in ts]  # noqa: E731
    return detach(outputs), detach(first), detach(second), names


# --------------------------------------------------------------------------
# Every path equals the message path: forward, backward, second order.
# --------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32],
                         ids=['float64', 'float32'])
@pytest.mark.parametrize('case,path', _pairs(fast_only=True))
@_declines_pass
def test_path_equals_message_path(case, path, dtype, device):
    g = case.kind.batch(list(case.sizes)).to(device)
    inputs = _inputs(case, g, dtype)
    layer = _layer(case, dtype, device)
    ints, ref_ints = [], []
    out, first, second, names = _derivatives(case, layer, g, inputs, path,
                                             ints)
    ref_out, ref_first, ref_second, _ = _derivatives(case, layer, g, inputs,
                                                     'message', ref_ints)
    assert len(out) == len(ref_out)
    assert len(ints) == len(ref_ints)
    for k, (a, b) in enumerate(zip(ints, ref_ints)):  # e.g. the edge_index
        assert a.shape == b.shape and torch.equal(a, b), \
            f'{path}: integer output {k} differs from the message path\'s'
        assert a.dtype == b.dtype, f'{path}: integer output {k}'
    for k, (a, b) in enumerate(zip(out, ref_out)):
        assert a.shape == b.shape, f'output {k}: {a.shape} vs {b.shape}'
        assert_close(a, b, dtype, f'{path}: output {k}')
    for order, got, want in (('first', first, ref_first),
                             ('second', second, ref_second)):
        for name, a, b in zip(names, got, want):
            assert_close(a, b, dtype, f'{path}: {order}-order derivative '
                         f'with respect to {name}')


@pytest.mark.parametrize('case', [pytest.param(c, id=c.name) for c in CASES])
def test_message_path_gradcheck(case, device):
    """The reference itself: analytical first and second derivatives equal
    finite differences (float64)."""
    g = case.kind.batch(list(case.sizes)).to(device)
    inputs = _leaves(_inputs(case, g))
    layer = _layer(case, device=device)
    _use_path(layer, case, 'message')
    names = [k for k, v in inputs.items() if v.requires_grad]

    def fn(*tensors):
        values = dict(inputs, **dict(zip(names, tensors)))
        out = [o for o in _flatten(case.call(layer, g, values))
               if o.is_floating_point()]
        return tuple(out)

    tensors = tuple(inputs[k] for k in names)
    assert torch.autograd.gradcheck(fn, tensors, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, tensors, fast_mode=True)
    _check_ran(layer, 'message')


# --------------------------------------------------------------------------
# NaN / inf stay in their graph.
# --------------------------------------------------------------------------
def _poisoned_run(case, layer, g, inputs, path, rows):
    """Outputs, and the input gradients of the sum of the rows of the
    clean graphs (``rows``) of the first output."""
    leaves = _leaves(inputs)
    out = _forward(case, layer, g, leaves, path)
    wrt = [k for k, v in leaves.items() if v.requires_grad]
    grads = {}
    if out[0].requires_grad:
        grads = dict(zip(wrt, torch.autograd.grad(
            out[0][rows].sum(), [leaves[k] for k in wrt], allow_unused=True,
            materialize_grads=True)))
    return [o.detach() for o in out], grads


def _same_nonfinite(a: Tensor, b: Tensor, what: str):
    """``a`` is NaN / inf exactly where ``b`` is, and equal elsewhere."""
    for test in ('isnan', 'isinf'):
        mine, theirs = getattr(a, test)(), getattr(b, test)()
        assert torch.equal(mine, theirs), (
            f'{what}: {test} at {int(mine.sum())} entries, the message path '
            f'at {int(theirs.sum())} ({int((mine & ~theirs).sum())} only '
            f'here, {int((theirs & ~mine).sum())} only there)')
    finite = torch.isfinite(b)
    assert_close(a[finite], b[finite], torch.float64, what)


@pytest.mark.parametrize('value', [math.nan, math.inf], ids=['nan', 'inf'])
@pytest.mark.parametrize('case,path', _pairs(robust=True))
@_declines_pass
def test_nonfinite_stays_in_its_graph(case, path, value, device):
    """A NaN / inf at the first and the last node of one graph: forward,
    and backward from the other graphs' rows (whose input gradients stay
    finite), poison what the message path poisons and nothing else."""
    g = case.kind.batch(list(case.sizes)).to(device)
    inputs = _inputs(case, g)
    nodes = g.src_graph if case.poison_nodes == 'src' else g.dst_graph
    poisoned = (nodes == POISONED).nonzero()[:, 0]
    for node in {int(poisoned[0]), int(poisoned[-1])}:  # borders, ends
        inputs[case.poison][node] = value
    layer = _layer(case, device=device)
    rows = case.rows_graph(g) != POISONED
    out, grads = _poisoned_run(case, layer, g, inputs, path, rows)
    assert bool(torch.isfinite(out[0][rows]).all()), (
        f'{path}: a {value} in graph {POISONED} reached rows '
        f'{(~torch.isfinite(out[0][rows])).nonzero()[:, 0].unique().tolist()}'
        f' of other graphs')
    if case.poison in grads:
        clean = grads[case.poison][nodes != POISONED]
        assert bool(torch.isfinite(clean).all()), (
            f'{path}: a {value} in graph {POISONED} reached the gradient '
            f'of {case.poison!r} in other graphs')
    if case.paths == ('message', ):
        return
    ref, ref_grads = _poisoned_run(case, layer, g, inputs, 'message', rows)
    for k, (a, b) in enumerate(zip(out, ref)):
        _same_nonfinite(a, b, f'{path}: output {k}')
    for name, a in grads.items():
        _same_nonfinite(a, ref_grads[name], f'{path}: gradient of {name!r}')


# --------------------------------------------------------------------------
# Empty graphs, one-node graphs, targets without incoming edges.
# --------------------------------------------------------------------------
def _forward_backward(case, layer, g, path, dtype=torch.float64):
    inputs = _leaves(_inputs(case, g, dtype))
    out = _forward(case, layer, g, inputs, path)
    wrt = [v for v in inputs.values() if v.requires_grad] + \
        list(layer.parameters())
    loss = sum(o.sum() for o in out if o.requires_grad)
    grads = [] if not isinstance(loss, Tensor) else torch.autograd.grad(
        loss, wrt, allow_unused=True, materialize_grads=True)
    return out, grads


def _assert_like_message(case, layer, g, path, out, grads):
    for k, o in enumerate(out):
        assert bool(torch.isfinite(o).all()), f'{path}: output {k} not finite'
    for k, gr in enumerate(grads):
        assert bool(torch.isfinite(gr).all()), f'{path}: gradient {k} not ' \
            f'finite'
    if path == 'message':
        return
    ref, ref_grads = _forward_backward(case, layer, g, 'message')
    for k, (a, b) in enumerate(zip(out, ref)):
        assert a.shape == b.shape, f'output {k}: {a.shape} vs {b.shape}'
        assert_close(a, b, torch.float64, f'{path}: output {k}')
    for k, (a, b) in enumerate(zip(grads, ref_grads)):
        assert_close(a, b, torch.float64, f'{path}: gradient {k}')


@pytest.mark.parametrize('case,path,where', [
    pytest.param(*p.values, where, id=f'{p.id}-{where}')
    for p in _pairs(robust=True) for where in ('alone', 'in-batch')
    if where == 'alone' or p.values[0].kind.ragged])
@_declines_pass
def test_empty_graph(case, path, where, device):
    sizes = [0] if where == 'alone' else [2, 0, 3]
    g = case.kind.batch(sizes).to(device)
    layer = _layer(case, device=device)
    out, grads = _forward_backward(case, layer, g, path)
    assert out[0].size(0) == case.rows_graph(g).numel()
    _assert_like_message(case, layer, g, path, out, grads)


@pytest.mark.parametrize('case,path', [
    p for p in _pairs(robust=True) if p.values[0].kind.one_node_sizes])
@_declines_pass
def test_one_node_graphs(case, path, device):
    g = case.kind.batch(case.kind.one_node_sizes).to(device)
    layer = _layer(case, device=device)
    out, grads = _forward_backward(case, layer, g, path)
    _assert_like_message(case, layer, g, path, out, grads)


@pytest.mark.parametrize('case,path', [
    p for p in _pairs(robust=True) if p.values[0].isolated is not None
    and p.values[0].kind.isolated() is not None])
@_declines_pass
def test_isolated_targets(case, path, device):
    g = case.kind.isolated().to(device)
    isolated = g.isolated_targets()
    assert bool(isolated.any())
    layer = _layer(case, device=device)
    out, grads = _forward_backward(case, layer, g, path)
    rows = out[0][isolated]
    assert bool(torch.isfinite(rows).all()), f'{path}: NaN at isolated ' \
        f'targets'
    if case.isolated == 'zero':
        assert torch.equal(rows, torch.zeros_like(rows)), \
            f'{path}: targets without incoming edges must get zeros'
    _assert_like_message(case, layer, g, path, out, grads)


# --------------------------------------------------------------------------
# Low precision.
# --------------------------------------------------------------------------
LOW = {'bfloat16': (torch.bfloat16, 0.1), 'float16': (torch.float16, 0.02),
       'autocast': (None, None)}
# autocast's dtype per device: CPU autocast is bfloat16, CUDA's is float16
AUTOCAST = {'cpu': (torch.bfloat16, 0.1), 'cuda': (torch.float16, 0.02)}


def _precisions():
    """bfloat16 and float16 on every path; autocast on the default one."""
    return [pytest.param(*p.values, precision, id=f'{p.id}-{precision}')
            for p in _pairs(robust=True) for precision in LOW
            if precision != 'autocast'
            or p.values[1] == 'auto' or p.values[0].paths == ('message', )]


@pytest.mark.parametrize('case,path,precision', _precisions())
@_declines_pass
def test_low_precision(case, path, precision, device):
    dtype, tol = LOW[precision]
    device_type = torch.device(device).type
    if dtype is None:
        autocast_dtype, tol = AUTOCAST[device_type]
    g = case.kind.batch(list(case.sizes)).to(device)
    layer = _layer(case, torch.float32, device)
    ref, _ = _forward_backward(case, layer, g, path, torch.float32)
    ref = [r.detach() for r in ref]
    inputs = _leaves(_inputs(case, g, dtype or torch.float32))
    try:
        if dtype is None:
            with torch.autocast(device_type, dtype=autocast_dtype):
                out = _forward(case, layer, g, inputs, path)
        else:
            layer = layer.to(dtype)
            out = _forward(case, layer, g, inputs, path)
        loss = sum(o.float().sum() for o in out if o.requires_grad)
        loss.backward()
    except RuntimeError as error:  # a kernel PyTorch lacks on CPU
        if dtype is torch.float16 and device_type == 'cpu' and \
                "not implemented for 'Half'" in str(error):
            pytest.skip(f'no float16 CPU kernel: {error}')
        raise
    for k, (a, b) in enumerate(zip(out, ref)):
        assert bool(torch.isfinite(a).all()), f'{precision}: output {k}'
        scale = max(1., float(b.abs().max())) if b.numel() else 1.
        torch.testing.assert_close(a.detach().float(), b, atol=tol * scale,
                                   rtol=tol)
    for name, v in inputs.items():
        if v.grad is not None:
            assert bool(torch.isfinite(v.grad).all()), f'grad of {name}'


# --------------------------------------------------------------------------
# Path choice.
# --------------------------------------------------------------------------
@pytest.mark.parametrize('case', [pytest.param(c, id=c.name) for c in CASES
                                  if len(c.paths) > 1])
def test_auto_picks_expected_path(case, device):
    g = case.kind.batch(list(case.sizes)).to(device)
    layer = _layer(case, device=device)
    assert layer.path == 'auto'
    _forward(case, layer, g, _inputs(case, g), 'auto')
    assert layer.last_path == case.auto, layer.why_not_faster
    if case.auto == 'dense' or layer.why_not_faster is None:
        # the fastest path the layer has: nothing to explain
        assert layer.why_not_faster is None and case.auto == case.paths[0]
    else:  # every faster path skipped has its reason
        assert all(isinstance(why, str) and why
                   for why in layer.why_not_faster.values())


# --------------------------------------------------------------------------
# torch.compile of the default path.
# --------------------------------------------------------------------------
def _compiled_matches_eager(case, backend, dtype=torch.float64,
                            device='cpu'):
    import torch._dynamo
    torch._dynamo.reset()
    g = case.kind.batch(list(case.sizes)).to(device)
    layer = _layer(case, dtype, device)
    inputs = _inputs(case, g, dtype)
    eager, eager_grads = _forward_backward(case, layer, g, 'auto', dtype)
    compiled = torch.compile(layer, backend=backend, dynamic=False)
    leaves = _leaves(inputs)
    out = [o for o in _flatten(case.call(compiled, g, leaves))
           if o.is_floating_point()]
    loss = sum(o.sum() for o in out if o.requires_grad)
    wrt = [v for v in leaves.values() if v.requires_grad] + \
        list(layer.parameters())
    grads = torch.autograd.grad(loss, wrt, allow_unused=True,
                                materialize_grads=True)
    if case.compiled_path is not None:
        assert layer.last_path == case.compiled_path, layer.why_not_faster
    for k, (a, b) in enumerate(zip(out, eager)):
        assert_close(a, b, dtype, f'compiled ({backend}) output {k}')
    for k, (a, b) in enumerate(zip(grads, eager_grads)):
        assert_close(a, b, dtype, f'compiled ({backend}) gradient {k}')


@pytest.mark.parametrize('case', [pytest.param(c, id=c.name) for c in CASES
                                  if c.compile])
def test_compile_eager_backend(case, device):
    _compiled_matches_eager(case, 'eager', device=device)


INDUCTOR = ['attention-scaled_dot-structure']  # ~1 min on 2 loaded cores


@pytest.mark.slow
@pytest.mark.parametrize('name', INDUCTOR)
def test_compile_inductor_backend(name, device):
    from torch._inductor import config
    case = next(c for c in CASES if c.name == name)
    with config.patch(compile_threads=1):
        _compiled_matches_eager(case, 'inductor', torch.float32, device)


# --------------------------------------------------------------------------
# PyG explain on the default path of the attention layers.
# --------------------------------------------------------------------------
EXPLAINED = {
    'attention-gat': lambda: AttentionConv(4, 3, heads=2, score='gat'),
    'attention-scaled_dot':
    lambda: AttentionConv(4, 3, heads=2, score='scaled_dot'),
    'mha': lambda: MultiheadAttentionConv(4, 2),
    'GATConv': lambda: GATConv(4, 3, heads=2),
    'GATv2Conv': lambda: GATv2Conv(4, 3, heads=2),
}


class _Model(torch.nn.Module):
    """A tiny PyG model: one attention layer and a linear read-out."""
    def __init__(self, conv: torch.nn.Module, channels: int):
        super().__init__()
        self.conv = conv
        self.lin = torch.nn.Linear(channels, 1)

    def forward(self, x, edge_index):
        return self.lin(self.conv(x, edge_index).relu())


@pytest.mark.parametrize('explainer', ['attention', 'gnn'])
@pytest.mark.parametrize('kind', [Complete(), Random()], ids=str)
@pytest.mark.parametrize('layer', list(EXPLAINED))
def test_explainers_on_default_path(layer, kind, explainer, device):
    from torch_geometric.explain import (AttentionExplainer, Explainer,
                                         GNNExplainer)
    # PyG compiles ``propagate`` per class on first use; explaining a
    # subclass must not depend on its parent class having been built first.
    AttentionConv(4, 3, score='scaled_dot')
    torch.manual_seed(0)
    conv = EXPLAINED[layer]()
    channels = conv.out_channels * conv.heads
    model = _Model(conv, channels).to(device)
    g = kind.batch([3, 4]).to(device)
    x = torch.randn(g.num_src, 4).to(device)
    if explainer == 'attention':
        algorithm, node_mask_type = AttentionExplainer(), None
    else:
        algorithm, node_mask_type = GNNExplainer(epochs=2), 'attributes'
    explain = Explainer(model, algorithm, explanation_type='model',
                        node_mask_type=node_mask_type,
                        edge_mask_type='object',
                        model_config=dict(mode='regression',
                                          task_level='node',
                                          return_type='raw'))
    model(x, g.edge_index)
    before = conv.last_path
    explanation = explain(x, g.edge_index)
    E = g.edge_index.size(1)
    assert explanation.edge_mask.shape == (E, )
    assert bool(torch.isfinite(explanation.edge_mask).all())
    if node_mask_type is not None:
        assert explanation.node_mask.shape == x.shape
    # The layer is left on its default path, taken again after explain.
    assert conv.path == 'auto'
    assert model(x, g.edge_index).shape == (g.num_dst, 1)
    assert conv.last_path == before
