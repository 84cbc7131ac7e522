"""NeighborLoader node classification at growing graph sizes, one JSON line
per size (each size in a fresh process; memory is the process's RSS):
`OMP_NUM_THREADS=1 python benchmarks/scripts/scale_sampling.py
['{"sizes": [100000, 1000000], "models": ["attention"]}']` (keyword
arguments of `pyg_relational.bench.scale.sampling_rows`, quick=False)."""
import json
import sys

from pyg_relational.bench.scale import sampling_rows

kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
for row in sampling_rows(quick=False, progress=None, **kwargs):
    print(json.dumps(row), flush=True)
