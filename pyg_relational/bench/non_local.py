r"""Benchmarks of :class:`~pyg_relational.nn.NonLocalBlock`.

* :func:`twin_cases`: every pairwise function on the complete pixel graph
  against :func:`dense_non_local`, the block written densely with batched
  matrix products (the way the paper's implementation computes it).
* :func:`speed_cases`: forward+backward of the block on an image batch vs
  :func:`dense_non_local` with the same weights.
* :func:`target_cases`: issue 12's target, the block on
  8×64×{8², 16², 32²} within 1.2× of :func:`dense_non_local`'s time.
* :func:`run_digits`: a small CNN with and without one non-local block on
  scikit-learn's bundled 8×8 digits (test accuracy over seeds).

Everything returns data; nothing is printed.
"""
import math
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.non_local import NonLocalBlock
from ..transforms import image_to_nodes, nodes_to_image
from .results import SpeedResult, TwinResult
from .timing import Target, compare_speed, measure, run_cases

__all__ = ['dense_non_local', 'twin_cases', 'speed_cases', 'target_cases',
           'run_digits',
           'DigitsNet', 'digits_data', 'fit_digits']

Progress = Optional[Callable[[str], None]]
_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
_POOL = {1: (F.max_pool1d, 2), 2: (F.max_pool2d, 2),
         3: (F.max_pool3d, (1, 2, 2))}


def dense_non_local(block: NonLocalBlock, x: Tensor) -> Tensor:
    r"""``block`` on a dense batch ``x [B, C, *S]`` computed densely: 1×1
    projections as matrix products, the pairwise matrix
    :math:`f [B, P, P']` with :func:`torch.bmm`, softmax or division by
    :math:`P'`, :math:`\mathbf{y} = f\, g` with :func:`torch.bmm`. The
    reference of :func:`twin_cases` and the baseline of :func:`speed_cases`
    (memory :math:`O(B P P')`, like the paper's implementation)."""
    b, c, *spatial = x.shape

    def project(lin, h):  # 1x1 convolution: [B, C_in, P] -> [B, C_out, P]
        return torch.matmul(lin.weight, h) + lin.bias.unsqueeze(-1)

    flat = x.reshape(b, c, -1)  # [B, C, P]
    value = project(block.g, flat)  # [B, C', P]
    key = flat if block.phi is None else project(block.phi, flat)
    query = flat if block.theta is None else project(block.theta, flat)
    if block.sub_sample:
        pool, kernel = _POOL[len(spatial)]
        value = pool(value.view(b, -1, *spatial), kernel).flatten(2)
        key = pool(key.view(b, -1, *spatial), kernel).flatten(2)
    if block.pairwise == 'concat':
        q = (block.score.att_dst.view(-1, 1) * query).sum(1)  # [B, P]
        k = (block.score.att_src.view(-1, 1) * key).sum(1)  # [B, P']
        f = F.relu(q.unsqueeze(2) + k.unsqueeze(1))  # [B, P, P']
    else:
        f = torch.bmm(query.transpose(1, 2), key)  # [B, P, P']
    if block.pairwise in ('gaussian', 'embedded_gaussian'):
        f = torch.softmax(f, dim=-1)
    else:
        f = f / key.size(-1)
    y = torch.bmm(f, value.transpose(1, 2)).transpose(1, 2)  # [B, C', P]
    if block.W_z is None:
        return y.reshape(b, -1, *spatial)
    z = project(block.W_z, y)  # [B, C, P]
    if block.bn is not None and z.numel() > 0:
        bn = block.bn
        z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight,
                         bn.bias, bn.training, bn.momentum, bn.eps)
    return (z + flat).view(x.shape)


def _randomise_bn(block: NonLocalBlock):
    """Non-zero BN scale so that the comparison sees W_z (a new block is
    the identity)."""
    if block.bn is not None:
        with torch.no_grad():
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(-0.5, 0.5)


def _max_grad_error(block: NonLocalBlock, x: Tensor):
    """Forward and backward of the block and of :func:`dense_non_local`
    (same weights, same cotangent): max abs errors."""
    outs, grads = [], []
    gen = torch.Generator().manual_seed(0)
    cot = None
    for fn in (block, lambda t: dense_non_local(block, t)):
        block.zero_grad()
        leaf = x.detach().clone().requires_grad_(True)
        out = fn(leaf)
        if cot is None:
            cot = torch.randn(out.shape, generator=gen,
                              dtype=out.dtype).to(out.device)
        (out * cot).sum().backward()
        outs.append(out.detach())
        grads.append([leaf.grad] + [p.grad.clone()
                                    for p in block.parameters()])
    err = (outs[0] - outs[1]).abs().max().item()
    grad_err = max((a - b).abs().max().item()
                   for a, b in zip(grads[0], grads[1]))
    return err, grad_err


def twin_cases(quick: bool = True, device='cpu',
               progress: Progress = None) -> List[TwinResult]:
    """Each pairwise function (with and without sub-sampling) on the
    complete graph of an image batch vs :func:`dense_non_local`, float64
    and float32 (float32 in eval mode: with batch statistics some gradients
    are zero up to rounding)."""
    channels, shape = (8, (2, 8, 4, 4)) if quick else (16, (2, 16, 8, 8))
    results = []
    for pairwise in NonLocalBlock.PAIRWISE:
        for sub_sample in (False, True):
            for dtype in (torch.float64, torch.float32):
                torch.manual_seed(0)
                block = NonLocalBlock(channels, pairwise=pairwise,
                                      sub_sample=sub_sample)
                block = block.to(device, dtype).train(dtype == torch.float64)
                _randomise_bn(block)
                x = torch.randn(*shape, device=device, dtype=dtype)
                err, grad_err = _max_grad_error(block, x)
                config = (f"{pairwise}, {channels}->{block.inter_channels}, "
                          f"{'x'.join(map(str, shape))}"
                          f"{', sub-sampled' if sub_sample else ''}, "
                          f"{'train' if block.training else 'eval'}")
                results.append(TwinResult(
                    'NonLocalBlock', 'dense bmm non-local', config,
                    str(dtype).replace('torch.', ''), err, grad_err,
                    _TOL[dtype]))
                if progress is not None:
                    progress(config)
    return results


def speed_cases(quick: bool = True, device='cpu',
                progress: Progress = None) -> List[SpeedResult]:
    """Forward+backward (training mode) of ``NonLocalBlock(64)`` on an image
    batch vs :func:`dense_non_local` with the same weights. The block builds
    its graph (and CSR pattern) once per input shape and reuses it, so the
    medians (after a warm-up call) exclude it; ``extra['graph_build_s']`` is
    that one-off cost of building the ``edge_index``. One case runs the
    message path (``path='message'``) for comparison."""
    if quick:
        configs = [(8, 2, 4, False, 'auto'), (8, 2, 4, False, 'message'),
                   (8, 2, 8, True, 'auto')]
        repeat, warmup = 2, 1
    else:  # (channels, batch, side, sub_sample, path)
        configs = [(64, 8, 16, False, 'auto'), (64, 8, 16, False, 'message'),
                   (64, 8, 16, True, 'auto'), (64, 8, 32, False, 'auto'),
                   (64, 8, 32, True, 'auto')]
        repeat, warmup = 5, 1
    results = []
    for channels, batch, side, sub_sample, path in configs:
        torch.manual_seed(0)
        block = NonLocalBlock(channels, sub_sample=sub_sample,
                              path=path).to(device)
        _randomise_bn(block)
        x = torch.randn(batch, channels, side, side, device=device,
                        requires_grad=True)

        def graph():
            block(x).sum().backward()

        def dense():
            dense_non_local(block, x).sum().backward()

        g = measure(graph, repeat, warmup, device)
        d = measure(dense, repeat, warmup, device)
        _, (edge_index, _) = block(x.detach(), return_attention_weights=True)
        start = time.perf_counter()
        _build_graph(block, batch, side)
        build_s = time.perf_counter() - start
        config = (f"embedded_gaussian {channels}ch {side}x{side} B={batch}"
                  f"{' sub-sampled' if sub_sample else ''}")
        results.append(SpeedResult(
            'NonLocalBlock' + ('' if path == 'auto' else f'(path={path!r})'),
            'dense bmm non-local', config, str(device),
            edge_index.size(1), g.median_s, d.median_s, g.peak_bytes,
            d.peak_bytes, {'graph_build_s': build_s,
                           'threads': torch.get_num_threads()}))
        if progress is not None:
            progress(config)
    return results


def _build_graph(block: NonLocalBlock, batch: int, side: int):
    from ..graphs import bipartite_graph, complete_graph
    positions = side * side
    if block.sub_sample:
        return bipartite_graph([positions // 4] * batch, [positions] * batch)
    return complete_graph([positions] * batch)


# ---------------------------------------------------------------------------
# Digits: a small CNN with and without a non-local block.

NON_LOCAL_TARGET = Target(1.2)


def target_cases(quick: bool = True, device='cpu', progress: Progress = None,
                 repeat: Optional[int] = None, memory: bool = True
                 ) -> List[SpeedResult]:
    """Issue 12's target: ``NonLocalBlock(64)`` (embedded Gaussian, no
    sub-sampling, training mode) on ``8×64×{8², 16², 32²}`` vs
    :func:`dense_non_local` with the same weights, float32,
    forward+backward, medians of ``repeat`` alternated runs (default 7)
    after one warm-up round, which also builds and caches the block's graph
    for the input shape. Target: time ≤ 1.2×. ``quick=True``: 2×8×{4², 8²}.
    """
    from .classic import _leaves
    repeat = repeat or 7
    channels, batch, sides = (8, 2, (4, 8)) if quick else (64, 8,
                                                           (8, 16, 32))

    def case(side: int) -> SpeedResult:
        torch.manual_seed(0)
        block = NonLocalBlock(channels).to(device)
        _randomise_bn(block)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, channels, side, side, generator=gen).to(
            device)
        x_graph = x.clone().requires_grad_()
        x_dense = x.requires_grad_()
        return compare_speed(
            'NonLocalBlock', 'dense bmm non-local',
            f'embedded_gaussian {batch}x{channels}x{side}x{side}',
            lambda: block(x_graph), lambda: dense_non_local(block, x_dense),
            _leaves(block, x_graph), _leaves(block, x_dense), layer=block,
            num_edges=batch * side ** 4, target=NON_LOCAL_TARGET,
            repeat=repeat, device=device, memory=memory,
            extra={'batch': batch, 'side': side})

    return run_cases([partial(case, side) for side in sides], progress)


def _conv_layer():
    """``LatticeConv`` (graph convolution, issue 3) when it is exported,
    else :class:`torch.nn.Conv2d`; returns ``(class, name)``."""
    try:
        from ..nn import LatticeConv
        return LatticeConv, 'LatticeConv'
    except ImportError:
        return None, 'Conv2d'


class DigitsNet(torch.nn.Module):
    r"""conv 3×3 (1→16) – ReLU – conv 3×3 stride 2 (16→32) – ReLU –
    [``NonLocalBlock(32)`` on the 4×4 map] – conv 3×3 (32→32) – ReLU –
    global average pool – linear (32→10). With ``at=1`` the block sits
    after the first convolution instead (``NonLocalBlock(16)`` on the 8×8
    map).

    The convolutions are :class:`~pyg_relational.nn.LatticeConv` on
    grid graphs when that layer is available (``lattice=None``: auto), else
    :class:`torch.nn.Conv2d`.

    Args:
        non_local (str, optional): pairwise function of the non-local block,
            or :obj:`None` for the plain CNN. (default: :obj:`None`)
        lattice (bool, optional): force the convolution kind.
            (default: :obj:`None`)
        at (int, optional): the block follows convolution ``at`` (1 or 2).
            (default: :obj:`2`)
    """
    SPECS = ((1, 16, 1), (16, 32, 2), (32, 32, 1))  # (in, out, stride)

    def __init__(self, non_local: Optional[str] = None,
                 lattice: Optional[bool] = None, at: int = 2):
        super().__init__()
        cls, name = _conv_layer()
        if lattice is None:
            lattice = cls is not None
        if lattice and cls is None:
            raise ValueError("lattice=True needs LatticeConv, which "
                             "pyg_relational.nn does not export yet")
        self.lattice = lattice
        self.conv_name = 'LatticeConv' if lattice else 'Conv2d'
        if lattice:
            self.convs = torch.nn.ModuleList(
                cls(i, o, (3, 3), stride=s, padding=1)
                for i, o, s in self.SPECS)
        else:
            self.convs = torch.nn.ModuleList(
                torch.nn.Conv2d(i, o, 3, stride=s, padding=1)
                for i, o, s in self.SPECS)
        if at not in (1, 2):
            raise ValueError(f"'at' must be 1 or 2 (got {at!r})")
        self.at = at
        self.block = None if non_local is None else NonLocalBlock(
            self.SPECS[at - 1][1], pairwise=non_local)
        self.lin = torch.nn.Linear(32, 10)

    def _conv(self, k: int, x: Tensor) -> Tensor:
        conv = self.convs[k]
        if not self.lattice:
            return conv(x)
        b, _, h, w = x.shape
        edge_index, edge_type, out_size = conv.grid_graph((h, w), b)
        edge_index, edge_type = edge_index.to(x.device), edge_type.to(
            x.device)
        out = conv(image_to_nodes(x), edge_index, edge_type,
                   size=(b * h * w, b * math.prod(out_size)))
        return nodes_to_image(out, b, *out_size)  # [B, C_out, H', W']

    def forward(self, x: Tensor) -> Tensor:  # x: [B, 1, 8, 8]
        for k in range(3):
            x = F.relu(self._conv(k, x))  # [B, 16, 8, 8], [B, 32, 4, 4], ..
            if k + 1 == self.at and self.block is not None:
                x = self.block(x)  # complete graph over the positions
        return self.lin(x.mean(dim=(2, 3)))


def digits_data(device='cpu'):
    """scikit-learn's 8×8 digits scaled to [0, 1], fixed stratified 70/30
    split: ``(x_train [1257, 1, 8, 8], y_train, x_test [540, 1, 8, 8],
    y_test)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(torch.arange(len(labels)).numpy(),
                                   test_size=0.3, random_state=0,
                                   stratify=labels.numpy())
    train, test = torch.as_tensor(train), torch.as_tensor(test)
    images = images.unsqueeze(1).to(device)  # [G, 1, 8, 8]
    labels = labels.to(device)
    return images[train], labels[train], images[test], labels[test]


def fit_digits(model: torch.nn.Module, x: Tensor, y: Tensor, epochs: int,
               seed: int = 0, lr: float = 3e-3, batch_size: int = 64):
    """Adam on the cross-entropy, shuffled mini-batches (order from
    ``seed``), then "precise BN": the BatchNorm running statistics are
    recomputed as exact averages over the training set with the final
    weights (as the non-local paper's code base does), because the running
    averages of the last steps can lag far behind the weights. Returns the
    model (in training mode)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=gen).split(batch_size):
            batch = batch.to(x.device)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    _precise_bn(model, x, batch_size)
    return model


def _precise_bn(model: torch.nn.Module, x: Tensor, batch_size: int):
    """Running mean/var of every BatchNorm = average of the batch
    statistics over ``x`` (cumulative average, ``momentum=None``)."""
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        for batch in x.split(batch_size):
            model(batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def run_digits(quick: bool = True,
               seeds: Union[int, Sequence[int]] = (0, 1, 2), device='cpu',
               progress: Progress = None, epochs: Optional[int] = None,
               pairwise: str = 'embedded_gaussian') -> List[Dict]:
    r"""Train :class:`DigitsNet` without and with a non-local block on
    scikit-learn's 8×8 digits (fixed stratified 70/30 split; the seed sets
    the initialisation and batch order). Adam (lr 3e-3), batch 64, precise BN
    before testing (see :func:`fit_digits`).

    Args:
        quick (bool, optional): 5 epochs on 300 training images (seconds)
            instead of 30 epochs on all 1257. (default: :obj:`True`)
        seeds (int or Sequence[int], optional): seeds, or their number.
            (default: :obj:`(0, 1, 2)`)
        device (str, optional): device. (default: :obj:`'cpu'`)
        progress (callable, optional): called with a short string per run.
        epochs (int, optional): override the number of epochs.
        pairwise (str, optional): pairwise function of the block.
            (default: :obj:`'embedded_gaussian'`)

    Returns:
        One ``dict`` per model and seed: ``model``, ``conv``, ``seed``,
        ``epochs``, ``train_size``, ``test_size``, ``params``,
        ``test_acc``, ``train_s``.
    """
    if isinstance(seeds, int):
        seeds = tuple(range(seeds))
    x_train, y_train, x_test, y_test = digits_data(device)
    if quick:
        x_train, y_train = x_train[:300], y_train[:300]
    epochs = epochs if epochs is not None else (5 if quick else 30)
    rows = []
    for seed in seeds:
        for non_local in (None, pairwise):
            torch.manual_seed(seed)
            model = DigitsNet(non_local).to(device)
            start = time.perf_counter()
            fit_digits(model, x_train, y_train, epochs, seed)
            train_s = time.perf_counter() - start
            model.eval()
            with torch.no_grad():
                pred = model(x_test).argmax(-1)
            name = model.conv_name + ' CNN' + (
                '' if non_local is None else f' + NonLocalBlock({non_local})')
            rows.append({
                'model': name, 'conv': model.conv_name, 'seed': seed,
                'epochs': epochs, 'train_size': len(y_train),
                'test_size': len(y_test),
                'params': sum(p.numel() for p in model.parameters()),
                'test_acc': (pred == y_test).float().mean().item(),
                'train_s': train_s,
            })
            if progress is not None:
                progress(f"{name} seed {seed}: "
                         f"{rows[-1]['test_acc']:.4f}")
    return rows
