"""How far can a gather/scatter NRIEncoder get below the dense one-hot one?

Profiles one training step (forward + backward, 1 thread, mean of 5) of each
at 100 particles and sums, in the sparse step, the work the dense step does
too: ELU and batch norm on every edge row, and the matrix products (the
node-side ones are a 1/(n-1) share). ``dense / that sum`` bounds the speed-up
of any sparse formulation that keeps this model.
Run: `python benchmarks/scripts/nri_speed_bound.py 2>/dev/null`.
"""
import torch
from torch.profiler import profile

from pyg_relational.bench.nri import DenseNRIEncoder
from pyg_relational.graphs import complete_graph
from pyg_relational.nn import NRIEncoder

ACT_NORM = ('aten::elu_', 'aten::elu', 'aten::elu_backward',
            'aten::native_batch_norm', 'aten::native_batch_norm_backward')
MATMUL = ('aten::mm', 'aten::addmm', 'aten::bmm')
STEPS, N = 5, 100

torch.set_num_threads(1)
for hidden, batch_size in ((64, 8), (256, 4)):
    x = torch.randn(batch_size, N, 49, 4)
    enc = NRIEncoder(49 * 4, hidden)
    dense = DenseNRIEncoder(enc, N)
    edge_index = complete_graph([N] * batch_size, self_loops=False)
    x_nodes = x.reshape(batch_size * N, 49, 4)
    ms = {}
    for name, fn in (('sparse', lambda: enc(x_nodes, edge_index)),
                     ('dense', lambda: dense(x))):
        def step():
            enc.zero_grad()
            p = fn().softmax(-1)
            (p * p.log()).sum().backward()
        step()
        with profile() as prof:
            for _ in range(STEPS):
                step()
        events = prof.key_averages()

        def total(keys=None):  # ms per step
            return sum(e.self_cpu_time_total for e in events
                       if keys is None or e.key in keys) / (1e3 * STEPS)
        ms[name] = (total(), total(ACT_NORM), total(MATMUL))
    (sparse, act_norm, matmul), (dense_ms, _, _) = ms['sparse'], ms['dense']
    print(f'hidden {hidden}, batch {batch_size}, {N} particles: sparse '
          f'{sparse:.0f} ms/step (ELU+BN {act_norm:.0f}, matmuls {matmul:.0f}, '
          f'rest {sparse - act_norm - matmul:.0f}); dense {dense_ms:.0f} '
          f'ms/step; dense/sparse {dense_ms / sparse:.2f}x; '
          f'dense/(ELU+BN+matmuls of sparse) {dense_ms / (act_norm + matmul):.1f}x',
          flush=True)
