"""examples/distributed.py: one process on the global batch and two
processes (torchrun, gloo) on half of it each train to the same weights."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist

from .conftest import ROOT

SCRIPT = osp.join(ROOT, 'examples', 'distributed.py')

pytestmark = pytest.mark.usefixtures('one_thread')


def _example():
    spec = importlib.util.spec_from_file_location('distributed_example',
                                                  SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason='torch.distributed with gloo is not built in')
def test_two_processes_train_like_one(tmp_path, monkeypatch):
    example = _example()
    for name in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    one, two = tmp_path / 'one.pt', tmp_path / 'two.pt'
    example.main(['--quick', '--device', 'cpu', '--save', str(one)])
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node', '2', SCRIPT, '--quick', '--device', 'cpu',
         '--save', str(two)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert '2 process(es)' in proc.stdout
    a, b = torch.load(one), torch.load(two)
    assert _max_diff(a, b) < 1e-5
    # ... and training moved the weights away from their common start
    torch.manual_seed(0)
    args = example.parse_args(['--quick'])
    start = example.EdgeClassifier(9 * 4, args.hidden).state_dict()
    assert _max_diff(a, start) > 1e-4


def test_odd_batch_is_refused(monkeypatch):
    example = _example()
    args = example.parse_args(['--batch-size', '15', '--device', 'cpu'])
    monkeypatch.setenv('WORLD_SIZE', '2')  # checked before joining a group
    with pytest.raises(ValueError, match='batch-size 15'):
        example.setup(args)


def _global_mean_worker(rank, store, out):
    torch.set_num_threads(1)
    example = _example()
    seen, all_reduce = [], dist.all_reduce

    def recording(tensor, *args, **kwargs):
        seen.append(tensor)
        return all_reduce(tensor, *args, **kwargs)

    dist.all_reduce = recording
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank,
                            world_size=2)
    wrong = held = 0
    for i in range(200):
        out_i = example.global_mean(torch.tensor([float(i + rank)]), 2)
        wrong += out_i.item() != i + 0.5
        held += seen[-1]._use_count() > 1  # gloo still holds the buffer
    dist.barrier()
    dist.destroy_process_group()
    with open(f'{out}.{rank}', 'w') as f:
        f.write(f'{wrong} {held}')


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason='torch.distributed with gloo is not built in')
def test_global_mean_returns_after_gloo_lets_go(tmp_path):
    # Without the wait in global_mean, gloo's worker thread still held the
    # all-reduced tensor when all_reduce returned in 20-40% of the calls
    # (2 processes, idle or loaded machine); destroying the process group
    # at such a moment deadlocked (examples/distributed.py hung at exit).
    out = tmp_path / 'result'
    context = torch.multiprocessing.spawn(_global_mean_worker, nprocs=2, args=(
        str(tmp_path / 'store'), str(out)), join=False)
    deadline = time.monotonic() + 180
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for proc in context.processes:
                proc.kill()
            pytest.fail('the two processes did not finish within 180 s')
    for rank in range(2):
        wrong, held = map(int, open(f'{out}.{rank}').read().split())
        assert wrong == 0 and held == 0, (rank, wrong, held)
