r"""The one way every layer is checked (house rule 7).

* :func:`assert_twin`: a graph layer and its PyTorch/PyG twin compute the same
  outputs, input gradients and parameter gradients (float64 1e-10, float32
  1e-5).
* :func:`assert_edge_order_invariant`: shuffling the edges (with their
  per-edge tensors) does not change the output.
* :func:`empty_graph`, :func:`shuffle_edges`: the inputs of those checks.
"""
from typing import Callable, Iterable, Optional, Sequence, Tuple

import torch
from torch import Tensor

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def tolerance(dtype: torch.dtype) -> float:
    return TOL[dtype]


def assert_close(actual, expected, dtype=None, msg=''):
    """Element-wise equality up to the house tolerance of ``dtype``."""
    dtype = dtype or expected.dtype
    tol = TOL[dtype]
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol,
                               msg=lambda m: f'{msg}\n{m}' if msg else m)


def _flatten(out) -> Tuple[Tensor, ...]:
    if isinstance(out, Tensor):
        return (out, )
    flat = []
    for o in out:
        if o is None:
            continue
        flat.extend(_flatten(o))
    return tuple(flat)


def assert_twin(
    graph_fn: Callable[..., object],
    twin_fn: Callable[..., object],
    inputs: Sequence[Tensor],
    params: Sequence[Tuple[Callable[[], Optional[Tensor]],
                           Callable[[], Optional[Tensor]]]] = (),
    dtype: Optional[torch.dtype] = None,
    graph_inputs: Optional[Sequence[Tensor]] = None,
):
    r"""Check a graph layer against its twin, forward and backward.

    Args:
        graph_fn: ``graph_fn(*inputs)`` runs the graph layer and returns a
            tensor or a (nested) tuple of tensors, in the twin's layout.
        twin_fn: ``twin_fn(*inputs)`` runs the twin, same structure.
        inputs: leaf tensors shared by both (cloned for each side, with
            ``requires_grad`` where floating).
        params: pairs of callables ``(graph_grad, twin_grad)`` that return,
            after backward, gradients that must agree (e.g.
            ``lambda: layer.weight.grad`` and
            ``lambda: module.weight.grad.t()``).
        dtype: the tolerance to use (default: the first input's dtype).
        graph_inputs: separate inputs for ``graph_fn`` when its layout
            differs from the twin's (e.g. node tensors vs. images); gradients
            are then compared through ``params`` only.
    """
    dtype = dtype or next(t.dtype for t in inputs if t.is_floating_point())

    def leaves(tensors):
        return [t.detach().clone().requires_grad_(t.is_floating_point())
                for t in tensors]

    twin_in = leaves(inputs)
    graph_in = leaves(inputs if graph_inputs is None else graph_inputs)
    out_graph = _flatten(graph_fn(*graph_in))
    out_twin = _flatten(twin_fn(*twin_in))
    assert len(out_graph) == len(out_twin), \
        f'{len(out_graph)} outputs vs {len(out_twin)} from the twin'
    for k, (a, b) in enumerate(zip(out_graph, out_twin)):
        assert a.shape == b.shape, f'output {k}: {a.shape} vs {b.shape}'
        assert_close(a, b, dtype, f'output {k}')

    # One random cotangent per output, shared by both sides.
    gen = torch.Generator().manual_seed(0)
    loss_graph, loss_twin = 0., 0.
    for a, b in zip(out_graph, out_twin):
        if not a.requires_grad and not b.requires_grad:
            continue
        g = torch.randn(b.shape, generator=gen, dtype=b.dtype).to(b.device)
        loss_graph = loss_graph + (a * g).sum()
        loss_twin = loss_twin + (b * g).sum()
    if not isinstance(loss_twin, Tensor):
        return
    loss_graph.backward()
    loss_twin.backward()
    if graph_inputs is None:
        for k, (a, b) in enumerate(zip(graph_in, twin_in)):
            if b.grad is not None or a.grad is not None:
                assert a.grad is not None and b.grad is not None, \
                    f'input {k}: gradient missing on one side'
                assert_close(a.grad, b.grad, dtype, f'grad of input {k}')
    for k, (get_a, get_b) in enumerate(params):
        a, b = get_a(), get_b()
        assert a is not None and b is not None, f'param {k}: no gradient'
        assert_close(a, b, dtype, f'grad of param {k}')


def shuffle_edges(edge_index: Tensor, *edge_tensors: Optional[Tensor],
                  seed: int = 0):
    """The same edges in a random order (per-edge tensors permuted alike)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(edge_index.size(1), generator=gen).to(
        edge_index.device)
    return (edge_index[:, perm], ) + tuple(
        None if t is None else t[perm] for t in edge_tensors)


def assert_edge_order_invariant(fn: Callable[..., Tensor], edge_index: Tensor,
                                *edge_tensors: Optional[Tensor]):
    """``fn(edge_index, *edge_tensors)`` does not depend on edge order."""
    expected = _flatten(fn(edge_index, *edge_tensors))
    actual = _flatten(fn(*shuffle_edges(edge_index, *edge_tensors)))
    for a, b in zip(actual, expected):
        assert_close(a, b)


def empty_graph(device=None) -> Tensor:
    """An ``edge_index`` with no edges."""
    return torch.empty(2, 0, dtype=torch.long, device=device)


def dtypes() -> Iterable[torch.dtype]:
    return (torch.float32, torch.float64)


# --------------------------------------------------------------------------
# Host syncs, counted on the CPU (issue 20).
# --------------------------------------------------------------------------
HOST_READS = frozenset({'__int__', '__bool__', '__float__', '__index__',
                        'item', 'tolist', 'nonzero', 'unique'})


class count_host_reads(torch.overrides.TorchFunctionMode):
    """Counts the tensor operations that read values back to the host
    (``int(t)``, ``bool(t)``, ``.item()``, ``.tolist()``, ``nonzero``, ...):
    each one is a device-to-host sync on CUDA. ``with count_host_reads() as
    reads: ...`` then ``reads.count`` / ``reads.names``."""

    def __init__(self):
        super().__init__()
        self.names = []

    @property
    def count(self) -> int:
        return len(self.names)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in HOST_READS:
            self.names.append(name)
        return func(*args, **(kwargs or {}))


# --------------------------------------------------------------------------
# Devices (issue 20): every device-parametrised test runs on each available
# device; an absent device is not collected at all.
# --------------------------------------------------------------------------
import os  # noqa: E402 (this section is appended; imports kept with it)

import pytest  # noqa: E402

DEVICES_VARIABLE = 'PYG_RELATIONAL_TEST_DEVICES'

# Tolerances per device and dtype. On CUDA (TF32 off) kernels sum in other
# orders and atomics make the order vary: float32 1e-4, float64 1e-9.
DEVICE_TOL = {'cpu': dict(TOL),
              'cuda': {torch.float64: 1e-9, torch.float32: 1e-4}}


def available_devices():
    """``['cpu']``, plus ``'cuda'`` when :func:`torch.cuda.is_available`.
    ``$PYG_RELATIONAL_TEST_DEVICES`` (e.g. ``cuda`` or ``cpu,cuda``)
    overrides the list: to run one device only, and for the test that
    checks the collection of a faked list."""
    given = os.environ.get(DEVICES_VARIABLE)
    if given:
        return [d.strip() for d in given.split(',') if d.strip()]
    return ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


DEVICES = available_devices()


@pytest.fixture(params=DEVICES)
def device(request):
    """The device a test runs on (parametrised over :data:`DEVICES`; a
    module takes it with ``from tests.helpers import device``). On the
    test's device: TF32 off, and :func:`assert_close` (so :func:`assert_twin`
    too) uses that device's tolerances."""
    global TOL
    name = request.param
    saved_tol = TOL
    saved_tf32 = (torch.backends.cuda.matmul.allow_tf32,
                  torch.backends.cudnn.allow_tf32)
    TOL = DEVICE_TOL.get(torch.device(name).type, saved_tol)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield name
    finally:
        TOL = saved_tol
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved_tf32


def graph_to(edge_index: Tensor, device) -> Tensor:
    """``edge_index`` on ``device``, with the structure a builder registered
    for it (a copy on another device is a new tensor, unregistered)."""
    from pyg_relational.structure import register, structure_of
    if edge_index.device == torch.device(device):
        return edge_index
    structure = structure_of(edge_index, recognise_unknown=False)
    moved = edge_index.to(device)
    return moved if structure is None else register(moved, structure)
