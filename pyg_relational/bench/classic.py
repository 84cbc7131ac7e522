r"""Benchmarks of the classic operators against their PyTorch twins:
:class:`~pyg_relational.nn.FullyConnectedConv` vs :class:`torch.nn.Linear`,
:class:`~pyg_relational.nn.LatticeConv` vs :class:`torch.nn.Conv1d` /
:class:`torch.nn.Conv2d`, :class:`~pyg_relational.nn.RecurrentConv` vs
:class:`torch.nn.RNN` / :class:`torch.nn.GRU` / :class:`torch.nn.LSTM`.

* :func:`twin_cases`: the largest absolute differences of outputs and
  gradients (inputs and parameters) on random data.
* :func:`speed_cases`: forward+backward time and peak memory of the graph
  layer and of its twin on the same data (the graph is built beforehand;
  everything the layer does per call is timed).

Both return plain records (:class:`~pyg_relational.bench.results.TwinResult`,
:class:`~pyg_relational.bench.results.SpeedResult`) and never print.
"""
import statistics
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..graphs import chain_graph
from ..nn.lattice import LatticeConv
from ..nn.linear import FullyConnectedConv
from ..nn.recurrent import RecurrentConv
from ..transforms import image_to_nodes, nodes_to_image
from .results import SpeedResult, TwinResult
from .timing import measure, peak_memory

__all__ = ['twin_cases', 'speed_cases']

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
Progress = Optional[Callable[[str], None]]


def _flat(out) -> List[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    return [t for o in out if o is not None for t in _flat(o)]


def _run_side(fn, inputs: Sequence[Tensor], cotangents=None):
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point())
              for t in inputs]
    outs = _flat(fn(*leaves))
    if cotangents is None:
        gen = torch.Generator().manual_seed(0)
        cotangents = [torch.randn(o.shape, generator=gen,
                                  dtype=o.dtype).to(o.device) for o in outs]
    loss = sum((o * g).sum() for o, g in zip(outs, cotangents))
    loss.backward()
    return outs, [t.grad for t in leaves if t.grad is not None], cotangents


def _scaled_err(a: Tensor, b: Tensor) -> float:
    """``max|a - b|``, divided by ``max|b|`` where that exceeds 1."""
    if a.numel() == 0:
        return 0.
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1))


def _twin_errors(graph_fn, twin_fn, inputs: Sequence[Tensor],
                 params: Sequence[Tuple[Callable, Callable]]):
    """Largest difference graph - twin of the outputs, and of the input and
    parameter gradients, each relative to the twin's largest magnitude
    where that exceeds 1 (see :func:`twin_cases`)."""
    out_t, grad_t, cot = _run_side(twin_fn, inputs)
    out_g, grad_g, _ = _run_side(graph_fn, inputs, cot)
    err = max((_scaled_err(a, b) for a, b in zip(out_g, out_t)), default=0.)
    pairs = list(zip(grad_g, grad_t)) + [(a(), b()) for a, b in params]
    grad_err = max((_scaled_err(a, b) for a, b in pairs), default=0.)
    return err, grad_err


def _conv_graph_fn(layer: LatticeConv, spatial: Tuple[int, ...],
                   batch_size: int, device):
    """The graph layer in the twin's layout (images in, images out)."""
    edge_index, edge_type, out_size = layer.grid_graph(
        spatial if len(spatial) > 1 else spatial[0], batch_size)
    edge_index, edge_type = edge_index.to(device), edge_type.to(device)
    out_spatial = out_size if isinstance(out_size, tuple) else (out_size, )
    num_in = batch_size * int(torch.tensor(spatial).prod())
    num_out = batch_size * int(torch.tensor(out_spatial).prod())

    def run(image):
        out = layer(image_to_nodes(image), edge_index, edge_type,
                    size=(num_in, num_out))
        return nodes_to_image(out, batch_size, *out_spatial)

    return run, edge_index.size(1)


def _rnn_fns(layer: RecurrentConv, module, lengths: Tensor, device):
    lengths = lengths.cpu()
    steps = int(lengths.max())
    keep = (torch.arange(steps).view(1, -1) < lengths.view(-1, 1)).to(device)
    edge_index = chain_graph(lengths).to(device)

    def graph_fn(x):
        out, h_n = layer(x[keep], edge_index)
        padded = x.new_zeros(x.size(0), steps, out.size(-1))
        padded[keep] = out
        return padded, h_n

    def twin_fn(x):
        packed = pack_padded_sequence(x, lengths, batch_first=True,
                                      enforce_sorted=False)
        out, h_n = module(packed)
        return pad_packed_sequence(out, batch_first=True)[0], h_n

    return graph_fn, twin_fn, edge_index.size(1)


def twin_cases(quick: bool = True, device='cpu',
               progress: Progress = None) -> List[TwinResult]:
    """Every classic layer against its twin in float32 and float64.

    ``max_abs_err`` / ``max_abs_grad_err`` are the largest absolute
    differences of a tensor divided by the twin's largest absolute value
    where that exceeds 1 (so plain absolute errors for values of order one,
    relative ones for large weight gradients, which sum over every position
    of the batch and carry float32 rounding proportional to their size)."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    results = []

    def record(layer, twin, config, dtype, graph_fn, twin_fn, inputs,
               params):
        torch.manual_seed(0)
        err, grad_err = _twin_errors(graph_fn, twin_fn, inputs, params)
        dname = str(dtype).replace('torch.', '')
        results.append(TwinResult(layer, twin, f'{config}, {dname}', dname,
                                  err, grad_err, TOLERANCE[dtype]))
        if progress is not None:
            progress(f'{layer} vs {twin}: {config}, {dname}')

    def randn(*shape, dtype):
        return torch.randn(*shape, generator=gen, dtype=dtype).to(device)

    for dtype in (torch.float32, torch.float64):
        # Linear
        n_in, n_out, batch = (16, 8, 4) if quick else (256, 128, 64)
        linear = torch.nn.Linear(n_in, n_out).to(device, dtype)
        layer = FullyConnectedConv.from_module(linear)
        record('FullyConnectedConv', 'nn.Linear',
               f'{n_in}->{n_out} batch {batch}', dtype, layer, linear,
               [randn(batch, n_in, dtype=dtype)],
               [(lambda: layer.weight.grad,
                 lambda: linear.weight.grad.reshape(-1)),
                (lambda: layer.bias.grad, lambda: linear.bias.grad)])

        # Convolutions
        if quick:
            convs = [(torch.nn.Conv1d(3, 4, 3, stride=2, padding=1), (9, ),
                      2),
                     (torch.nn.Conv2d(3, 4, 3, stride=2, padding=1,
                                      groups=1), (6, 6), 2)]
        else:
            convs = [(torch.nn.Conv1d(16, 32, 5, stride=2, padding=2,
                                      dilation=2), (64, ), 8),
                     (torch.nn.Conv2d(16, 32, 3, padding=1), (16, 16), 4),
                     (torch.nn.Conv2d(16, 32, 3, stride=2, padding=1,
                                      groups=4), (16, 16), 4)]
        for conv, spatial, batch in convs:
            conv = conv.to(device, dtype)
            layer = LatticeConv.from_module(conv)
            run, _ = _conv_graph_fn(layer, spatial, batch, device)
            config = (f'{conv.in_channels}->{conv.out_channels} '
                      f'k={conv.kernel_size} s={conv.stride} '
                      f'p={conv.padding} d={conv.dilation} '
                      f'g={conv.groups} on {spatial} batch {batch}')
            record('LatticeConv', f'nn.{type(conv).__name__}', config, dtype,
                   run, conv,
                   [randn(batch, conv.in_channels, *spatial, dtype=dtype)],
                   [(lambda layer=layer: layer.weight.grad,
                     lambda conv=conv: conv.weight.grad.flatten(2).permute(
                         2, 1, 0)),
                    (lambda layer=layer: layer.bias.grad,
                     lambda conv=conv: conv.bias.grad)])

        # Recurrences: 2 layers, bidirectional, variable lengths
        hidden, lengths = (4, [5, 2, 4]) if quick else (32, [32, 17, 25, 9,
                                                            32, 1, 30, 12])
        lengths = torch.tensor(lengths)
        for cls in (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM):
            module = cls(3, hidden, num_layers=2, bidirectional=True,
                         batch_first=True).to(device, dtype)
            layer = RecurrentConv.from_module(module)
            graph_fn, twin_fn, _ = _rnn_fns(layer, module, lengths, device)
            params = [(lambda n=name: getattr(layer, n).grad,
                       lambda p=p: p.grad)
                      for name, p in module.named_parameters()]
            record('RecurrentConv', f'nn.{cls.__name__}',
                   f'3->{hidden} 2 layers bidirectional, lengths '
                   f'{lengths.tolist()}', dtype, graph_fn, twin_fn,
                   [randn(lengths.numel(), int(lengths.max()), 3,
                          dtype=dtype)], params)
    return results


def _fwd_bwd(fn: Callable[[], object], cotangents: Sequence[Tensor]):
    def step():
        outs = _flat(fn())
        sum((o * g).sum() for o, g in zip(outs, cotangents)).backward()
    return step


def speed_cases(quick: bool = True, device='cpu', progress: Progress = None,
                repeat: Optional[int] = None) -> List[SpeedResult]:
    r"""Forward+backward of each graph layer against its twin on the same
    data, float32. Each side runs in its own layout (node features for the
    graph layer, ``[B, C, H, W]`` / ``[B, T, F]`` for the twin; converted
    beforehand, not timed) with the same random cotangents, and the two are
    timed in alternation (median of ``repeat`` rounds after one warm-up
    round) so that both see the same machine load. The graph (and for
    :class:`LatticeConv` and :class:`RecurrentConv` everything they derive
    from it per call: type plan, topological schedule) is part of the layer
    call. ``quick=False`` uses Linear 1024→1024 batch 256, Conv2d 64→64 3×3
    (padding 1) on 32×32 batch 32 and GRU 256→256, length 128, batch 32;
    it also times :class:`LatticeConv`'s reference path
    (``fused=False``)."""
    device = torch.device(device)
    repeat = repeat or (3 if quick else 10)
    gen = torch.Generator().manual_seed(0)
    results = []

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device)

    def time_pair(operator, baseline, config, num_edges, graph_fn, twin_fn,
                  graph_in, twin_in, to_graph=lambda cot: cot):
        """``to_graph`` maps the twin's cotangents to the graph layout."""
        cot = [randn(*o.shape) for o in _flat(twin_fn(*twin_in))]
        graph_in = [t.detach().requires_grad_() for t in graph_in]
        twin_in = [t.detach().requires_grad_() for t in twin_in]
        run_graph = _fwd_bwd(lambda: graph_fn(*graph_in), to_graph(cot))
        run_twin = _fwd_bwd(lambda: twin_fn(*twin_in), cot)
        # Interleaved, so both sides see the same machine load.
        times = {run_graph: [], run_twin: []}
        for k in range(repeat + 1):
            for fn in (run_graph, run_twin):
                m = measure(fn, repeat=1, warmup=0, device=device,
                            memory=False)
                if k > 0:  # the first round is the warm-up
                    times[fn].append(m.median_s)
        info = {'threads': torch.get_num_threads(), 'repeat': repeat,
                'graph_times_s': times[run_graph],
                'baseline_times_s': times[run_twin]}
        results.append(SpeedResult(
            operator, baseline, config, str(device), num_edges,
            statistics.median(times[run_graph]),
            statistics.median(times[run_twin]),
            peak_memory(run_graph, device), peak_memory(run_twin, device),
            info))
        if progress is not None:
            progress(f'{operator} vs {baseline}: {config}')

    # Linear
    n_in, n_out, batch = (64, 64, 8) if quick else (1024, 1024, 256)
    linear = torch.nn.Linear(n_in, n_out).to(device)
    layer = FullyConnectedConv.from_module(linear)
    x = randn(batch, n_in)
    time_pair('FullyConnectedConv', 'nn.Linear',
              f'{n_in}->{n_out} batch {batch}', layer.edge_index.size(1),
              layer, linear, [x], [x])

    # Conv2d: node features [B*H*W, C] vs images [B, C, H, W]
    c, size, batch = (4, 8, 2) if quick else (64, 32, 32)
    conv = torch.nn.Conv2d(c, c, 3, padding=1).to(device)
    image = randn(batch, c, size, size)
    nodes = image_to_nodes(image).contiguous()  # [B*H*W, C]
    for fused in ((True, ) if quick else (True, False)):
        layer = LatticeConv.from_module(conv, fused=fused)
        edge_index, edge_type, _ = layer.grid_graph((size, size), batch)
        edge_index, edge_type = edge_index.to(device), edge_type.to(device)
        name = 'LatticeConv' if fused else 'LatticeConv (reference path)'
        time_pair(name, 'nn.Conv2d',
                  f'{c}->{c} 3x3 padding 1 on {size}x{size} batch {batch}',
                  edge_index.size(1),
                  lambda x, layer=layer, ei=edge_index, et=edge_type: layer(
                      x, ei, et), conv, [nodes], [image],
                  lambda cot: [image_to_nodes(cot[0]).contiguous()])

    # GRU: nodes [B*T, F] on chain_graph vs [B, T, F] batch first
    hidden, steps, batch = (8, 6, 2) if quick else (256, 128, 32)
    gru = torch.nn.GRU(hidden, hidden, batch_first=True).to(device)
    layer = RecurrentConv.from_module(gru)
    edge_index = chain_graph([steps] * batch).to(device)
    seq = randn(batch, steps, hidden)
    time_pair('RecurrentConv', 'nn.GRU',
              f'{hidden}->{hidden} length {steps} batch {batch}',
              edge_index.size(1), lambda x: layer(x, edge_index), gru,
              [seq.reshape(batch * steps, hidden)], [seq],
              lambda cot: [cot[0].reshape(batch * steps, hidden), cot[1]])
    return results
