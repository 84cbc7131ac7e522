"""Self-attention on one complete sequence of 1k-16k tokens (d=64): the
dense path given the CompleteBlocks structure vs the sparse / message paths
given the n^2 edge list (where they fit), forward+backward time and peak
allocated memory, one JSON line per case:
`OMP_NUM_THREADS=1 python benchmarks/scripts/scale_long_attention.py
['{"sizes": [1024, 16384]}']` (keyword arguments of
`pyg_relational.bench.scale.long_attention_rows`)."""
import json
import sys

from pyg_relational.bench.scale import long_attention_rows

kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
for row in long_attention_rows(**kwargs):
    print(json.dumps(row), flush=True)
