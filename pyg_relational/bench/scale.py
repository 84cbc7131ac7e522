r"""The ``scale`` suite: training beyond what one full-graph pass fits.

* **sampling** — node classification with
  :class:`~pyg_relational.nn.AttentionConv` (or
  :class:`~pyg_relational.nn.GraphNetwork`) blocks on a deterministic
  synthetic stochastic-block-model graph (:func:`sbm_graph`, about 10
  edges per node) with PyG's
  :class:`~torch_geometric.loader.NeighborLoader` at a fixed batch size and
  fan-out. Each graph size runs in a fresh Python process
  (:func:`run_sampling_point`), which reports its resident memory after
  building the graph and the loader, the peak during training (the peak is
  reset between the two on Linux), seconds per epoch (an epoch here is a
  fixed number of batches; the time of a pass over every training node is
  extrapolated) and test accuracy. The working set of training stays flat
  as the graph grows; the graph itself (features, edges, the loader's CSC
  copy) grows with it.

  ``NeighborLoader`` samples with ``pyg-lib`` or ``torch-sparse`` (the
  ``full`` extra); without either the suite returns one row saying so
  instead of failing.
* **nri** — :class:`~pyg_relational.nn.NRI` on local springs with many
  particles and the k-nearest-neighbour candidate graph of the first frame
  (:func:`knn_candidates`): step time and peak memory against the complete
  candidate graph and the reference's dense ``rel_rec`` / ``rel_send``
  encoder, where they fit (:func:`nri_step_rows`), and the test edge
  accuracy on the candidate edges after a short training run
  (:func:`nri_train_row`).
* **long-attention** — self-attention on one complete sequence of 1k-16k
  tokens given as its structure
  (:class:`~pyg_relational.structure.CompleteBlocks`, the dense SDPA path,
  no edge list) against the sparse and message paths on the ``n^2`` edge
  list, where they fit (:func:`long_attention_rows`).

``benchmarks/results/scale.md`` holds the recorded figures and their
commands.

Everything returns data; nothing prints except the worker entry point
(``python -m pyg_relational.bench.scale sampling '{json}'``), which writes
one JSON line for its parent.
"""
import json
import math
import os
import resource
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['sbm_graph', 'sampler_missing', 'NodeClassifier',
           'run_sampling_point', 'sampling_rows', 'knn_candidates',
           'nri_step_rows', 'nri_train_row', 'nri_rows',
           'long_attention_rows', 'run_scale',
           'process_memory']

Progress = Optional[Callable[[str], None]]
_CHUNK_TARGETS = 1 << 17  # targets per chunk of sbm_graph (fixed: the
# random stream, hence the graph, depends on it)


# --------------------------------------------------------------------------
# Process memory (resident set size).
# --------------------------------------------------------------------------
def _status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) of this process; Linux
    only (``/proc/self/clear_refs``)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _trim_heap():
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so
    that the resident set after a phase holds what is live, not what the
    allocator kept; a no-op elsewhere."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def process_memory() -> Dict[str, Optional[int]]:
    r"""``dict(rss_bytes, peak_bytes)``: current resident set size and its
    peak (``VmRSS`` / ``VmHWM`` on Linux; elsewhere the peak from
    :func:`resource.getrusage` and no current value)."""
    rss, hwm = _status_kib('VmRSS'), _status_kib('VmHWM')
    if hwm is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == 'darwin' else 1024  # bytes vs KiB
        return dict(rss_bytes=None, peak_bytes=peak * scale)
    return dict(rss_bytes=rss * 1024, peak_bytes=hwm * 1024)


# --------------------------------------------------------------------------
# A large synthetic graph with learnable labels.
# --------------------------------------------------------------------------
def sbm_graph(num_nodes: int, num_classes: int = 8, avg_degree: int = 10,
              p_in: float = 0.7, num_features: int = 16,
              signal: float = 1.0, test_fraction: float = 0.2,
              seed: int = 0):
    r"""A stochastic-block-model-like graph, deterministic from ``seed``,
    built chunk by chunk (nothing dense, nothing of size
    :math:`|\mathcal{V}|^2`): node :math:`i` gets a class
    :math:`y_i` uniformly at random and ``avg_degree`` incoming edges, each
    from a node of its own class with probability ``p_in`` and from any node
    otherwise (self-loops and repeated pairs are dropped, so the degree is
    slightly below ``avg_degree``). Features are a class centroid (norm
    ``signal``) plus standard normal noise, so a node alone is a weak
    guess of its class and its neighbourhood a good one.

    Returns:
        :class:`torch_geometric.data.Data` with ``x [N, F]``, ``y [N]``,
        ``edge_index [2, E]`` (sorted by target) and boolean
        ``train_mask`` / ``test_mask``.

    Example:
        >>> from pyg_relational.bench.scale import sbm_graph
        >>> data = sbm_graph(1000, seed=0)
        >>> data.num_nodes, data.edge_index.size(1) <= 10 * 1000
        (1000, True)
    """
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce
    if num_nodes < 2 or num_classes < 1 or avg_degree < 1:
        raise ValueError(f"sbm_graph needs num_nodes >= 2, num_classes >= 1 "
                         f"and avg_degree >= 1 (got {num_nodes}, "
                         f"{num_classes}, {avg_degree})")
    gen = torch.Generator().manual_seed(int(seed))
    N, d = int(num_nodes), int(avg_degree)
    y = torch.randint(num_classes, (N, ), generator=gen)
    by_class = torch.argsort(y, stable=True)  # node ids grouped by class
    count = torch.bincount(y, minlength=num_classes)
    start = torch.cumsum(count, 0) - count
    parts = []
    for lo in range(0, N, _CHUNK_TARGETS):
        dst = torch.arange(lo, min(lo + _CHUNK_TARGETS, N))
        dst = dst.repeat_interleave(d)  # [chunk * d]
        c = y[dst]
        pick = (torch.rand(dst.numel(), generator=gen) * count[c]).long()
        same = by_class[start[c] + pick.clamp(max=N - 1)]
        other = torch.randint(N, (dst.numel(), ), generator=gen)
        inside = torch.rand(dst.numel(), generator=gen) < p_in
        src = torch.where(inside, same, other)
        keep = src != dst
        parts.append(torch.stack([src[keep], dst[keep]]))
    edge_index = torch.cat(parts, 1)
    del parts
    # sorted by target (col), repeated pairs removed
    edge_index = coalesce(edge_index, num_nodes=N, sort_by_row=False)
    centroid = torch.randn(num_classes, num_features, generator=gen)
    centroid = centroid * signal / centroid.norm(dim=1, keepdim=True)
    x = torch.randn(N, num_features, generator=gen)
    x += centroid[y]
    test_mask = torch.rand(N, generator=gen) < test_fraction
    return Data(x=x, y=y, edge_index=edge_index, train_mask=~test_mask,
                test_mask=test_mask, num_nodes=N)


def sampler_missing() -> Optional[str]:
    r"""Why :class:`~torch_geometric.loader.NeighborLoader` cannot sample
    here (neither ``pyg-lib`` nor ``torch-sparse`` importable), or
    :obj:`None`."""
    import torch_geometric.typing as pyg_typing
    if pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE:
        return None
    return ("NeighborLoader needs pyg-lib or torch-sparse for neighbour "
            "sampling and neither is installed; install one (e.g. pip "
            "install -e '.[full]' in the clone: the extra is not on the "
            "package index) to run this part")


# --------------------------------------------------------------------------
# Model and one measured run.
# --------------------------------------------------------------------------
class NodeClassifier(torch.nn.Module):
    r"""Two message-passing blocks and a linear read-out: ``'attention'``
    uses :class:`~pyg_relational.nn.AttentionConv` (scaled dot product,
    2 heads, self-loops added), ``'graph_network'`` uses
    :class:`~pyg_relational.nn.GraphNetwork` (edge and node blocks, no
    globals)."""

    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, model: str = 'attention'):
        super().__init__()
        from ..nn import AttentionConv, GraphNetwork
        if model not in ('attention', 'graph_network'):
            raise ValueError(f"model={model!r} is not one of 'attention', "
                             f"'graph_network'")
        self.model = model
        H = hidden_channels
        if model == 'attention':
            self.conv1 = AttentionConv(in_channels, H // 2, heads=2,
                                       score='scaled_dot',
                                       add_self_loops=True)
            self.conv2 = AttentionConv(H, H // 2, heads=2,
                                       score='scaled_dot',
                                       add_self_loops=True)
        else:
            self.conv1 = GraphNetwork.from_sizes(in_channels, 0, 0, (H, H, 0))
            self.conv2 = GraphNetwork.from_sizes(H, 0, 0, (H, H, 0))
        self.head = torch.nn.Linear(H, out_channels)

    def _conv(self, conv, x, edge_index):
        out = conv(x, edge_index)
        return out[0] if isinstance(out, tuple) else out

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = torch.relu(self._conv(self.conv1, x, edge_index))
        x = torch.relu(self._conv(self.conv2, x, edge_index))
        return self.head(x)


def run_sampling_point(num_nodes: int, batch_size: int = 1024,
                       fan_out: Sequence[int] = (10, 10),
                       num_batches: int = 50, eval_nodes: int = 4096,
                       hidden_channels: int = 32, model: str = 'attention',
                       lr: float = 5e-3, shuffle: bool = True,
                       seed: int = 0) -> dict:
    r"""Build :func:`sbm_graph` of ``num_nodes`` nodes, train
    ``num_batches`` mini-batches of ``batch_size`` seed nodes sampled with
    ``fan_out`` neighbours per hop, then test on ``eval_nodes`` test nodes.
    Meant to run alone in a fresh process (the memory figures are the
    process's); returns one row. ``shuffle=True`` draws the seed nodes in
    a new random order each epoch (PyTorch's sampler holds that order as
    a Python list: about 36 bytes per training node)."""
    from torch_geometric.loader import NeighborLoader
    reason = sampler_missing()
    if reason is not None:
        raise RuntimeError(reason)
    torch.manual_seed(seed)
    base = process_memory()['rss_bytes']
    start = time.perf_counter()
    data = sbm_graph(num_nodes, seed=seed)
    train_idx = data.train_mask.nonzero().view(-1)
    test_idx = data.test_mask.nonzero().view(-1)[:eval_nodes]
    loader = NeighborLoader(data, list(fan_out), batch_size=batch_size,
                            input_nodes=train_idx, shuffle=shuffle)
    test_loader = NeighborLoader(data, list(fan_out), batch_size=batch_size,
                                 input_nodes=test_idx)
    build_s = time.perf_counter() - start
    _trim_heap()
    graph = process_memory()
    net = NodeClassifier(data.num_features, hidden_channels,
                         int(data.y.max()) + 1, model)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    reset = _reset_peak()
    step, sampled, start = 0, 0, time.perf_counter()
    while step < num_batches:
        for batch in loader:
            sampled += batch.num_nodes
            out = net(batch.x, batch.edge_index)[:batch.batch_size]
            loss = F.cross_entropy(out, batch.y[:batch.batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= num_batches:
                break
    train_s = time.perf_counter() - start
    correct = total = 0
    net.eval()
    with torch.no_grad():
        for batch in test_loader:
            out = net(batch.x, batch.edge_index)[:batch.batch_size]
            correct += int((out.argmax(-1) ==
                            batch.y[:batch.batch_size]).sum())
            total += batch.batch_size
    trained = process_memory()
    path = getattr(net.conv1, 'last_path', None)
    full_epoch = math.ceil(train_idx.numel() / batch_size)
    graph_rss = graph['rss_bytes']
    return dict(
        experiment='sampling', model=model, num_nodes=num_nodes,
        num_edges=int(data.edge_index.size(1)), batch_size=batch_size,
        fan_out='-'.join(map(str, fan_out)), batches=num_batches,
        shuffle=shuffle,
        sampled_nodes=sampled // num_batches, path=path, build_s=build_s,
        epoch_s=train_s,
        batch_s=train_s / num_batches,
        full_epoch_est_s=train_s / num_batches * full_epoch,
        test_acc=correct / max(total, 1), test_nodes=total,
        start_rss_bytes=base, graph_rss_bytes=graph_rss,
        graph_peak_bytes=graph['peak_bytes'],
        train_peak_bytes=trained['peak_bytes'],
        train_extra_bytes=(trained['peak_bytes'] - graph_rss
                           if reset and graph_rss is not None else None),
        peak_reset=reset, threads=torch.get_num_threads(),
        loadavg=_loadavg())


def _loadavg() -> Optional[str]:
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return None


def _in_subprocess(kind: str, kwargs: dict, timeout: float = 3600) -> dict:
    """Run ``run_<kind>_point(**kwargs)`` in a fresh interpreter; its row."""
    cmd = [sys.executable, '-m', 'pyg_relational.bench.scale', kind,
           json.dumps(kwargs)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"scale worker {kind} {kwargs} failed: "
                           f"{proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sampling_rows(quick: bool = True, progress: Progress = None,
                  sizes: Optional[Sequence[int]] = None,
                  models: Sequence[str] = ('attention', ),
                  **kwargs) -> List[dict]:
    r"""One :func:`run_sampling_point` row per graph size and model, each
    in its own process. ``quick``: 10k and 100k nodes, batch 128, 5
    batches; otherwise 100k, 300k and 1M nodes, batch 512, 100 batches
    (fan-out 10-10 both; ``sampled_nodes``, the mean subgraph size, shows
    how far the batches overlap on the smaller graphs)."""
    reason = sampler_missing()
    if reason is not None:
        return [dict(experiment='sampling', note=reason)]
    sizes = sizes or ((10_000, 100_000) if quick else
                      (100_000, 300_000, 1_000_000))
    opts = dict(batch_size=128, num_batches=5, eval_nodes=512) if quick \
        else dict(batch_size=512, num_batches=100, eval_nodes=8192)
    opts.update(kwargs)
    rows = []
    for model in models:
        for n in sizes:
            rows.append(_in_subprocess('sampling', dict(num_nodes=n,
                                                        model=model, **opts)))
            if progress is not None:
                progress(f'sampling {model} {n} nodes')
    return rows


# --------------------------------------------------------------------------
# NRI on a sparse candidate graph.
# --------------------------------------------------------------------------
def knn_candidates(pos: Tensor, k: int = 8) -> Tensor:
    r"""The candidate graph of NRI on many particles: the ``k`` nearest
    neighbours :math:`j \neq i` of every particle :math:`i` (Euclidean, in
    ``pos``), as edges :math:`j \to i`.

    Args:
        pos (Tensor): positions ``[B, n, D]`` of ``B`` systems of ``n``
            particles (e.g. the first frame).
        k (int, optional): neighbours per particle, at most ``n - 1``.
            (default: :obj:`8`)

    Returns:
        ``edge_index [2, B*n*k]`` on the ``B*n`` particles laid end to end,
        sorted by target (``k`` edges per target, nearest first).

    Example:
        >>> from pyg_relational.bench.scale import knn_candidates
        >>> pos = torch.tensor([[[0.], [1.], [3.]]])
        >>> knn_candidates(pos, k=1)
        tensor([[1, 0, 1],
                [0, 1, 2]])
    """
    if not isinstance(pos, Tensor) or pos.dim() != 3:
        raise ValueError(f"'pos' must be [B, n, D] (got "
                         f"{getattr(pos, 'shape', type(pos).__name__)})")
    B, n, _ = pos.shape
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} must be in [1, n-1={n - 1}] for systems of "
                         f"{n} particles")
    parts = []
    for b in range(B):  # one [n, n] distance matrix at a time
        dist = torch.cdist(pos[b], pos[b])  # [n, n]
        dist.fill_diagonal_(float('inf'))
        nbr = dist.topk(k, dim=1, largest=False).indices  # [n, k]
        parts.append(nbr.reshape(-1) + b * n)
    src = torch.cat(parts)  # [B*n*k]
    dst = torch.arange(B * n, device=pos.device).repeat_interleave(k)
    return torch.stack([src, dst])


def _nri_batch(dataset, index: Tensor, k: Optional[int]):
    r"""``(x [B*n, T, 4], edge_index, edge_label)`` of systems ``index``
    on the kNN candidate graph (``k``) or the complete one (``None``)."""
    x = dataset.x[index]  # [B, n, T, 4]
    B, n = x.shape[:2]
    if k is None:
        from ..graphs import complete_graph
        edge_index = complete_graph([n] * B, self_loops=False)
    else:
        edge_index = knn_candidates(x[:, :, 0, :2], k)
    # the dataset labels the complete graph, by target: edge j -> i of
    # system b is entry i*(n-1) + j - [j > i] of row b
    src, dst = edge_index % n
    col = dst * (n - 1) + src - (src > dst).long()
    label = dataset.edge_label[index][edge_index[1] // n, col]
    return x.reshape(B * n, *x.shape[2:]), edge_index, label


def _available_bytes() -> int:
    kib = None
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    kib = int(line.split()[1])
    except OSError:
        pass
    return (kib or 4 * 2**20) * 1024


def nri_step_rows(num_particles: int, batch_size: int = 1,
                  hidden_channels: int = 64, num_frames: int = 9,
                  k: int = 8, pred_steps: int = 4, repeat: int = 3,
                  budget_bytes: Optional[int] = None, seed: int = 0
                  ) -> List[dict]:
    r"""Time and peak memory (allocations, :func:`~pyg_relational.bench.
    timing.peak_memory`) of one training step on random trajectories:
    the whole :class:`~pyg_relational.nn.NRI` (encoder, decoder, negative
    ELBO, Adam) on the kNN and the complete candidate graphs, and the
    encoder alone (edge-type KL, Adam) on the kNN graph, the complete
    graph and the reference's dense one-hot ``rel_rec`` / ``rel_send``
    formulation (:class:`~pyg_relational.bench.nri.DenseNRIEncoder`, same
    weights). A case whose estimated size exceeds ``budget_bytes``
    (default: a third of the memory available now) is not run; its row
    says so and gives the estimate."""
    from ..nn.nri import kl_categorical
    from .nri import DenseNRIEncoder, build_model
    from .timing import measure
    from ..graphs import complete_graph
    budget = budget_bytes or _available_bytes() // 3
    n, B, H = num_particles, batch_size, hidden_channels
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, num_frames, 4, generator=gen)
    x_nodes = x.reshape(B * n, num_frames, 4)  # [B*n, T, 4]
    torch.manual_seed(seed)
    model = build_model(num_frames, encoder_hidden=H, decoder_hidden=H,
                        skip_first=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    graphs = {f'knn-{k}': lambda: knn_candidates(x[:, :, 0, :2], k),
              'complete': lambda: complete_graph([n] * B, self_loops=False)}
    E_complete = B * n * (n - 1)
    # rough live bytes: [E, H] float tensors kept for backward
    estimate = {('nri', f'knn-{k}'): B * n * k * H * 4 * 40,
                ('nri', 'complete'): E_complete * H * 4 * 40,
                ('encoder', f'knn-{k}'): B * n * k * H * 4 * 16,
                ('encoder', 'complete'): E_complete * H * 4 * 16,
                ('encoder', 'dense rel_rec/rel_send'):
                    2 * n * (n - 1) * n * 4 + E_complete * H * 4 * 16}
    rows = []
    for (scope, name), est in estimate.items():
        row = dict(experiment='nri-step', num_particles=n, batch_size=B,
                   hidden=H, frames=num_frames, step=scope, candidates=name,
                   num_edges=B * n * k if name.startswith('knn')
                   else E_complete)
        if est > budget:
            rows.append(dict(row, estimate_bytes=est,
                             note=f'not run: estimated {est / 2**30:.1f} '
                             f'GiB > budget {budget / 2**30:.1f} GiB'))
            continue
        if name.startswith('dense'):
            dense = DenseNRIEncoder(model.encoder, n)
            forward = lambda: dense(x).reshape(-1, 2)  # noqa: E731
        else:
            edge_index = graphs[name]()
            if scope == 'nri':
                forward = lambda: model.loss(  # noqa: E731
                    x_nodes, edge_index, pred_steps)['loss']
            else:
                forward = lambda: model.encoder(  # noqa: E731
                    x_nodes, edge_index)

        def step():
            opt.zero_grad()
            out = forward()
            loss = out if out.dim() == 0 else kl_categorical(
                out.softmax(-1), B * n)
            loss.backward()
            opt.step()

        m = measure(step, repeat=repeat, warmup=1)
        rows.append(dict(row, step_s=m.median_s, peak_bytes=m.peak_bytes,
                         estimate_bytes=est, loadavg=_loadavg()))
        if name.startswith('dense'):
            del dense
    return rows


def nri_train_row(num_particles: int, num_train: int, num_test: int,
                  epochs: int, batch_size: int, k: int = 8,
                  num_steps: int = 100, hidden_channels: int = 64,
                  pred_steps: int = 4, lr: float = 5e-4,
                  root: Optional[str] = None, seed: int = 0,
                  time_limit_s: Optional[float] = None,
                  interaction_strength: float = 1.) -> dict:
    r"""Train :class:`~pyg_relational.nn.NRI` (paper layout, type 0 = no
    interaction) for ``epochs`` on *local* spring systems of
    ``num_particles`` (:class:`~pyg_relational.datasets.LocalSpringsDataset`:
    each particle tied to its 2 nearest at :math:`t = 0`, mean degree about
    2.6; ``num_steps`` of :math:`\Delta t = 0.01`, a frame every 10), on
    the candidate graph of the ``k`` nearest neighbours in the first frame;
    the test edge accuracy on the candidate edges (best relabelling of the
    types, as in the paper), the share of candidate edges that are springs
    (the accuracy of always guessing the majority is
    ``max(share, 1 - share)``) and the share of springs the candidate graph
    misses. ``time_limit_s`` stops after the epoch that reaches it
    (``epochs`` in the row: the epochs run).

    .. note::
        Earlier versions trained on NRI's own springs (every pair a spring
        with probability 0.5), whose true graph is dense: a kNN candidate
        graph then holds mostly non-springs chosen by position, and the
        accuracy stayed at the majority baseline.
    """
    from ..datasets import LocalSpringsDataset
    from .nri import build_model, evaluate, train_nri
    sim = dict(num_particles=num_particles, num_steps=num_steps,
               sample_every=10, candidates=k,
               interaction_strength=interaction_strength)
    train = LocalSpringsDataset(root, num_train, seed=seed, **sim)
    test = LocalSpringsDataset(root, num_test, seed=seed + 2,
                               stats=train.stats, **sim)
    torch.manual_seed(seed)
    model = build_model(train.num_frames, encoder_hidden=hidden_channels,
                        decoder_hidden=hidden_channels, skip_first=True)
    history = train_nri(model, train, test, epochs, batch_size, lr,
                        pred_steps, seed=seed, time_limit_s=time_limit_s)
    result = evaluate(model, test, batch_size, pred_steps=pred_steps)
    share = test.interacting_share
    return dict(experiment='nri-train', num_particles=num_particles,
                candidates=f'knn-{k}', frames=train.num_frames,
                num_train=num_train, num_test=num_test, epochs=len(history),
                steps=len(history) * -(-num_train // batch_size),
                batch_size=batch_size, hidden=hidden_channels,
                test_edge_acc=result['edge_accuracy'],
                spring_share=share, majority_acc=max(share, 1 - share),
                missed_share=test.missed_share,
                train_s=60 * history[-1]['minutes'] if history else 0.,
                loadavg=_loadavg())


def nri_rows(quick: bool = True, progress: Progress = None,
             root: Optional[str] = None) -> List[dict]:
    r"""NRI on the kNN candidate graph (k = 8). ``quick``: 20 particles,
    step costs and 1 epoch on 16 systems; otherwise 100 particles (200
    training systems, 10 epochs) and 1000 particles (16 systems, 3
    epochs), 9 frames, hidden 64, with the step costs of :func:`nri_step_rows`
    (batch 1)."""
    if quick:
        plan = [dict(n=20, train=16, test=4, epochs=1, batch=4)]
    else:
        plan = [dict(n=100, train=200, test=20, epochs=10, batch=8),
                dict(n=1000, train=16, test=4, epochs=3, batch=1)]
    rows = []
    for p in plan:
        rows += nri_step_rows(p['n'], hidden_channels=16 if quick else 64,
                              repeat=1 if quick else 3)
        rows.append(nri_train_row(p['n'], p['train'], p['test'],
                                  p['epochs'], p['batch'],
                                  hidden_channels=16 if quick else 64,
                                  root=root))
        if progress is not None:
            progress(f"nri {p['n']} particles")
    return rows


# --------------------------------------------------------------------------
# Long complete graphs: the structure instead of an edge list.
# --------------------------------------------------------------------------
def long_attention_rows(sizes: Sequence[int] = (1024, 2048, 4096, 8192,
                                                16384),
                        channels: int = 64, paths: Sequence[str] = (
                            'dense', 'sparse', 'message'),
                        repeat: int = 1, budget_bytes: Optional[int] = None,
                        seed: int = 0) -> List[dict]:
    r"""Self-attention on one complete sequence of ``n`` tokens
    (:class:`~pyg_relational.nn.AttentionConv`, ``score='scaled_dot'``,
    one head of ``channels``): time and peak memory (allocations during
    one forward+backward, :func:`~pyg_relational.bench.timing.peak_memory`)
    per execution path. ``'dense'`` gets the graph as its description
    :class:`~pyg_relational.structure.CompleteBlocks` (no ``edge_index``
    exists); ``'sparse'`` and ``'message'`` get the ``[2, n^2]`` edge list
    (``graph_bytes``, built before the measured call) and run only where
    their estimated size fits ``budget_bytes`` (default: a third of the
    memory available now)."""
    from ..graphs import complete_graph
    from ..nn import AttentionConv
    from ..structure import CompleteBlocks
    from .timing import measure
    budget = budget_bytes or _available_bytes() // 3
    # bytes per edge, measured at 1k-2k tokens and d=64: edge list 16,
    # sparse ~37 more, message ~1550 more ([E, H, C] messages and grads)
    per_edge = {'dense': 0, 'sparse': 16 + 48,
                'message': 16 + 26 * channels}
    rows = []
    for n in sizes:
        torch.manual_seed(seed)
        conv = AttentionConv(channels, channels, heads=1,
                             score='scaled_dot')
        x = torch.randn(n, channels, requires_grad=True)
        for path in paths:
            row = dict(experiment='long-attention', tokens=n,
                       channels=channels, path=path, num_edges=n * n)
            est = per_edge[path] * n * n + 64 * n * channels
            if est > budget:
                rows.append(dict(row, estimate_bytes=est,
                                 note=f'not run: estimated '
                                 f'{est / 2**30:.1f} GiB > budget '
                                 f'{budget / 2**30:.1f} GiB'))
                continue
            conv.path = path
            graph = CompleteBlocks((n, )) if path == 'dense' \
                else complete_graph(n)

            def step():
                x.grad = None
                conv(x, graph).sum().backward()

            m = measure(step, repeat=repeat, warmup=1)
            rows.append(dict(
                row, ran=conv.last_path, step_s=m.median_s,
                peak_bytes=m.peak_bytes,
                graph_bytes=0 if path == 'dense' else n * n * 2 * 8,
                loadavg=_loadavg()))
            graph = None  # free it before the next size
    return rows


def run_scale(quick: bool = True, device: str = 'cpu',
              progress: Progress = None) -> List[dict]:
    r"""The ``scale`` suite: the rows of every experiment above (CPU
    only: the memory figures are the process's resident set)."""
    if torch.device(device).type != 'cpu':
        from .suites import BenchError
        raise BenchError(f"the scale suite measures CPU process memory; "
                         f"run it with --device cpu (got {device!r})")
    rows = sampling_rows(quick, progress) + nri_rows(quick, progress)
    rows += long_attention_rows((256, 1024), paths=('dense', 'sparse')) \
        if quick else long_attention_rows()
    if progress is not None:
        progress('long attention')
    return rows


WORKERS = {'sampling': run_sampling_point}


def _main(argv: Sequence[str]):
    if len(argv) != 2 or argv[0] not in WORKERS:
        raise SystemExit(f"usage: python -m pyg_relational.bench.scale "
                         f"{{{','.join(WORKERS)}}} '{{json kwargs}}'")
    row = WORKERS[argv[0]](**json.loads(argv[1]))
    print(json.dumps(row), flush=True)


if __name__ == '__main__':
    _main(sys.argv[1:])
