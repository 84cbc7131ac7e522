"""One NRI encoder training step, sparse vs dense one-hot, one JSON line per
size: `python benchmarks/scripts/nri_speed.py ['{"hidden_channels": 256,
"batch_size": 4}']` (keyword arguments of `speed_cases`, quick=False)."""
import json
import sys

import torch

from pyg_relational.bench.nri import speed_cases

torch.set_num_threads(1)
kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
for r in speed_cases(quick=False, **kwargs):
    e = r.extra
    print(json.dumps(dict(
        n=e['num_particles'], edges=r.num_edges,
        sparse_ms=round(r.graph_s * 1e3, 1),
        dense_ms=round(r.baseline_s * 1e3, 1),
        no_split_ms=round(e['sparse_no_split_s'] * 1e3, 1),
        speedup=round(e['speedup'], 2),
        no_split_speedup=round(r.baseline_s / e['sparse_no_split_s'], 2),
        peak_sparse_mib=round(r.graph_peak_bytes / 2**20, 1),
        peak_dense_mib=round(r.baseline_peak_bytes / 2**20, 1))), flush=True)
