"""Property / fuzz tests over the public API: random valid inputs must not
error (and give finite outputs of the right shape), random invalid inputs
must raise ValueError / TypeError / IndexError naming the argument. Each
test is bounded to a few seconds (small ``max_examples``, no deadline)."""
import itertools
import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pyg_relational import (bipartite_graph, chain_graph, complete_graph,
                            grid_graph, nodes_to_sequence, sequence_to_nodes,
                            window_graph)
from pyg_relational.datasets import (ChargedDataset, NBodyDataset,
                                     SpringsDataset)
from pyg_relational.nn import (NRI, AttentionConv, FullyConnectedConv,
                               GraphNetwork, InteractionNetwork, MPNNConv,
                               MultiheadAttentionConv, NonLocalBlock,
                               NRIDecoder, NRIEncoder, NRIRNNDecoder,
                               PositionalEncoding, RecurrentConv,
                               TransformerEncoderLayer)
from pyg_relational.nn.nri import edge_accuracy, nll_gaussian

pytestmark = pytest.mark.usefixtures('one_thread')
FAST = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
ERRORS = (ValueError, TypeError, IndexError)
F, T = 6, 4  # features per node, frames of the NRI layers


def raises_naming(name, call):
    """``call()`` raises a clear error whose message names ``name``."""
    with pytest.raises(ERRORS) as info:
        call()
    assert name in str(info.value), (name, str(info.value))


# --------------------------------------------------------------------------
# Strategies.
# --------------------------------------------------------------------------
sizes_lists = st.lists(st.integers(0, 6), min_size=0, max_size=4)
bad_sizes = st.one_of(
    st.integers(-2**70, -1), st.integers(2**63, 2**70),
    st.floats(allow_nan=True), st.text(max_size=3).filter(
        lambda s: not s.isdigit()), st.booleans(), st.none(),
    st.lists(st.floats(0.5, 3.5), min_size=1, max_size=3),
    st.lists(st.integers(-5, -1), min_size=1, max_size=3))


@st.composite
def graphs(draw, max_nodes=8, max_edges=20):
    """A random graph: duplicates, self-loops and isolated nodes allowed."""
    n = draw(st.integers(1, max_nodes))
    e = draw(st.integers(0, max_edges))
    flat = draw(st.lists(st.integers(0, n - 1), min_size=2 * e,
                         max_size=2 * e))
    return n, torch.tensor(flat, dtype=torch.long).view(2, e)


BAD_GRAPH_KINDS = ('range', 'negative', 'float', 'shape', 'list')


@st.composite
def bad_edge_indices(draw, n, kind):
    """A bad ``edge_index`` for ``n`` nodes: an index out of range, a
    negative index, float dtype, ``[E, 2]`` layout or a Python list."""
    e = draw(st.integers(1, 6))
    ei = torch.tensor(draw(st.lists(st.integers(0, n - 1), min_size=2 * e,
                                    max_size=2 * e))).view(2, e)
    if kind == 'range':
        ei[draw(st.integers(0, 1)), draw(st.integers(0, e - 1))] = \
            n + draw(st.integers(0, 5))
    elif kind == 'negative':
        ei[draw(st.integers(0, 1)), draw(st.integers(0, e - 1))] = \
            -draw(st.integers(1, 5))
    elif kind == 'float':
        ei = ei.float()
    elif kind == 'shape':
        ei = ei.t() if e != 2 else ei.view(1, -1)
    else:
        ei = ei.tolist()
    return ei


# --------------------------------------------------------------------------
# Builders.
# --------------------------------------------------------------------------
@FAST
@given(sizes=sizes_lists, self_loops=st.booleans(), causal=st.booleans(),
       reverse=st.booleans())
def test_builders_on_random_valid_sizes(sizes, self_loops, causal, reverse):
    n = sum(sizes)
    for ei, count in (
            (chain_graph(sizes, reverse), sum(max(s - 1, 0) for s in sizes)),
            (complete_graph(sizes, self_loops, causal),
             sum((s * (s + 1) // 2 if causal else s * s) -
                 (0 if self_loops else s) for s in sizes))):
        assert ei.shape == (2, count) and ei.dtype == torch.long
        if count:
            assert 0 <= int(ei.min()) and int(ei.max()) < n
            assert bool((ei[1, 1:] >= ei[1, :-1]).all())  # sorted by target
    dst = list(reversed(sizes))
    ei = bipartite_graph(sizes, dst)
    assert ei.size(1) == sum(a * b for a, b in zip(sizes, dst))
    centers = torch.rand(sum(dst)) * 8 - 1
    window_graph(sizes, dst, radius=1, centers=centers)


@FAST
@given(bad=bad_sizes)
def test_builders_refuse_bad_sizes(bad):
    for builder in (chain_graph, complete_graph):
        raises_naming('sizes', lambda: builder(bad))
    raises_naming('src_sizes', lambda: bipartite_graph(bad, 1))
    raises_naming('dst_sizes', lambda: window_graph(1, bad, 1))


@FAST
@given(size=st.integers(0, 9), kernel=st.integers(-1, 5),
       stride=st.integers(-1, 3), padding=st.integers(-1, 3),
       dilation=st.integers(-1, 3), batch=st.integers(-1, 2))
def test_grid_graph_valid_or_names_the_argument(size, kernel, stride,
                                                padding, dilation, batch):
    try:
        ei, et, out = grid_graph(size, kernel, stride, padding, dilation,
                                 batch)
    except ValueError as e:
        assert any(name in str(e) for name in (
            'kernel_size', 'stride', 'padding', 'dilation', 'batch_size',
            'size')), str(e)
        return
    assert ei.size(1) == et.numel() and ei.size(1) <= batch * out * kernel
    if ei.size(1):
        assert int(ei[0].max()) < batch * size and int(ei[1].max()) < \
            batch * out


@FAST
@given(centers=st.lists(st.floats(allow_nan=True, allow_infinity=True,
                                  width=32), min_size=3, max_size=3))
def test_window_graph_centers(centers):
    c = torch.tensor(centers)
    if bool(torch.isfinite(c).all()):
        ei = window_graph(5, 3, radius=1, centers=c)
        assert ei.size(1) <= 9
    else:
        raises_naming("'centers'", lambda: window_graph(5, 3, 1, centers=c))


# --------------------------------------------------------------------------
# Sequences.
# --------------------------------------------------------------------------
@FAST
@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       extra=st.integers(0, 2), data=st.data())
def test_sequence_round_trip_and_unsorted_batch(lengths, extra, data):
    t = max(lengths) + extra
    x = torch.randn(len(lengths), t, 2)
    flat, batch, _ = sequence_to_nodes(x, torch.tensor(lengths))
    dense, mask = nodes_to_sequence(flat, batch, len(lengths), t)
    assert torch.equal(dense[mask], x[mask])
    if flat.size(0) >= 2:
        perm = torch.tensor(data.draw(st.permutations(range(flat.size(0)))))
        shuffled = batch[perm]
        if bool((shuffled[1:] < shuffled[:-1]).any()):
            raises_naming("'batch' must be sorted",
                          lambda: nodes_to_sequence(flat[perm], shuffled))
    if max(lengths) > 0:
        raises_naming("'max_length'", lambda: nodes_to_sequence(
            flat, batch, max_length=max(lengths) - 1))


# --------------------------------------------------------------------------
# Layers: random graphs work; bad graphs and features are named.
# --------------------------------------------------------------------------
def _z(edge_index):
    """Edge-type weights for an NRI decoder: one row per edge."""
    num = edge_index.size(-1) if torch.is_tensor(edge_index) else 1
    return torch.rand(num, 2).softmax(-1)


LAYERS = {
    # name: (factory, call(module, x, edge_index), node features shape)
    'AttentionConv': (lambda: AttentionConv(F, 4, heads=2),
                      lambda m, x, ei: m(x, ei), (F, )),
    'MultiheadAttentionConv': (lambda: MultiheadAttentionConv(F, 2),
                               lambda m, x, ei: m(x, ei), (F, )),
    'TransformerEncoderLayer': (
        lambda: TransformerEncoderLayer(F, 2, 8, dropout=0.),
        lambda m, x, ei: m(x, ei), (F, )),
    'NonLocalBlock': (lambda: NonLocalBlock(F).eval(),
                      lambda m, x, ei: m(x, ei), (F, )),
    'MPNNConv': (lambda: MPNNConv(F, F + 2, num_steps=2),
                 lambda m, x, ei: m(x, ei), (F, )),
    'InteractionNetwork': (
        lambda: InteractionNetwork(F, 3, effect_channels=4,
                                   relation_hidden_channels=8,
                                   relation_layers=2,
                                   object_hidden_channels=8),
        lambda m, x, ei: m(x, ei), (F, )),
    'GraphNetwork': (
        lambda: GraphNetwork.from_sizes(F, 0, 0, (5, 4, 0),
                                        hidden_channels=8),
        lambda m, x, ei: m(x, ei)[0], (F, )),
    'NRIEncoder': (lambda: NRIEncoder(T * F, 8),
                   lambda m, x, ei: m(x, ei), (T, F)),
    'NRIDecoder': (lambda: NRIDecoder(F, 2, 8, 8, 8),
                   lambda m, x, ei: m(x, ei, _z(ei), 2), (T, F)),
    'NRIRNNDecoder': (lambda: NRIRNNDecoder(F, 2, 8),
                      lambda m, x, ei: m(x, ei, _z(ei), 2), (T, F)),
}


@pytest.mark.parametrize('name', sorted(LAYERS))
@settings(max_examples=8, deadline=None, derandomize=True)
@given(graph=graphs())
def test_layers_on_random_graphs(name, graph):
    make, call, shape = LAYERS[name]
    n, ei = graph
    module = make()
    out = call(module, torch.randn(n, *shape), ei)
    out = out if torch.is_tensor(out) else out[0]
    assert out.size(0) in (n, ei.size(1)) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize('name', sorted(LAYERS))
@settings(max_examples=6, deadline=None, derandomize=True)
@given(data=st.data())
def test_layers_name_bad_graphs_and_features(name, data):
    make, call, shape = LAYERS[name]
    module = make()
    n = data.draw(st.integers(2, 6))
    x = torch.randn(n, *shape)
    for kind in BAD_GRAPH_KINDS:
        bad = data.draw(bad_edge_indices(n, kind))
        raises_naming('edge_index', lambda: call(module, x, bad))
    ei = complete_graph(n, self_loops=False)
    width = data.draw(st.integers(1, 9).filter(lambda w: w != shape[-1]))
    raises_naming("'x", lambda: call(module, torch.randn(n, *shape[:-1],
                                                         width), ei))


@FAST
@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       cell=st.sampled_from(['rnn', 'gru', 'lstm']))
def test_recurrent_conv_on_random_chains(sizes, cell):
    layer = RecurrentConv(3, 4, cell=cell)
    out, _ = layer(torch.randn(sum(sizes), 3), chain_graph(sizes))
    assert out.shape == (sum(sizes), 4) and bool(torch.isfinite(out).all())


@FAST
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_fully_connected_batch_shapes(shape):
    layer = FullyConnectedConv(F, 3)
    assert layer(torch.randn(*shape, F)).shape == (*shape, 3)
    raises_naming("'x'", lambda: layer(torch.randn(*shape, F + 1)))


BAD_INTS = st.sampled_from([0, -2, 2.5, '4', None, True])  # -1: lazy size
CONSTRUCTORS = [
    # (class, valid keyword arguments, integer arguments to spoil)
    (AttentionConv, dict(in_channels=F, out_channels=4, heads=2),
     ('out_channels', 'heads')),  # in_channels: see the test below
    (MultiheadAttentionConv, dict(embed_dim=F, num_heads=2),
     ('embed_dim', 'num_heads')),
    (NonLocalBlock, dict(in_channels=F), ('in_channels', )),
    (MPNNConv, dict(in_channels=F, out_channels=F, num_steps=2),
     ('in_channels', 'out_channels', 'num_steps')),
    (InteractionNetwork, dict(node_channels=F, out_channels=2),
     ('node_channels', 'out_channels', 'effect_channels')),
    (NRIEncoder, dict(in_channels=F, hidden_channels=4, num_edge_types=2),
     ('in_channels', 'hidden_channels', 'num_edge_types')),
    (NRIDecoder, dict(in_channels=F, num_edge_types=2, msg_hidden=4,
                      msg_out=4, hidden_channels=4),
     ('in_channels', 'num_edge_types', 'msg_hidden', 'msg_out',
      'hidden_channels')),
    (NRIRNNDecoder, dict(in_channels=F, hidden_channels=4),
     ('in_channels', 'hidden_channels', 'num_edge_types')),
    (RecurrentConv, dict(input_size=F, hidden_size=4),
     ('input_size', 'hidden_size', 'num_layers')),
    (FullyConnectedConv, dict(in_features=F, out_features=2),
     ('in_features', 'out_features')),
    (PositionalEncoding, dict(d_model=F), ('d_model', )),
]


@pytest.mark.parametrize('cls,kwargs,names', CONSTRUCTORS,
                         ids=[c[0].__name__ for c in CONSTRUCTORS])
@settings(max_examples=6, deadline=None, derandomize=True)
@given(bad=BAD_INTS, data=st.data())
def test_constructors_name_bad_sizes(cls, kwargs, names, bad, data):
    name = data.draw(st.sampled_from(names))
    raises_naming(name, lambda: cls(**dict(kwargs, **{name: bad})))


def test_attention_conv_float_in_channels():
    raises_naming('in_channels', lambda: AttentionConv(2.5, 4))


@pytest.mark.parametrize('base', [0., -1., float('nan'), float('inf')])
def test_positional_encoding_base(base):
    raises_naming("'base'", lambda: PositionalEncoding(F, base=base))


@FAST
@given(n=st.integers(2, 6), short=st.integers(0, 5))
def test_short_position_is_named(n, short):
    assume(short < n)
    layer = MultiheadAttentionConv(F, 2, relative_clip=2)
    raises_naming("'position'", lambda: layer(
        torch.randn(n, F), complete_graph(n), position=torch.arange(short)))


# --------------------------------------------------------------------------
# NRI: metric, loss, model arguments.
# --------------------------------------------------------------------------
@FAST
@given(K=st.integers(1, 6), E=st.integers(1, 30), data=st.data())
def test_edge_accuracy_is_the_best_relabelling(K, E, data):
    label = torch.tensor(data.draw(st.lists(st.integers(0, K - 1),
                                            min_size=E, max_size=E)))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))
    logits = torch.randn(E, K, generator=gen)
    pred = logits.argmax(-1)
    best = max(int((torch.tensor(p)[pred] == label).sum())
               for p in itertools.permutations(range(K))) / E
    assert edge_accuracy(logits, label) == pytest.approx(best, abs=1e-12)
    assert edge_accuracy(logits, label, permute=False) <= best + 1e-12
    raises_naming("'edge_label'", lambda: edge_accuracy(
        logits, label.view(-1, 1)))
    raises_naming("'edge_label'", lambda: edge_accuracy(logits, label + K))


@FAST
@given(a=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       b=st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_nll_gaussian_shapes(a, b):
    if a == b:
        assert math.isfinite(float(nll_gaussian(torch.zeros(a),
                                                torch.ones(b))))
    else:
        raises_naming("'pred'", lambda: nll_gaussian(torch.zeros(a),
                                                     torch.ones(b)))


reals = st.floats(allow_nan=True, allow_infinity=True, width=32)


@FAST
@given(tau=reals, variance=reals,
       prior=st.one_of(st.none(), st.lists(reals, min_size=1, max_size=3)))
def test_nri_arguments(tau, variance, prior):
    def make():
        return NRI(NRIEncoder(T * F, 4), NRIDecoder(F, 2, 4, 4, 4), tau=tau,
                   variance=variance, prior=prior)
    valid = [math.isfinite(tau) and tau > 0, math.isfinite(variance) and
             variance > 0]
    names = ['tau', 'variance']
    if prior is not None:
        p = torch.tensor(prior)
        valid.append(p.numel() == 2 and bool(torch.isfinite(p).all()) and
                     float(p.min()) >= 0 and float(p.sum()) > 0)
        names.append('prior')
    if all(valid):
        model = make()
        out = model.loss(torch.randn(3, T, F),
                         complete_graph(3, self_loops=False))
        assert math.isfinite(float(out['loss']))
    else:
        raises_naming(names[valid.index(False)], make)


# --------------------------------------------------------------------------
# Datasets.
# --------------------------------------------------------------------------
@settings(max_examples=8, deadline=None, derandomize=True)
@given(cls=st.sampled_from([SpringsDataset, ChargedDataset]),
       samples=st.integers(0, 3), particles=st.integers(1, 4),
       frames=st.integers(2, 4))
def test_particle_datasets_random_configs(cls, samples, particles, frames):
    ds = cls(None, samples, particles, num_steps=10 * frames,
             sample_every=10)
    assert len(ds) == samples and ds.num_frames == frames - 1
    for i in range(samples):
        d = ds[i]
        assert d.x.shape == (particles, frames - 1, 4)
        assert d.edge_index.size(1) == d.edge_label.numel() == \
            particles * (particles - 1)


@FAST
@given(name=st.sampled_from(['num_samples', 'num_particles', 'num_steps',
                             'sample_every']),
       bad=st.sampled_from([-1, 0, 2.5, 'x', None]))
def test_particle_datasets_name_bad_arguments(name, bad):
    assume(not (name == 'num_samples' and bad == 0))  # empty is valid
    kwargs = dict(num_samples=2, num_particles=3, num_steps=300,
                  sample_every=100)
    raises_naming(name, lambda: SpringsDataset(None, **dict(kwargs,
                                                            **{name: bad})))
    # 300 steps are no multiple of 7: both arguments are named
    raises_naming("'num_steps' (300) must be a multiple of 'sample_every' "
                  "(7)", lambda: SpringsDataset(None, 2, 3, 300, 7))


@settings(max_examples=5, deadline=None, derandomize=True)
@given(bodies=st.integers(1, 4), steps=st.integers(1, 4))
def test_nbody_dataset_random_configs(bodies, steps):
    ds = NBodyDataset(None, 2, num_bodies=bodies, num_steps=steps)
    assert ds[1].pos.shape == (bodies, steps, 2)
    assert ds[1].edge_index.size(1) == bodies * (bodies - 1)
