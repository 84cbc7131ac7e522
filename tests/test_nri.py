import copy
import itertools
import time

import pytest
import torch
import torch.nn.functional as F

from pyg_relational.bench.nri import (DenseNRIEncoder, build_model,
                                      multi_step_mse, run_nri, speed_cases,
                                      train_epoch)
from pyg_relational.bench.results import SpeedResult
from pyg_relational.datasets import SpringsDataset
from pyg_relational.graphs import complete_graph
from pyg_relational.nn import NRI, NRIDecoder, NRIEncoder, NRIRNNDecoder
from pyg_relational.nn.nri import edge_accuracy, kl_categorical, nll_gaussian
from tests.helpers import (assert_close, assert_edge_order_invariant,
                           assert_twin, dtypes, empty_graph)

T, FEAT, H = 6, 4, 8  # frames, features per frame, hidden size


pytestmark = pytest.mark.usefixtures('one_thread')


def make(kind, dtype=torch.float64, skip_first=False, K=2):
    torch.manual_seed(0)
    if kind == 'encoder':
        m = NRIEncoder(T * FEAT, H, K)
    elif kind == 'mlp':
        m = NRIDecoder(FEAT, K, H, H, H, skip_first=skip_first)
    else:
        m = NRIRNNDecoder(FEAT, K, H, skip_first=skip_first)
    return m.to(dtype)


def run(module, x, edge_index, z=None, pred_steps=1):
    if isinstance(module, NRIEncoder):
        return module(x, edge_index)
    return module(x, edge_index, z, pred_steps)


# --------------------------------------------------------------------------
# Dense references: the reference code's rel_rec / rel_send formulation.
# --------------------------------------------------------------------------
def rel_matrices(n, dtype):
    ei = complete_graph(n, self_loops=False)
    eye = torch.eye(n, dtype=dtype)
    return eye[ei[1]], eye[ei[0]]  # rel_rec, rel_send [E, n]


def dense_messages(dec, h, rel_rec, rel_send, rel_type, act, norm):
    """sum_k z_k f_e^k([h_i, h_j]) with one loop per type, as in the
    reference; weights from the sparse decoder's typed parameters."""
    recv, send = rel_rec @ h, rel_send @ h  # [..., E, F]
    out = 0
    start = 1 if dec.skip_first else 0
    for k in range(start, dec.num_edge_types):
        m = act(recv @ dec.weight_dst[k] + send @ dec.weight_src[k] +
                dec.bias1[k])
        m = act(m @ dec.weight2[k] + dec.bias2[k])
        out = out + m * rel_type[..., k:k + 1]
    if norm:
        out = out / (dec.num_edge_types - start)
    return out


def dense_mlp_decoder(dec, x, z, pred_steps):
    B, n, T_, F_ = x.shape  # x [B, n, T, F], z [B, E, K]
    rel_rec, rel_send = rel_matrices(n, x.dtype)
    inputs = x.transpose(1, 2)  # [B, T, n, F]
    last = inputs[:, 0::pred_steps]  # [B, S, n, F]
    rel_type = z.unsqueeze(1)  # [B, 1, E, K]
    preds = []
    for _ in range(pred_steps):
        msgs = dense_messages(dec, last, rel_rec, rel_send, rel_type, F.relu,
                              False)
        agg = rel_rec.t() @ msgs  # [B, S, n, F_msg]
        last = last + dec.edge_to_node.node_model(torch.cat([agg, last], -1))
        preds.append(last)
    out = torch.zeros(B, last.size(1) * pred_steps, n, F_, dtype=x.dtype)
    for i, p in enumerate(preds):
        out[:, i::pred_steps] = p
    return out[:, :T_ - 1].transpose(1, 2)  # [B, n, T-1, F]


def dense_rnn_decoder(dec, x, z, pred_steps):
    B, n, T_, F_ = x.shape
    rel_rec, rel_send = rel_matrices(n, x.dtype)
    inputs = x.transpose(1, 2)
    hidden = x.new_zeros(B, n, dec.hidden_channels)
    preds = []
    for t in range(T_ - 1):
        ins = inputs[:, t] if t % pred_steps == 0 else preds[-1]
        msgs = dense_messages(dec, hidden, rel_rec, rel_send, z, torch.tanh,
                              True)
        agg = rel_rec.t() @ msgs / (n - 1)  # mean over the n-1 senders
        wi, wh = dec.input_gates, dec.hidden_gates.weight
        Hd = dec.hidden_channels
        r = torch.sigmoid(ins @ wi.weight[:Hd].t() + wi.bias[:Hd] +
                          agg @ wh[:Hd].t())
        i = torch.sigmoid(ins @ wi.weight[Hd:2 * Hd].t() +
                          wi.bias[Hd:2 * Hd] + agg @ wh[Hd:2 * Hd].t())
        c = torch.tanh(ins @ wi.weight[2 * Hd:].t() + wi.bias[2 * Hd:] +
                       r * (agg @ wh[2 * Hd:].t()))
        hidden = (1 - i) * c + i * hidden
        preds.append(ins + dec.out(hidden))
    return torch.stack(preds, 2)  # [B, n, T-1, F]


def _param_pairs(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return [(lambda k=k: pa[k].grad, lambda k=k: pb[k].grad) for k in pa]


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('training', [True, False])
def test_encoder_equals_dense_reference(dtype, training):
    B, n = 3, 4
    enc = make('encoder', dtype).train(training)
    dense = DenseNRIEncoder(copy.deepcopy(enc), n).to(dtype)
    ei = complete_graph([n] * B, self_loops=False)
    x = torch.randn(B, n, T, FEAT, dtype=dtype)
    assert_twin(lambda x: enc(x.reshape(B * n, T, FEAT), ei).view(B, -1, 2),
                lambda x: dense(x), [x],
                params=_param_pairs(enc, dense.sparse))


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('kind,pred_steps,skip_first',
                         [('mlp', 1, False), ('mlp', 2, True),
                          ('mlp', 4, False), ('rnn', 1, False),
                          ('rnn', 3, True)])
def test_decoder_equals_dense_reference(dtype, kind, pred_steps,
                                        skip_first):
    B, n = 2, 4
    dec = make(kind, dtype, skip_first)
    ref = copy.deepcopy(dec)
    ei = complete_graph([n] * B, self_loops=False)
    x = torch.randn(B, n, T, FEAT, dtype=dtype)
    z = torch.rand(B, n * (n - 1), 2, dtype=dtype).softmax(-1)
    dense_fn = dense_mlp_decoder if kind == 'mlp' else dense_rnn_decoder
    assert_twin(
        lambda x, z: dec(x.reshape(B * n, T, FEAT), ei, z.reshape(-1, 2),
                         pred_steps).view(B, n, T - 1, FEAT),
        lambda x, z: dense_fn(ref, x, z, pred_steps), [x, z],
        params=_param_pairs(dec, ref))


@pytest.mark.parametrize('kind', ['encoder', 'mlp', 'rnn'])
def test_edge_order_invariant(kind):
    m = make(kind).eval()
    n = 5
    x = torch.randn(n, T, FEAT, dtype=torch.float64)
    ei = complete_graph(n, self_loops=False)[:, :-3]  # not complete
    z = torch.rand(ei.size(1), 2, dtype=torch.float64)

    def fn(edge_index, z):
        out = run(m, x, edge_index, z, pred_steps=2)
        if kind == 'encoder':  # per-edge output: put it back in place
            dense = out.new_zeros(n, n, 2)
            dense[edge_index[0], edge_index[1]] = out
            return dense
        return out

    assert_edge_order_invariant(fn, ei, z)


@pytest.mark.parametrize('kind', ['encoder', 'mlp', 'rnn'])
def test_batch_of_mixed_sizes_equals_separate_graphs(kind):
    m = make(kind).eval()  # eval: batch norm uses running statistics
    sizes = [3, 5, 1]
    x = torch.randn(sum(sizes), T, FEAT, dtype=torch.float64)
    ei = complete_graph(sizes, self_loops=False)
    z = torch.rand(ei.size(1), 2, dtype=torch.float64)
    out = run(m, x, ei, z, 2)
    parts, start, e0 = [], 0, 0
    for n in sizes:
        eis = complete_graph(n, self_loops=False)
        ne = eis.size(1)
        parts.append(run(m, x[start:start + n], eis, z[e0:e0 + ne], 2))
        start, e0 = start + n, e0 + ne
    assert_close(out, torch.cat(parts))


@pytest.mark.parametrize('kind', ['encoder', 'mlp', 'rnn'])
@pytest.mark.parametrize('dtype', dtypes())
def test_empty_graph_and_isolated_nodes(kind, dtype):
    m = make(kind, dtype)
    x0 = torch.randn(0, T, FEAT, dtype=dtype)
    z0 = torch.rand(0, 2, dtype=dtype)
    out = run(m, x0, empty_graph(), z0)
    assert out.shape == ((0, 2) if kind == 'encoder' else (0, T - 1, FEAT))
    # nodes 1..3 receive nothing; one edge 1 -> 0
    x = torch.randn(4, T, FEAT, dtype=dtype)
    ei = torch.tensor([[1], [0]])
    out = run(m, x, ei, torch.rand(1, 2, dtype=dtype))
    assert torch.isfinite(out).all() and out.dtype == dtype
    if kind == 'mlp':  # isolated nodes: the update of a zero message
        m2 = make(kind, dtype)
        alone = run(m2, x[1:], empty_graph(), z0)
        assert_close(out[1:], alone)


def test_isolated_node_gets_zero_aggregate():
    dec = make('mlp')
    x = torch.randn(3, T, FEAT, dtype=torch.float64)
    h = x[:, 0]
    zero = dec.edge_to_node.node_model(torch.cat([h.new_zeros(3, H), h], -1))
    out = dec(x, empty_graph(), torch.zeros(0, 2, dtype=torch.float64))
    assert_close(out[:, 0], h + zero)


def test_gumbel_sampling_and_nri_forward():
    model = NRI(NRIEncoder(T * FEAT, H), NRIDecoder(FEAT, 2, H, H, H),
                tau=0.5, hard=True)
    ei = complete_graph([3, 4], self_loops=False)
    x = torch.randn(7, T, FEAT)
    out = model(x, ei, pred_steps=2)
    assert out.logits.shape == out.z.shape == (ei.size(1), 2)
    assert torch.equal(out.z.sum(-1), torch.ones(ei.size(1)))
    assert set(out.z.unique().tolist()) <= {0., 1.}  # hard: one-hot
    assert_close(out.prob, out.logits.softmax(-1))
    out.pred.sum().backward()  # straight-through: gradient reaches encoder
    assert model.encoder.lin_out.weight.grad.abs().sum() > 0
    soft = model.sample(out.logits.detach(), hard=False)
    assert ((soft > 0) & (soft < 1)).all()
    model.eval()  # evaluation samples hard types
    z = model(x, ei).z
    assert set(z.unique().tolist()) <= {0., 1.}
    # a long test trajectory: encode the start, decode the end
    long = torch.randn(7, T + 3, FEAT)
    out = model(long[:, :T], ei, 1, x_decoder=long[:, -T:])
    assert out.pred.shape == (7, T - 1, FEAT)


def test_losses_and_metrics():
    prob = torch.full((6, 2), 0.5)
    assert float(kl_categorical(prob, 3)) == pytest.approx(0., abs=1e-6)
    peaked = torch.tensor([[1., 0.]] * 6)
    assert float(kl_categorical(peaked, 3)) == pytest.approx(
        6 * torch.log(torch.tensor(2.)).item() / 3, rel=1e-5)
    prior = torch.tensor([0.9, 0.1])
    assert float(kl_categorical(prior.repeat(6, 1), 3, prior)) == \
        pytest.approx(0., abs=1e-6)
    pred, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    assert float(nll_gaussian(pred, target, 0.5)) == pytest.approx(12.)
    logits = torch.tensor([[2., 0.], [0., 2.], [2., 0.], [0., 3.]])
    label = torch.tensor([1, 0, 1, 1])  # types swapped, one mistake
    assert edge_accuracy(logits, label, permute=False) == 0.25
    assert edge_accuracy(logits, label) == 0.75
    # multi-step MSE: horizon k at positions t % pred_steps == k - 1
    err = torch.arange(6.).view(1, 6, 1)
    assert torch.equal(multi_step_mse(err.sqrt(), torch.zeros(1, 6, 1), 3),
                       torch.tensor([1.5, 2.5, 3.5]))


def test_prior_is_used():
    enc, dec = NRIEncoder(T * FEAT, H), NRIDecoder(FEAT, 2, H, H, H)
    model = NRI(enc, dec, prior=torch.tensor([0.9, 0.1]))
    ei = complete_graph(3, self_loops=False)
    x = torch.randn(3, T, FEAT)
    out = model.loss(x, ei)
    expected = kl_categorical(out['logits'].softmax(-1), 3,
                              torch.tensor([0.9, 0.1]))
    assert_close(out['kl'], expected)


def test_reprs():
    assert repr(NRIEncoder(196)) == 'NRIEncoder(196, 256, num_edge_types=2)'
    assert repr(NRIDecoder(4, skip_first=True)) == \
        'NRIDecoder(4, num_edge_types=2, skip_first=True)'
    assert repr(NRIRNNDecoder(4, 3, 16)) == \
        'NRIRNNDecoder(4, 16, num_edge_types=3, skip_first=False)'
    assert repr(NRI(NRIEncoder(8, 4), NRIDecoder(4, 2, 4, 4, 4))).startswith(
        'NRI(NRIEncoder(8, 4, num_edge_types=2), NRIDecoder(4')


def test_bad_input():
    enc, dec = make('encoder'), make('mlp')
    x = torch.randn(3, T, FEAT, dtype=torch.float64)
    ei = complete_graph(3, self_loops=False)
    z = torch.rand(6, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"'x \(flattened"):
        enc(torch.randn(3, T + 1, FEAT, dtype=torch.float64), ei)
    with pytest.raises(ValueError, match=r"'x' must be \[N, T, F\]"):
        dec(x[:, 0], ei, z)
    with pytest.raises(ValueError, match=r"'z' must have shape \[E=6"):
        dec(x, ei, z[:4])
    with pytest.raises(ValueError, match="'pred_steps'"):
        dec(x, ei, z, pred_steps=T + 1)
    with pytest.raises(IndexError, match='edge_index'):
        dec(x, ei + 1, z)
    with pytest.raises(ValueError, match='num_edge_types'):
        NRI(NRIEncoder(8, 4, 3), NRIDecoder(4, 2, 4, 4, 4))
    with pytest.raises(ValueError, match='skip_first'):
        NRIDecoder(4, 1, skip_first=True)
    with pytest.raises(ValueError, match="'tau'"):
        NRI(NRIEncoder(8, 4), NRIDecoder(4, 2, 4, 4, 4), tau=0)
    with pytest.raises(ValueError, match="'prior'"):
        NRI(NRIEncoder(8, 4), NRIDecoder(4, 2, 4, 4, 4), prior=[1., 0, 0])
    with pytest.raises(ValueError, match='decoder'):
        build_model(decoder='lstm')


def _brute_force_accuracy(logits, label):
    pred = logits.argmax(-1)
    K = logits.size(1)
    return max(int((torch.tensor(p)[pred] == label).sum())
               for p in itertools.permutations(range(K))) / label.numel()


@pytest.mark.parametrize('K', [1, 2, 3, 5])
def test_edge_accuracy_assignment_equals_brute_force(K):
    gen = torch.Generator().manual_seed(K)
    for _ in range(20):
        E = int(torch.randint(1, 40, (1, ), generator=gen))
        logits = torch.randn(E, K, generator=gen)
        label = torch.randint(0, K, (E, ), generator=gen)
        assert edge_accuracy(logits, label) == pytest.approx(
            _brute_force_accuracy(logits, label), abs=1e-12)


def test_edge_accuracy_many_types_is_instant():
    # K! relabellings: K=10 never returned before; the assignment is O(K^3)
    label = torch.arange(12).repeat(50)
    logits = F.one_hot((label * 5 + 7) % 12, 12).float()  # a relabelling
    start = time.perf_counter()
    assert edge_accuracy(logits, label) == 1.0
    assert time.perf_counter() - start < 1.0


def test_loss_and_metric_shapes_must_match():
    logits = torch.tensor([[2., 0.], [0., 2.], [2., 0.]])
    label = torch.tensor([0, 1, 0])
    assert edge_accuracy(logits, label) == 1.0
    with pytest.raises(ValueError, match="'edge_label' must be 1-D"):
        edge_accuracy(logits, label.view(-1, 1))  # was 0.56 by broadcasting
    with pytest.raises(ValueError, match="'edge_label' has 2 entries"):
        edge_accuracy(logits, label[:2])
    with pytest.raises(IndexError, match="'edge_label' values"):
        edge_accuracy(logits, label + 1)
    with pytest.raises(ValueError, match="'logits' must be"):
        edge_accuracy(logits[0], label)
    with pytest.raises(ValueError, match=r"'pred' \(6, 3, 4\) and 'target'"):
        nll_gaussian(torch.zeros(6, 3, 4), torch.zeros(6, 3, 1))
    with pytest.raises(ValueError, match="'variance'"):
        nll_gaussian(torch.zeros(2), torch.zeros(2), variance=0.)


@pytest.mark.parametrize('kwargs,match', [
    (dict(prior=[0., 0.]), "'prior' must be probabilities"),
    (dict(prior=[1., float('nan')]), "'prior' must be probabilities"),
    (dict(prior=[-1., 2.]), "'prior' must be probabilities"),
    (dict(tau=float('nan')), "'tau' must be a finite number > 0"),
    (dict(tau=float('inf')), "'tau' must be a finite number > 0"),
    (dict(variance=0), "'variance' must be a finite number > 0"),
    (dict(variance=float('nan')), "'variance' must be a finite number"),
])
def test_nri_arguments_validated_at_construction(kwargs, match):
    # each of these gave a nan / inf loss at the first step before
    with pytest.raises(ValueError, match=match):
        NRI(NRIEncoder(8, 4), NRIDecoder(4, 2, 4, 4, 4), **kwargs)
    with pytest.raises(TypeError, match="'tau' must be a number"):
        NRI(NRIEncoder(8, 4), NRIDecoder(4, 2, 4, 4, 4), tau='hot')


@pytest.mark.parametrize('decoder', ['mlp', 'rnn'])
def test_training_smoke_loss_falls(decoder):
    torch.manual_seed(0)
    data = SpringsDataset(None, 16, num_particles=3, num_steps=700,
                          sample_every=100)
    model = build_model(data.num_frames, 4, 16, 16, decoder,
                        skip_first=True)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    index = torch.arange(16)
    b = data.batch(index)
    with torch.no_grad():
        model.eval()
        before = float(model.loss(b.x, b.edge_index, 2)['nll'])
    for _ in range(5):
        train_epoch(model, opt, data, batch_size=8, pred_steps=2)
    with torch.no_grad():
        model.eval()
        after = float(model.loss(b.x, b.edge_index, 2)['nll'])
    assert after < 0.5 * before


def test_bench_quick():
    results = speed_cases(quick=True)
    assert [r.extra['num_particles'] for r in results] == [5, 20]
    assert all(isinstance(r, SpeedResult) and r.graph_s > 0
               and r.baseline_s > 0 for r in results)
    assert results[1].num_edges == 4 * 20 * 19
    rows = run_nri(quick=True)
    assert rows[0]['system'] == 'springs' and rows[0]['num_train'] == 64
    assert 0 <= rows[0]['test_edge_accuracy'] <= 1
    assert {'test_mse_1', 'epochs', 'minutes'} <= set(rows[0])


def test_kl_rejects_what_is_not_probabilities():
    good = torch.randn(5, 3).softmax(-1)
    kl_categorical(good, 5)  # fine, also in low precision
    kl_categorical(good.bfloat16(), 5)
    kl_categorical(good[:0], 5)  # no edges
    for bad in (torch.randn(5, 3),  # logits
                good * 2,  # unnormalised weights
                torch.tensor([[1.5, -0.5]]),  # sums to 1, outside [0, 1]
                torch.tensor([[float('nan'), 0.5]])):
        with pytest.raises(ValueError, match="'prob' must be probabilities"):
            kl_categorical(bad, 5)
    with pytest.raises(ValueError, match="'prob' must be a floating"):
        kl_categorical(torch.ones(5, 2, dtype=torch.long), 5)


@pytest.mark.parametrize('kind', ['mlp', 'rnn'])
def test_decoder_takes_z_of_any_real_dtype(kind):
    dec = make(kind, torch.float32)
    ei = complete_graph(3, self_loops=False)
    x = torch.randn(3, T, FEAT)
    z = torch.rand(6, 2, dtype=torch.float64)
    out = dec(x, ei, z, 2)  # float64 z: was "mat1 and mat2 must have ..."
    assert out.dtype == torch.float32
    assert torch.equal(out, dec(x, ei, z.float(), 2))
    one_hot = F.one_hot(torch.tensor([0, 1, 1, 0, 1, 0]), 2)  # long
    assert torch.equal(dec(x, ei, one_hot, 2), dec(x, ei, one_hot.float(), 2))


@pytest.mark.parametrize('kind', ['encoder', 'mlp', 'rnn'])
def test_input_dtype_mismatch_is_a_clear_error(kind):
    module = make(kind, torch.float32)
    ei = complete_graph(3, self_loops=False)
    x = torch.randn(3, T, FEAT, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"'x' has dtype torch.float64 but "
                       r".*parameters are torch.float32.*x.float\(\)"):
        run(module, x, ei, torch.rand(6, 2), 1)
    with pytest.raises(ValueError, match="'x' must be a floating tensor"):
        run(module, x.long(), ei, torch.rand(6, 2), 1)


def test_bf16_autocast_training_step():
    from pyg_relational.bench.nri import autocast
    torch.manual_seed(0)
    model = build_model(T, FEAT, 32, 32, skip_first=True)
    ei = complete_graph([5] * 4, self_loops=False)
    x = torch.rand(20, T, FEAT) * 2 - 1
    losses, grads = {}, {}
    for precision in ('float32', 'bf16'):
        torch.manual_seed(1)  # same Gumbel noise
        model.zero_grad()
        with autocast('cpu', precision):
            out = model.loss(x, ei, 2)
            # the matmuls really ran in bfloat16 under bf16
            hidden = model.encoder.node_mlp1(x.flatten(1))
        assert hidden.dtype == (torch.bfloat16 if precision == 'bf16'
                                else torch.float32)
        assert out['logits'].dtype == torch.float32  # q(z) in float32
        assert out['loss'].dtype == torch.float32
        out['loss'].backward()
        losses[precision] = float(out['loss'].detach())
        grads[precision] = torch.cat([p.grad.flatten()
                                      for p in model.parameters()])
        assert grads[precision].dtype == torch.float32
    assert losses['bf16'] == pytest.approx(losses['float32'], rel=0.05)
    cos = F.cosine_similarity(grads['bf16'], grads['float32'], dim=0)
    assert float(cos) > 0.9
    with pytest.raises(ValueError, match="precision='fp8'"):
        autocast('cpu', 'fp8')
