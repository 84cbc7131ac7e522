r"""The package's one cache mechanism: bounded (least recently used entries
dropped first), thread-safe (one re-entrant lock for every cache, so a
``build`` may use another cache without a lock-order deadlock) and
registered, so :func:`clear_cache` clears every cache at once.

* :class:`BoundedCache`: values per hashable key (built graphs per
  structure, dense layouts, fused-RNN plans, ...);
* :func:`tensor_cache`: what is known of one tensor (its registered
  structure, CSR pattern, typed plans, index ranges), under one validity
  rule: identity, in-place version and, for small CPU tensors, values.

Example:
    >>> from pyg_relational._cache import BoundedCache
    >>> squares = BoundedCache('squares', maxsize=2)
    >>> squares.get(3, lambda: 9), squares.get(3, lambda: 0)
    (9, 9)
"""
import contextlib
import contextvars
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Hashable, Iterator, Optional

import torch
from torch import Tensor

from ._torch import compiling, plain_tensor

__all__ = ['BoundedCache', 'tensor_cache', 'clear_cache', 'silent',
           'is_silent']

_LOCK = threading.RLock()
_CACHES: 'weakref.WeakSet[BoundedCache]' = weakref.WeakSet()


class BoundedCache:
    r"""Values per hashable key, at most ``maxsize`` of them (the least
    recently used is dropped first), safe to share between threads and
    cleared by :func:`clear_cache`.

    Args:
        name (str): what is cached (shown by ``repr``).
        maxsize (int): entries kept at most.
    """

    def __init__(self, name: str, maxsize: int):
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"'maxsize' must be an int >= 1 (got "
                             f"{maxsize!r})")
        self.name = name
        self.maxsize = maxsize
        self._entries: OrderedDict = OrderedDict()
        _CACHES.add(self)

    def get(self, key: Hashable, build: Callable[[], object],
            valid: Optional[Callable[[object], bool]] = None):
        """The value kept for ``key``, or ``build()`` (called once, under
        the lock) kept and returned; a kept value for which ``valid`` is
        false is built again. While :func:`torch.compile` traces, ``build()``
        is called and nothing is kept (a lock cannot be traced; the value
        becomes part of the compiled graph)."""
        if compiling():
            return build()
        with _LOCK:
            if key in self._entries:
                value = self._entries[key]
                if valid is None or valid(value):
                    self._entries.move_to_end(key)
                    return value
            value = build()
            self.update({key: value})
            return value

    def update(self, entries) -> None:
        """Keep every ``key: value`` of ``entries`` (most recent last)."""
        with _LOCK:
            for key, value in dict(entries).items():
                self._entries[key] = value
                self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def pop(self, key: Hashable, default=None):
        with _LOCK:
            return self._entries.pop(key, default)

    def clear(self) -> None:
        with _LOCK:
            self._entries.clear()

    def keys(self):
        with _LOCK:
            return list(self._entries)

    def __getitem__(self, key: Hashable):
        with _LOCK:
            return self._entries[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.name!r}, '
                f'{len(self)}/{self.maxsize})')


def clear_cache():
    r"""Forget everything cached about graphs: registered and recognised
    structures, CSR patterns, typed plans, layouts and built graphs (every
    :class:`BoundedCache` and the per-tensor store).

    Needed only after editing a large (more than ``SNAPSHOT_NUMEL`` =
    16384 entries) or non-CPU ``edge_index`` / ``edge_type`` in a way that
    does not bump its in-place version (``t.data[...] = ...``, writes
    through ``t.numpy()`` or DLPack); ordinary in-place edits
    (``t[0, 1] = 2``, ``t.add_(1)``) and any edit of a small CPU tensor are
    detected. After the call the next forward recognises the graph afresh;
    builders' structures are not re-registered (the graph is recognised,
    or takes the sparse / message path).

    Example:
        >>> edge_index = chain_graph(4)
        >>> clear_cache()
        >>> structure_of(edge_index)  # recognised again
        Chains(sizes=(4,), reverse=False)
    """
    with _LOCK:
        for cache in list(_CACHES):
            cache.clear()


# The validity rule of tensor_cache: an entry holds while the tensor lives,
# its in-place version is unchanged and, for a small CPU tensor (at most
# SNAPSHOT_NUMEL entries), its values still equal a copy taken when the
# entry was made. The copy catches edits that do not bump ``_version``:
# through ``.data``, ``.numpy()``, DLPack or another framework sharing the
# memory. A larger or non-CPU tensor is compared by identity and version
# only (comparing it on every call would cost a pass over the edges and, on
# a GPU, a host sync): after such an edit call :func:`clear_cache`.
SNAPSHOT_NUMEL = 1 << 14  # 8192 edges: one compare, 10-35 us here

# id(tensor) -> ((weak reference, version, snapshot), what is known of it);
# an entry is also dropped as soon as its tensor is freed.
_PER_TENSOR = BoundedCache('per-tensor', maxsize=4096)


def _snapshots(tensor: Tensor) -> bool:
    return tensor.device.type == 'cpu' and tensor.numel() <= SNAPSHOT_NUMEL \
        and not tensor.requires_grad and not tensor.is_sparse


def _snapshot(tensor: Tensor) -> Optional[Tensor]:
    return plain_tensor(tensor).detach().clone() if _snapshots(tensor) \
        else None


def _unchanged(snapshot: Optional[Tensor], tensor: Tensor) -> bool:
    if snapshot is None:
        return True
    values = plain_tensor(tensor)
    return values.shape == snapshot.shape and torch.equal(values, snapshot)


def _version(tensor: Tensor) -> Optional[int]:
    """The in-place version, or None for an inference tensor (made under
    :func:`torch.inference_mode`), which has none: only its values
    (small CPU tensors) can tell an edit then."""
    return None if tensor.is_inference() else tensor._version


def tensor_state(tensor: Tensor, ref=weakref.ref) -> Optional[tuple]:
    """What :func:`same_state` compares: identity, version and, for a
    small CPU tensor, a copy of its values (the validity rule above);
    None when nothing can vouch for the tensor (a large inference
    tensor)."""
    version, snapshot = _version(tensor), _snapshot(tensor)
    if version is None and snapshot is None:
        return None
    return (ref(tensor), version, snapshot)


def same_state(state: Optional[tuple], tensor: Tensor) -> bool:
    """Whether ``tensor`` is still the tensor of ``state``, unmodified."""
    return state is not None and state[0]() is tensor \
        and state[1] == _version(tensor) and _unchanged(state[2], tensor)


def _forget(key: int, ref: weakref.ref):
    """Drop the entry of a freed tensor (if it is still that tensor's)."""
    with _LOCK:
        entry = _PER_TENSOR._entries.get(key)
        if entry is not None and entry[0][0] is ref:
            del _PER_TENSOR._entries[key]


def tensor_cache(tensor: Tensor) -> dict:
    """What is known of this very tensor: a dict kept while the tensor
    lives and is not modified (a fresh dict when it is new, was freed, or
    was modified since: the validity rule above). A large inference
    tensor has no version to check: it gets a new, unkept dict every
    time (nothing is cached about it)."""
    if tensor.is_inference() and not _snapshots(tensor):
        return {}
    key = id(tensor)

    def track(t: Tensor) -> weakref.ref:
        return weakref.ref(t, lambda ref: _forget(key, ref))

    return _PER_TENSOR.get(key, lambda: (tensor_state(tensor, track), {}),
                           lambda entry: same_state(entry[0], tensor))[1]


_SILENT = contextvars.ContextVar('pyg_relational_silent', default=False)


@contextlib.contextmanager
def silent():
    """Within this context (this thread or task only), :func:`register`
    records nothing: graphs built there are recognised like any other."""
    token = _SILENT.set(True)
    try:
        yield
    finally:
        _SILENT.reset(token)


def is_silent() -> bool:
    """Whether the current context is inside :func:`silent`."""
    return _SILENT.get()
