"""Bad input, saved state and cached data (issues 14 and 22): try every
category of the issues with many inputs and count the outcomes.

Run: ``python benchmarks/scripts/reliability.py [--out FILE]`` (one thread,
about a minute; not a timing).

Each case either expects an error (a bad input) or a result (a valid input
or an edge case with a checkable answer). Outcomes:

* CLEAR: a ValueError / TypeError / IndexError whose message names the
  argument (or the file) at fault;
* OK: a valid input handled correctly (the result passes its check);
* OBSCURE: any other exception, or an error that does not name the
  argument, or an error on a valid input;
* SILENT: a result where an error was due, or a wrong result;
* CRASH: no answer within the case's time limit (a hang).
"""
import argparse
import contextlib
import importlib.util
import io
import itertools
import os
import os.path as osp
import shutil
import signal
import tempfile
import warnings
from collections import Counter, defaultdict

import torch

from pyg_relational import (bipartite_graph, chain_graph, complete_graph,
                            grid_graph, nodes_to_sequence, sequence_to_nodes,
                            window_graph)
from pyg_relational.datasets import NBodyDataset, SpringsDataset
from pyg_relational.nn import (NRI, AttentionConv, GraphNetwork,
                               InteractionNetwork, MPNNConv,
                               MultiheadAttentionConv, NonLocalBlock,
                               NRIDecoder, NRIEncoder, NRIRNNDecoder,
                               PositionalEncoding, TransformerEncoderLayer)
from pyg_relational.nn.nri import edge_accuracy, nll_gaussian

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ERRORS = (ValueError, TypeError, IndexError)
OUTCOMES = ('CLEAR', 'OK', 'OBSCURE', 'SILENT', 'CRASH')


class _Hang(BaseException):
    pass


def _alarm(*_):
    raise _Hang


def judge(call, names=None, check=None, limit=10., errors=ERRORS):
    """The outcome of ``call()``: an error of ``errors`` naming one of
    ``names`` is due when ``names`` is given; else ``check(result)`` must
    hold."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            result = call()
    except _Hang:
        return 'CRASH', f'no answer in {limit:g} s'
    except errors as e:
        if names is not None and any(n in str(e) for n in names):
            return 'CLEAR', ''
        return 'OBSCURE', f'{type(e).__name__}: {str(e)[:120]}'
    except Exception as e:
        return 'OBSCURE', f'{type(e).__name__}: {str(e)[:120]}'
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if names is not None:
        return 'SILENT', f'returned {str(result)[:80]!s}'
    try:
        good = check is None or check(result)
    except Exception as e:  # the check itself failed on the result
        good = f'{type(e).__name__}: {e}'
    return ('OK', '') if good is True else ('SILENT', f'wrong result '
                                                      f'({good})')


# --------------------------------------------------------------------------
# Cases per category: (description, call, names, check).
# --------------------------------------------------------------------------
def nri_metric_cases():
    gen = torch.Generator().manual_seed(0)
    for K in range(1, 13):  # K! relabellings hung from K = 10
        label = torch.arange(K).repeat(20)
        perm = torch.randperm(K, generator=gen)
        logits = torch.nn.functional.one_hot(perm[label], K).float()
        yield (f'edge_accuracy relabelled K={K}',
               lambda l=logits, y=label: edge_accuracy(l, y), None,
               lambda r: r == 1.0)
    for K in range(1, 6):
        for _ in range(10):
            E = int(torch.randint(1, 30, (1, ), generator=gen))
            logits = torch.randn(E, K, generator=gen)
            label = torch.randint(0, K, (E, ), generator=gen)
            pred = logits.argmax(-1)
            best = max(int((torch.tensor(p)[pred] == label).sum())
                       for p in itertools.permutations(range(K))) / E
            yield (f'edge_accuracy random K={K}',
                   lambda l=logits, y=label: edge_accuracy(l, y), None,
                   lambda r, b=best: abs(r - b) < 1e-12)
    logits, label = torch.randn(6, 2), torch.tensor([0, 1, 1, 0, 1, 0])
    for desc, bad in (('label [E, 1]', label.view(-1, 1)),
                      ('label [1, E]', label.view(1, -1)),
                      ('label too short', label[:4]),
                      ('label out of range', label + 2),
                      ('float label', label.float()),
                      ('label list', label.tolist())):
        yield (f'edge_accuracy {desc}', lambda b=bad: edge_accuracy(
            logits, b), ["'edge_label'"], None)
    yield ('edge_accuracy logits 1-D', lambda: edge_accuracy(
        logits[:, 0], label), ["'logits'"], None)
    for a, b in (((6, 3, 4), (6, 3, 1)), ((6, 3, 4), (1, 3, 4)),
                 ((6, 3, 4), (6, 3)), ((2, ), (3, ))):
        yield (f'nll_gaussian {a} vs {b}', lambda a=a, b=b: nll_gaussian(
            torch.zeros(a), torch.ones(b)), ["'pred'"], None)
    for v in (0., -1., float('nan'), float('inf')):
        yield (f'nll_gaussian variance={v}', lambda v=v: nll_gaussian(
            torch.zeros(2), torch.ones(2), v), ["'variance'"], None)
    yield ('nll_gaussian equal shapes', lambda: nll_gaussian(
        torch.zeros(2, 3), torch.ones(2, 3), 0.5), None,
        lambda r: abs(float(r) - 3.) < 1e-6)


def nri_model_cases():
    def make(**kw):
        return NRI(NRIEncoder(12, 4), NRIDecoder(4, 2, 4, 4, 4), **kw)

    def finite_loss(model):
        out = model.loss(torch.randn(3, 3, 4),
                         complete_graph(3, self_loops=False))
        return bool(torch.isfinite(out['loss']))
    nan, inf = float('nan'), float('inf')
    for prior in ([0., 0.], [nan, 1.], [-1., 2.], [inf, 1.], [1., 0., 0.],
                  [[0.5, 0.5]], 'ab'):
        yield (f'NRI(prior={prior})', lambda p=prior: make(prior=p),
               ["'prior'"], None)
    for tau in (0., -1., nan, inf, 'hot'):
        yield (f'NRI(tau={tau!r})', lambda t=tau: make(tau=t), ["'tau'"],
               None)
    for var in (0., -1e-5, nan, inf):
        yield (f'NRI(variance={var})', lambda v=var: make(variance=v),
               ["'variance'"], None)
    for kw in (dict(prior=[0.9, 0.1]), dict(prior=[0., 1.]), dict(tau=0.1),
               dict(variance=1.), dict(tau=2., hard=True)):
        yield (f'NRI({kw})', lambda k=kw: make(**k), None, finite_loss)


def window_cases():
    nan, inf = float('nan'), float('inf')
    for centers in ([nan, 1.], [1., inf], [-inf, 0.], [nan, nan]):
        yield (f'window_graph centers={centers}', lambda c=centers:
               window_graph(3, 2, 1, centers=torch.tensor(c)),
               ["'centers'"], None)
    yield ('window_graph bool centers', lambda: window_graph(
        3, 2, 1, centers=torch.tensor([True, False])), ["'centers'"], None)
    yield ('window_graph 2-D centers', lambda: window_graph(
        3, 2, 1, centers=torch.zeros(2, 1)), ["'centers'"], None)
    for c in ([0., 2.], [0.5, 1.5], [-3., 7.], [1, 2]):
        yield (f'window_graph centers={c}', lambda c=c: window_graph(
            3, 2, 1, centers=torch.tensor(c)), None,
            lambda r, c=c: r.size(1) == sum(
                len([s for s in range(3) if abs(s - float(x)) <= 1])
                for x in c))


def sequence_cases():
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        lengths = torch.randint(0, 5, (3, ), generator=gen)
        x = torch.randn(3, 5, 2, generator=gen)
        flat, batch, _ = sequence_to_nodes(x, lengths)
        if flat.size(0) > 1:
            perm = torch.randperm(flat.size(0), generator=gen)
            if bool((batch[perm][1:] < batch[perm][:-1]).any()):
                yield ('nodes_to_sequence unsorted batch',
                       lambda f=flat[perm], b=batch[perm]:
                       nodes_to_sequence(f, b), ["'batch'"], None)
        if int(lengths.max()) > 0:
            yield ('nodes_to_sequence short max_length',
                   lambda f=flat, b=batch, m=int(lengths.max()) - 1:
                   nodes_to_sequence(f, b, max_length=m), ["'max_length'"],
                   None)
        yield ('nodes_to_sequence round trip',
               lambda f=flat, b=batch: nodes_to_sequence(f, b, 3, 5), None,
               lambda r, x=x, m=lengths: torch.equal(
                   r[0][r[1]], x[torch.arange(5) < m.view(-1, 1)]))
    x, batch = torch.randn(4, 2), torch.tensor([0, 0, 1, 1])
    for desc, call, names in (
            ('batch float', lambda: nodes_to_sequence(x, batch.float()),
             ["'batch'"]),
            ('batch short', lambda: nodes_to_sequence(x, batch[:3]),
             ["'batch'"]),
            ('batch negative', lambda: nodes_to_sequence(x, batch - 1),
             ["'batch'"]),
            ('batch_size small', lambda: nodes_to_sequence(x, batch, 1),
             ["'batch_size'"])):
        yield (f'nodes_to_sequence {desc}', call, names, None)


def builder_cases():
    big = [
        ('complete_graph(100000)', lambda: complete_graph(100000)),
        ('complete_graph(60000, causal)',
         lambda: complete_graph(60000, causal=True)),
        ('chain_graph(2**63)', lambda: chain_graph(2**63)),
        ('chain_graph(2**62)', lambda: chain_graph(2**62)),
        ('chain_graph([2**62] * 3)', lambda: chain_graph([2**62] * 3)),
        ('bipartite_graph(2**40, 2**20)',
         lambda: bipartite_graph(2**40, 2**20)),
        ('bipartite_graph(2**62, 4)', lambda: bipartite_graph(2**62, 4)),
        ('window_graph(2**40, 2**40, 3)',
         lambda: window_graph(2**40, 2**40, 3)),
        ('grid_graph((10**6, 10**6), 3)',
         lambda: grid_graph((10**6, 10**6), 3)),
        ('grid_graph(10**12, 5, batch_size=10**3)',
         lambda: grid_graph(10**12, 5, batch_size=1000)),
    ]
    for desc, call in big:
        yield (desc, call, ['GiB', 'does not fit'], None)
    bad = [-1, -2**70, 2**70, 1.5, float('nan'), 'ab', '', True, None,
           [1, -1], [1.5], [[1, 2]], torch.tensor([1.5]),
           torch.tensor([[1, 2]]), {'a': 1}]
    for b in bad:
        for builder in (chain_graph, complete_graph):
            yield (f'{builder.__name__}({b!r})', lambda f=builder, b=b: f(b),
                   ["'sizes'"], None)
        yield (f'bipartite_graph({b!r}, 1)', lambda b=b: bipartite_graph(
            b, 1), ["'src_sizes'"], None)
        yield (f'window_graph(1, {b!r}, 1)', lambda b=b: window_graph(
            1, b, 1), ["'dst_sizes'"], None)
    for args, names in ((dict(size=5, kernel_size=0), ['kernel_size']),
                        (dict(size=5, kernel_size=9), ['kernel_size']),
                        (dict(size=5, kernel_size=3, stride=0), ['stride']),
                        (dict(size=5, kernel_size=3, dilation=-1),
                         ['dilation']),
                        (dict(size=5, kernel_size=3, padding=-1),
                         ['padding']),
                        (dict(size=5, kernel_size=3, batch_size=-1),
                         ['batch_size']),
                        (dict(size=(3, 3, 3), kernel_size=3), ['size']),
                        (dict(size=5, kernel_size=3, padding='full'),
                         ['padding'])):
        yield (f'grid_graph({args})', lambda a=args: grid_graph(**a), names,
               None)
    for sizes in ([0], [1], [3, 0, 2], [5] * 4):
        n = sum(sizes)
        yield (f'complete_graph({sizes})', lambda s=sizes: complete_graph(s),
               None, lambda r, s=sizes: r.size(1) == sum(k * k for k in s))
        yield (f'chain_graph({sizes})', lambda s=sizes: chain_graph(s), None,
               lambda r, s=sizes, n=n: r.size(1) == sum(
                   max(k - 1, 0) for k in s) and (r.numel() == 0 or int(
                       r.max()) < n))


F = 6
LAYERS = {
    'AttentionConv': lambda: AttentionConv(F, 4, heads=2),
    'MultiheadAttentionConv': lambda: MultiheadAttentionConv(F, 2),
    'TransformerEncoderLayer': lambda: TransformerEncoderLayer(F, 2, 8,
                                                               dropout=0.),
    'NonLocalBlock': lambda: NonLocalBlock(F).eval(),
    'MPNNConv': lambda: MPNNConv(F, F + 2, num_steps=2),
    'InteractionNetwork': lambda: InteractionNetwork(
        F, 3, effect_channels=4, relation_hidden_channels=8,
        relation_layers=2, object_hidden_channels=8),
    'GraphNetwork': lambda: GraphNetwork.from_sizes(F, 0, 0, (5, 4, 0),
                                                    hidden_channels=8),
}


def _first(out):
    return out if torch.is_tensor(out) else out[0]


def layer_cases():
    gen = torch.Generator().manual_seed(2)
    for name, make in LAYERS.items():
        module = make()
        for _ in range(10):  # random graphs: duplicates, loops, isolated
            n = int(torch.randint(1, 8, (1, ), generator=gen))
            e = int(torch.randint(0, 20, (1, ), generator=gen))
            ei = torch.randint(0, n, (2, e), generator=gen)
            x = torch.randn(n, F, generator=gen)
            yield (f'{name} random graph', lambda m=module, x=x, ei=ei:
                   _first(m(x, ei)), None,
                   lambda r, n=n: r.size(0) == n and bool(
                       torch.isfinite(r).all()))
        x, ei = torch.randn(4, F), complete_graph(4)
        for desc, bad in (('index out of range', ei + 4),
                          ('negative index', ei - 1),
                          ('float edge_index', ei.float()),
                          ('[E, 2] edge_index', ei.t()),
                          ('list edge_index', ei.tolist())):
            yield (f'{name} {desc}', lambda m=module, b=bad: m(x, b),
                   ['edge_index'], None)
        for width in (F - 1, F + 3):
            yield (f'{name} x width {width}', lambda m=module, w=width: m(
                torch.randn(4, w), ei), ["'x"], None)
    nri = {'NRIEncoder': (NRIEncoder(3 * F, 8), False),
           'NRIDecoder': (NRIDecoder(F, 2, 8, 8, 8), True),
           'NRIRNNDecoder': (NRIRNNDecoder(F, 2, 8), True)}
    for name, (module, needs_z) in nri.items():
        for n in range(1, 6):
            ei = complete_graph(n, self_loops=False)
            args = (torch.rand(ei.size(1), 2), ) if needs_z else ()
            yield (f'{name} {n} particles', lambda m=module, n=n, ei=ei,
                   a=args: m(torch.randn(n, 3, F), ei, *a), None,
                   lambda r: bool(torch.isfinite(r).all()))
        ei = complete_graph(3, self_loops=False)
        args = (torch.rand(6, 2), ) if needs_z else ()
        yield (f'{name} edge_index out of range', lambda m=module, a=args: m(
            torch.randn(3, 3, F), ei + 1, *a), ['edge_index'], None)
        yield (f'{name} x width', lambda m=module, a=args: m(
            torch.randn(3, 3, F + 1), ei, *a), ["'x"], None)
    # the obscure layer inputs
    gn = GraphNetwork.from_sizes(F, 2, 3, 4, hidden_channels=8)
    x, ei = torch.randn(4, F), complete_graph(4)
    ea, u = torch.randn(16, 2), torch.randn(1, 3)
    for desc, call, names in (
            ('GraphNetwork x width', lambda: gn(torch.randn(4, F + 1), ei,
                                               ea, u), ["'x'"]),
            ('GraphNetwork edge_attr width', lambda: gn(
                x, ei, torch.randn(16, 5), u), ["'edge_attr'"]),
            ('GraphNetwork negative batch', lambda: gn(
                x, ei, ea, torch.randn(2, 3), torch.tensor([0, 0, -1, 1]),
                num_graphs=2), ["'batch'"]),
            ('GraphNetwork num_graphs too small', lambda: gn(
                x, complete_graph([2, 2]), torch.randn(8, 2),
                torch.randn(2, 3), torch.tensor([0, 0, 1, 1]),
                num_graphs=1), ['num_graphs']),  # edges inside graphs
            ('MultiheadAttentionConv short position', lambda:
             MultiheadAttentionConv(F, 2, relative_clip=2)(
                 x, ei, position=torch.arange(2)), ["'position'"]),
            ('PositionalEncoding(base=0)', lambda: PositionalEncoding(
                F, base=0.), ["'base'"]),
            ('PositionalEncoding(base=inf)', lambda: PositionalEncoding(
                F, base=float('inf')), ["'base'"])):
        yield desc, call, names, None
    yield ('AttentionConv x with size=(10, 5)', lambda: AttentionConv(F, 4)(
        torch.randn(10, F), torch.tensor([[0, 9], [4, 1]]), size=(10, 5)),
        None, lambda r: r.shape == (5, 4))
    bad_ints = (0, -2, 2.5, '4', None)
    constructors = (
        (AttentionConv, dict(in_channels=F, out_channels=4, heads=2)),
        (MultiheadAttentionConv, dict(embed_dim=F, num_heads=2)),
        (MPNNConv, dict(in_channels=F, out_channels=F, num_steps=2)),
        (InteractionNetwork, dict(node_channels=F, out_channels=2)),
        (NRIEncoder, dict(in_channels=F, hidden_channels=4)),
        (NRIDecoder, dict(in_channels=F, msg_hidden=4, msg_out=4,
                          hidden_channels=4)),
        (NRIRNNDecoder, dict(in_channels=F, hidden_channels=4)),
        (PositionalEncoding, dict(d_model=F)))
    for cls, kwargs in constructors:
        for key in kwargs:
            for bad in bad_ints:
                yield (f'{cls.__name__}({key}={bad!r})',
                       lambda c=cls, k=kwargs, key=key, b=bad: c(
                           **dict(k, **{key: b})), [key], None)


def cache_cases(root):
    def nbody(**kw):
        return NBodyDataset(root, 2, seed=4, num_steps=5, num_bodies=3, **kw)
    good = nbody()
    path = good.cache_path

    def damaged(damage, expect_names):
        def call():
            nbody()  # a good file
            damage(path)
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter('always')
                again = nbody()
            said = ' '.join(str(w.message) for w in seen)
            if path not in said:
                return 'silently'  # -> SILENT (no error is due)
            return torch.equal(again.simulation['pos'],
                               good.simulation['pos'])
        return call

    def other_config(p):
        shutil.copy(NBodyDataset(root, 2, seed=5, num_steps=5,
                                 num_bodies=4).cache_path, p)
    damages = {
        'empty file': lambda p: open(p, 'wb').close(),
        'truncated file': lambda p: open(p, 'r+b').truncate(
            os.path.getsize(p) // 2),
        'garbage file': lambda p: open(p, 'wb').write(b'\x00garbage'),
        'old layout (no config)': lambda p: torch.save({'pos': torch.zeros(
            2)}, p),
        'pickled code': lambda p: torch.save({'f': os.path.join}, p),
        'another configuration': other_config,
    }
    for desc, damage in damages.items():
        yield (f'cache: {desc}', damaged(damage, [path]), None,
               lambda r: r is True)
    for particles in (3, 4, 5, 6):  # the 5-vs-6 particle swap
        def swapped(n=particles):
            a = SpringsDataset(root, 2, num_particles=n, num_steps=300)
            b = SpringsDataset(root, 2, num_particles=n + 1, num_steps=300)
            shutil.copy(b.cache_path, a.cache_path)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                return SpringsDataset(root, 2, num_particles=n,
                                      num_steps=300)[0].x.size(0) == n
        yield (f'cache: {particles + 1} particles under the {particles} '
               f'name', swapped, None, lambda r: r is True)

    def race():
        def fresh():
            return NBodyDataset(root, 2, seed=9, num_steps=5, num_bodies=3)
        real_save, started = torch.save, []

        def save_and_race(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            if not started:  # a second writer starts while the first saves
                started.append(True)
                fresh()
        torch.save = save_and_race
        try:
            fresh()
        finally:
            torch.save = real_save
        return bool(started) and not [f for f in os.listdir(root)
                                      if f.endswith('.tmp')]
    yield ('cache: two writers of one file', race, None, lambda r: r)
    blocker = osp.join(root, 'a_file')
    open(blocker, 'w').close()
    yield ('cache: root is a file', lambda: NBodyDataset(
        blocker, 2, num_steps=3), [blocker], None)


def resume_cases(tmp):
    spec = importlib.util.spec_from_file_location(
        'nri_example', osp.join(ROOT, 'examples', 'nri.py'))
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    data = osp.join(tmp, 'data')

    def tiny(out, epochs, *extra):
        return ['--particles', '3', '--train', '16', '--valid', '8',
                '--test', '8', '--sim-steps', '500', '--epochs',
                str(epochs), '--batch-size', '8', '--encoder-hidden', '8',
                '--decoder-hidden', '8', '--pred-steps', '2', '--threads',
                '1', '--no-progress', '--no-plot', '--root', data, '--out',
                out, *extra]

    def quiet(argv):
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                ex.main(argv)
            except SystemExit as e:
                return e.code, err.getvalue()
        return 0, err.getvalue()

    def identical(stop_epoch):
        whole, cut = (osp.join(tmp, f'{k}{stop_epoch}') for k in 'wc')
        quiet(tiny(whole, 3))
        quiet(tiny(cut, stop_epoch))  # stopped after stop_epoch epochs
        quiet(tiny(cut, 3))  # resumed
        a, b = (torch.load(osp.join(d, 'checkpoint.pt'), weights_only=True)
                for d in (whole, cut))
        return all(torch.equal(v, b['model'][k])
                   for k, v in a['model'].items())
    for stop in (1, 2):
        yield (f'resume after epoch {stop} == uninterrupted',
               lambda s=stop: identical(s), None, lambda r: r is True)
    base = osp.join(tmp, 'base')
    ckpt = osp.join(base, 'checkpoint.pt')

    def refused(extra, damage=None):
        def call():
            quiet(tiny(base, 1))
            if damage is not None:
                with open(ckpt, 'wb') as f:
                    f.write(damage)
            code, _ = quiet(tiny(base, 2, *extra))
            raise ValueError(str(code))  # the SystemExit message
        return call
    yield ('resume with another --lr', refused(['--lr', '1e-3']),
           ['--lr'], None)
    yield ('resume with another --tau', refused(['--tau', '0.7']),
           ['tau'], None)
    for desc, damage in (('empty', b''), ('garbage', b'garbage')):
        yield (f'resume from a {desc} checkpoint', refused([], damage),
               [ckpt], None)


# --------------------------------------------------------------------------
# Issue 22: silent results, obscure errors, compile, a new user's first hour.
# --------------------------------------------------------------------------
def _equal(a, b, tol=1e-6):
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol,
                                                      rtol=tol,
                                                      equal_nan=True))


def _edits():
    """Ways to overwrite a tensor's values in place; the last two do not
    bump its version."""
    return {
        'setitem': lambda t, v: t.__setitem__(Ellipsis, v),
        'copy_': lambda t, v: t.copy_(v),
        '.data': lambda t, v: t.data.copy_(v),
        '.numpy()': lambda t, v: t.numpy().__setitem__(Ellipsis, v.numpy()),
    }


def _after_edit(make_graph, edit, new, layer, call):
    """The layer's output after editing the graph it ran on, and on a fresh
    copy of the edited graph."""
    graph = make_graph()
    call(layer, graph)  # fills the caches
    edit(graph[-1] if isinstance(graph, tuple) else graph, new)
    got = call(layer, graph)
    fresh = tuple(g.clone() for g in graph) if isinstance(graph, tuple) \
        else graph.clone()
    return got, call(layer, fresh)


def silent_cases():
    from torch_geometric.data import Data
    from pyg_relational import relative_position, structure_of
    from pyg_relational.nn import (FullyConnectedConv, LatticeConv,
                                   RecurrentConv)
    from pyg_relational.nn.nri import kl_categorical
    from pyg_relational.transforms import SequenceToGraph

    # structure_of(data) with a replaced edge_index
    for reverse in (True, False):
        for sizes in ([6], [3, 4]):
            def replaced(reverse=reverse, sizes=sizes):
                data = SequenceToGraph('chain')(Data(
                    x=torch.randn(sum(sizes), 3)))
                data.structure = [structure_of(chain_graph(sizes))]
                data.edge_index = chain_graph(sizes, reverse=reverse) \
                    if reverse else chain_graph(sizes).flip(0).clone()
                return structure_of(data)
            yield (f'structure_of(data) after edge_index := '
                   f'{"reversed chain" if reverse else "flipped tensor"} '
                   f'{sizes}', replaced, ['data.structure'], None)
    # caches after in-place edits, every way
    torch.manual_seed(0)
    att = AttentionConv(F, 4, heads=2).double()
    xa = torch.randn(5, F, dtype=torch.float64)
    lat = LatticeConv(2, 3, (3, 3)).double()
    xl = torch.randn(9, 2, dtype=torch.float64)
    rnn = RecurrentConv(2, 3).double()
    xr = torch.randn(6, 2, dtype=torch.float64)
    new_graph = torch.randint(0, 5, (2, 25), generator=torch.Generator()
                              .manual_seed(1))
    for name, edit in _edits().items():
        yield (f'AttentionConv after edge_index edit via {name}',
               lambda e=edit: _after_edit(
                   lambda: complete_graph(5), e, new_graph, att,
                   lambda m, g: m(xa, g)), None, lambda r: _equal(*r))

        def grid():
            ei, et, _ = grid_graph((3, 3), 3, padding='same')
            return ei, et
        types = grid()[1].flip(0).clone()
        yield (f'LatticeConv after edge_type edit via {name}',
               lambda e=edit, t=types: _after_edit(
                   grid, e, t, lat, lambda m, g: m(xl, g[0], g[1])), None,
               lambda r: _equal(*r))
        yield (f'RecurrentConv after edge_index edit via {name}',
               lambda e=edit: _after_edit(
                   lambda: chain_graph(6), e, chain_graph(6, reverse=True),
                   rnn, lambda m, g: m(xr, g)[0]), None,
               lambda r: _equal(*r))
    # FullyConnectedConv: NaN / inf in a unit with no (or some) edges
    ei = torch.tensor([[0, 2, 0], [0, 1, 2]])
    for path in ('dense', 'auto'):
        for unit, value in ((1, float('nan')), (1, float('inf')),
                            (2, float('nan'))):
            def fc(path=path, unit=unit, value=value):
                torch.manual_seed(0)
                layer = FullyConnectedConv(3, 3, edge_index=ei, path=path)
                ref = FullyConnectedConv(3, 3, edge_index=ei, path='message')
                ref.load_state_dict(layer.state_dict())
                x = torch.randn(4, 3)
                x[1, unit] = value
                return layer(x), ref(x)
            if path == 'dense' and unit == 2:
                continue  # forced dense: 0 * NaN beyond the edges (doc'd)
            yield (f'FullyConnectedConv path={path} {value} in unit {unit}',
                   fc, None, lambda r: _equal(*r))
    # builders
    for radius in (2**62, 2**63, 2**64, 10**30):
        yield (f'window_graph(5, 5, {radius})',
               lambda r=radius: window_graph(5, 5, r), None,
               lambda out: out.size(1) == 25)
        yield (f'window_graph(5, 5, {radius}, centers)',
               lambda r=radius: window_graph(5, 5, r, centers=torch.tensor(
                   [0., 1., 2., 3., 1e9])), None,
               lambda out: out.size(1) == 25)
    for desc, pos in (('float 1.5', torch.tensor([0., 1.5, 2.])),
                      ('float nan', torch.tensor([0., float('nan'), 2.])),
                      ('bool', torch.tensor([True, False, True]))):
        yield (f'relative_position positions {desc}',
               lambda p=pos: relative_position(chain_graph(3), p, 2),
               ["'position'"], None)
    yield ('relative_position whole float positions',
           lambda: relative_position(chain_graph(3),
                                     torch.tensor([0., 2., 3.]), 5),
           None, lambda r: r.tolist() == [3, 4])
    yield ('relative_position uint8 positions',
           lambda: relative_position(chain_graph(3), torch.tensor(
               [5, 0, 2], dtype=torch.uint8), 9), None,
           lambda r: r.tolist() == [14, 7])
    # others' modules (GraphNetwork, MPNNConv, kl_categorical, datasets)
    gn = GraphNetwork.from_sizes(F, 2, 3, 4, hidden_channels=8)
    batch = torch.tensor([0, 0, 1, 1])
    cross = torch.tensor([[0, 1, 2], [1, 2, 3]])  # 1 -> 2 joins graphs
    yield ('GraphNetwork edge between two graphs of a batch',
           lambda: gn(torch.randn(4, F), cross, torch.randn(3, 2),
                      torch.randn(2, 3), batch), ['edge_index', 'batch'],
           None)
    mp = MPNNConv(F, F, num_steps=2, message='edge_network', edge_dim=3)
    for shape in ((16, 2), (16, 3, 1), (15, 3), (16, )):
        yield (f'MPNNConv edge_attr {shape}', lambda sh=shape: mp(
            torch.randn(4, F), complete_graph(4), torch.randn(*sh)),
            ["'edge_attr'"], None)
    for desc, prob in (('rows sum to 2', torch.full((6, 2), 1.)),
                       ('negative', torch.tensor([[1.5, -0.5]] * 6))):
        yield (f'kl_categorical {desc}', lambda p=prob: kl_categorical(
            p, 3), ["'prob'"], None)
    for kw, name in ((dict(dt=float('nan')), 'dt'), (dict(dt=-1.), 'dt'),
                     (dict(edge_prob=2.), 'edge_prob')):
        yield (f'SpringsDataset({kw})', lambda k=kw: SpringsDataset(
            None, 2, num_steps=200, **k), [f"'{name}'"], None)


def obscure_cases():
    from torch_geometric.data import Batch
    from pyg_relational.nn import (LatticeConv, RecurrentConv,
                                   TransformerDecoderLayer)
    from pyg_relational.transforms import ImageToGraph

    rnn = RecurrentConv(F, 4)
    yield ('RecurrentConv float64 h_0', lambda: rnn(
        torch.randn(5, F), chain_graph(5), torch.zeros(1, 1, 4,
                                                       dtype=torch.float64)),
        ["'h_0'"], None)
    dec = NRIDecoder(F, 2, 8, 8, 8)
    ei = complete_graph(3, self_loops=False)
    yield ('NRIDecoder float64 z (a valid input: converted)', lambda: dec(
        torch.randn(3, 4, F), ei, torch.rand(6, 2, dtype=torch.float64)),
        None, lambda r: bool(torch.isfinite(r).all()))
    layer = TransformerDecoderLayer(8, 2, 16)
    args = (complete_graph(3, causal=True), bipartite_graph(4, 3))
    for desc, x, mem, names in (
            ('memory float64', torch.randn(3, 8), torch.randn(4, 8).double(),
             ["'memory'"]),
            ('x float64', torch.randn(3, 8).double(), torch.randn(4, 8),
             ["'memory'", "'x'"]),
            ('both float64, layer float32', torch.randn(3, 8).double(),
             torch.randn(4, 8).double(), ["'x'"])):
        yield (f'TransformerDecoderLayer {desc}', lambda x=x, m=mem: layer(
            x, m, *args), names, None)
    ds = SpringsDataset(None, 3, num_steps=200)
    for index in (3, 10, -4):
        yield (f'SpringsDataset[{index}] of 3', lambda i=index: ds[i],
               ['index'], None)
    block = NonLocalBlock(4).train()
    for shape in ((1, 4, 1, 1), (1, 4, 1), (1, 4, 1, 1, 1)):
        yield (f'NonLocalBlock train on {shape}', lambda s=shape: block(
            torch.randn(s)), ["'x'"], None)
    images = Batch.from_data_list([ImageToGraph()(torch.randn(3, 4, 4))
                                   for _ in range(2)])
    for k in (3, 5):
        conv = LatticeConv(3, 6, kernel_size=k)
        yield (f'LatticeConv(kernel_size={k}) on ImageToGraph(kernel_size=3)',
               lambda c=conv: c(images.x, images.edge_index,
                                images.edge_type),
               [f'kernel_size=(3, 3)' if k == 3 else "'edge_type'"], None)


def compile_cases():
    """torch.compile(fullgraph=True, backend='eager') of the default path
    on a plain edge_index: OK if it compiles and equals eager."""
    import torch._dynamo
    from pyg_relational.nn import (FullyConnectedConv, GraphNetwork,
                                   LatticeConv, RecurrentConv,
                                   TransformerDecoderLayer)
    x, ei = torch.randn(6, F), complete_graph([3, 3])
    edge_index, edge_type, _ = grid_graph((3, 3), 3, padding='same')
    cases = {
        'AttentionConv': (AttentionConv(F, 4, heads=2), (x, ei)),
        'MultiheadAttentionConv': (MultiheadAttentionConv(F, 2), (x, ei)),
        'TransformerEncoderLayer': (TransformerEncoderLayer(
            F, 2, 8, dropout=0.), (x, ei)),
        'TransformerDecoderLayer': (TransformerDecoderLayer(
            F, 2, 8, dropout=0.), (x, torch.randn(4, F), ei,
                                   bipartite_graph(4, 6))),
        'NonLocalBlock': (NonLocalBlock(F).eval(), (x, ei)),
        'LatticeConv': (LatticeConv(2, 3, (3, 3)), (torch.randn(9, 2),
                                                    edge_index, edge_type)),
        'FullyConnectedConv': (FullyConnectedConv(F, 3), (x, )),
        'MPNNConv': (MPNNConv(F, F + 2, num_steps=2), (x, ei)),
        'InteractionNetwork': (LAYERS['InteractionNetwork'](), (x, ei)),
        'NRIEncoder': (NRIEncoder(3 * F, 8), (torch.randn(3, 3, F),
                                              complete_graph(3, self_loops=
                                                             False))),
        'NRIDecoder': (NRIDecoder(F, 2, 8, 8, 8), (
            torch.randn(3, 3, F), complete_graph(3, self_loops=False),
            torch.rand(6, 2))),
        'NRIRNNDecoder': (NRIRNNDecoder(F, 2, 8), (
            torch.randn(3, 3, F), complete_graph(3, self_loops=False),
            torch.rand(6, 2))),
        'RecurrentConv': (RecurrentConv(F, 4), (x, chain_graph([3, 3]))),
        'GraphNetwork': (GraphNetwork.from_sizes(F, 0, 0, (5, 4, 0),
                                                 hidden_channels=8), (x, ei)),
    }

    def compiled(module, args):
        torch._dynamo.reset()
        eager = _first(module(*args))
        out = _first(torch.compile(module, backend='eager', fullgraph=True,
                                   dynamic=False)(*args))
        return eager, out

    for name, (module, args) in cases.items():
        yield (f'{name} fullgraph', lambda m=module, a=args: compiled(m, a),
               None, lambda r: _equal(r[0], r[1], 1e-5), 120.)


def first_hour_cases(tmp):
    from pyg_relational.bench import cli
    from pyg_relational.bench import scale

    def offline_citation():
        from torch_geometric.datasets import Planetoid
        from pyg_relational.bench import citation
        saved = Planetoid.download

        def offline(self):
            raise OSError('Cannot connect to host github.com:443')
        Planetoid.download = offline
        citation._CACHE.clear()
        empty = osp.join(tmp, 'no-data')
        os.makedirs(empty, exist_ok=True)
        out = osp.join(tmp, 'bench-offline')
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                code = cli.main(['citation', '--no-progress', '--no-plots',
                                 '--data-root', empty, '--out', out])
        finally:
            Planetoid.download = saved
        with open(osp.join(out, 'report.md')) as f:
            return code, f.read()

    yield ('pyg-relational bench citation offline', offline_citation, None,
           lambda r: r[0] == 0 and '| citation | skipped: Planetoid Cora'
           in r[1] and '--data-root DIR' in r[1], 120.)

    def hint():
        import torch_geometric.typing as pyg_typing
        saved = pyg_typing.WITH_PYG_LIB, pyg_typing.WITH_TORCH_SPARSE
        pyg_typing.WITH_PYG_LIB = pyg_typing.WITH_TORCH_SPARSE = False
        try:
            return scale.sampler_missing()
        finally:
            pyg_typing.WITH_PYG_LIB, pyg_typing.WITH_TORCH_SPARSE = saved
    yield ("the 'full' extra hint", hint, None,
           lambda r: "pip install -e '.[full]'" in r)


def categories(tmp):
    return {
        'NRI metric and loss (edge_accuracy, nll_gaussian)':
            nri_metric_cases(),
        'NRI arguments (prior, tau, variance)': nri_model_cases(),
        'window_graph centers': window_cases(),
        'nodes_to_sequence': sequence_cases(),
        'builders: absurd and bad sizes': builder_cases(),
        'layers: random graphs, bad graphs, bad sizes': layer_cases(),
        'dataset cache': cache_cases(osp.join(tmp, 'cache')),
        'examples/nri.py resume': resume_cases(tmp),
        'issue 22: silent results': silent_cases(),
        'issue 22: obscure errors': obscure_cases(),
        'issue 22: torch.compile fullgraph (default path)': compile_cases(),
        "issue 22: a new user's first hour": first_hour_cases(tmp),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', help='also write the markdown table here')
    p.add_argument('--only', help='run the categories whose name contains '
                   'this text')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    counts, notes = defaultdict(Counter), []
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(osp.join(tmp, 'cache'))
        for category, cases in categories(tmp).items():
            # a cache folder that cannot be written is an OSError
            errors = ERRORS + (OSError, ) if 'cache' in category else ERRORS
            if args.only and args.only not in category:
                continue
            for desc, call, names, check, *limit in cases:
                outcome, why = judge(call, names, check, errors=errors,
                                     limit=limit[0] if limit else 10.)
                counts[category][outcome] += 1
                if outcome not in ('CLEAR', 'OK'):
                    notes.append(f'- {outcome} {category}: {desc}: {why}')
    lines = ['| category | inputs | ' + ' | '.join(OUTCOMES) + ' |',
             '|---|---|' + '---|' * len(OUTCOMES)]
    total = Counter()
    for category, c in counts.items():
        total.update(c)
        lines.append(f'| {category} | {sum(c.values())} | ' +
                     ' | '.join(str(c[o]) for o in OUTCOMES) + ' |')
    lines.append(f'| **all** | **{sum(total.values())}** | ' +
                 ' | '.join(f'**{total[o]}**' for o in OUTCOMES) + ' |')
    text = '\n'.join(lines + [''] + (notes or ['(no OBSCURE, SILENT or '
                                                'CRASH case)'])) + '\n'
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    return counts


if __name__ == '__main__':
    main()
