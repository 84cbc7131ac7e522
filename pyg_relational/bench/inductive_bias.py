r"""The inductive-bias experiment: the *same* layer, trained on the *same*
data, on different graphs.

Battaglia et al. (2018) argue that the relations an architecture encodes —
its graph — are its relational inductive bias. Here that is measured: one
model (an embedding, ``layers`` residual graph layers, mean+max pooling, a
linear classifier; by default the layer is
:class:`~pyg_relational.nn.AttentionConv` with scaled dot-product scores) is
trained with only the graph changed, for several training-set sizes, and
its test accuracy is recorded.

Tasks and graphs (every graph has a self-loop on every node, so a node
always sees itself and only the relations differ):

* ``digits``: scikit-learn's bundled 8×8 handwritten digits (1797 images,
  10 classes), pixels as nodes with their intensity and a learnt position
  embedding. Graphs: ``none`` (self-loops only: a bag of pixels, the
  control), ``complete`` (all pixel pairs: weak bias), ``grid`` (3×3
  neighbourhoods from :func:`~pyg_relational.grid_graph`: locality),
  ``chain`` (row-major raster order, :math:`t-1 \to t`: sequentiality) and
  ``ink`` (the data's own graph: 8-neighbour edges between pixels that carry
  ink, different for every image).
* ``order``: synthetic token sequences where the label depends only on local
  order: every sequence holds the same multiset of tokens — one adjacent
  pair ``1 2`` or ``2 1`` (the label) and a lone ``1`` and ``2`` elsewhere —
  so no bag-of-tokens model beats chance. Graphs: ``none``, ``complete``,
  ``window`` (radius 1, :func:`~pyg_relational.window_graph`: locality) and
  ``chain`` (:func:`~pyg_relational.chain_graph`, :math:`t-1 \to t`: the
  sequence's own graph).

Example:
    >>> from pyg_relational.bench.inductive_bias import task_graphs
    >>> sorted(task_graphs('order'))
    ['chain', 'complete', 'none', 'window']
"""
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graphs import chain_graph, complete_graph, grid_graph, window_graph

__all__ = ['TASKS', 'task_graphs', 'load_task', 'run_inductive_bias',
           'GraphClassifier']

TASKS = ('digits', 'order')
_GRAPHS = {
    'digits': ('none', 'complete', 'grid', 'chain', 'ink'),
    'order': ('none', 'complete', 'window', 'chain'),
}
_IMAGE = 8  # digits are 8×8
_SEQ_LEN = 20  # tokens per sequence in the 'order' task
_VOCAB = 6  # 0, 3, 4, 5 background; 1 and 2 the ordered pair


def task_graphs(task: str) -> Sequence[str]:
    """The graphs the suite compares on ``task``."""
    if task not in _GRAPHS:
        raise ValueError(f"Unknown task={task!r}; expected one of "
                         f"{', '.join(repr(t) for t in TASKS)}")
    return _GRAPHS[task]


@dataclass
class TaskData:
    """A graph classification task whose graphs all have ``num_nodes``
    nodes. ``tokens`` are integer node features (embedded), ``values`` real
    node features; one label per graph."""
    name: str
    num_nodes: int
    num_classes: int
    tokens: Optional[Tensor]  # [G, N] long, or None
    values: Optional[Tensor]  # [G, N, F] float, or None
    labels: Tensor  # [G]
    train_pool: Tensor  # indices the training sets are drawn from
    test: Tensor  # held-out indices


# --- data --------------------------------------------------------------------

def _digits(test_size: int) -> TaskData:
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.tensor(digits.images,
                          dtype=torch.float32) / 16.0  # [G, 8, 8]
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(labels.numel(),
                           generator=torch.Generator().manual_seed(0))
    test_size = min(test_size, labels.numel() // 3)
    return TaskData('digits', _IMAGE * _IMAGE, 10, None,
                    images.reshape(-1, _IMAGE * _IMAGE, 1), labels,
                    order[test_size:], order[:test_size])


def _order(num_graphs: int,
           generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """Sequences of :data:`_SEQ_LEN` background tokens with a planted pair
    ``1 2`` (label 0) or ``2 1`` (label 1) and a lone ``1`` and ``2`` that
    touch no other ``1``/``2``."""
    T = _SEQ_LEN
    background = torch.tensor([0, 3, 4, 5])
    tokens = background[torch.randint(0, 4, (num_graphs, T),
                                      generator=generator)]
    labels = torch.randint(0, 2, (num_graphs, ), generator=generator)
    for g in range(num_graphs):
        while True:  # three slots: pair at p, p+1; lone tokens at a, b
            p, a, b = torch.randint(0, T, (3, ), generator=generator).tolist()
            if p + 1 >= T:
                continue
            taken = [p, p + 1, a, b]
            if len(set(taken)) < 4:
                continue
            # no two of the planted tokens may touch, except the pair itself
            slots = sorted(taken)
            gaps = [j - i for i, j in zip(slots, slots[1:])]
            if sum(g_ == 1 for g_ in gaps) != 1:
                continue
            break
        first, second = (1, 2) if labels[g] == 0 else (2, 1)
        tokens[g, p], tokens[g, p + 1] = first, second
        tokens[g, a], tokens[g, b] = 1, 2
    return tokens, labels


def _order_task(pool: int, test_size: int) -> TaskData:
    """A fixed set of ``pool + 1000`` sequences (seed 0); the test set is
    the first ``test_size`` of the last 1000, so every size sees the same
    training pool."""
    gen = torch.Generator().manual_seed(0)
    tokens, labels = _order(pool + 1000, gen)
    index = torch.arange(pool + 1000)
    return TaskData('order', _SEQ_LEN, 2, tokens, None, labels,
                    index[:pool], index[pool:pool + min(test_size, 1000)])


def load_task(task: str, test_size: int = 597) -> TaskData:
    """The data of ``task`` (deterministic: fixed seeds, fixed split)."""
    task_graphs(task)
    if task == 'digits':
        return _digits(test_size)
    return _order_task(1200, test_size)


# --- graphs ------------------------------------------------------------------

def _with_self_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    loop = torch.arange(num_nodes).repeat(2, 1)
    edge_index = torch.cat([edge_index, loop], dim=1)
    edge_index = torch.unique(edge_index, dim=1)  # also drops duplicates
    order = torch.argsort(edge_index[1] * num_nodes + edge_index[0])
    return edge_index[:, order]  # sorted by target, as the builders do


def _template(task: str, graph: str) -> Optional[Tensor]:
    """The edges of one sample for graphs that do not depend on the data
    (``None`` for ``ink``)."""
    n = _IMAGE * _IMAGE if task == 'digits' else _SEQ_LEN
    if graph == 'none':
        edge_index = torch.empty(2, 0, dtype=torch.long)
    elif graph == 'complete':
        edge_index = complete_graph(n)
    elif graph == 'grid':
        edge_index, _, _ = grid_graph((_IMAGE, _IMAGE), kernel_size=3,
                                      padding=1)
    elif graph == 'window':
        edge_index = window_graph(n, n, radius=1)
    elif graph == 'chain':
        edge_index = chain_graph(n)
    else:
        return None
    return _with_self_loops(edge_index, n)


class _Graphs:
    """Batches of one graph family: tiles a fixed template or concatenates
    the per-sample graphs of a data-dependent one."""

    def __init__(self, data: TaskData, graph: str):
        self.n = data.num_nodes
        self.template = _template(data.name, graph)
        self.cache: Dict[int, Tensor] = {}
        if self.template is None:  # 'ink': the data's own graph
            self.grid, _, _ = grid_graph((_IMAGE, _IMAGE), kernel_size=3,
                                         padding=1)
            self.ink = data.values[..., 0] > 0  # [G, N]

    def sample(self, i: int) -> Tensor:
        """The edges of sample ``i`` of a data-dependent graph."""
        if i not in self.cache:
            keep = self.ink[i, self.grid[0]] & self.ink[i, self.grid[1]]
            self.cache[i] = _with_self_loops(self.grid[:, keep], self.n)
        return self.cache[i]

    def edges_per_sample(self, index: Tensor) -> float:
        if self.template is not None:
            return float(self.template.size(1))
        return sum(self.sample(i).size(1) for i in index.tolist()) \
            / max(index.numel(), 1)

    def batch(self, index: Tensor) -> Tensor:
        count = index.numel()
        if self.template is not None:
            E = self.template.size(1)
            offset = torch.arange(count).repeat_interleave(E) * self.n
            return self.template.repeat(1, count) + offset  # [2, count * E]
        return torch.cat([self.sample(i) + k * self.n
                          for k, i in enumerate(index.tolist())], dim=1)


# --- model -------------------------------------------------------------------

def _attention_layer(channels: int, heads: int) -> nn.Module:
    from ..nn.attention import AttentionConv
    return AttentionConv(channels, channels // heads, heads=heads,
                         score='scaled_dot')


class GraphClassifier(nn.Module):
    r"""Embedding, ``layers`` pre-norm residual graph layers
    :math:`h \leftarrow h + \mathrm{ReLU}(\mathrm{conv}(\mathrm{LN}(h),
    \mathcal{E}))`, mean and max pooling per graph, a linear classifier.

    Args:
        num_nodes (int): nodes per graph (size of the position embedding).
        num_classes (int): output classes.
        hidden (int): channels.
        layers (int): graph layers.
        make_layer (callable): ``make_layer(hidden) -> module`` called as
            ``module(h, edge_index)``.
        vocab (int, optional): embed integer node tokens. (default: None)
        in_channels (int, optional): real node features. (default: None)
    """

    def __init__(self, num_nodes: int, num_classes: int, hidden: int,
                 layers: int, make_layer: Callable[[int], nn.Module],
                 vocab: Optional[int] = None,
                 in_channels: Optional[int] = None):
        super().__init__()
        self.num_nodes = num_nodes
        self.token = nn.Embedding(vocab, hidden) if vocab else None
        self.value = nn.Linear(in_channels, hidden) if in_channels else None
        self.position = nn.Embedding(num_nodes, hidden)
        self.convs = nn.ModuleList(make_layer(hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden)
                                   for _ in range(layers))
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, tokens: Optional[Tensor], values: Optional[Tensor],
                edge_index: Tensor) -> Tensor:
        ref = tokens if tokens is not None else values
        G = ref.size(0)
        h = self.position.weight.unsqueeze(0).expand(G, -1, -1)  # [G, N, C]
        if self.token is not None:
            h = h + self.token(tokens)
        if self.value is not None:
            h = h + self.value(values)
        h = h.reshape(G * self.num_nodes, -1)  # [G*N, C], graph after graph
        for conv, norm in zip(self.convs, self.norms):
            h = h + F.relu(conv(norm(h), edge_index))
        h = h.view(G, self.num_nodes, -1)  # [G, N, C]
        return self.head(torch.cat([h.mean(1), h.amax(1)], dim=-1))


# --- training ----------------------------------------------------------------

def _select(data: TaskData, index: Tensor, device):
    tokens = data.tokens[index].to(device) if data.tokens is not None \
        else None
    values = data.values[index].to(device) if data.values is not None \
        else None
    return tokens, values, data.labels[index].to(device)


@torch.no_grad()
def _accuracy(model, data: TaskData, graphs: _Graphs, index: Tensor,
              device, chunk: int = 128) -> float:
    model.eval()
    correct = 0
    for start in range(0, index.numel(), chunk):
        part = index[start:start + chunk]
        tokens, values, labels = _select(data, part, device)
        logits = model(tokens, values, graphs.batch(part).to(device))
        correct += int((logits.argmax(-1) == labels).sum())
    return correct / max(index.numel(), 1)


def _train_one(data: TaskData, graphs: _Graphs, train: Tensor, seed: int,
               steps: int, batch_size: int, hidden: int, layers: int,
               lr: float, make_layer, device) -> Dict[str, float]:
    torch.manual_seed(seed)
    model = GraphClassifier(
        data.num_nodes, data.num_classes, hidden, layers, make_layer,
        vocab=_VOCAB if data.tokens is not None else None,
        in_channels=data.values.size(-1) if data.values is not None
        else None).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, train.numel())
    order, pos = train[torch.randperm(train.numel(), generator=gen)], 0
    for _ in range(steps):
        if pos + batch_size > order.numel():  # next epoch
            order, pos = train[torch.randperm(train.numel(),
                                              generator=gen)], 0
        part = order[pos:pos + batch_size]
        pos += batch_size
        model.train()
        tokens, values, labels = _select(data, part, device)
        loss = F.cross_entropy(
            model(tokens, values, graphs.batch(part).to(device)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {'train_acc': _accuracy(model, data, graphs, train[:256], device),
            'test_acc': _accuracy(model, data, graphs, data.test, device)}


def run_inductive_bias(
    quick: bool = True,
    device='cpu',
    progress: Optional[Callable[[str], None]] = None,
    tasks: Sequence[str] = TASKS,
    graphs: Optional[Sequence[str]] = None,
    train_sizes: Optional[Sequence[int]] = None,
    seeds: Optional[Sequence[int]] = None,
    steps: Optional[int] = None,
    batch_size: int = 16,
    hidden: int = 32,
    heads: int = 4,
    layers: int = 2,
    lr: float = 3e-3,
    test_size: Optional[int] = None,
    make_layer: Optional[Callable[[int], nn.Module]] = None,
) -> List[dict]:
    r"""Train the same :class:`GraphClassifier` on every (task, graph,
    training-set size, seed) and return one row per (task, graph, size)
    with the test accuracy averaged over seeds.

    Args:
        quick (bool, optional): tiny sizes (training sizes 50, 200; 40
            steps; 1 seed; 128 test samples). Full: sizes 50, 200, 1000;
            600 steps of 16 samples; seeds 0, 1, 2; 597 test images / 1000
            test sequences. (default: :obj:`True`)
        device (str or torch.device, optional): where to train.
        progress (callable, optional): called with a short string after
            every training run.
        tasks (Sequence[str], optional): subset of :data:`TASKS`.
        graphs (Sequence[str], optional): keep only these graphs (a name
            that no task in ``tasks`` has raises; all by default).
        train_sizes, seeds, steps, test_size: override the mode's values
            (tests use tiny ones).
        batch_size, hidden, heads, layers, lr: the model and optimiser.
        make_layer (callable, optional): ``make_layer(hidden) -> module``
            to put another layer under test; default
            ``AttentionConv(hidden, hidden // heads, heads,
            score='scaled_dot')``.

    Returns:
        ``list`` of ``dict`` rows: ``task``, ``graph``, ``train_size``,
        ``edges_per_sample`` (self-loops included; for ``ink``, the mean
        over the first ``train_size`` images of the training pool),
        ``test_acc`` (mean over seeds),
        ``test_acc_std``, ``test_acc_per_seed``, ``train_acc`` (mean over
        seeds, on up to 256 training samples), ``seeds``, ``steps``,
        ``seconds``.
    """
    train_sizes = tuple(train_sizes or ((50, 200) if quick
                                        else (50, 200, 1000)))
    seeds = tuple(seeds if seeds is not None else
                  ((0, ) if quick else (0, 1, 2)))
    steps = steps if steps is not None else (40 if quick else 600)
    if make_layer is None:
        def make_layer(channels: int) -> nn.Module:
            return _attention_layer(channels, heads)
    known = {g for task in tasks for g in task_graphs(task)}
    unknown = sorted(set(graphs or ()) - known)
    if unknown:
        raise ValueError(f"Unknown graphs={unknown!r} for tasks "
                         f"{tuple(tasks)!r}; expected some of "
                         f"{sorted(known)!r}")
    rows = []
    for task in tasks:
        names = [g for g in task_graphs(task) if graphs is None or g in graphs]
        size = test_size if test_size is not None else \
            (128 if quick else (597 if task == 'digits' else 1000))
        data = load_task(task, size)
        for name in names:
            family = _Graphs(data, name)
            for n in train_sizes:
                if n > data.train_pool.numel():
                    raise ValueError(
                        f"train_sizes entry {n} exceeds the {task} training "
                        f"pool ({data.train_pool.numel()} samples); use "
                        f"sizes <= {data.train_pool.numel()}")
                start = time.perf_counter()
                results = []
                for seed in seeds:
                    pick = torch.randperm(
                        data.train_pool.numel(),
                        generator=torch.Generator().manual_seed(1000 + seed))
                    train = data.train_pool[pick[:n]]
                    results.append(_train_one(
                        data, family, train, seed, steps, batch_size, hidden,
                        layers, lr, make_layer, device))
                accs = torch.tensor([r['test_acc'] for r in results],
                                    dtype=torch.float64)
                row = {
                    'task': task,
                    'graph': name,
                    'train_size': n,
                    'edges_per_sample': family.edges_per_sample(
                        data.train_pool[:n]),
                    'test_acc': float(accs.mean()),
                    'test_acc_std': float(accs.std()) if len(seeds) > 1
                    else 0.0,
                    'test_acc_per_seed': [float(a) for a in accs],
                    'train_acc': sum(r['train_acc'] for r in results)
                    / len(results),
                    'seeds': len(seeds),
                    'steps': steps,
                    'seconds': time.perf_counter() - start,
                }
                rows.append(row)
                if progress is not None:
                    progress(f"{task} {name} n={n}: "
                             f"{row['test_acc']:.3f}")
    return rows
