r"""A dataset of simulated trajectories, cached to a root folder."""
import hashlib
import json
import os
import os.path as osp
import tempfile
import warnings
from numbers import Integral
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.data.separate import separate


_FORMAT = 1  # version of the cache file layout


class SimulatedDataset(InMemoryDataset):
    r"""Base class of the physics datasets: a
    :class:`torch_geometric.data.InMemoryDataset` that simulates once from a
    seed, caches the simulation to ``root`` and loads it on later calls.

    Items are :class:`~torch_geometric.data.Data` graphs, so PyG's
    ``transform``, ``pre_transform``, ``pre_filter``, slicing
    (``dataset[10:20]``, index lists and masks), :meth:`shuffle` and
    :class:`torch_geometric.loader.DataLoader` work as for any PyG dataset.

    Subclasses set :attr:`name` and implement :meth:`simulate` (a dict of
    tensors whose first dimension is the sample index) and :meth:`storage`
    (the simulation as stacked items). ``self.config`` (every argument that
    changes the simulation) keys the cache file and is stored in it; on load
    it is compared with the requested one. A file holding another
    configuration, an unreadable (corrupt, truncated, empty) file or one of
    an older layout is simulated again and replaced, with a warning that
    names the file. Files are written to a unique temporary name and
    renamed atomically, so concurrent processes never see half a file.

    Args:
        root (str, optional): cache folder; :obj:`None` keeps the data in
            memory only. (default: :obj:`None`)
        num_samples (int): number of simulated samples.
        seed (int, optional): random seed of the simulation. (default: :obj:`0`)
        transform (callable, optional): applied to every item on access.
            (default: :obj:`None`)
        pre_transform (callable, optional): applied once to every item
            after loading (in memory; the cache holds the raw simulation).
            (default: :obj:`None`)
        pre_filter (callable, optional): keeps the items for which it
            returns :obj:`True`. (default: :obj:`None`)
        **config: simulator arguments.
    """
    name: str = 'simulated'

    def __init__(self, root: Optional[str], num_samples: int, seed: int = 0,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None, **config: Any):
        super().__init__(None, transform, pre_transform, pre_filter,
                         log=False)
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"'root' must be a folder path or None (got "
                            f"{type(root).__name__})")
        self.root = None if root is None else os.fspath(root)
        self.config = dict(num_samples=int(num_samples), seed=int(seed),
                           **config)
        # arguments are checked even when the cache would be loaded
        self.check_config(**self.config)
        self.simulation = self._load_or_simulate()
        data, slices = self.storage(self.simulation)
        if pre_transform is not None or pre_filter is not None:
            items = [separate(cls=Data, batch=data, idx=i, slice_dict=slices,
                              decrement=False)
                     for i in range(self.config['num_samples'])]
            if pre_filter is not None:
                items = [d for d in items if pre_filter(d)]
            if pre_transform is not None:
                items = [pre_transform(d) for d in items]
            data, slices = self.collate(items) if items else (Data(), {})
        self._data, self.slices = data, slices

    # ------------------------------------------------------------------
    # Cache.
    # ------------------------------------------------------------------
    @property
    def cache_path(self) -> Optional[str]:
        if self.root is None:
            return None
        digest = hashlib.sha1(_canonical(self.config).encode()).hexdigest()
        return osp.join(self.root, f'{self.name}_{digest[:12]}.pt')

    def _load_or_simulate(self) -> Dict[str, Tensor]:
        path = self.cache_path
        if path is not None and osp.exists(path):
            simulation, problem = self._read_cache(path)
            if problem is None:
                return simulation
            warnings.warn(f"{self.__class__.__name__}: the cache file "
                          f"{path} {problem}; simulating again and "
                          f"replacing it", stacklevel=3)
        simulation = self.simulate(**self.config)
        if path is not None:
            self._write_cache(path, simulation)
        return simulation

    def _read_cache(self, path: str):
        """``(simulation, None)``, or ``(None, what is wrong with it)``."""
        try:
            saved = torch.load(path, weights_only=True)
        except Exception as e:  # corrupt, truncated, empty, foreign
            return None, (f"is unreadable ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else 'no message'})")
        if not isinstance(saved, dict) or saved.get('format') != _FORMAT \
                or not isinstance(saved.get('simulation'), dict):
            return None, ("has another layout (written by an older version, "
                          "without its configuration)")
        if saved.get('name') != self.name or \
                _canonical(saved.get('config')) != _canonical(self.config):
            return None, (f"holds another configuration ({saved.get('name')} "
                          f"{saved.get('config')}, requested {self.name} "
                          f"{self.config})")
        simulation = saved['simulation']
        num = self.config['num_samples']
        for key, value in simulation.items():
            if not isinstance(value, Tensor) or value.dim() == 0 or \
                    value.size(0) != num:
                return None, (f"is inconsistent ('{key}' does not hold "
                              f"{num} samples)")
        return simulation, None

    def _write_cache(self, path: str, simulation: Dict[str, Tensor]):
        folder = osp.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=osp.basename(path) + '.',
                                       suffix='.tmp', dir=folder)
        except OSError as e:
            raise OSError(f"{self.__class__.__name__}: cannot write the "
                          f"cache file {path} ({e}); pass another 'root', "
                          f"or root=None to keep the data in memory") from e
        try:
            with os.fdopen(fd, 'wb') as f:
                torch.save(dict(format=_FORMAT, name=self.name,
                                config=self.config, simulation=simulation), f)
            os.replace(tmp, path)  # atomic: readers see all or nothing
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    # ------------------------------------------------------------------
    # Subclass interface.
    # ------------------------------------------------------------------
    def simulate(self, **config: Any) -> Dict[str, Tensor]:
        raise NotImplementedError

    def check_config(self, **config: Any):
        r"""Raise a ``ValueError`` naming the first bad argument of
        ``config`` (called before the cache is read, so a bad argument fails
        also when a cache file exists). The default checks nothing."""

    def __getitem__(self, idx):
        # PyG would answer "range object index out of range"
        if isinstance(idx, Integral) and not isinstance(idx, bool) or (
                isinstance(idx, Tensor) and idx.dim() == 0 and
                not idx.is_floating_point() and idx.dtype != torch.bool):
            i, n = int(idx), len(self)
            if not -n <= i < n:
                raise IndexError(
                    f"index {i} is out of range for {self.__class__.__name__}"
                    f" of {n} items (valid: {-n} to {n - 1})" if n else
                    f"index {i} is out of range: {self.__class__.__name__} "
                    f"is empty")
        return super().__getitem__(idx)

    def storage(self, simulation: Dict[str, Tensor]
                ) -> Tuple[Data, Dict[str, Tensor]]:
        r"""The simulation as InMemoryDataset storage ``(data, slices)``:
        every item a :class:`~torch_geometric.data.Data`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({len(self)})'


def _canonical(config) -> str:
    """A configuration as canonical JSON (tuples and lists alike)."""
    return json.dumps(config, sort_keys=True, default=repr)


def stacked_storage(num_samples: int, node: Dict[str, Tensor],
                    edge: Dict[str, Tensor], edge_index: Tensor
                    ) -> Tuple[Data, Dict[str, Tensor]]:
    r"""InMemoryDataset storage of ``num_samples`` graphs of one shape
    without collating a list: ``node`` attributes ``[S, n, ...]``, ``edge``
    attributes ``[S, E, ...]`` and one ``edge_index`` ``[2, E]`` shared by
    every sample (stored per sample, not incremented, as
    :meth:`InMemoryDataset.collate` does)."""
    S = num_samples
    n = next(iter(node.values())).size(1) if node else 0
    E = edge_index.size(1)
    data, slices = Data(), {}
    for key, value in node.items():
        data[key] = value.reshape(S * n, *value.shape[2:])  # [S*n, ...]
        slices[key] = torch.arange(S + 1) * n
    data.edge_index = edge_index.repeat(1, S)  # [2, S*E]
    slices['edge_index'] = torch.arange(S + 1) * E
    for key, value in edge.items():
        data[key] = value.reshape(S * E, *value.shape[2:])  # [S*E, ...]
        slices[key] = torch.arange(S + 1) * E
    return data, slices


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
