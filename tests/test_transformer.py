import math

import pytest
import torch

from pyg_relational import (bipartite_graph, complete_graph,
                            relative_position, window_graph)
from pyg_relational.bench.attention import mha_grad_pairs
from pyg_relational.nn import (MultiheadAttentionConv, PositionalEncoding,
                               TransformerDecoderLayer,
                               TransformerEncoderLayer)

from .helpers import (assert_close, assert_edge_order_invariant, assert_twin,
                      dtypes, empty_graph, graph_to)
from .helpers import device  # noqa: F401 (fixture: every available device)

E, H = 8, 2


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('mask', ['none', 'causal', 'key_padding'])
def test_multihead_attention_twin(mask, dtype, device):
    B, T = 3, 5
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True).to(device,
                                                                  dtype)
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    conv = MultiheadAttentionConv.from_module(mha)
    lengths = torch.tensor([5, 3, 4]) if mask == 'key_padding' else \
        torch.full((B, ), T)
    valid = (torch.arange(T).view(1, -1) < lengths.view(-1, 1)).to(device)
    edge_index = graph_to(complete_graph(lengths, causal=mask == 'causal'),
                          device)
    kwargs = {}
    if mask == 'causal':
        kwargs['attn_mask'] = torch.nn.Transformer.\
            generate_square_subsequent_mask(T, dtype=dtype, device=device)
    if mask == 'key_padding':
        kwargs['key_padding_mask'] = ~valid

    def graph(x):  # [B, T, E] -> nodes of the valid positions
        return conv(x[valid], edge_index)

    def twin(x):
        return mha(x, x, x, need_weights=False, **kwargs)[0][valid]

    assert_twin(graph, twin, [torch.randn(B, T, E, dtype=dtype).to(device)],
                mha_grad_pairs(conv, mha))
    assert conv.last_path == 'dense'  # SDPA, as the twin


def test_multihead_attention_weights_and_cross_attention():
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True).double()
    conv = MultiheadAttentionConv.from_module(mha)
    memory, x = torch.randn(2, 6, E).double(), torch.randn(2, 3, E).double()
    ref, weights = mha(x, memory, memory, average_attn_weights=False)
    edge_index = bipartite_graph([6, 6], [3, 3])
    out, (_, alpha) = conv((memory.reshape(-1, E), x.reshape(-1, E)),
                           edge_index, return_attention_weights=True)
    assert_close(out, ref.reshape(-1, E))
    # bipartite_graph is target-major, source-minor: weights[b, h, t, s]
    assert_close(alpha, weights.permute(0, 2, 3, 1).reshape(-1, H))


def _shaw_reference(conv, x, edge_index, position, k):
    """Shaw et al. 2018, eq. (3)-(4), per target, written densely."""
    d = E // H
    q = conv.lin_query(x).view(-1, H, d)
    key = conv.lin_key(x).view(-1, H, d)
    v = conv.lin_value(x).view(-1, H, d)
    out = torch.zeros(x.size(0), H, d, dtype=x.dtype)
    for i in range(x.size(0)):
        src = edge_index[0, edge_index[1] == i]
        if src.numel() == 0:
            continue
        rel = (position[src] - position[i]).clamp(-k, k) + k
        a_k, a_v = conv.rel_key[rel], conv.rel_value[rel]  # [deg, d]
        e = ((q[i].unsqueeze(0) * (key[src] + a_k.unsqueeze(1))).sum(-1) /
             math.sqrt(d))  # [deg, H]
        alpha = torch.softmax(e, 0)
        out[i] = (alpha.unsqueeze(-1) * (v[src] + a_v.unsqueeze(1))).sum(0)
    return conv.out_proj(out.view(-1, E))


@pytest.mark.parametrize('graph', ['complete', 'causal', 'window'])
def test_relative_positions_against_shaw(graph):
    k = 2
    conv = MultiheadAttentionConv(E, H, relative_clip=k).double()
    with torch.no_grad():
        conv.rel_key.normal_()
        conv.rel_value.normal_()
    sizes = [6, 4]
    edge_index = window_graph(sizes, sizes, 2) if graph == 'window' else \
        complete_graph(sizes, causal=graph == 'causal')
    position = torch.cat([torch.arange(s) for s in sizes])
    x = torch.randn(10, E).double()
    out = conv(x, edge_index, position=position)
    assert_close(out, _shaw_reference(conv, x, edge_index, position, k))
    edge_type = relative_position(edge_index, position, k)
    assert_close(conv(x, edge_index, edge_type=edge_type), out)
    assert_edge_order_invariant(
        lambda ei, et: conv(x, ei, edge_type=et), edge_index, edge_type)
    # relative terms are learnt: they receive gradients
    out.sum().backward()
    assert conv.rel_key.grad.abs().sum() > 0
    assert conv.rel_value.grad.abs().sum() > 0


def test_multihead_attention_empty_and_isolated():
    conv = MultiheadAttentionConv(E, H, bias=False)
    assert conv(torch.randn(0, E), empty_graph()).shape == (0, E)
    x = torch.randn(3, E, requires_grad=True)
    out = conv(x, torch.tensor([[0], [1]]))
    assert torch.equal(out[[0, 2]], torch.zeros(2, E))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_multihead_attention_repr():
    assert repr(MultiheadAttentionConv(8, 2)) == \
        'MultiheadAttentionConv(8, num_heads=2)'
    assert repr(MultiheadAttentionConv(8, 2, relative_clip=3)) == \
        'MultiheadAttentionConv(8, num_heads=2, relative_clip=3)'


# --- encoder / decoder layers ----------------------------------------------


def _layer_params(layer, module):
    pairs = [(lambda: layer.linear1.weight.grad,
              lambda: module.linear1.weight.grad),
             (lambda: layer.linear2.bias.grad,
              lambda: module.linear2.bias.grad),
             (lambda: layer.norms[0].weight.grad,
              lambda: module.norm1.weight.grad)]
    return pairs + mha_grad_pairs(layer.self_attn, module.self_attn)


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('norm_first', [False, True])
@pytest.mark.parametrize('activation', ['relu', 'gelu'])
def test_encoder_layer_twin(norm_first, activation, dtype, device):
    B, T = 2, 5
    module = torch.nn.TransformerEncoderLayer(
        E, H, 16, dropout=0., activation=activation, batch_first=True,
        norm_first=norm_first).to(device, dtype)
    layer = TransformerEncoderLayer.from_module(module)
    edge_index = graph_to(complete_graph([T] * B), device)
    assert_twin(lambda x: layer(x.reshape(-1, E), edge_index),
                lambda x: module(x).reshape(-1, E),
                [torch.randn(B, T, E, dtype=dtype).to(device)],
                _layer_params(layer, module))


@pytest.mark.parametrize('dtype', dtypes())
@pytest.mark.parametrize('norm_first', [False, True])
def test_decoder_layer_twin(norm_first, dtype, device):
    B, T, S = 2, 4, 6
    module = torch.nn.TransformerDecoderLayer(
        E, H, 16, dropout=0., batch_first=True,
        norm_first=norm_first).to(device, dtype)
    layer = TransformerDecoderLayer.from_module(module)
    self_graph = graph_to(complete_graph([T] * B, causal=True), device)
    cross_graph = graph_to(bipartite_graph([S] * B, [T] * B), device)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(
        T, dtype=dtype, device=device)
    params = _layer_params(layer, module) + mha_grad_pairs(
        layer.multihead_attn, module.multihead_attn) + [
            (lambda: layer.norms[2].bias.grad, lambda: module.norm3.bias.grad)
        ]
    assert_twin(
        lambda x, m: layer(x.reshape(-1, E), m.reshape(-1, E), self_graph,
                           cross_graph),
        lambda x, m: module(x, m, tgt_mask=mask).reshape(-1, E),
        [torch.randn(B, T, E, dtype=dtype).to(device),
         torch.randn(B, S, E, dtype=dtype).to(device)], params)


def test_layers_with_relative_positions_and_repr():
    enc = TransformerEncoderLayer(E, H, 16, relative_clip=2)
    dec = TransformerDecoderLayer(E, H, 16, relative_clip=2)
    x, memory = torch.randn(5, E), torch.randn(4, E)
    position = torch.arange(5)
    assert enc(x, complete_graph(5), position=position).shape == (5, E)
    out = dec(x, memory, complete_graph(5, causal=True),
              bipartite_graph(4, 5), position=position)
    assert out.shape == (5, E)
    assert repr(enc) == 'TransformerEncoderLayer(8, nhead=2, norm_first=False)'
    assert repr(dec) == 'TransformerDecoderLayer(8, nhead=2, norm_first=False)'


def test_encoder_layer_dropout_only_in_training():
    layer = TransformerEncoderLayer(E, H, 16, dropout=0.5)
    x, edge_index = torch.randn(5, E), complete_graph(5)
    layer.eval()
    assert torch.equal(layer(x, edge_index), layer(x, edge_index))
    layer.train()
    assert not torch.equal(layer(x, edge_index), layer(x, edge_index))


# --- positional encoding ---------------------------------------------------


@pytest.mark.parametrize('d_model', [6, 7])
def test_positional_encoding_is_vaswani(d_model):
    pe = PositionalEncoding(d_model)
    position = torch.tensor([0, 1, 5, 37, 2])
    enc = pe.encoding(position, torch.float64)
    for n, p in enumerate(position.tolist()):
        for c in range(d_model):
            i = c // 2  # PE(p, 2i) = sin, PE(p, 2i+1) = cos
            angle = p / 10000**(2 * i / d_model)
            expected = math.sin(angle) if c % 2 == 0 else math.cos(angle)
            assert abs(enc[n, c].item() - expected) < 1e-12
    x = torch.randn(5, d_model)
    assert_close(pe(x, position), x + enc.float())
    assert repr(pe) == f'PositionalEncoding({d_model})'


def test_positional_encoding_differs_from_pyg():
    from torch_geometric.nn import PositionalEncoding as PyGEncoding
    position = torch.arange(4).float()
    ours = PositionalEncoding(8).encoding(position)
    assert not torch.allclose(ours, PyGEncoding(8)(position))


# --- bad input -------------------------------------------------------------


@pytest.mark.parametrize('make, call, match', [
    (lambda: MultiheadAttentionConv(10, 3), None, 'divisible'),
    (lambda: MultiheadAttentionConv(8, 2, relative_clip=-1), None,
     "'relative_clip' must be >= 0"),
    (lambda: MultiheadAttentionConv(8, 2, relative_clip=1),
     lambda c: c(torch.randn(3, 8), complete_graph(3)), "needs 'position'"),
    (lambda: MultiheadAttentionConv(8, 2),
     lambda c: c(torch.randn(3, 8), complete_graph(3),
                 position=torch.arange(3)), 'only used with relative_clip'),
    (lambda: MultiheadAttentionConv(8, 2),
     lambda c: c(torch.randn(3, 7), complete_graph(3)),
     "'x' must have 8 features"),
    (lambda: MultiheadAttentionConv,
     lambda c: c.from_module(torch.nn.Linear(2, 2)),
     'expects a torch.nn.MultiheadAttention'),
    (lambda: MultiheadAttentionConv,
     lambda c: c.from_module(torch.nn.MultiheadAttention(8, 2, kdim=4)),
     'kdim/vdim'),
    (lambda: TransformerEncoderLayer,
     lambda c: c.from_module(torch.nn.Linear(2, 2)),
     'expects a torch.nn.modules.transformer.TransformerEncoderLayer'),
    (lambda: TransformerEncoderLayer(8, 2, activation='tanh'), None,
     'Unknown activation'),
    (lambda: TransformerDecoderLayer(8, 2),
     lambda c: c(torch.randn(3, 8), torch.randn(2, 6), complete_graph(3),
                 bipartite_graph(2, 3)), "'memory' must have 8 features"),
    (lambda: PositionalEncoding(4),
     lambda p: p(torch.randn(3, 4), torch.arange(2)), 'one entry per node'),
    (lambda: PositionalEncoding(4, base=0), None,
     "'base' must be a finite number > 0"),
    (lambda: MultiheadAttentionConv(8, 2, relative_clip=1),
     lambda c: c(torch.randn(5, 8), complete_graph(5),
                 position=torch.arange(3)),
     "'position' must give one position per source node"),
    (lambda: MultiheadAttentionConv(8, 2, relative_clip=1),
     lambda c: c((torch.randn(5, 8), torch.randn(2, 8)),
                 bipartite_graph(5, 2),
                 position=(torch.arange(5), torch.arange(3))),
     "'position' must give one position per target node"),
    (lambda: MultiheadAttentionConv(8, 2),
     lambda c: c(torch.randn(5, 8), complete_graph(5), None, None, (5, 5)),
     'positional argument'),
])
def test_transformer_bad_input(make, call, match):
    with pytest.raises((ValueError, IndexError, TypeError), match=match):
        obj = make()
        call(obj)


def test_layer_paths_are_their_attentions():
    """The encoder / decoder layers' path, last_path and why_not_faster are
    those of their attention sublayers."""
    dec = TransformerDecoderLayer(E, H, 16, dropout=0., path='message')
    assert dec.path == 'message' and dec.multihead_attn.path == 'message'
    x, memory = torch.randn(5, E), torch.randn(4, E)
    graphs = (complete_graph(5, causal=True), bipartite_graph(4, 5))
    expected = dec(x, memory, *graphs)
    assert dec.last_path == 'message'
    dec.path = 'auto'
    assert_close(dec(x, memory, *graphs), expected)
    assert dec.last_path == 'dense' and dec.why_not_faster is None
    dec(x, memory, torch.tensor([[0, 2], [1, 3]]), graphs[1])
    assert dec.last_path == 'sparse'  # the slowest sublayer
    assert 'self_attn.dense' in dec.why_not_faster
    with pytest.raises(ValueError, match="Unknown path='fast'"):
        dec.path = 'fast'
