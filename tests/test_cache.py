"""The package's one cache mechanism (pyg_relational._cache): one validity
rule per tensor, LRU bound, thread safety, one clear_cache for every cache,
a context-local silent flag."""
import gc
import threading

import pytest
import torch

from pyg_relational import _cache, structure
from pyg_relational._cache import (SNAPSHOT_NUMEL, BoundedCache, clear_cache,
                                   is_silent, silent, tensor_cache)
from pyg_relational.graphs import chain_graph


@pytest.fixture
def restore_caches():
    """clear_cache() forgets the structures of graphs other test modules
    built at import too: put them back afterwards."""
    saved = {cache: dict(cache) for cache in list(_cache._CACHES)}
    yield
    for cache, entries in saved.items():
        cache.update(entries)


@pytest.mark.parametrize('numel', [6, SNAPSHOT_NUMEL + 2])
def test_in_place_edit_invalidates(numel):
    t = torch.arange(numel)
    tensor_cache(t)['k'] = 1
    assert tensor_cache(t)['k'] == 1
    t[0] = 5  # bumps the version
    assert 'k' not in tensor_cache(t)


def test_edit_without_version_bump_of_small_tensor_invalidates():
    t = torch.arange(6)
    tensor_cache(t)['k'] = 1
    t.data[0] = 5  # no version bump: the values tell
    assert 'k' not in tensor_cache(t)


def test_new_tensor_with_same_id_does_not_see_old_entry():
    stale = 0
    for _ in range(50):  # freed tensors' ids are reused quickly
        t = torch.arange(4)
        key = id(t)
        tensor_cache(t)['k'] = 1
        del t
        u = torch.arange(4)
        stale += id(u) == key and 'k' in tensor_cache(u)
        del u
    assert stale == 0


def test_entry_dropped_with_its_tensor():
    t = torch.arange(4)
    tensor_cache(t)['k'] = 1
    key = id(t)
    assert key in _cache._PER_TENSOR
    del t
    gc.collect()
    assert key not in _cache._PER_TENSOR


def test_large_inference_tensor_is_not_kept():
    with torch.inference_mode():
        t = torch.arange(SNAPSHOT_NUMEL + 2)
    tensor_cache(t)['k'] = 1
    assert 'k' not in tensor_cache(t)


def test_lru_eviction():
    cache = BoundedCache('test', maxsize=2)
    built = []

    def build(key):
        return lambda: built.append(key) or key * 10

    assert cache.get(1, build(1)) == 10
    assert cache.get(2, build(2)) == 20
    assert cache.get(1, build(1)) == 10  # 1 is now the most recent
    assert cache.get(3, build(3)) == 30  # evicts 2, the least recent
    assert len(cache) == 2 and 2 not in cache and 1 in cache
    assert cache.get(2, build(2)) == 20
    assert built == [1, 2, 3, 2]
    assert 'BoundedCache' in repr(cache) and '2/2' in repr(cache)


def test_invalid_value_is_rebuilt():
    cache = BoundedCache('test', maxsize=4)
    assert cache.get('a', lambda: 1) == 1
    assert cache.get('a', lambda: 2, valid=lambda v: v == 1) == 1
    assert cache.get('a', lambda: 2, valid=lambda v: v == 2) == 2


def test_bad_maxsize():
    with pytest.raises(ValueError, match="'maxsize'"):
        BoundedCache('test', maxsize=0)


@pytest.mark.parametrize('maxsize', [4, 64])
def test_threads_build_each_key_once_per_residency(maxsize):
    cache = BoundedCache('test', maxsize=maxsize)
    builds, lock, errors = {}, threading.Lock(), []

    def build(key):
        def run():
            with lock:
                builds[key] = builds.get(key, 0) + 1
            return key
        return run

    def hammer(seed):
        try:
            for i in range(2000):
                key = (i * 7 + seed) % 16
                assert cache.get(key, build(key)) == key
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=hammer, args=(s, )) for s in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= maxsize
    if maxsize >= 16:  # never evicted: every key built exactly once
        assert builds == {key: 1 for key in range(16)}


def test_threads_share_one_tensor_entry():
    t = torch.arange(8)
    seen, errors = [], []

    def hammer():
        try:
            for _ in range(500):
                seen.append(id(tensor_cache(t)))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(seen)) == 1


def test_clear_cache_clears_every_cache(restore_caches):
    mine = BoundedCache('test', maxsize=4)
    mine.get('a', lambda: 1)
    t = torch.arange(4)
    tensor_cache(t)['k'] = 1
    structure.Chains((3, )).edge_index()
    assert len(mine) and len(structure._BUILT) and len(_cache._PER_TENSOR)
    clear_cache()
    assert len(mine) == 0 and len(structure._BUILT) == 0
    assert len(_cache._PER_TENSOR) == 0 and 'k' not in tensor_cache(t)
    assert structure.clear_cache is clear_cache


def test_silent_does_not_register():
    with silent():
        assert is_silent()
        edge_index = chain_graph(3)
    assert not is_silent()
    assert 'structure' not in tensor_cache(edge_index)


def test_silent_is_context_local():
    inside, release = threading.Event(), threading.Event()
    seen = []

    def other():
        inside.wait()
        seen.append(is_silent())
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with silent():
        inside.set()
        release.wait()
        assert is_silent()
    thread.join()
    assert seen == [False]
