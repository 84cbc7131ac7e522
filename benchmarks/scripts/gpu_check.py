"""GPU check (issue 20): every path proven on CUDA, and the layers timed
against their twins, in one prepared run.

On a CUDA machine, from the repository root (under 8 minutes):

    python benchmarks/scripts/gpu_check.py --device cuda --out benchmarks/results/gpu.md

Smoke run on the CPU (what the test suite runs, well under a minute):

    python benchmarks/scripts/gpu_check.py --device cpu --quick --out /tmp/gpu.md

What it does, in order, writing everything to ``--out`` (markdown):

1. the environment: torch / CUDA versions, the GPU and its compute
   capability, which SDPA backends are enabled, TF32 flags;
2. the tests on ``--device`` only (``PYG_RELATIONAL_TEST_DEVICES``): the
   conformance suite (float32 / float64 paths, bfloat16 / float16, autocast:
   float16 on CUDA, bfloat16 on CPU), the twin tests, and the ``meta``
   tests of the non-CPU branches; counts of passed / failed / skipped and
   the failures' ids;
3. timings, forward + backward, our layer against its twin in the same
   process on the same data and weights: one warm-up round, then the two
   (or more) functions alternated ``--repeat`` times and the medians kept;
   CUDA events on CUDA, ``time.perf_counter`` on CPU; peak memory above
   the inputs by ``torch.cuda.max_memory_allocated`` (CUDA only):

   * ``MultiheadAttentionConv`` vs ``nn.MultiheadAttention`` on complete /
     causal / ragged (key padding) blocks, T = 256 ... 8192, float32 and
     bfloat16 autocast, with the SDPA backend PyTorch picks for the dense
     path's shapes (``torch.ops.aten._fused_sdp_choice``), plus ragged
     blocks in inference under autocast (the varlen kernel: whether it ran
     is recorded);
   * ``TransformerEncoderLayer`` vs PyTorch's, training, dropout 0 and 0.1
     (with dropout and a gradient the dense path runs the math attention
     off the CPU, for exact second order: this row prices it);
   * ``RecurrentConv`` vs ``nn.LSTM`` (cuDNN), ``LatticeConv`` vs
     ``nn.Conv2d`` (cuDNN), ``NonLocalBlock`` vs its dense ``bmm`` twin;
   * ``pyg_relational.nn.GATConv`` and ``AttentionConv(score='gat',
     add_self_loops=True)`` vs PyG's ``GATConv`` at 100k nodes / 1M edges;
   * sum / mean / max aggregation of 1M edge messages into 100k nodes:
     torch-scatter ``segment_csr`` and ``scatter``, PyTorch's native
     ``index_add_`` / ``scatter_reduce``, PyG's ``utils.scatter`` and our
     CSR product (``_csr.EdgeSum``; sum and mean).

Targets (issue 20): MHA / Transformer <= 1.1x the twin, LSTM <= 1.1x cuDNN,
Conv <= 1.2x cuDNN, GAT <= 0.67x PyG's GATConv, NonLocalBlock <= 1.2x
(issue 12's).
"""
import argparse
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pyg_relational import chain_graph  # noqa: E402
from pyg_relational.graphs import grid_graph  # noqa: E402
from pyg_relational.nn import (AttentionConv, GATConv,  # noqa: E402
                               LatticeConv, MultiheadAttentionConv,
                               NonLocalBlock, RecurrentConv, _dense)
from pyg_relational.nn._csr import EdgePattern, EdgeSum  # noqa: E402
from pyg_relational.structure import CompleteBlocks  # noqa: E402
from pyg_relational.transforms import image_to_nodes  # noqa: E402

TWIN_TESTS = ['tests/test_linear.py', 'tests/test_lattice.py',
              'tests/test_recurrent.py', 'tests/test_transformer.py',
              'tests/test_non_local.py', 'tests/test_interaction.py']
TWIN_NAMES = ['test_linear', 'test_lattice', 'test_recurrent',
              'test_transformer', 'test_non_local', 'test_interaction']
# of the twin files, only the twin tests (device-parametrised)
TWIN_SELECTION = 'twin or matches_paper or matches_dense_paper'
BACKENDS = {0: 'math', 1: 'flash', 2: 'efficient', 3: 'cudnn',
            4: 'overrideable', -1: 'none'}


# --------------------------------------------------------------------------
# Environment and tests.
# --------------------------------------------------------------------------
def environment(device: torch.device) -> Dict[str, str]:
    env = {'torch': torch.__version__, 'python': platform.python_version(),
           'device': str(device)}
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        env.update({
            'gpu': props.name,
            'capability': '.'.join(map(str, torch.cuda.get_device_capability(
                device))),
            'gpu memory': f'{props.total_memory / 2**30:.1f} GiB',
            'cuda': str(torch.version.cuda),
            'cudnn': str(torch.backends.cudnn.version())})
    env['sdpa enabled'] = ', '.join(
        name for name, on in (
            ('flash', torch.backends.cuda.flash_sdp_enabled()),
            ('efficient', torch.backends.cuda.mem_efficient_sdp_enabled()),
            ('cudnn', torch.backends.cuda.cudnn_sdp_enabled()),
            ('math', torch.backends.cuda.math_sdp_enabled())) if on)
    env['tf32 (matmul, cudnn)'] = (
        f'{torch.backends.cuda.matmul.allow_tf32}, '
        f'{torch.backends.cudnn.allow_tf32}')
    try:
        import torch_scatter
        env['torch_scatter'] = torch_scatter.__version__
    except ImportError:
        env['torch_scatter'] = 'not installed'
    return env


def run_tests(device: torch.device, quick: bool, timeout: int) -> List[dict]:
    """The test groups on ``device`` only (pytest subprocesses, the device
    list set to this device); one row of counts per group. Outcomes are read
    from pytest's verbose lines, so a run stopped by ``timeout`` still
    reports what it finished."""
    if quick:  # a few of each group, one process: the plumbing is checked
        runs = [['tests/test_conformance.py', 'tests/test_linear.py',
                 'tests/test_meta_device.py', '-k',
                 '(test_path_equals_message_path and mha-complete-dense) or '
                 '(test_twin_linear and batch_shape0) or '
                 'releases_its_graph']]
    else:
        runs = [['tests/test_conformance.py'],
                ['tests/test_meta_device.py', *TWIN_TESTS, '-k',
                 f'not ({" or ".join(TWIN_NAMES)}) or {TWIN_SELECTION}']]
    env = dict(os.environ, PYG_RELATIONAL_TEST_DEVICES=str(device.type))
    rows: Dict[str, dict] = {}
    notes = []
    start = time.perf_counter()
    for args in runs:
        command = [sys.executable, '-m', 'pytest', '-v', '-p',
                   'no:cacheprovider', *args]
        try:
            done = subprocess.run(command, cwd=ROOT, env=env,
                                  capture_output=True, text=True,
                                  timeout=timeout)
            output = done.stdout
            if done.returncode not in (0, 1):  # 1: some test failed
                notes.append(f'pytest exit {done.returncode}: '
                             f'{(done.stdout + done.stderr)[-300:]}')
        except subprocess.TimeoutExpired as error:
            output = error.stdout or ''
            output = output.decode() if isinstance(output, bytes) else output
            notes.append(f'{args[0]}: stopped after {timeout} s')
        _count_outcomes(output, rows)
    out = list(rows.values()) or [{'group': 'all', 'passed': 0}]
    for note in notes:
        out.append({'group': 'note', 'error': note})
    out.append({'group': 'wall time',
                'seconds': time.perf_counter() - start})
    return out


OUTCOME = re.compile(r'^(tests/[\w/]+\.py)::(\S+) (PASSED|FAILED|ERROR|'
                     r'SKIPPED|XFAIL|XPASS)', re.M)
GROUPS = {'tests/test_conformance.py': 'conformance',
          'tests/test_meta_device.py': 'meta branches'}


def _count_outcomes(output: str, rows: Dict[str, dict]):
    """Passed / failed / skipped per group, from ``pytest -v`` lines."""
    for path, name, outcome in OUTCOME.findall(output):
        group = GROUPS.get(path, 'twins')
        row = rows.setdefault(group, {'group': group, 'passed': 0,
                                      'failed': 0, 'skipped': 0,
                                      'failures': []})
        if outcome in ('FAILED', 'ERROR', 'XPASS'):
            row['failed'] += 1
            row['failures'].append(f'{path}::{name}')
        elif outcome in ('SKIPPED', 'XFAIL'):
            row['skipped'] += 1
        else:
            row['passed'] += 1


# --------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------
def _sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == 'cuda':
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def _peak(fn: Callable[[], object], device: torch.device) -> Optional[int]:
    """Bytes allocated by one call above what was allocated before (CUDA);
    None elsewhere."""
    if device.type != 'cuda':
        return None
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def alternate(fns: Dict[str, Callable[[], object]], device: torch.device,
              repeat: int) -> Dict[str, dict]:
    """Median seconds and peak bytes of every function: one warm-up round,
    then ``repeat`` rounds calling them in turn (A B C A B C ...)."""
    for fn in fns.values():
        fn()
    peaks = {name: _peak(fn, device) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(_time_once(fn, device))
    return {name: {'s': statistics.median(times[name]),
                   'peak': peaks[name]} for name in fns}


def train_step(forward: Callable[[], object], leaves: Sequence[torch.Tensor]
               ) -> Callable[[], None]:
    """``forward`` + backward of the sum of its first output (float32
    loss), gradients of ``leaves`` cleared first."""
    def step():
        for t in leaves:
            t.grad = None
        out = forward()
        out = out[0] if isinstance(out, (tuple, list)) else out
        out.float().sum().backward()
    return step


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def max_diff(a, b) -> float:
    a, b = _first(a).detach().float(), _first(b).detach().float()
    return float((a - b).abs().max()) if a.numel() else 0.


def _ms(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{seconds * 1e3:.3f}'


def _mib(num_bytes: Optional[int]) -> str:
    return '-' if num_bytes is None else f'{num_bytes / 2**20:.1f}'


def pair_row(name: str, config: str, ours: str, twin: str, timing: dict,
             diff: float, target: Optional[float], **extra) -> dict:
    ratio = timing[ours]['s'] / timing[twin]['s']
    return dict(layer=name, config=config, ours_ms=_ms(timing[ours]['s']),
                twin_ms=_ms(timing[twin]['s']), ratio=f'{ratio:.2f}',
                target='-' if target is None else f'<= {target}',
                met='-' if target is None else
                ('yes' if ratio <= target else 'NO'),
                ours_mib=_mib(timing[ours]['peak']),
                twin_mib=_mib(timing[twin]['peak']),
                max_abs_diff='n/a' if diff is None
                else f'{diff:.1e}', **extra)


# --------------------------------------------------------------------------
# Cases.
# --------------------------------------------------------------------------
def sdpa_backend(shape, dtype, device, causal: bool, masked: bool) -> str:
    """The SDPA kernel PyTorch picks for ``[B, H, T, C]`` blocks with a
    gradient (what the dense path calls)."""
    q = torch.empty(shape, dtype=dtype, device=device, requires_grad=True)
    mask = None
    if masked:
        mask = torch.ones(shape[0], 1, 1, shape[2], dtype=torch.bool,
                          device=device)
    try:
        choice = int(torch.ops.aten._fused_sdp_choice(q, q, q, mask, 0.,
                                                      causal))
    except RuntimeError as error:  # no kernel at all
        return f'error: {error}'.splitlines()[0][:60]
    return BACKENDS.get(choice, str(choice))


def mha_cases(device, quick: bool, repeat: int) -> List[dict]:
    embed, heads = (16, 2) if quick else (256, 8)
    lengths_T = (16, 32) if quick else (256, 1024, 4096, 8192)
    tokens = 64 if quick else 8192
    rows = []
    for precision in ('float32', 'autocast-bfloat16'):
        autocast = precision != 'float32'
        for T in lengths_T:
            B = max(1, tokens // T)
            for kind in ('complete', 'causal', 'ragged'):
                if kind == 'ragged' and B == 1:
                    B = 2  # two blocks of different lengths
                rows.append(_mha_case(device, embed, heads, B, T, kind,
                                      autocast, repeat))
    rows.extend(_varlen_rows(device, embed, heads, lengths_T[-1], quick))
    return rows


def _ragged_lengths(B: int, T: int) -> torch.Tensor:
    # from T down to about T / 2: every block different, the longest T
    return torch.tensor([T - (k * T) // (2 * B) for k in range(B)])


def _mha_case(device, embed, heads, B, T, kind, autocast, repeat) -> dict:
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True).to(
        device)
    conv = MultiheadAttentionConv.from_module(mha)
    lengths = _ragged_lengths(B, T) if kind == 'ragged' \
        else torch.full((B, ), T)
    valid = (torch.arange(T).view(1, -1) < lengths.view(-1, 1)).to(device)
    # the graph as its structure: a T = 8192 edge list would be 67M edges
    edge_index = CompleteBlocks(tuple(lengths.tolist()),
                                causal=kind == 'causal')
    x = torch.randn(B, T, embed, device=device)
    x_nodes = x[valid].detach().requires_grad_()
    x_twin = x.detach().requires_grad_()
    kwargs = {}
    if kind == 'causal':
        kwargs = dict(attn_mask=torch.nn.Transformer.
                      generate_square_subsequent_mask(T, device=device),
                      is_causal=True)
    if kind == 'ragged':
        kwargs = dict(key_padding_mask=~valid)
    dtype = torch.bfloat16 if autocast else torch.float32

    def ours():
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            return conv(x_nodes, edge_index)

    def twin():
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            return mha(x_twin, x_twin, x_twin, need_weights=False,
                       **kwargs)[0][valid]

    diff = max_diff(ours(), twin())
    params = list(mha.parameters())
    timing = alternate({'ours': train_step(ours, [x_nodes, *params]),
                        'twin': train_step(twin, [x_twin, *params])},
                       device, repeat)
    backend = sdpa_backend((B, heads, T, embed // heads), dtype, device,
                           kind == 'causal', kind == 'ragged')
    return pair_row('MultiheadAttentionConv', f'{kind} B={B} T={T} '
                    f'{"bf16-autocast" if autocast else "fp32"}', 'ours',
                    'twin', timing, diff, 1.1, path=conv.last_path,
                    sdpa=backend)


def _dense_graph_on(edge_index, device):
    """The builder's graph on ``device`` with its structure kept."""
    from pyg_relational.structure import register, structure_of
    structure = structure_of(edge_index, recognise_unknown=False)
    moved = edge_index.to(device)
    return moved if structure is None else register(moved, structure)


def _varlen_rows(device, embed, heads, T, quick) -> List[dict]:
    """Ragged blocks in inference under bfloat16 autocast: the varlen path
    where its preconditions hold (recorded: ran or not, and why)."""
    B = 4
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True).to(
        device).eval()
    conv = MultiheadAttentionConv.from_module(mha).eval()
    lengths = _ragged_lengths(B, T)
    valid = (torch.arange(T).view(1, -1) < lengths.view(-1, 1)).to(device)
    edge_index = CompleteBlocks(tuple(lengths.tolist()))
    x = torch.randn(B, T, embed, device=device)
    calls = {'n': 0}
    kernel = _dense._varlen_kernel

    def counting():
        inner = kernel()

        def run(*args, **kwargs):
            calls['n'] += 1
            return inner(*args, **kwargs)
        return None if inner is None else run

    def ours():
        with torch.no_grad(), torch.autocast(device.type,
                                             dtype=torch.bfloat16):
            return conv(x[valid], edge_index)

    def twin():
        with torch.no_grad(), torch.autocast(device.type,
                                             dtype=torch.bfloat16):
            return mha(x, x, x, need_weights=False,
                       key_padding_mask=~valid)[0][valid]

    _dense._varlen_kernel = counting
    try:
        diff = max_diff(ours(), twin())
        timing = alternate({'ours': ours, 'twin': twin}, device,
                           3 if quick else 10)
    finally:
        _dense._varlen_kernel = kernel
    head = embed // heads
    probe = torch.empty(lengths.sum().item(), heads, head, device=device,
                        dtype=torch.bfloat16)
    layout = _dense._layout(edge_index, str(device))
    reason = _dense.varlen_reason(probe, probe, probe, layout)
    return [pair_row('MultiheadAttentionConv (inference)',
                     f'ragged B={B} T<={T} bf16-autocast no-grad', 'ours',
                     'twin', timing, diff, None, path=conv.last_path,
                     sdpa='varlen' if calls['n'] else
                     f'padded ({reason})')]


def transformer_cases(device, quick: bool, repeat: int) -> List[dict]:
    """``TransformerEncoderLayer`` vs PyTorch's, training mode, without and
    with dropout (with dropout and a gradient our dense path runs the
    twice-differentiable math attention on CUDA: this row prices that)."""
    from pyg_relational.nn import TransformerEncoderLayer
    embed, heads, ff, B, T = (16, 2, 32, 2, 16) if quick else \
        (256, 8, 1024, 8, 1024)
    rows = []
    for dropout in (0., 0.1):
        torch.manual_seed(0)
        module = torch.nn.TransformerEncoderLayer(
            embed, heads, ff, dropout=dropout, batch_first=True).to(device)
        layer = TransformerEncoderLayer.from_module(module).train()
        graph = CompleteBlocks((T, ) * B)
        x = torch.randn(B, T, embed, device=device)
        x_nodes = x.reshape(-1, embed).detach().requires_grad_()
        x_twin = x.detach().requires_grad_()

        def ours():
            return layer(x_nodes, graph)

        def twin():
            return module(x_twin).reshape(-1, embed)

        diff = max_diff(ours(), twin()) if dropout == 0 else None
        params = list(module.parameters())
        timing = alternate({'ours': train_step(ours, [x_nodes, *params]),
                            'twin': train_step(twin, [x_twin, *params])},
                           device, repeat)
        rows.append(pair_row('TransformerEncoderLayer',
                             f'B={B} T={T} d={embed} dropout={dropout}',
                             'ours', 'twin', timing, diff, 1.1,
                             path=getattr(layer, 'last_path', '-'),
                             sdpa='math (dropout)' if dropout else
                             sdpa_backend((B, heads, T, embed // heads),
                                          torch.float32, device, False,
                                          False)))
    return rows


def lstm_case(device, quick: bool, repeat: int) -> List[dict]:
    B, T, size = (4, 8, 16) if quick else (64, 256, 256)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(size, size, batch_first=True).to(device)
    layer = RecurrentConv.from_module(lstm)
    edge_index = _dense_graph_on(chain_graph([T] * B), device)
    x = torch.randn(B, T, size, device=device)
    x_nodes = x.reshape(-1, size).detach().requires_grad_()
    x_twin = x.detach().requires_grad_()

    def ours():
        return layer(x_nodes, edge_index)[0]

    def twin():
        return lstm(x_twin)[0].reshape(-1, size)

    diff = max_diff(ours(), twin())
    params = list(lstm.parameters())
    timing = alternate({'ours': train_step(ours, [x_nodes, *params]),
                        'twin': train_step(twin, [x_twin, *params])},
                       device, repeat)
    return [pair_row('RecurrentConv (LSTM)', f'B={B} T={T} H={size}',
                     'ours', 'twin', timing, diff, 1.1,
                     path=layer.last_path, sdpa='-')]


def conv_case(device, quick: bool, repeat: int) -> List[dict]:
    B, C, side = (2, 4, 8) if quick else (32, 64, 32)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(C, C, 3, padding=1).to(device)
    layer = LatticeConv.from_module(conv)
    edge_index, edge_type, _ = layer.grid_graph((side, side), B)
    edge_index = _dense_graph_on(edge_index, device)
    edge_type = edge_type.to(device)
    image = torch.randn(B, C, side, side, device=device)
    x_nodes = image_to_nodes(image).detach().requires_grad_()
    x_twin = image.detach().requires_grad_()

    def ours():
        return layer(x_nodes, edge_index, edge_type)

    def twin():
        return image_to_nodes(conv(x_twin))

    diff = max_diff(ours(), twin())
    params = list(conv.parameters())
    timing = alternate({'ours': train_step(ours, [x_nodes, *params]),
                        'twin': train_step(twin, [x_twin, *params])},
                       device, repeat)
    return [pair_row('LatticeConv', f'{B}x{C}x{side}x{side} 3x3 same',
                     'ours', 'twin', timing, diff, 1.2,
                     path=layer.last_path, sdpa='-')]


def non_local_case(device, quick: bool, repeat: int) -> List[dict]:
    from pyg_relational.bench.non_local import dense_non_local
    B, C, side = (2, 8, 4) if quick else (8, 64, 32)
    torch.manual_seed(0)
    block = NonLocalBlock(C).to(device)
    x = torch.randn(B, C, side, side, device=device)
    x_graph = x.clone().requires_grad_()
    x_dense = x.clone().requires_grad_()
    diff = max_diff(block(x_graph), dense_non_local(block, x_dense))
    params = list(block.parameters())
    timing = alternate(
        {'ours': train_step(lambda: block(x_graph), [x_graph, *params]),
         'twin': train_step(lambda: dense_non_local(block, x_dense),
                            [x_dense, *params])}, device, repeat)
    return [pair_row('NonLocalBlock', f'{B}x{C}x{side}x{side}', 'ours',
                     'twin', timing, diff, 1.2, path=block.last_path,
                     sdpa='-')]


def _random_graph(num_nodes: int, num_edges: int, device):
    gen = torch.Generator().manual_seed(0)
    return torch.randint(num_nodes, (2, num_edges), generator=gen).to(device)


def gat_cases(device, quick: bool, repeat: int) -> List[dict]:
    from torch_geometric.nn import GATConv as PygGATConv
    N, E, F_in = (200, 2000, 16) if quick else (100_000, 1_000_000, 64)
    out, heads = 16, 4
    edge_index = _random_graph(N, E, device)
    torch.manual_seed(0)
    pyg = PygGATConv(F_in, out, heads=heads).to(device)
    drop_in = GATConv(F_in, out, heads=heads).to(device)
    drop_in.load_state_dict(pyg.state_dict())
    attention = AttentionConv(F_in, out, heads=heads, score='gat',
                              add_self_loops=True).to(device)
    state = pyg.state_dict()  # PyG's names -> AttentionConv's (one lin)
    try:
        attention.load_state_dict({
            'bias': state['bias'], 'lin_src.weight': state['lin.weight'],
            'lin_dst.weight': state['lin.weight'],
            'score.att_src': state['att_src'],
            'score.att_dst': state['att_dst']})
        shared = True
    except (KeyError, RuntimeError):  # its parameters were renamed
        shared = False
    x = torch.randn(N, F_in, device=device)
    leaves = {name: x.clone().requires_grad_()
              for name in ('pyg', 'drop_in', 'attention')}
    layers = {'pyg': pyg, 'drop_in': drop_in, 'attention': attention}
    fns = {name: (lambda n=name: layers[n](leaves[n], edge_index))
           for name in layers}
    reference = fns['pyg']()
    steps = {name: train_step(fns[name], [leaves[name],
                                          *layers[name].parameters()])
             for name in fns}
    timing = alternate(steps, device, repeat)
    rows = []
    for name, label in (('drop_in', 'GATConv (drop-in)'),
                        ('attention', "AttentionConv(score='gat')")):
        same = name == 'drop_in' or shared
        diff = max_diff(fns[name](), reference) if same else None
        rows.append(pair_row(label, f'N={N} E={E} F={F_in} heads={heads}',
                             name, 'pyg', timing, diff, 0.67,
                             path=getattr(layers[name], 'last_path', '-'),
                             sdpa='-'))
    return rows


def aggregation_cases(device, quick: bool, repeat: int) -> List[dict]:
    """Sum / mean / max of ``[E, F]`` messages into ``N`` targets, forward
    + backward to the messages' source features."""
    from torch_geometric.utils import scatter as pyg_scatter
    try:
        import torch_scatter
    except ImportError:
        torch_scatter = None
    N, E, F_ = (200, 2000, 16) if quick else (100_000, 1_000_000, 64)
    edge_index = _random_graph(N, E, device)
    src, dst = edge_index
    order = dst.argsort(stable=True)
    src_sorted, dst_sorted = src[order], dst[order]
    ptr = torch.zeros(N + 1, dtype=torch.long, device=device)
    ptr[1:] = torch.bincount(dst_sorted, minlength=N).cumsum(0)
    pattern = EdgePattern.build(edge_index, N, N)
    degree = torch.bincount(dst, minlength=N).clamp(min=1).to(torch.float32)
    ones = torch.ones(E, device=device)
    inverse = 1. / degree.index_select(0, pattern.target)  # CSR order
    x = torch.randn(N, F_, device=device).requires_grad_()
    rows = []
    for reduce in ('sum', 'mean', 'max'):
        fns = {
            'native': lambda r=reduce: _native(x[src], dst, N, r),
            'pyg_scatter': lambda r=reduce: pyg_scatter(
                x[src], dst, 0, N, reduce=r),
        }
        if torch_scatter is not None:
            fns['ts_scatter'] = lambda r=reduce: torch_scatter.scatter(
                x[src], dst, 0, dim_size=N, reduce=r)
            fns['ts_segment_csr'] = lambda r=reduce: \
                torch_scatter.segment_csr(x[src_sorted], ptr, reduce=r)
        if reduce != 'max':  # a CSR product has no max
            w = ones if reduce == 'sum' else inverse
            fns['our_csr'] = lambda w=w: EdgeSum.apply(pattern, w, x)
        reference = fns['native']()
        diffs, broken = {}, {}
        for name, fn in list(fns.items()):
            try:  # e.g. a torch-scatter build without CUDA kernels
                diffs[name] = max_diff(_first(fn()), reference)
            except Exception as error:  # noqa: BLE001
                broken[name] = f'error: {type(error).__name__}'
                del fns[name]
        timing = alternate({name: train_step(fn, [x])
                            for name, fn in fns.items()}, device, repeat)
        fastest = min(timing, key=lambda n: timing[n]['s'])
        row = {'reduce': reduce, 'config': f'N={N} E={E} F={F_}'}
        for name in ('native', 'pyg_scatter', 'ts_scatter', 'ts_segment_csr',
                     'our_csr'):
            row[f'{name}_ms'] = _ms(timing[name]['s']) if name in timing \
                else broken.get(name, 'n/a')
        row['fastest'] = fastest
        row['max_abs_diff'] = f'{max(diffs.values()):.1e}'
        rows.append(row)
    return rows


def _native(messages, index, size, reduce):
    out = messages.new_zeros(size, messages.size(-1))
    if reduce == 'sum':
        return out.index_add(0, index, messages)
    return out.scatter_reduce(0, index.view(-1, 1).expand_as(messages),
                              messages, 'mean' if reduce == 'mean'
                              else 'amax', include_self=False)


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------
def table(rows: Sequence[dict]) -> str:
    if not rows:
        return '(none)\n'
    keys = list(rows[0])
    for row in rows[1:]:
        keys += [k for k in row if k not in keys]
    lines = ['| ' + ' | '.join(keys) + ' |',
             '|' + '---|' * len(keys)]
    for row in rows:
        lines.append('| ' + ' | '.join(str(row.get(k, '')) for k in keys)
                     + ' |')
    return '\n'.join(lines) + '\n'


def render(env, tests, sections, args, seconds) -> str:
    out = ['# GPU check (issue 20)\n',
           f'`python benchmarks/scripts/gpu_check.py --device {args.device}'
           f'{" --quick" if args.quick else ""}` — {seconds:.0f} s in all, '
           f'medians of {args.repeat} alternated fwd+bwd runs after one '
           f'warm-up round (CUDA events on CUDA), peak memory above the '
           f'inputs by `torch.cuda.max_memory_allocated` (CUDA only).\n',
           '## Environment\n', table([env])]
    if tests is not None:
        out += ['\n## Tests on this device\n', table([
            {k: (', '.join(v[:10]) + (' ...' if len(v) > 10 else '')
                 if isinstance(v, list) else
                 (f'{v:.0f} s' if k == 'seconds' else v))
             for k, v in row.items()} for row in tests])]
    for title, rows, said in sections:
        out += [f'\n## {title}\n', table(rows)]
        if said:
            out += ['Warnings:\n'] + [f'- {w}' for w in said] + ['']
    return '\n'.join(out)


SECTIONS = [
    ('MultiheadAttentionConv vs nn.MultiheadAttention', mha_cases),
    ('TransformerEncoderLayer vs nn.TransformerEncoderLayer',
     transformer_cases),
    ('RecurrentConv vs nn.LSTM (cuDNN on CUDA)', lstm_case),
    ('LatticeConv vs nn.Conv2d (cuDNN on CUDA)', conv_case),
    ('NonLocalBlock vs its dense bmm twin', non_local_case),
    ("GAT: drop-in GATConv and AttentionConv(score='gat') vs PyG GATConv",
     gat_cases),
    ('Aggregation: torch-scatter vs PyTorch native vs our CSR product',
     aggregation_cases),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes and a few tests (CPU smoke run)')
    parser.add_argument('--repeat', type=int, default=None,
                        help='alternated timed rounds (default 10; '
                        'quick: 2)')
    parser.add_argument('--out', default=osp.join(ROOT, 'benchmarks',
                                                  'results', 'gpu.md'))
    parser.add_argument('--skip-tests', action='store_true')
    parser.add_argument('--test-timeout', type=int, default=210,
                        help='seconds per pytest run (two runs; default '
                        '210): what finished is still reported')
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (2 if args.quick else 10)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but torch.cuda.is_available() is False')
    # the same numerics as the tests: no TF32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    start = time.perf_counter()
    env = environment(device)
    tests = None if args.skip_tests else run_tests(device, args.quick,
                                                   args.test_timeout)
    sections = []
    for title, cases in SECTIONS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                rows = cases(device, args.quick, args.repeat)
            except Exception as error:  # noqa: BLE001 - keep the others
                rows = [{'error': f'{type(error).__name__}: {error}'[:300]}]
        # e.g. cuDNN copying RNN weights that are not one contiguous chunk
        said = sorted({f'{w.category.__name__}: {w.message}'[:200]
                       for w in caught})
        sections.append((title, rows, said))
        print(f'{title}: done ({time.perf_counter() - start:.0f} s)',
              flush=True)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    text = render(env, tests, sections, args, time.perf_counter() - start)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    print(text)
    failed = any(row.get('failed') or row.get('error') for row in tests or [])
    errors = any('error' in row for _, rows, _ in sections for row in rows)
    return 1 if failed or errors else 0


if __name__ == '__main__':
    sys.exit(main())
