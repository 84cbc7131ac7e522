r"""Physics simulators and their cached datasets. Every simulator is
deterministic given its seed."""
from .base import SimulatedDataset

__all__ = ['SimulatedDataset']
