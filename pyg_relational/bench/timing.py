r"""Honest timing and peak-memory measurement of a callable.

Time: median over ``repeat`` runs after ``warmup`` runs (CUDA synchronised).
Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was
allocated before the call; on CPU, the high-water mark of the running sum of
the allocations and frees recorded by :mod:`torch.profiler` during one call
(tensors allocated by the call, not memory held before it).
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ['Measurement', 'measure', 'peak_memory']


@dataclass
class Measurement:
    median_s: float
    times_s: List[float]
    peak_bytes: int


def _sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


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
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = peak_memory(fn, device) if memory else 0
    return Measurement(statistics.median(times), times, peak)
