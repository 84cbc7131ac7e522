"""Issue 22: input checks and torch.compile.

* While ``torch.compile`` traces, the value checks of ``_checks`` (index
  ranges, which read tensors on the host with ``.item()``) are skipped, so
  the default path of a layer on a plain ``edge_index`` compiles with
  ``fullgraph=True`` (no graph break). Shapes and dtypes are still checked.
* Eagerly, the value range of a graph tensor is read once and remembered
  per tensor under the one cache validity rule: an edit after that is still
  caught."""
import pytest
import torch

from pyg_relational import chain_graph
from pyg_relational._checks import check_edge_index, check_edge_vector
from pyg_relational.nn import AttentionConv
from pyg_relational.structure import tensor_cache
from tests.conformance_cases import CASES
from tests.helpers import _flatten
from tests.test_conformance import _inputs, _layer, _leaves

# One case per layer family on a plain edge_index (the recurrent layers run
# their scheduling in NumPy under torch.compiler.disable, Luong's windows
# are built from tensor sizes, GraphNetwork checks 'batch' with .item():
# those break the graph in their own modules; see
# benchmarks/results/reliability.md).
FULLGRAPH = [
    'attention-scaled_dot-complete', 'attention-gat-random',
    'attention-gatv2-random', 'attention-relative-complete', 'mha-random',
    'transformer-encoder-causal', 'transformer-decoder-bipartite',
    'nonlocal-embedded_gaussian-random', 'nonlocal-images',
    'lattice-grid2d-same', 'lattice-typed-random', 'fully-connected',
    'bahdanau-bipartite', 'interaction-network', 'mpnn', 'nri-encoder',
    'nri-decoder',
]


@pytest.mark.parametrize('name', FULLGRAPH)
def test_default_path_compiles_in_one_graph(name):
    import torch._dynamo
    torch._dynamo.reset()
    case = next(c for c in CASES if c.name == name)
    g = case.kind.batch(list(case.sizes))
    layer = _layer(case, torch.float32, 'cpu').eval()
    inputs = _inputs(case, g, torch.float32)
    eager = [o for o in _flatten(case.call(layer, g, _leaves(inputs)))
             if o.is_floating_point()]
    compiled = torch.compile(layer, backend='eager', fullgraph=True,
                             dynamic=False)
    out = [o for o in _flatten(case.call(compiled, g, _leaves(inputs)))
           if o.is_floating_point()]
    assert len(out) == len(eager)
    for a, b in zip(out, eager):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_shape_checks_still_run_while_compiling():
    import torch._dynamo
    torch._dynamo.reset()
    layer = AttentionConv(4, 4)
    compiled = torch.compile(layer, backend='eager')
    with pytest.raises(ValueError, match="'edge_index' must have shape"):
        compiled(torch.randn(3, 4), torch.tensor([[0, 1, 2]]))


def test_index_range_is_read_once_and_edits_are_still_caught():
    edge_index = chain_graph(4)
    check_edge_index(edge_index, 4, 4)
    assert tensor_cache(edge_index)['index-range'] == (0, 2, 3)
    check_edge_index(edge_index, 4, 4)  # from the cache
    edge_index.data[1, 0] = 7  # no version bump: the values are compared
    with pytest.raises(IndexError, match='target index 7'):
        check_edge_index(edge_index, 4, 4)
    edge_index[0, 0] = -1  # a version bump
    with pytest.raises(IndexError, match='negative node index'):
        check_edge_index(edge_index, 4, 8)
    edge_type = torch.tensor([0, 1, 2])
    check_edge_vector(edge_type, 3, 'edge_type', 3)
    edge_type.numpy()[2] = 5
    with pytest.raises(IndexError, match=r"range \[0, 5\]"):
        check_edge_vector(edge_type, 3, 'edge_type', 3)
