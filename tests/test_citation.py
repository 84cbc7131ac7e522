import math
import os.path as osp

import pytest

from pyg_relational.bench.citation import MODELS, PAPER, run_citation


def _require_data(data_root):
    if not osp.isdir(osp.join(data_root, 'planetoid', 'Cora', 'raw')):
        pytest.skip(f'Planetoid raw files not found under {data_root} '
                    f'(set PYG_RELATIONAL_DATA)')


def test_smoke_one_seed_few_epochs(data_root):
    """1 seed, 5 epochs on Cora: rows are well formed, and GCN is already
    far above chance (1/7 = 14.3 %)."""
    _require_data(data_root)
    rows = run_citation(datasets=('Cora', ), models=MODELS, seeds=[0],
                        quick=True, data_root=data_root)
    assert [r['model'] for r in rows] == list(MODELS)
    for r in rows:
        assert r['dataset'] == 'Cora' and r['seeds'] == 1
        assert 0. <= r['test_acc_mean'] <= 100.
        assert r['test_acc_std'] == 0. and len(r['test_accs']) == 1
        assert r['paper'] == PAPER[('Cora', r['model'])]
        assert 1 <= r['epochs'] <= 5 and math.isfinite(r['test_acc_mean'])
    assert rows[0]['test_acc_mean'] > 30.


def test_bad_arguments(data_root):
    with pytest.raises(ValueError, match="Unknown model='GIN'"):
        run_citation(models=('GIN', ), data_root=data_root)
    with pytest.raises(ValueError, match="Unknown dataset='PubMed'"):
        run_citation(datasets=('PubMed', ), data_root=data_root)
    with pytest.raises(ValueError, match="'seeds' is empty"):
        run_citation(seeds=[], data_root=data_root)
