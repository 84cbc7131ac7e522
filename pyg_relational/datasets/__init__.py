r"""Physics simulators and their cached datasets. Every simulator is
deterministic given its seed."""
from .base import SimulatedDataset
from .nri_physics import (ChargedDataset, SpringsDataset, simulate_charged,
                          simulate_springs)

__all__ = ['SimulatedDataset']
__all__ += ['simulate_springs', 'simulate_charged', 'SpringsDataset',
            'ChargedDataset']
from .interaction_physics import (BouncingBallsDataset,  # noqa: E402
                                  NBodyDataset, StringDataset,
                                  simulate_bouncing_balls, simulate_nbody,
                                  simulate_string)
__all__ += ['simulate_nbody', 'simulate_bouncing_balls', 'simulate_string',
            'NBodyDataset', 'BouncingBallsDataset', 'StringDataset']
