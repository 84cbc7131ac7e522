r"""Physics simulators and their cached datasets. Every simulator is
deterministic given its seed."""
from .base import SimulatedDataset
from .interaction_physics import (BouncingBallsDataset, NBodyDataset,
                                  StringDataset, simulate_bouncing_balls,
                                  simulate_nbody, simulate_string)
from .nri_physics import (ChargedDataset, SpringsDataset, simulate_charged,
                          simulate_springs)
from .sparse_physics import (LocalChargedDataset, LocalSpringsDataset,
                             local_knn_graph, simulate_local_charged,
                             simulate_local_springs)

__all__ = [
    'SimulatedDataset',
    'simulate_nbody',
    'simulate_bouncing_balls',
    'simulate_string',
    'NBodyDataset',
    'BouncingBallsDataset',
    'StringDataset',
    'simulate_springs',
    'simulate_charged',
    'SpringsDataset',
    'ChargedDataset',
    'simulate_local_springs',
    'simulate_local_charged',
    'local_knn_graph',
    'LocalSpringsDataset',
    'LocalChargedDataset',
]
