r"""Honest timing and peak-memory measurement of a callable, and of a graph
layer against its twin.

Time: a hand loop of :func:`time.perf_counter` around each call (CUDA
synchronised), median over ``repeat`` runs after ``warmup`` runs.
:func:`measure_pair` times two callables in alternation (A B A B ...), so
that both see the same machine load.
Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was
allocated before the call; on CPU, the high-water mark of the running sum of
the allocations and frees recorded by :mod:`torch.profiler` during one call
(tensors allocated by the call, not memory held before it).

:func:`compare_speed` is the one recipe of the speed benchmarks: the graph
layer and its twin on the same data and weights, their outputs compared,
forward+backward timed in alternation, peaks measured, the path the layer
ran and the issue's target (:class:`Target`) recorded in a
:class:`~pyg_relational.bench.results.SpeedResult`.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from .results import SpeedResult

__all__ = ['Measurement', 'measure', 'measure_pair', 'peak_memory',
           'scaled_error', 'Target', 'compare_speed', 'path_of',
           'run_cases']

TIMER = 'time.perf_counter hand loop, A/B alternated, median'


@dataclass
class Measurement:
    median_s: float
    times_s: List[float]
    peak_bytes: int


def _sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def peak_memory(fn: Callable[[], object], device='cpu') -> int:
    """Bytes allocated at the peak of one call of ``fn`` beyond what was
    allocated before it."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]']
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def measure(fn: Callable[[], object], repeat: int = 10, warmup: int = 2,
            device='cpu', memory: bool = True) -> Measurement:
    """Median wall time of ``fn`` over ``repeat`` runs and its peak memory."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    times = [_time_once(fn, device) for _ in range(repeat)]
    peak = peak_memory(fn, device) if memory else 0
    return Measurement(statistics.median(times), times, peak)


def measure_pair(fn_a: Callable[[], object], fn_b: Callable[[], object],
                 repeat: int = 7, warmup: int = 1, device='cpu',
                 memory: bool = True) -> Tuple[Measurement, Measurement]:
    """:func:`measure` of two callables in alternation: ``warmup`` rounds
    ``a, b`` untimed, then ``repeat`` timed rounds ``a, b``; medians of each,
    then one peak-memory call of each."""
    device = torch.device(device)
    for _ in range(warmup):
        fn_a()
        fn_b()
    _sync(device)
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(_time_once(fn_a, device))
        times_b.append(_time_once(fn_b, device))
    peaks = [peak_memory(fn, device) if memory else 0 for fn in (fn_a, fn_b)]
    return (Measurement(statistics.median(times_a), times_a, peaks[0]),
            Measurement(statistics.median(times_b), times_b, peaks[1]))


def scaled_error(a: Tensor, b: Tensor) -> float:
    """``max|a - b|``, divided by ``max|b|`` where that exceeds 1."""
    if a.numel() == 0:
        return 0.
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1))


@dataclass(frozen=True)
class Target:
    """A speed target of a graph layer against its twin: the largest time
    ratio ``graph / twin`` (``0.67`` = "1.5× faster") and, optionally, the
    largest peak-memory ratio."""
    time: float
    memory: Optional[float] = None
    note: str = ''

    def met(self, time_ratio: float, memory_ratio: Optional[float]) -> bool:
        if time_ratio > self.time:
            return False
        return self.memory is None or (memory_ratio is not None
                                       and memory_ratio <= self.memory)

    def __str__(self) -> str:
        text = f'time ≤ {self.time:.3g}×'
        if self.memory is not None:
            text += f', memory ≤ {self.memory:.3g}×'
        return text + (f' ({self.note})' if self.note else '')


def path_of(module: Optional[torch.nn.Module]) -> str:
    """The execution path(s) a layer ran last (``last_path`` of the module
    and of its submodules, e.g. a Transformer layer's attention), or
    ``'n/a'`` for layers without paths."""
    if module is None:
        return 'n/a'
    paths = [getattr(m, 'last_path', None) for m in module.modules()]
    paths = list(dict.fromkeys(p for p in paths if p is not None))
    return '+'.join(paths) if paths else 'n/a'


def _same_layout(graph_out: Tensor, twin_out: Tensor
                 ) -> Tuple[Tensor, Tensor]:
    return graph_out.reshape(twin_out.shape), twin_out


def _cotangents(graph_out: Tensor, twin_out: Tensor, align, seed: int
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One random cotangent in the common layout of ``align``, pulled back
    to each side's own layout, and the two outputs in that layout."""
    g_out = graph_out.detach().requires_grad_()
    t_out = twin_out.detach().requires_grad_()
    a, b = align(g_out, t_out)
    gen = torch.Generator().manual_seed(seed)
    cot = torch.randn(a.shape, generator=gen, dtype=a.dtype).to(a.device)
    cot_g, = torch.autograd.grad(a, g_out, cot)
    cot_t, = torch.autograd.grad(b, t_out, cot)
    return cot_g, cot_t, a.detach(), b.detach()


def _step(forward: Callable[[], Tensor], cotangent: Tensor,
          leaves: List[Tensor]) -> Callable[[], None]:
    """One training step's worth of work: fresh gradients (as
    ``zero_grad(set_to_none=True)``), forward, backward."""
    def step():
        for t in leaves:
            t.grad = None
        forward().backward(cotangent)
    return step


def compare_speed(operator: str, baseline: str, config: str,
                  graph: Callable[[], Tensor], twin: Callable[[], Tensor],
                  graph_leaves: Iterable[Tensor],
                  twin_leaves: Iterable[Tensor], *,
                  layer: Optional[torch.nn.Module] = None,
                  twin_module: Optional[torch.nn.Module] = None,
                  align: Callable[[Tensor, Tensor],
                                  Tuple[Tensor, Tensor]] = _same_layout,
                  num_edges: int = 0, target: Optional[Target] = None,
                  repeat: int = 7, warmup: int = 1, device='cpu',
                  memory: bool = True, tolerance: float = 1e-4,
                  extra: Optional[Dict[str, Any]] = None) -> SpeedResult:
    r"""Forward+backward of a graph layer against its twin on the same data
    and weights.

    ``graph()`` / ``twin()`` run one forward pass on inputs prepared
    beforehand (graph built, layouts converted: nothing of that is timed)
    and return one tensor each, in their own layouts; ``align(graph_out,
    twin_out)`` maps both to one layout (default: the graph output reshaped
    to the twin's). Both sides get the same random cotangent there, pulled
    back to their layouts outside the timed region, and the outputs are
    compared (``extra['max_abs_diff']``; ``extra['outputs_agree']``:
    :func:`scaled_error` within ``tolerance``). Then each side's step
    (gradients of its ``*_leaves`` reset to :obj:`None`, forward,
    ``backward``) is timed by :func:`measure_pair`.

    ``extra`` gains ``path`` / ``baseline_path`` (:func:`path_of` of
    ``layer`` / ``twin_module`` after the timed runs), ``target`` and
    ``met`` (:class:`Target`, :obj:`None` without one), the per-run times,
    ``repeat``, ``warmup``, ``threads`` and ``timer``."""
    graph_leaves, twin_leaves = list(graph_leaves), list(twin_leaves)
    cot_g, cot_t, out_g, out_t = _cotangents(graph(), twin(), align, seed=0)
    diff = float((out_g - out_t).abs().max()) if out_t.numel() else 0.
    mg, mt = measure_pair(_step(graph, cot_g, graph_leaves),
                          _step(twin, cot_t, twin_leaves), repeat, warmup,
                          device, memory)
    result = SpeedResult(operator, baseline, config, str(device), num_edges,
                         mg.median_s, mt.median_s, mg.peak_bytes,
                         mt.peak_bytes, alternated=True)
    result.extra = dict(extra or {})
    result.extra.update({
        'path': path_of(layer), 'baseline_path': path_of(twin_module),
        'max_abs_diff': diff,
        'outputs_agree': scaled_error(out_g, out_t) <= tolerance,
        'target': None if target is None else str(target),
        'met': None if target is None or (target.memory and not memory)
        else target.met(result.time_ratio, result.memory_ratio),
        'graph_times_s': mg.times_s, 'baseline_times_s': mt.times_s,
        'repeat': repeat, 'warmup': warmup,
        'threads': torch.get_num_threads(), 'timer': TIMER})
    return result


def run_cases(cases: Iterable[Callable[[], SpeedResult]],
              progress: Optional[Callable[[str], None]] = None
              ) -> List[SpeedResult]:
    """Run the cases (functions returning one :class:`SpeedResult` each) in
    order, telling ``progress`` after each."""
    results = []
    for case in cases:
        result = case()
        results.append(result)
        if progress is not None:
            progress(f'{result.operator} vs {result.baseline}: '
                     f'{result.config}')
    return results
