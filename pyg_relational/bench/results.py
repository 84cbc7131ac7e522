r"""Result records shared by every benchmark suite. Suites return lists of
these (plain data); :mod:`pyg_relational.bench.report` renders them."""
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

__all__ = ['TwinResult', 'SpeedResult', 'asdict']


@dataclass
class TwinResult:
    """A graph layer against its PyTorch/PyG twin on random inputs."""
    layer: str  # e.g. 'LatticeConv'
    twin: str  # e.g. 'nn.Conv2d'
    config: str  # e.g. '64->64 3x3 stride 2, float64'
    dtype: str
    max_abs_err: float  # forward outputs
    max_abs_grad_err: float  # input and parameter gradients
    tolerance: float

    @property
    def passed(self) -> bool:
        return max(self.max_abs_err, self.max_abs_grad_err) <= self.tolerance


@dataclass
class SpeedResult:
    """Forward+backward of a graph layer vs. its dense twin on the same data.
    Times are medians in seconds, memory is peak bytes allocated by one
    forward+backward (see :mod:`pyg_relational.bench.timing`).

    ``alternated`` says that the two sides were timed in alternation
    (A B A B ..., :func:`~pyg_relational.bench.timing.measure_pair`), so
    both saw the same machine load. The report shows a time ratio only
    then: two medians taken at different moments of a loaded machine can be
    off by orders of magnitude."""
    operator: str  # e.g. 'LatticeConv'
    baseline: str  # e.g. 'nn.Conv2d'
    config: str
    device: str
    num_edges: int
    graph_s: float
    baseline_s: float
    graph_peak_bytes: int
    baseline_peak_bytes: int
    extra: Dict[str, Any] = field(default_factory=dict)
    alternated: bool = False

    @property
    def time_ratio(self) -> float:
        return self.graph_s / self.baseline_s

    @property
    def memory_ratio(self) -> Optional[float]:
        if self.baseline_peak_bytes <= 0:
            return None
        return self.graph_peak_bytes / self.baseline_peak_bytes
