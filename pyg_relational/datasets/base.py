r"""A dataset of simulated trajectories, cached to a root folder."""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, Optional

import torch
from torch import Tensor


class SimulatedDataset(torch.utils.data.Dataset):
    r"""Base class of the physics datasets: simulates once from a seed,
    caches the tensors to ``root`` and loads them on later calls.

    Subclasses set :attr:`name` and implement :meth:`simulate`, returning a
    dict of tensors whose first dimension is the sample index; ``self.config``
    (every argument that changes the simulation) keys the cache file, so a
    change of any argument re-simulates.

    Args:
        root (str, optional): cache folder; :obj:`None` keeps the data in
            memory only. (default: :obj:`None`)
        num_samples (int): number of simulated samples.
        seed (int, optional): random seed of the simulation. (default: :obj:`0`)
        **config: simulator arguments.
    """
    name: str = 'simulated'

    def __init__(self, root: Optional[str], num_samples: int, seed: int = 0,
                 **config: Any):
        super().__init__()
        self.root = root
        self.config = dict(num_samples=int(num_samples), seed=int(seed),
                           **config)
        path = self.cache_path
        if path is not None and osp.exists(path):
            self.data = torch.load(path)
        else:
            self.data = self.simulate(**self.config)
            if path is not None:
                os.makedirs(root, exist_ok=True)
                tmp = path + '.tmp'
                torch.save(self.data, tmp)
                os.replace(tmp, path)

    @property
    def cache_path(self) -> Optional[str]:
        if self.root is None:
            return None
        key = json.dumps(self.config, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        return osp.join(self.root, f'{self.name}_{digest}.pt')

    def simulate(self, **config: Any) -> Dict[str, Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.config['num_samples']

    def __getitem__(self, idx) -> Dict[str, Tensor]:
        return {key: value[idx] for key, value in self.data.items()}

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({len(self)})'


def default_data_root() -> str:
    r"""The folder where data sets are looked for (and downloaded to when
    missing): ``$PYG_RELATIONAL_DATA`` if set, else the user cache folder
    ``$XDG_CACHE_HOME/pyg_relational`` (``~/.cache/pyg_relational`` when
    ``XDG_CACHE_HOME`` is unset). Functions that take a ``data_root``
    argument use it only when the argument is :obj:`None`.

    Example:
        >>> root = default_data_root()  # e.g. '/home/me/.cache/pyg_relational'
    """
    root = os.environ.get('PYG_RELATIONAL_DATA')
    if root:
        return root
    cache = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(cache, 'pyg_relational')
