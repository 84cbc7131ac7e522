r"""Benchmarks of the attention layers (issue 4).

* :func:`twin_cases`: ``AttentionConv(score='gat')`` vs PyG ``GATConv``,
  ``MultiheadAttentionConv`` vs ``nn.MultiheadAttention`` (complete, causal
  and padded graphs), Transformer encoder/decoder layers vs ``torch.nn``
  (post- and pre-norm): largest output and gradient differences.
* :func:`speed_cases`: forward+backward of ``MultiheadAttentionConv`` on
  complete graphs vs ``nn.MultiheadAttention``, PyG ``TransformerConv`` and
  ``GATConv`` on the same graphs, and on a window graph (radius 16) vs dense
  full attention.
* :func:`target_cases`: the speed targets of issue 12 for the attention
  layers: ``MultiheadAttentionConv`` and ``TransformerEncoderLayer`` on
  complete and causal graphs vs ``torch.nn``, ragged blocks vs padded
  attention, ``AttentionConv(score='gat')`` vs ``GATConv`` on a large random
  graph, window graphs vs band-masked SDPA, and ``AttentionConv`` on a
  random graph (sparse path) vs the message path or an earlier version of
  the library (:func:`random_sparse_target`).
* :func:`run_seq2seq`: a GRU encoder-decoder without attention, with
  Bahdanau attention and with Luong global / local-p attention on sequence
  reversal, accuracy per sequence length.

Everything returns data; nothing prints.
"""
import copy
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..graphs import bipartite_graph, complete_graph, window_graph
from ..nn.attention import AttentionConv, BahdanauAttention, LuongAttention
from ..nn.transformer import (MultiheadAttentionConv, TransformerDecoderLayer,
                              TransformerEncoderLayer)
from .classic import _graph_to, _leaves
from .results import SpeedResult, TwinResult
from .timing import (Target, compare_speed, measure, run_cases,
                     scaled_error)

__all__ = ['twin_cases', 'speed_cases', 'target_cases',
           'random_sparse_target', 'run_seq2seq']

Progress = Optional[Callable[[str], None]]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _report(progress: Progress, text: str):
    if progress is not None:
        progress(text)


# --- twins -----------------------------------------------------------------


def _compare(graph_fn, twin_fn, inputs: Sequence[Tensor],
             params: Sequence) -> (float, float):
    """Largest difference of the outputs and of the input and parameter
    gradients (one shared random cotangent), each divided by the twin's
    largest magnitude where that exceeds 1 (the convention of
    :mod:`~pyg_relational.bench.classic`)."""
    def leaves():
        return [t.detach().clone().requires_grad_() for t in inputs]

    a_in, b_in = leaves(), leaves()
    a, b = graph_fn(*a_in), twin_fn(*b_in)
    err = scaled_error(a, b)
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(b.shape, generator=gen, dtype=b.dtype).to(b.device)
    (a * g).sum().backward()
    (b * g).sum().backward()
    grad_err = 0.
    pairs = [(x.grad, y.grad) for x, y in zip(a_in, b_in)]
    pairs += [(ga(), gb()) for ga, gb in params]
    for ga, gb in pairs:
        grad_err = max(grad_err, scaled_error(ga, gb))
    return err, grad_err


def mha_grad_pairs(conv, mha):
    """Gradient pairs of a :class:`MultiheadAttentionConv` and its
    :class:`torch.nn.MultiheadAttention` twin: q/k/v weights and biases,
    output projection."""
    def cat(name):
        return lambda: torch.cat([
            getattr(lin, name).grad
            for lin in (conv.lin_query, conv.lin_key, conv.lin_value)
        ])
    return [(cat('weight'), lambda: mha.in_proj_weight.grad),
            (cat('bias'), lambda: mha.in_proj_bias.grad),
            (lambda: conv.out_proj.weight.grad,
             lambda: mha.out_proj.weight.grad),
            (lambda: conv.out_proj.bias.grad, lambda: mha.out_proj.bias.grad)]


def twin_cases(quick: bool = True, device='cpu',
               progress: Progress = None) -> List[TwinResult]:
    """Graph layers vs their PyTorch / PyG twins on random inputs, float32
    and float64, forward and backward (deterministic: weights and inputs
    from seed 0).

    ``max_abs_err`` / ``max_abs_grad_err`` are the largest absolute
    differences of a tensor divided by the twin's largest absolute value
    where that exceeds 1: absolute errors for values of order one, relative
    ones for weight gradients that sum over many edges and carry float32
    rounding proportional to their size."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _twin_cases(quick, torch.device(device), progress)


def _twin_cases(quick: bool, device: torch.device,
                progress: Progress) -> List[TwinResult]:
    from torch_geometric.nn import GATConv
    B, T, S, E, H = (2, 5, 6, 16, 4) if quick else (4, 32, 40, 64, 8)
    N, C = (12, 8) if quick else (200, 16)
    gen = torch.Generator().manual_seed(0)
    results = []
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).replace('torch.', '')

        def rand(*shape):
            return torch.randn(*shape, generator=gen,
                               dtype=torch.float64).to(device, dtype)

        # GATConv, PyG's self-loops, two configurations
        for heads, concat in ((1, True), (4, False)):
            gat = GATConv(C, C, heads=heads, concat=concat).to(device, dtype)
            conv = AttentionConv.from_module(gat)
            edge_index = torch.randint(0, N, (2, 4 * N), generator=gen).to(
                device)
            params = [(lambda c=conv: c.lin_src.weight.grad,
                       lambda g=gat: g.lin.weight.grad)]
            err = _compare(lambda x, c=conv: c(x, edge_index),
                           lambda x, g=gat: g(x, edge_index), [rand(N, C)],
                           params)
            results.append(TwinResult(
                'AttentionConv', 'GATConv',
                f'{C}->{C} heads={heads} concat={concat}, {N} nodes, '
                f'{4 * N} random edges + self-loops', name, *err, TOL[dtype]))
            _report(progress, f'twin AttentionConv/GATConv {name}')

        # nn.MultiheadAttention: complete, causal, key padding
        mha = torch.nn.MultiheadAttention(E, H, batch_first=True).to(
            device, dtype)
        conv = MultiheadAttentionConv.from_module(mha)
        lengths = torch.tensor([T] * B)
        padded = torch.tensor([T] + [max(1, T - 2 - b) for b in range(B - 1)])
        causal = torch.nn.Transformer.generate_square_subsequent_mask(
            T, device=device, dtype=dtype)
        for kind, lens, kwargs in (
            ('complete graph', lengths, {}),
            ('causal graph = attn_mask', lengths, {'attn_mask': causal}),
            ('graph without padding = key_padding_mask', padded, None),
        ):
            valid = (torch.arange(T).view(1, -1) < lens.view(-1, 1)).to(device)
            if kwargs is None:
                kwargs = {'key_padding_mask': ~valid}
            edge_index = complete_graph(lens, causal='causal' in kind).to(
                device)
            err = _compare(
                lambda x: conv(x[valid], edge_index),
                lambda x: mha(x, x, x, need_weights=False, **kwargs)[0][valid],
                [rand(B, T, E)], mha_grad_pairs(conv, mha))
            results.append(TwinResult(
                'MultiheadAttentionConv', 'nn.MultiheadAttention',
                f'd={E} heads={H} batch={B} T={T}, {kind}', name, *err,
                TOL[dtype]))
            _report(progress, f'twin MultiheadAttentionConv {kind} {name}')

        # Transformer layers, post- and pre-norm
        self_graph = complete_graph([T] * B).to(device)
        causal_graph = complete_graph([T] * B, causal=True).to(device)
        cross_graph = bipartite_graph([S] * B, [T] * B).to(device)
        for norm_first in (False, True):
            norm = 'pre-norm' if norm_first else 'post-norm'
            enc = torch.nn.TransformerEncoderLayer(
                E, H, 2 * E, dropout=0., batch_first=True,
                norm_first=norm_first).to(device, dtype)
            layer = TransformerEncoderLayer.from_module(enc)
            err = _compare(
                lambda x: layer(x.reshape(-1, E), self_graph),
                lambda x: enc(x).reshape(-1, E), [rand(B, T, E)],
                mha_grad_pairs(layer.self_attn, enc.self_attn) +
                [(lambda: layer.linear1.weight.grad,
                  lambda: enc.linear1.weight.grad)])
            results.append(TwinResult(
                'TransformerEncoderLayer', 'nn.TransformerEncoderLayer',
                f'd={E} heads={H} batch={B} T={T} {norm}', name, *err,
                TOL[dtype]))
            dec = torch.nn.TransformerDecoderLayer(
                E, H, 2 * E, dropout=0., batch_first=True,
                norm_first=norm_first).to(device, dtype)
            dlayer = TransformerDecoderLayer.from_module(dec)
            err = _compare(
                lambda x, m: dlayer(x.reshape(-1, E), m.reshape(-1, E),
                                    causal_graph, cross_graph),
                lambda x, m: dec(x, m, tgt_mask=causal).reshape(-1, E),
                [rand(B, T, E), rand(B, S, E)],
                mha_grad_pairs(dlayer.multihead_attn, dec.multihead_attn))
            results.append(TwinResult(
                'TransformerDecoderLayer', 'nn.TransformerDecoderLayer',
                f'd={E} heads={H} batch={B} T={T} S={S} causal {norm}', name,
                *err, TOL[dtype]))
            _report(progress, f'twin Transformer layers {norm} {name}')
    return results


# --- speed -----------------------------------------------------------------


def _fwd_bwd(fn: Callable[[], Tensor]) -> Callable[[], None]:
    def run():
        fn().sum().backward()
    return run


def speed_cases(quick: bool = True, device='cpu', progress: Progress = None,
                repeat: Optional[int] = None, memory: bool = True,
                path: str = 'auto') -> List[SpeedResult]:
    r"""Forward+backward (sum of the output) of :class:`MultiheadAttentionConv`
    vs ``nn.MultiheadAttention``, PyG ``TransformerConv`` and ``GATConv`` on
    complete graphs, and on a window graph (radius 16) vs dense full
    attention.

    Full sizes: :math:`N = 64, 256, 1024` tokens, batch 8, d = 256, 8 heads;
    window graph at :math:`N = 4096`. On CPU the batch of the two largest
    cases is 1 (a complete graph on 8 x 1024 tokens has 8.4M edges, ~8.6 GB
    per ``[E, 8, 32]`` float32 tensor); ``extra['batch']`` records it.
    Timing: median of ``repeat`` runs after one warm-up (default 2 quick, 1
    full: the full sizes take minutes per case on two shared CPU cores); the
    graph layer is timed once per graph and reused against each baseline.
    ``memory=False`` skips the peak-memory run (peaks are then 0);
    ``path='message'`` times the per-edge message path of
    :class:`MultiheadAttentionConv` instead of its fastest path.
    """
    from torch_geometric.nn import GATConv, TransformerConv
    device = torch.device(device)
    cpu = device.type == 'cpu'
    if quick:
        d, heads, repeat = 32, 4, repeat or 2
        complete_cases = [(16, 2), (32, 2)]
        window_case = (256, 1, 4)
    else:
        d, heads, repeat = 256, 8, repeat or 1  # 2 shared CPU cores
        complete_cases = [(64, 8), (256, 8), (1024, 1 if cpu else 8)]
        window_case = (4096, 1 if cpu else 8, 16)
    warmup = 1
    gen = torch.Generator().manual_seed(0)
    results = []

    graph_times = {}  # config -> Measurement: the graph layer timed once

    def speed(operator, baseline, config, num_edges, graph_fn, base_fn,
              extra):
        if config not in graph_times:
            graph_times[config] = measure(_fwd_bwd(graph_fn), repeat, warmup,
                                          device, memory)
        mg = graph_times[config]
        mb = measure(_fwd_bwd(base_fn), repeat, warmup, device, memory)
        results.append(SpeedResult(operator, baseline, config, str(device),
                                   num_edges, mg.median_s, mb.median_s,
                                   mg.peak_bytes, mb.peak_bytes, extra))
        _report(progress, f'speed {operator} vs {baseline} {config}')

    for n, batch in complete_cases:
        mha = torch.nn.MultiheadAttention(d, heads, batch_first=True).to(
            device)
        conv = MultiheadAttentionConv.from_module(mha)
        conv.path = path
        x = torch.randn(batch, n, d, generator=gen).to(device)
        x.requires_grad_()
        x_nodes = x.detach().reshape(-1, d).requires_grad_()
        edge_index = complete_graph([n] * batch).to(device)
        E = edge_index.size(1)
        config = f'complete graph N={n} batch={batch} d={d} heads={heads}'
        extra = {'tokens': n, 'batch': batch, 'graph': 'complete',
                 'repeat': repeat, 'path': path}
        graph_fn = lambda: conv(x_nodes, edge_index)  # noqa: E731
        speed('MultiheadAttentionConv', 'nn.MultiheadAttention', config, E,
              graph_fn, lambda: mha(x, x, x, need_weights=False)[0], extra)
        tconv = TransformerConv(d, d // heads, heads=heads).to(device)
        speed('MultiheadAttentionConv', 'TransformerConv', config, E,
              graph_fn, lambda: tconv(x_nodes, edge_index), extra)
        gat = GATConv(d, d // heads, heads=heads, add_self_loops=False).to(
            device)
        speed('MultiheadAttentionConv', 'GATConv', config, E, graph_fn,
              lambda: gat(x_nodes, edge_index), extra)
        del x, x_nodes, edge_index

    n, batch, radius = window_case
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True).to(device)
    conv = MultiheadAttentionConv.from_module(mha)
    conv.path = path
    x = torch.randn(batch, n, d, generator=gen).to(device).requires_grad_()
    x_nodes = x.detach().reshape(-1, d).requires_grad_()
    edge_index = window_graph([n] * batch, [n] * batch, radius).to(device)
    speed('MultiheadAttentionConv (window graph)',
          'nn.MultiheadAttention (full)',
          f'window radius={radius} N={n} batch={batch} d={d} heads={heads}',
          edge_index.size(1), lambda: conv(x_nodes, edge_index),
          lambda: mha(x, x, x, need_weights=False)[0],
          {'tokens': n, 'batch': batch, 'graph': f'window r={radius}',
           'repeat': repeat, 'path': path})
    return results


# --- issue 12 targets --------------------------------------------------------

ATTENTION_TARGET = Target(1.1, 1.2)
RAGGED_TARGET = Target(1.2)
GAT_TARGET = Target(1 / 1.5, note='>= 1.5x faster')
WINDOW_TARGET = Target(1.0, note='beats band-masked attention')
BEFORE_TARGET = Target(1.05, note='no slower than before, 5% noise allowance')


def _tokens(batch: int, T: int, d: int, device) -> (Tensor, Tensor):
    """The same random tokens as a twin's ``[B, T, d]`` and as graph nodes
    ``[B*T, d]``, two leaves."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, T, d, generator=gen).to(device)
    nodes = x.reshape(-1, d).clone().requires_grad_()  # [B*T, d]
    return x.requires_grad_(), nodes


def block_target(kind: str, T: int, batch: int, d: int, heads: int,
                 causal: bool = False, device='cpu', repeat: int = 7,
                 memory: bool = True) -> SpeedResult:
    r"""``kind='mha'``: :class:`MultiheadAttentionConv` vs
    ``nn.MultiheadAttention(need_weights=False)``; ``kind='encoder'``:
    :class:`TransformerEncoderLayer` vs ``nn.TransformerEncoderLayer``
    (FFN :math:`4d`, no dropout, post-norm). ``batch`` complete graphs of
    ``T`` tokens, or causal graphs vs the twin with a causal ``attn_mask``
    and ``is_causal=True``. Target: time ≤ 1.1×, memory ≤ 1.2×."""
    device = torch.device(device)
    torch.manual_seed(0)
    if kind == 'mha':
        twin = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        layer = MultiheadAttentionConv.from_module(twin.to(device))
    elif kind == 'encoder':
        twin = torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.,
                                                batch_first=True)
        layer = TransformerEncoderLayer.from_module(twin.to(device))
    else:
        raise ValueError(f"'kind' must be 'mha' or 'encoder' (got {kind!r})")
    x, nodes = _tokens(batch, T, d, device)
    edge_index = _graph_to(complete_graph([T] * batch, causal=causal),
                           device)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(
        T, device=device) if causal else None
    if kind == 'mha':
        def twin_fn():
            return twin(x, x, x, need_weights=False, attn_mask=mask,
                        is_causal=causal)[0]
    else:
        def twin_fn():
            return twin(x, src_mask=mask, is_causal=causal)
    graph = 'causal' if causal else 'complete'
    return compare_speed(
        type(layer).__name__, f'nn.{type(twin).__name__}',
        f'{graph} T={T} B={batch} d={d} heads={heads}',
        lambda: layer(nodes, edge_index), twin_fn, _leaves(layer, nodes),
        _leaves(twin, x), layer=layer, num_edges=edge_index.size(1),
        target=ATTENTION_TARGET, repeat=repeat, device=device,
        memory=memory, extra={'tokens': T, 'batch': batch, 'graph': graph})


def ragged_target(T: int, batch: int, d: int, heads: int, device='cpu',
                  repeat: int = 7, memory: bool = True) -> SpeedResult:
    r""":class:`MultiheadAttentionConv` on complete blocks of ragged sizes
    (uniform in :math:`[T/2, T]`, the first :math:`T`) vs
    ``nn.MultiheadAttention`` on the zero-padded ``[B, T, d]`` batch with a
    ``key_padding_mask`` (outputs compared on the real tokens). Target:
    time ≤ 1.2×."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(1)
    lengths = torch.randint(T // 2, T + 1, (batch, ), generator=gen)
    lengths[0] = T
    valid = (torch.arange(T).view(1, -1) < lengths.view(-1, 1)).to(device)
    torch.manual_seed(0)
    twin = torch.nn.MultiheadAttention(d, heads, batch_first=True).to(device)
    layer = MultiheadAttentionConv.from_module(twin)
    x, _ = _tokens(batch, T, d, device)
    with torch.no_grad():
        x[~valid] = 0.
    nodes = x.detach()[valid].clone().requires_grad_()  # [sum(lengths), d]
    edge_index = _graph_to(complete_graph(lengths), device)
    return compare_speed(
        'MultiheadAttentionConv', 'nn.MultiheadAttention (padded)',
        f'ragged T={T} B={batch} d={d} heads={heads}, lengths '
        f'{int(lengths.min())}-{T}', lambda: layer(nodes, edge_index),
        lambda: twin(x, x, x, key_padding_mask=~valid,
                     need_weights=False)[0],
        _leaves(layer, nodes), _leaves(twin, x), layer=layer,
        align=lambda g, t: (g, t[valid]), num_edges=edge_index.size(1),
        target=RAGGED_TARGET, repeat=repeat, device=device, memory=memory,
        extra={'tokens': T, 'batch': batch, 'graph': 'ragged complete',
               'lengths': lengths.tolist()})


def _random_graph(num_nodes: int, num_edges: int,
                  repeats: bool = False) -> Tensor:
    """``num_edges`` random edges; without repeats or self-loops (a few
    fewer after removing those), sorted by target, or with
    ``repeats=True`` exactly as ``torch.randint`` draws them (a multigraph
    in random order, self-loops and repeated edges kept)."""
    from torch_geometric.utils import coalesce, remove_self_loops
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    if repeats:
        return edge_index
    edge_index, _ = remove_self_loops(edge_index)
    return coalesce(edge_index, num_nodes=num_nodes, sort_by_row=False)


def _nodes(num_nodes: int, channels: int, device) -> (Tensor, Tensor):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(num_nodes, channels, generator=gen).to(device)
    return x.clone().requires_grad_(), x.requires_grad_()


def gat_target(num_nodes: int, num_edges: int, channels: int, heads: int,
               device='cpu', repeat: int = 7, memory: bool = True,
               repeats: bool = False) -> SpeedResult:
    r"""``AttentionConv.from_module(GATConv(channels, channels // heads,
    heads))`` vs that ``GATConv`` (both add self-loops) on a random graph;
    with ``repeats=True`` the drop-in
    :class:`pyg_relational.nn.GATConv` (``GATConv.from_module``) on the
    graph exactly as ``torch.randint`` draws it (repeated edges kept).
    Target: ≥ 1.5× faster (time ≤ 0.67×)."""
    from torch_geometric.nn import GATConv
    from ..nn.gat import GATConv as DropIn
    device = torch.device(device)
    torch.manual_seed(0)
    gat = GATConv(channels, channels // heads, heads=heads).to(device)
    conv = (DropIn if repeats else AttentionConv).from_module(gat)
    edge_index = _random_graph(num_nodes, num_edges, repeats).to(device)
    x_graph, x_twin = _nodes(num_nodes, channels, device)
    graph = 'torch.randint multigraph' if repeats else 'random graph'
    return compare_speed(
        'GATConv (pyg_relational.nn)' if repeats
        else "AttentionConv(score='gat')", 'GATConv',
        f'{graph} {num_nodes} nodes {edge_index.size(1)} edges, '
        f'{channels}->{heads}x{channels // heads}',
        lambda: conv(x_graph, edge_index), lambda: gat(x_twin, edge_index),
        _leaves(conv, x_graph), _leaves(gat, x_twin), layer=conv,
        num_edges=edge_index.size(1), target=GAT_TARGET, repeat=repeat,
        device=device, memory=memory,
        extra={'nodes': num_nodes, 'graph': graph})


def window_target(T: int, radius: int, d: int, heads: int, device='cpu',
                  repeat: int = 7, memory: bool = True) -> SpeedResult:
    r"""``AttentionConv(d, d // heads, heads, score='scaled_dot')`` on a
    window graph of radius ``radius`` over ``T`` tokens vs
    :func:`~torch.nn.functional.scaled_dot_product_attention` with the
    layer's own projections and a ``[T, T]`` band mask
    :math:`|i - j| \le r` (built beforehand). Target: faster than the
    band-masked attention."""
    device = torch.device(device)
    torch.manual_seed(0)
    H, C = heads, d // heads
    conv = AttentionConv(d, C, heads=H, score='scaled_dot').to(device)
    edge_index = _graph_to(window_graph(T, T, radius), device)
    x_graph, x_twin = _nodes(T, d, device)
    band = torch.ones(T, T, dtype=torch.bool, device=device).tril(
        radius).triu(-radius)  # [T, T]: |i - j| <= r

    def twin():
        q, k, v = (lin(x_twin).view(T, H, C).transpose(0, 1)  # [H, T, C]
                   for lin in (conv.lin_query, conv.lin_key, conv.lin_value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=band)
        return out.transpose(0, 1).reshape(T, H * C) + conv.bias

    return compare_speed(
        "AttentionConv(score='scaled_dot') (window graph)",
        'band-masked SDPA', f'window r={radius} T={T} d={d} heads={H}',
        lambda: conv(x_graph, edge_index), twin, _leaves(conv, x_graph),
        _leaves(conv, x_twin), layer=conv, num_edges=edge_index.size(1),
        target=WINDOW_TARGET, repeat=repeat, device=device, memory=memory,
        extra={'tokens': T, 'graph': f'window r={radius}'})


def _message_path(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` forced onto its message path (``path='message'``, or
    ``fused=False`` on versions without paths)."""
    if hasattr(module, 'path'):
        module.path = 'message'
    else:
        module.fused = False
    return module


def random_sparse_target(num_nodes: int, num_edges: int, channels: int,
                         heads: int, device='cpu', repeat: int = 7,
                         memory: bool = True, before=None,
                         before_name: str = 'before') -> SpeedResult:
    r"""``AttentionConv(channels, channels // heads, heads,
    score='scaled_dot')`` on a random graph (the sparse path) against the
    same layer on the message path, or, with ``before`` (the
    ``AttentionConv`` class of an earlier version of the library, e.g.
    loaded by ``benchmarks/scripts/paths_speed.py --before DIR``), against
    that version with the same weights (target: no slower)."""
    device = torch.device(device)
    torch.manual_seed(0)
    conv = AttentionConv(channels, channels // heads, heads=heads,
                         score='scaled_dot').to(device)
    if before is None:
        twin, name, target = _message_path(copy.deepcopy(conv)), \
            'AttentionConv (message path)', None
    else:
        twin = before(channels, channels // heads, heads=heads,
                      score='scaled_dot').to(device)
        twin.load_state_dict(conv.state_dict())
        name, target = f'AttentionConv ({before_name})', BEFORE_TARGET
    edge_index = _random_graph(num_nodes, num_edges).to(device)
    x_graph, x_twin = _nodes(num_nodes, channels, device)
    return compare_speed(
        "AttentionConv(score='scaled_dot')", name,
        f'random graph {num_nodes} nodes {edge_index.size(1)} edges, '
        f'{channels}->{heads}x{channels // heads}',
        lambda: conv(x_graph, edge_index), lambda: twin(x_twin, edge_index),
        _leaves(conv, x_graph), _leaves(twin, x_twin), layer=conv,
        twin_module=twin, num_edges=edge_index.size(1), target=target,
        repeat=repeat, device=device, memory=memory,
        extra={'nodes': num_nodes, 'graph': 'random'})


def target_cases(quick: bool = True, device='cpu', progress: Progress = None,
                 repeat: Optional[int] = None, memory: bool = True,
                 before=None, before_name: str = 'before',
                 only: Optional[Sequence[str]] = None) -> List[SpeedResult]:
    r"""Issue 12's targets for the attention layers, float32,
    forward+backward, the graph layer built from its twin (same weights) on
    the same data, medians of ``repeat`` alternated runs (default 7) after
    one warm-up round:

    * :func:`block_target`: ``MultiheadAttentionConv`` and
      ``TransformerEncoderLayer`` on complete and on causal graphs,
      :math:`T \times B` = 64×64, 256×16, 1024×4, 2048×1, d = 256, 8 heads;
    * :func:`ragged_target`: ragged blocks vs padded attention, the same
      sizes with :math:`B > 1`;
    * :func:`gat_target`: ``AttentionConv(score='gat')`` vs ``GATConv``,
      100k nodes, 1M random edges, 64 -> 8 heads × 8; and the drop-in
      ``GATConv`` on the ``torch.randint`` multigraph (repeats kept);
    * :func:`window_target`: window graph r = 16 vs band-masked SDPA at
      T = 16384, d = 64, 4 heads;
    * :func:`random_sparse_target`: the sparse path on the random graph of
      :func:`gat_target` (vs the message path, or vs ``before``).

    ``quick=True`` runs the same cases at small sizes (seconds); ``only``
    keeps the rows of the named functions (e.g. ``['gat_target']``)."""
    repeat = repeat or 7
    if quick:
        d, heads, blocks, ragged = 32, 4, [(8, 4), (16, 2)], [(16, 4)]
        graph, window = (1000, 10000, 16, 2), (256, 4, 32, 4)
    else:
        d, heads = 256, 8
        blocks = [(64, 64), (256, 16), (1024, 4), (2048, 1)]
        ragged = [b for b in blocks if b[1] > 1]
        graph, window = (100000, 1000000, 64, 8), (16384, 16, 64, 4)
    cases = [partial(block_target, kind, T, batch, d, heads, causal,
                     device, repeat, memory)
             for kind in ('mha', 'encoder') for causal in (False, True)
             for T, batch in blocks]
    cases += [partial(ragged_target, T, batch, d, heads, device, repeat,
                      memory) for T, batch in ragged]
    options = dict(device=device, repeat=repeat, memory=memory)
    cases += [partial(gat_target, *graph, **options),
              partial(gat_target, *graph, repeats=True, **options),
              partial(window_target, *window, **options),
              partial(random_sparse_target, *graph, **options)]
    if before is not None:
        cases.append(partial(random_sparse_target, *graph, **options,
                             before=before, before_name=before_name))
    if only is not None:  # e.g. ['gat_target']: those functions' rows
        cases = [c for c in cases if c.func.__name__ in only]
    return run_cases(cases, progress)


# --- seq2seq: attention against forgetting ---------------------------------

MODELS = ('none', 'bahdanau', 'luong-global', 'luong-local-p')


class _Seq2Seq(torch.nn.Module):
    """GRU encoder-decoder over token sequences; ``attention`` is one of
    :data:`MODELS`. Encoder states attend to decoder steps over a bipartite
    (global) or window (local-p) graph built per batch."""
    def __init__(self, vocab: int, hidden: int, attention: str,
                 window: int):
        super().__init__()
        self.attention = attention
        self.vocab = vocab
        self.embed = torch.nn.Embedding(vocab + 1, hidden)  # + BOS
        self.encoder = torch.nn.GRU(hidden, hidden, batch_first=True)
        ctx = hidden if attention != 'none' else 0
        in_dec = hidden + (hidden if attention == 'bahdanau' else 0)
        self.decoder = torch.nn.GRU(in_dec, hidden, batch_first=True)
        if attention == 'bahdanau':
            self.attn = BahdanauAttention(hidden, hidden)
        elif attention == 'luong-global':
            self.attn = LuongAttention(hidden, score='general', mode='global')
        elif attention == 'luong-local-p':
            self.attn = LuongAttention(hidden, score='general',
                                       mode='local-p', window=window)
        else:
            self.attn = None
        if attention.startswith('luong'):  # h~_t = tanh(W_c [c_t; h_t])
            self.combine = torch.nn.Linear(2 * hidden, hidden)
            ctx = 0
        self.out = torch.nn.Linear(hidden + ctx, vocab)

    def _readout(self, h: Tensor, keys: Tensor, S: int, B: int, T: int
                 ) -> Tensor:
        """Logits of decoder states ``h [B*T, hidden]`` (no input feeding,
        so Luong attention runs on all ``T`` steps at once)."""
        if self.attn is None:
            return self.out(h)
        c, _ = self.attn(h, keys, [S] * B, [T] * B)
        return self.out(torch.tanh(self.combine(torch.cat([c, h], -1))))

    def forward(self, src: Tensor, target: Optional[Tensor] = None
                ) -> Tensor:
        """Logits ``[B, S, vocab]``; teacher forcing with ``target``, greedy
        decoding without."""
        B, S = src.shape
        enc, h = self.encoder(self.embed(src))  # [B, S, h], [1, B, h]
        keys = enc.reshape(B * S, -1)  # [B*S, h]
        bos = torch.full((B, 1), self.vocab, dtype=torch.long,
                         device=src.device)
        if target is not None and self.attention != 'bahdanau':
            inputs = self.embed(torch.cat([bos, target[:, :-1]], 1))
            dec, _ = self.decoder(inputs, h)  # [B, S, h]
            return self._readout(dec.reshape(B * S, -1), keys, S, B,
                                 S).view(B, S, -1)
        graph = bipartite_graph([S] * B, [1] * B).to(src.device)
        prev, logits = bos[:, 0], []
        for t in range(S):
            emb = self.embed(prev)
            if self.attention == 'bahdanau':  # query: s_{t-1}
                c, _ = self.attn(h[0], keys, graph)
                _, h = self.decoder(torch.cat([emb, c], -1).unsqueeze(1), h)
                o = self.out(torch.cat([h[0], c], -1))
            else:
                _, h = self.decoder(emb.unsqueeze(1), h)
                o = self._readout(h[0], keys, S, B, 1)
            logits.append(o)
            prev = target[:, t] if target is not None else o.argmax(-1)
        return torch.stack(logits, 1)


def _reverse_batch(batch: int, length: int, vocab: int, gen, device):
    src = torch.randint(0, vocab, (batch, length), generator=gen)
    return src.to(device), src.flip(1).to(device)


def run_seq2seq(quick: bool = True, device='cpu', progress: Progress = None,
                lengths: Optional[Sequence[int]] = None,
                steps: Optional[int] = None, hidden: Optional[int] = None,
                models: Sequence[str] = MODELS, seed: int = 0,
                seeds: Optional[int] = None,
                batch_size: int = 32, test_size: Optional[int] = None,
                window: int = 4) -> List[Dict]:
    """Sequence reversal with a GRU encoder-decoder, with and without
    attention: token accuracy (greedy decoding) per test length.

    Each model trains ``steps`` Adam steps on sequences whose length is drawn
    uniformly from ``[min(lengths), max(lengths)]`` (vocabulary of 10 tokens)
    and is tested on fresh sequences of every length in ``lengths``.

    ``window`` is the half-width :math:`D` of ``luong-local-p``; ``seeds``
    repeats everything for seeds ``seed, seed + 1, ...`` (default 1).

    Returns one row per (model, length): ``model``, ``length``, ``accuracy``
    (tokens), ``sequence_accuracy`` (whole sequences), ``steps``,
    ``train_s``, ``seed``, ``hidden``, ``window``.
    """
    device = torch.device(device)
    lengths = list(lengths or ((4, 8) if quick else (10, 20, 30, 40, 50)))
    steps = steps or (10 if quick else 1500)
    hidden = hidden or (16 if quick else 64)
    test_size = test_size or (16 if quick else 200)
    vocab = 10
    for name in models:
        if name not in MODELS:
            raise ValueError(f"Unknown model {name!r}; expected one of "
                             f"{', '.join(MODELS)}")
    rows = []
    runs = [(s, m) for s in range(seed, seed + (seeds or 1)) for m in models]
    for run_seed, name in runs:
        torch.manual_seed(run_seed)
        gen = torch.Generator().manual_seed(run_seed)
        model = _Seq2Seq(vocab, hidden, name, window).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        start = time.perf_counter()
        model.train()
        lo, hi = min(lengths), max(lengths)
        for step in range(steps):
            length = int(torch.randint(lo, hi + 1, (1, ), generator=gen))
            src, tgt = _reverse_batch(batch_size, length, vocab, gen, device)
            logits = model(src, tgt)
            loss = F.cross_entropy(logits.reshape(-1, vocab), tgt.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        train_s = time.perf_counter() - start
        model.eval()
        test_gen = torch.Generator().manual_seed(run_seed + 1000)
        with torch.no_grad():
            for length in lengths:
                src, tgt = _reverse_batch(test_size, length, vocab, test_gen,
                                          device)
                pred = model(src).argmax(-1)
                correct = pred == tgt
                rows.append({
                    'model': name, 'length': length,
                    'accuracy': correct.float().mean().item(),
                    'sequence_accuracy': correct.all(1).float().mean().item(),
                    'steps': steps, 'train_s': round(train_s, 1),
                    'seed': run_seed, 'hidden': hidden, 'window': window
                })
        _report(progress, f'seq2seq {name} seed {run_seed} ({train_s:.0f} s)')
    return rows
