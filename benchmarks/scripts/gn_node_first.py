"""GraphNetwork.from_sizes with and without node_first=True on the edge
block (10k nodes, 80k random edges, 64 channels), forward + backward, 1
thread, median of 5: `python benchmarks/scripts/gn_node_first.py`."""
import copy, torch
torch.set_num_threads(1)
from pyg_relational.nn import GraphNetwork
from pyg_relational.bench.timing import measure
g = torch.Generator().manual_seed(0)
N, E, C = 10000, 80000, 64
edge_index = torch.randint(0, N, (2, E), generator=g)
x, e, u = torch.randn(N, C), torch.randn(E, C), torch.randn(1, C)
gn = GraphNetwork.from_sizes(C, C, C, C, hidden_channels=C)
fast = copy.deepcopy(gn); fast.edge_block.node_first = True
def step(m):
    def run():
        m.zero_grad(); sum(t.sum() for t in m(x, edge_index, e, u)).backward()
    return run
a = measure(step(gn), 5, 1, memory=False).median_s
b = measure(step(fast), 5, 1, memory=False).median_s
print(f'GraphNetwork 10k nodes / 80k edges / 64 channels, fwd+bwd: node_first=False {a*1e3:.0f} ms, True {b*1e3:.0f} ms, ratio {a/b:.2f}x')
