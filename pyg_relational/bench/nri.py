r"""Neural Relational Inference: training, evaluation and the sparse-vs-dense
scaling benchmark.

* :func:`run_nri` trains :class:`~pyg_relational.nn.NRI` on simulated
  springs / charged particles and returns one row per run (edge accuracy,
  prediction MSE, training size, epochs, minutes).
* :func:`speed_cases` times one training step of the encoder on the complete
  candidate graph, sparse (:class:`~pyg_relational.nn.NRIEncoder`) against
  :class:`DenseNRIEncoder`, the reference's dense one-hot
  ``rel_rec`` / ``rel_send`` formulation of the *same* encoder (same weights,
  same numbers), for 5 to 100 particles.

Everything returns data; nothing prints.
"""
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..datasets.nri_physics import ChargedDataset, SpringsDataset
from ..graphs import complete_graph
from ..nn.nri import (NRI, NRIDecoder, NRIEncoder, NRIRNNDecoder,
                      edge_accuracy, nll_gaussian)
from .results import SpeedResult
from .timing import measure

__all__ = ['DenseNRIEncoder', 'make_datasets', 'skip_first_for',
           'build_model', 'autocast', 'evaluate',
           'train_epoch', 'train_nri', 'run_nri', 'speed_cases',
           'multi_step_mse']

Progress = Optional[Callable[[str], None]]
DATASETS = {'springs': SpringsDataset, 'charged': ChargedDataset}


# --------------------------------------------------------------------------
# The dense baseline of the scaling benchmark.
# --------------------------------------------------------------------------
class DenseNRIEncoder(torch.nn.Module):
    r"""The reference implementation's formulation of :class:`NRIEncoder`:
    node :math:`\to` edge and edge :math:`\to` node passes as matmuls with
    dense one-hot ``rel_rec`` / ``rel_send`` ``[n(n-1), n]`` matrices on
    ``[B, n, ...]`` tensors (every system of the batch has the same size and
    the complete candidate graph). It *shares* the sparse encoder's modules,
    so both compute the same numbers (tested), and the benchmark compares
    only the formulation.
    """
    def __init__(self, sparse: NRIEncoder, num_particles: int):
        super().__init__()
        self.sparse = sparse
        n = num_particles
        edge_index = complete_graph(n, self_loops=False)
        eye = torch.eye(n)
        self.register_buffer('rel_send', eye[edge_index[0]])  # [E, n]
        self.register_buffer('rel_rec', eye[edge_index[1]])  # [E, n]

    def forward(self, x: Tensor) -> Tensor:
        s = self.sparse
        B, n = x.shape[:2]
        h = s.node_mlp1(x.reshape(B * n, -1)).view(B, n, -1)  # [B, n, H]

        def node2edge(h):  # [B, n, H] -> [B, E, 2H] (sender, receiver)
            return torch.cat([self.rel_send @ h, self.rel_rec @ h], -1)

        def mlp(module, v):  # batch norm over all rows of the batch
            return module(v.reshape(-1, v.size(-1))).view(*v.shape[:2], -1)

        e_skip = mlp(s.node_to_edge1.edge_model, node2edge(h))  # [B, E, H]
        incoming = self.rel_rec.t() @ e_skip  # [B, n, H]
        degree = self.rel_rec.sum(0).clamp(min=1).view(1, n, 1)
        h = mlp(s.edge_to_node.node_model, incoming / degree)  # [B, n, H]
        e = torch.cat([e_skip, node2edge(h)], -1)  # [B, E, 3H]
        e = mlp(s.node_to_edge2.edge_model, e)  # [B, E, H]
        return s.lin_out(e)  # [B, E, K]


# --------------------------------------------------------------------------
# Data, model, training.
# --------------------------------------------------------------------------
def make_datasets(system: str = 'springs', num_particles: int = 5,
                  num_train: int = 10000, num_valid: int = 500,
                  num_test: int = 1000, root: Optional[str] = None,
                  seed: int = 0, num_steps: int = 5000,
                  test_steps: int = 10000):
    r"""Train / valid / test sets of one system; the test trajectories are
    ``test_steps`` long (99 frames by default, as in the paper) and every set
    is normalised with the training set's statistics."""
    if system not in DATASETS:
        raise ValueError(f"Unknown system={system!r}; expected one of "
                         f"{', '.join(map(repr, DATASETS))}")
    cls = DATASETS[system]
    train = cls(root, num_train, num_particles, num_steps, seed=seed)
    valid = cls(root, num_valid, num_particles, num_steps, seed=seed + 1,
                stats=train.stats)
    test = cls(root, num_test, num_particles, num_steps=test_steps,
               seed=seed + 2, stats=train.stats)
    return train, valid, test


def skip_first_for(system: str) -> bool:
    r"""The reference's ``skip_first`` per system: edge type 0 means "no
    interaction" (it sends no message) for *springs* only. In the *charged*
    system every pair interacts (type 0: opposite charges attract, type 1:
    like charges repel), so a model that skips type 0 cannot express
    attraction."""
    if system not in DATASETS:
        raise ValueError(f"Unknown system={system!r}; expected one of "
                         f"{', '.join(map(repr, DATASETS))}")
    return system == 'springs'


def build_model(num_frames: int = 49, num_features: int = 4,
                encoder_hidden: int = 256, decoder_hidden: int = 256,
                decoder: str = 'mlp', num_edge_types: int = 2,
                skip_first: bool = False, tau: float = 0.5,
                hard: bool = False) -> NRI:
    """An :class:`~pyg_relational.nn.NRI` with the paper's layout."""
    enc = NRIEncoder(num_frames * num_features, encoder_hidden,
                     num_edge_types)
    if decoder == 'mlp':
        dec = NRIDecoder(num_features, num_edge_types, decoder_hidden,
                         decoder_hidden, decoder_hidden,
                         skip_first=skip_first)
    elif decoder == 'rnn':
        dec = NRIRNNDecoder(num_features, num_edge_types, decoder_hidden,
                            skip_first=skip_first)
    else:
        raise ValueError(f"Unknown decoder={decoder!r}; expected 'mlp' or "
                         f"'rnn'")
    return NRI(enc, dec, tau=tau, hard=hard)


PRECISIONS = ('float32', 'bf16')


def autocast(device, precision: str = 'float32'):
    r"""The context of a forward pass at ``precision``: ``'float32'``
    (nothing changes) or ``'bf16'`` (:class:`torch.autocast` with bfloat16
    on the device's type, CPU or CUDA: matmuls in bfloat16, reductions and
    the loss in float32; parameters, gradients and Adam stay float32, so no
    gradient scaling is needed)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision={precision!r}; expected one of "
                         f"{', '.join(map(repr, PRECISIONS))}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=precision == 'bf16')


def _batches(num: int, batch_size: int, shuffle: bool,
             gen: Optional[torch.Generator] = None) -> Iterable[Tensor]:
    order = torch.randperm(num, generator=gen) if shuffle else \
        torch.arange(num)
    for start in range(0, num, batch_size):
        yield order[start:start + batch_size]


def multi_step_mse(pred: Tensor, target: Tensor, pred_steps: int) -> Tensor:
    r"""MSE per prediction horizon ``[pred_steps]``: entry :math:`k-1` is
    over the predictions made :math:`k` steps after the last ground-truth
    input (decoder run with teacher forcing every ``pred_steps``)."""
    err = (pred - target).pow(2).mean(dim=(0, 2))  # [T-1]
    horizon = torch.arange(err.numel(), device=err.device) % pred_steps
    out = err.new_zeros(pred_steps).index_add_(0, horizon, err)
    count = err.new_zeros(pred_steps).index_add_(0, horizon,
                                                 torch.ones_like(err))
    return out / count.clamp(min=1)


@torch.no_grad()
def evaluate(model: NRI, dataset, batch_size: int = 128,
             num_frames: Optional[int] = None, pred_steps: int = 10,
             device='cpu', precision: str = 'float32') -> Dict[str, float]:
    r"""Edge accuracy (best relabelling of types), NLL and the MSE of 1-step
    and ``pred_steps``-step predictions. With trajectories longer than
    ``num_frames`` (the test set), the encoder sees the first ``num_frames``
    and the decoder predicts the last ``num_frames``, as in the reference.
    ``precision``: see :func:`autocast`."""
    model.eval()
    num_frames = num_frames or dataset.num_frames
    logits, labels, nll, mse1, mse_k, nodes = [], [], 0., 0., 0., 0
    for index in _batches(len(dataset), batch_size, False):
        b = dataset.batch(index).to(device)
        x_enc, x_dec = b.x[:, :num_frames], b.x[:, -num_frames:]
        with autocast(device, precision):
            out = model(x_enc, b.edge_index, 1, x_dec)
            pred_k = model.decoder(x_dec, b.edge_index, out.z, pred_steps)
        out = out._replace(pred=out.pred.float(), logits=out.logits.float())
        pred_k = pred_k.float()
        nll += float(nll_gaussian(out.pred, x_dec[:, 1:], model.variance,
                                  1)) * 1.
        mse1 += float(F.mse_loss(out.pred, x_dec[:, 1:],
                                 reduction='sum'))
        mse_k += float(multi_step_mse(pred_k, x_dec[:, 1:],
                                      pred_steps)[-1]) * x_dec.size(0)
        nodes += x_dec.size(0)
        logits.append(out.logits)
        labels.append(b.edge_label)
    logits, labels = torch.cat(logits), torch.cat(labels)
    numel = max(nodes, 1) * (num_frames - 1) * dataset.x.size(-1)
    return dict(edge_accuracy=edge_accuracy(logits, labels),
                nll=nll / max(nodes, 1), mse_1=mse1 / numel,
                **{f'mse_{pred_steps}': mse_k / max(nodes, 1)})


def train_epoch(model: NRI, optimizer, dataset, batch_size: int = 128,
                pred_steps: int = 10, device='cpu',
                gen: Optional[torch.Generator] = None,
                on_batch: Optional[Callable[[float], None]] = None,
                precision: str = 'float32') -> Dict[str, float]:
    """One epoch of Adam on the negative ELBO; mean loss / nll / kl and the
    training edge accuracy. ``precision``: the forward pass's
    (:func:`autocast`)."""
    model.train()
    sums = dict(loss=0., nll=0., kl=0.)
    correct, count = [], []
    for index in _batches(len(dataset), batch_size, True, gen):
        b = dataset.batch(index).to(device)
        with autocast(device, precision):
            out = model.loss(b.x, b.edge_index, pred_steps)
        optimizer.zero_grad()
        out['loss'].backward()
        optimizer.step()
        for key in sums:
            sums[key] += float(out[key].detach()) * index.numel()
        correct.append(out['logits'].detach().float())
        count.append(b.edge_label)
        if on_batch is not None:
            on_batch(float(out['loss'].detach()))
    n = max(len(dataset), 1)
    row = {key: value / n for key, value in sums.items()}
    row['edge_accuracy'] = edge_accuracy(torch.cat(correct), torch.cat(count))
    return row


def train_nri(model: NRI, train, valid, epochs: int, batch_size: int = 128,
              lr: float = 5e-4, pred_steps: int = 10, device='cpu',
              seed: int = 0, time_limit_s: Optional[float] = None,
              on_epoch: Optional[Callable[[dict], None]] = None,
              on_batch: Optional[Callable[[float], None]] = None,
              state: Optional[dict] = None,
              precision: str = 'float32') -> List[dict]:
    r"""Train for ``epochs`` (or until ``time_limit_s``), validating after
    every epoch. ``state`` (from a checkpoint: ``model``, ``optimizer``,
    ``scheduler``, ``epoch``, ``history``, ``generator``) resumes a run;
    ``on_epoch(row)`` gets each row and the current ``state`` under
    ``row['state']`` (drop it before logging). ``precision``: the forward
    passes' (:func:`autocast`), training and validation."""
    autocast(device, precision)  # an unknown precision fails here
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # the paper halves the learning rate every 200 epochs
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 200, 0.5)
    gen = torch.Generator().manual_seed(seed)
    history, first, elapsed = [], 0, 0.
    if state is not None:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        gen.set_state(state['generator'])
        history = list(state['history'])
        first = state['epoch']
        elapsed = history[-1]['minutes'] * 60 if history else 0.
    for epoch in range(first, epochs):
        start = time.perf_counter()
        row = dict(epoch=epoch + 1)
        row.update({f'train_{k}': v for k, v in train_epoch(
            model, optimizer, train, batch_size, pred_steps, device, gen,
            on_batch, precision).items()})
        scheduler.step()
        row.update({f'valid_{k}': v for k, v in evaluate(
            model, valid, batch_size, pred_steps=pred_steps,
            device=device, precision=precision).items()})
        elapsed += time.perf_counter() - start
        row['minutes'] = elapsed / 60
        history.append(row)
        if on_epoch is not None:
            state = dict(model=model.state_dict(),
                         optimizer=optimizer.state_dict(),
                         scheduler=scheduler.state_dict(), epoch=epoch + 1,
                         history=history, generator=gen.get_state())
            on_epoch(dict(row, state=state))
        if time_limit_s is not None and elapsed >= time_limit_s:
            break
    return history


def run_nri(quick: bool = True, device='cpu', progress: Progress = None,
            systems: Sequence[str] = ('springs', ), num_particles: int = 5,
            num_train: Optional[int] = None, epochs: Optional[int] = None,
            root: Optional[str] = None, seed: int = 0,
            time_limit_min: Optional[float] = None) -> List[dict]:
    r"""Train and test NRI on each system; one row per system with the test
    edge accuracy, MSE, training size, epochs and minutes.

    ``quick=True`` trains 2 epochs on 64 tiny systems (seconds; the numbers
    mean nothing); ``quick=False`` is the recorded configuration of
    ``examples/nri.py`` (20000 training systems, batch 64, encoder 128 /
    decoder 64 hidden, 40 epochs or ``time_limit_min``), without its
    checkpoints. ``skip_first`` follows the system (:func:`skip_first_for`)
    in both modes."""
    torch.manual_seed(seed)
    rows = []
    for system in systems:
        if quick:
            train, valid, test = make_datasets(
                system, num_particles, num_train or 64, 16, 16, root, seed,
                num_steps=1000, test_steps=2000)
            model = build_model(9, encoder_hidden=16, decoder_hidden=16,
                                skip_first=skip_first_for(system))
            n_epochs, frames, steps = epochs or 2, 9, 4
        else:
            train, valid, test = make_datasets(
                system, num_particles, num_train or 20000, 500, 1000, root,
                seed)
            model = build_model(49, encoder_hidden=128, decoder_hidden=64,
                                skip_first=skip_first_for(system))
            n_epochs, frames, steps = epochs or 40, 49, 10
        history = train_nri(
            model, train, valid, n_epochs, batch_size=16 if quick else 64,
            pred_steps=steps, device=device, seed=seed,
            time_limit_s=None if time_limit_min is None else
            time_limit_min * 60)
        result = evaluate(model, test, num_frames=frames, pred_steps=steps,
                          device=device)
        rows.append(dict(system=system, num_particles=num_particles,
                         num_train=len(train), epochs=len(history),
                         minutes=history[-1]['minutes'],
                         **{f'test_{k}': v for k, v in result.items()}))
        if progress is not None:
            progress(f"nri {system}-{num_particles}: edge accuracy "
                     f"{result['edge_accuracy']:.3f}")
    return rows


# --------------------------------------------------------------------------
# Scaling benchmark.
# --------------------------------------------------------------------------
def speed_cases(quick: bool = True, device='cpu', progress: Progress = None,
                sizes: Optional[Sequence[int]] = None,
                batch_size: Optional[int] = None,
                hidden_channels: Optional[int] = None) -> List[SpeedResult]:
    r"""One training step (forward, backward, Adam) of the NRI encoder plus
    the edge-type KL on complete candidate graphs: sparse message passing vs
    the dense one-hot formulation, with the same weights. The sparse
    encoder multiplies the node columns of its edge MLPs' first layers per
    node (``EdgeBlock(node_first=True)``); ``extra['sparse_no_split_s']``
    times it without that (every layer per edge, as the dense one does).

    ``quick=False``: 5, 10, 20, 50, 100 particles, batch 8, hidden 64,
    49 frames; ``quick=True``: 5 and 20 particles, batch 4, hidden 32."""
    device = torch.device(device)
    sizes = sizes or ((5, 20) if quick else (5, 10, 20, 50, 100))
    batch_size = batch_size or (4 if quick else 8)
    hidden = hidden_channels or (32 if quick else 64)
    frames = 9 if quick else 49
    repeat, warmup = (3, 1) if quick else (5, 1)
    results = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        x = torch.randn(batch_size, n, frames, 4, generator=gen).to(device)
        enc = NRIEncoder(frames * 4, hidden).to(device)
        dense = DenseNRIEncoder(enc, n).to(device)
        edge_index = complete_graph([n] * batch_size,
                                    self_loops=False).to(device)
        x_nodes = x.reshape(batch_size * n, frames, 4)  # [B*n, T, F]
        opt = torch.optim.Adam(enc.parameters(), lr=1e-6)

        def step(fn):
            def run():
                opt.zero_grad()
                logits = fn()
                prob = logits.softmax(-1)
                loss = (prob * prob.clamp(min=1e-16).log()).sum()
                loss.backward()
                opt.step()
            return run

        sparse_fn = step(lambda: enc(x_nodes, edge_index))
        dense_fn = step(lambda: dense(x))
        ms = measure(sparse_fn, repeat, warmup, device)
        md = measure(dense_fn, repeat, warmup, device)
        # the sparse encoder without the node-side first layers (ablation)
        blocks = (enc.node_to_edge1, enc.node_to_edge2)
        for block in blocks:
            block.node_first = False
        m_plain = measure(sparse_fn, repeat, warmup, device, memory=False)
        for block in blocks:
            block.node_first = True
        results.append(SpeedResult(
            operator='NRIEncoder', baseline='dense rel_rec/rel_send',
            config=f'{n} particles, batch {batch_size}, hidden {hidden}, '
            f'{frames} frames', device=str(device),
            num_edges=int(edge_index.size(1)), graph_s=ms.median_s,
            baseline_s=md.median_s, graph_peak_bytes=ms.peak_bytes,
            baseline_peak_bytes=md.peak_bytes,
            extra=dict(num_particles=n,
                       speedup=md.median_s / ms.median_s,
                       sparse_no_split_s=m_plain.median_s)))
        if progress is not None:
            progress(f'NRIEncoder {n} particles')
    return results
