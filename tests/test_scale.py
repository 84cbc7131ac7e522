"""The scale suite's pieces: the synthetic SBM graph, NeighborLoader runs
(with and without the sampling extras), kNN candidate graphs for NRI."""
import json
import subprocess
import sys

import pytest
import torch

from pyg_relational.bench.scale import (_nri_batch, knn_candidates,
                                        long_attention_rows,
                                        nri_step_rows, run_sampling_point,
                                        sampler_missing, sampling_rows,
                                        sbm_graph)
from pyg_relational.datasets import SpringsDataset

pytestmark = pytest.mark.usefixtures('one_thread')


def test_sbm_graph_is_deterministic_simple_and_homophilous():
    a, b = sbm_graph(4000, seed=3), sbm_graph(4000, seed=3)
    for key in ('x', 'y', 'edge_index', 'train_mask'):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a.edge_index, sbm_graph(4000, seed=4).edge_index)
    src, dst = a.edge_index
    assert (src != dst).all()  # no self-loops
    assert (dst[1:] >= dst[:-1]).all()  # sorted by target
    key = dst * a.num_nodes + src
    assert key.unique().numel() == key.numel()  # no repeated pairs
    assert 9.5 * 4000 < src.numel() <= 10 * 4000
    # same-class share: p_in + (1 - p_in) / C = 0.7 + 0.3 / 8
    same = (a.y[src] == a.y[dst]).float().mean().item()
    assert abs(same - (0.7 + 0.3 / 8)) < 0.02
    assert (a.train_mask ^ a.test_mask).all()


def test_sbm_graph_refuses_bad_sizes():
    with pytest.raises(ValueError, match='num_nodes >= 2'):
        sbm_graph(1)


def test_sampling_point_reports_memory_time_accuracy():
    reason = sampler_missing()
    if reason is not None:  # no sampler installed (the `full` extra):
        # the suite says why instead of failing, nothing to time here
        assert sampling_rows(quick=True) == [dict(experiment='sampling',
                                                  note=reason)]
        return
    row = run_sampling_point(3000, batch_size=64, num_batches=3,
                             eval_nodes=128, hidden_channels=8)
    assert row['num_nodes'] == 3000 and row['batches'] == 3
    assert 0 < row['sampled_nodes'] <= 3000
    assert row['test_nodes'] == 128 and 0 <= row['test_acc'] <= 1
    assert row['epoch_s'] > 0 and row['train_peak_bytes'] > 0
    if row['peak_reset']:
        assert row['train_extra_bytes'] is not None


def test_without_sampling_extras_the_suite_says_why():
    """With pyg-lib, torch-sparse and torch-scatter hidden, the package and
    the sampling part of the suite still import and run: one row with the
    reason instead of an error."""
    code = (
        "import sys, json\n"
        "for name in ('pyg_lib', 'torch_sparse', 'torch_scatter'):\n"
        "    sys.modules[name] = None\n"
        "import pyg_relational\n"
        "from pyg_relational.bench.scale import sampling_rows\n"
        "print(json.dumps(sampling_rows(quick=True)))\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(rows) == 1 and 'pyg-lib or torch-sparse' in rows[0]['note']


def test_knn_candidates_match_brute_force():
    pos = torch.randn(2, 30, 2, dtype=torch.float64)
    edge_index = knn_candidates(pos, k=5)
    assert edge_index.shape == (2, 2 * 30 * 5)
    src, dst = edge_index
    assert torch.equal(dst, torch.arange(60).repeat_interleave(5))
    for i in (0, 17, 31, 59):
        b, local = divmod(i, 30)
        d = (pos[b] - pos[b, local]).norm(dim=1)
        d[local] = float('inf')
        expected = set((d.argsort()[:5] + b * 30).tolist())
        assert set(src[dst == i].tolist()) == expected
    with pytest.raises(ValueError, match='k=30'):
        knn_candidates(pos, k=30)
    with pytest.raises(ValueError, match="'pos'"):
        knn_candidates(pos[0], k=2)


def test_candidate_labels_are_the_springs():
    ds = SpringsDataset(None, 3, num_particles=7, num_steps=300)
    index = torch.tensor([2, 0])
    x, edge_index, label = _nri_batch(ds, index, None)
    batch = ds.batch(index)  # the dataset's own complete graph and labels
    assert torch.equal(edge_index, batch.edge_index)
    assert torch.equal(label, batch.edge_label)
    x, knn, label = _nri_batch(ds, index, 3)
    lookup = dict(zip(map(tuple, batch.edge_index.t().tolist()),
                      batch.edge_label.tolist()))
    assert label.tolist() == [lookup[tuple(e)] for e in knn.t().tolist()]
    assert torch.equal(x, batch.x)


def test_nri_step_rows_run_small_and_skip_what_does_not_fit():
    rows = nri_step_rows(12, hidden_channels=8, num_frames=4, k=3,
                         pred_steps=2, repeat=1)
    assert [(r['step'], r['candidates']) for r in rows] == [
        ('nri', 'knn-3'), ('nri', 'complete'), ('encoder', 'knn-3'),
        ('encoder', 'complete'), ('encoder', 'dense rel_rec/rel_send')]
    assert all(r['step_s'] > 0 and r['peak_bytes'] > 0 for r in rows)
    assert rows[0]['num_edges'] == 36 and rows[1]['num_edges'] == 132
    skipped = nri_step_rows(12, hidden_channels=8, num_frames=4, k=3,
                            budget_bytes=1)
    assert all('not run' in r['note'] for r in skipped)


def test_long_attention_rows_dense_takes_the_structure():
    rows = long_attention_rows((64, 128), channels=8,
                               paths=('dense', 'sparse'))
    assert [(r['tokens'], r['path'], r['ran']) for r in rows] == [
        (64, 'dense', 'dense'), (64, 'sparse', 'sparse'),
        (128, 'dense', 'dense'), (128, 'sparse', 'sparse')]
    assert rows[0]['graph_bytes'] == 0 and rows[1]['graph_bytes'] > 0
    assert all(r['peak_bytes'] > 0 for r in rows)
    skipped = long_attention_rows((64, ), channels=8, paths=('message', ),
                                  budget_bytes=1)
    assert 'not run' in skipped[0]['note']


def test_nri_train_row_uses_local_springs():
    # the true graph is local (springs to the 2 nearest at t = 0): about a
    # quarter of the kNN-8 candidates are springs, none are missed
    from pyg_relational.bench.scale import nri_train_row
    row = nri_train_row(20, 8, 4, epochs=1, batch_size=4, k=8,
                        hidden_channels=8, pred_steps=2)
    assert row['candidates'] == 'knn-8' and row['epochs'] == 1
    assert 0.15 < row['spring_share'] < 0.45
    assert row['majority_acc'] == max(row['spring_share'],
                                      1 - row['spring_share'])
    assert row['missed_share'] == 0.
    assert 0 <= row['test_edge_acc'] <= 1
