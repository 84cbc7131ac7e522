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
* :func:`target_cases`: the speed targets of issue 12 for
  :class:`~pyg_relational.nn.LatticeConv` (vs ``nn.Conv2d``) and
  :class:`~pyg_relational.nn.RecurrentConv` on chains (vs ``nn.LSTM`` /
  ``nn.GRU``), with the path that ran and whether the target is met.

Both return plain records (:class:`~pyg_relational.bench.results.TwinResult`,
:class:`~pyg_relational.bench.results.SpeedResult`) and never print.
"""
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..graphs import chain_graph
from ..structure import register, structure_of
from ..nn.lattice import LatticeConv
from ..nn.linear import FullyConnectedConv
from ..nn.recurrent import RecurrentConv
from ..transforms import image_to_nodes, nodes_to_image
from .results import SpeedResult, TwinResult
from .timing import (Target, compare_speed, measure_pair, run_cases,
                     scaled_error)

__all__ = ['twin_cases', 'speed_cases', 'target_cases']

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


_scaled_err = scaled_error


def _graph_to(edge_index: Tensor, device) -> Tensor:
    """``edge_index`` on ``device`` with its registered structure (a
    builder's graph moved to CUDA stays known to the dense paths)."""
    if edge_index.device == torch.device(device):
        return edge_index
    structure = structure_of(edge_index, recognise_unknown=False)
    return register(edge_index.to(device), structure)


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
    (``path='message'``)."""
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
        mg, mt = measure_pair(run_graph, run_twin, repeat, 1, device)
        info = {'threads': torch.get_num_threads(), 'repeat': repeat,
                'graph_times_s': mg.times_s, 'baseline_times_s': mt.times_s}
        results.append(SpeedResult(
            operator, baseline, config, str(device), num_edges, mg.median_s,
            mt.median_s, mg.peak_bytes, mt.peak_bytes, info,
            alternated=True))
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
    for path in (('auto', ) if quick else ('auto', 'message')):
        layer = LatticeConv.from_module(conv, path=path)
        edge_index, edge_type, _ = layer.grid_graph((size, size), batch)
        edge_index, edge_type = edge_index.to(device), edge_type.to(device)
        name = 'LatticeConv' if path == 'auto' \
            else 'LatticeConv (reference path)'
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


# --- issue 12 targets --------------------------------------------------------

LATTICE_TARGET = Target(1.2)
RECURRENT_TARGET = Target(1.1)


def _leaves(*items) -> List[Tensor]:
    """Parameters of the modules and the tensors among ``items``: what a
    step's gradients are reset on."""
    out = []
    for item in items:
        if isinstance(item, torch.nn.Module):
            out.extend(item.parameters())
        elif isinstance(item, Tensor):
            out.append(item)
    return out


def lattice_target(conv: torch.nn.Module, spatial: Tuple[int, ...],
                   batch: int, device='cpu', repeat: int = 7,
                   memory: bool = True) -> SpeedResult:
    """:class:`LatticeConv` built from ``conv`` (``nn.Conv1d/2d``) on its
    grid graph vs ``conv`` itself, images of ``spatial`` size, float32
    (see :func:`~pyg_relational.bench.timing.compare_speed`)."""
    device = torch.device(device)
    conv = conv.to(device)
    layer = LatticeConv.from_module(conv)
    edge_index, edge_type, out_size = layer.grid_graph(
        spatial if len(spatial) > 1 else spatial[0], batch)
    edge_index = _graph_to(edge_index, device)
    edge_type = edge_type.to(device)
    out_spatial = out_size if isinstance(out_size, tuple) else (out_size, )
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(batch, conv.in_channels, *spatial,
                        generator=gen).to(device)
    nodes = image_to_nodes(image).contiguous().requires_grad_()  # [B*P, C]
    image.requires_grad_()
    size = (nodes.size(0), batch * int(torch.tensor(out_spatial).prod()))
    k = 'x'.join(map(str, conv.kernel_size))
    config = (f"{conv.in_channels}->{conv.out_channels} {k} "
              f"stride {conv.stride[0]} padding {conv.padding[0]} on "
              f"{'x'.join(map(str, spatial))} batch {batch}")
    return compare_speed(
        'LatticeConv', f'nn.{type(conv).__name__}', config,
        lambda: layer(nodes, edge_index, edge_type, size=size),
        lambda: conv(image), _leaves(layer, nodes), _leaves(conv, image),
        layer=layer, twin_module=conv,
        align=lambda g, t: (nodes_to_image(g, batch, *out_spatial), t),
        num_edges=edge_index.size(1), target=LATTICE_TARGET, repeat=repeat,
        device=device, memory=memory,
        extra={'batch': batch, 'size': spatial})


def recurrent_target(module: torch.nn.RNNBase, length: int, batch: int,
                     device='cpu', repeat: int = 7,
                     memory: bool = True) -> SpeedResult:
    """:class:`RecurrentConv` built from ``module`` (batch first) on
    ``batch`` chains of ``length`` nodes vs ``module`` on ``[B, T, F]``
    (outputs compared and back-propagated; final states not)."""
    device = torch.device(device)
    module = module.to(device)
    layer = RecurrentConv.from_module(module)
    edge_index = _graph_to(chain_graph([length] * batch), device)
    gen = torch.Generator().manual_seed(0)
    seq = torch.randn(batch, length, module.input_size,
                      generator=gen).to(device)
    nodes = seq.reshape(batch * length, -1).clone().requires_grad_()
    seq.requires_grad_()
    hidden = module.hidden_size
    return compare_speed(
        'RecurrentConv', f'nn.{type(module).__name__}',
        f'{module.input_size}->{hidden} chains length {length} batch '
        f'{batch}', lambda: layer(nodes, edge_index)[0],
        lambda: module(seq)[0], _leaves(layer, nodes),
        _leaves(module, seq), layer=layer, twin_module=module,
        num_edges=edge_index.size(1), target=RECURRENT_TARGET,
        repeat=repeat, device=device, memory=memory,
        extra={'batch': batch, 'length': length})


def target_cases(quick: bool = True, device='cpu', progress: Progress = None,
                 repeat: Optional[int] = None, memory: bool = True
                 ) -> List[SpeedResult]:
    r"""Issue 12's targets for the classic layers, float32, forward+backward,
    graph layer built from its twin (same weights) on the same data:

    * :class:`LatticeConv` vs ``nn.Conv2d`` 3→64, 3×3, stride 2, padding 1
      on 224², batch 2, and 64→64, 3×3, padding 1 on 16², batch 32
      (target: time ≤ 1.2×);
    * :class:`RecurrentConv` on chains vs ``nn.LSTM`` and ``nn.GRU``,
      256→256, lengths 32 / 256 / 1024, batch 16 (target: time ≤ 1.1×).

    ``quick=True`` runs the same cases at small sizes (seconds). Medians of
    ``repeat`` alternated runs (default 7) after one warm-up round;
    ``extra['path']`` is the layer's ``last_path``."""
    repeat = repeat or 7
    torch.manual_seed(0)
    if quick:
        convs = [(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), (16, 16), 2),
                 (torch.nn.Conv2d(8, 8, 3, padding=1), (8, 8), 4)]
        hidden, lengths, batch = 16, (4, 16), 2
    else:
        convs = [(torch.nn.Conv2d(3, 64, 3, stride=2, padding=1), (224, 224),
                  2),
                 (torch.nn.Conv2d(64, 64, 3, padding=1), (16, 16), 32)]
        hidden, lengths, batch = 256, (32, 256, 1024), 16

    def recurrent(cls, length):
        torch.manual_seed(0)
        return recurrent_target(cls(hidden, hidden, batch_first=True),
                                length, batch, device, repeat, memory)

    cases = [partial(lattice_target, conv, spatial, size_batch, device,
                     repeat, memory) for conv, spatial, size_batch in convs]
    cases += [partial(recurrent, cls, length)
              for cls in (torch.nn.LSTM, torch.nn.GRU) for length in lengths]
    return run_cases(cases, progress)
