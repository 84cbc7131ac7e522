"""One paper-size NRI training step (forward, backward, Adam) in float32 vs
bfloat16 autocast, timed in alternation (median), with the load average:

    python benchmarks/scripts/nri_speed_bf16.py [--system springs]
        [--batch-size 128] [--hidden 256] [--repeat 15] [--threads 1]
        [--encoder-hidden H] [--decoder-hidden H]

Paper size (the default): 5 particles, 49 frames, batch 128, encoder and
decoder hidden 256, 10 prediction steps, the complete candidate graph. The
``cpu`` recipe of ``examples/nri.py``: ``--batch-size 64 --encoder-hidden 128
--decoder-hidden 64``. Prints one JSON line.
"""
import argparse
import json
import os

import torch

from pyg_relational.bench.nri import autocast, build_model, skip_first_for
from pyg_relational.bench.timing import measure_pair
from pyg_relational.graphs import complete_graph

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--system', default='springs')
p.add_argument('--particles', type=int, default=5)
p.add_argument('--frames', type=int, default=49)
p.add_argument('--batch-size', type=int, default=128)
p.add_argument('--hidden', type=int, default=256,
               help='encoder and decoder hidden size, unless given apart')
p.add_argument('--encoder-hidden', type=int)
p.add_argument('--decoder-hidden', type=int)
p.add_argument('--pred-steps', type=int, default=10)
p.add_argument('--repeat', type=int, default=15)
p.add_argument('--threads', type=int, default=1)
p.add_argument('--device', default='cpu')
args = p.parse_args()
enc_hidden = args.encoder_hidden or args.hidden
dec_hidden = args.decoder_hidden or args.hidden
torch.set_num_threads(args.threads)
torch.manual_seed(0)
B, n, T = args.batch_size, args.particles, args.frames
x = (torch.rand(B * n, T, 4) * 2 - 1).to(args.device)  # [B*n, T, 4]
edge_index = complete_graph([n] * B, self_loops=False).to(args.device)
model = build_model(T, 4, enc_hidden, dec_hidden,
                    skip_first=skip_first_for(args.system)).to(args.device)
opt = torch.optim.Adam(model.parameters(), lr=1e-9)  # keeps weights ~fixed


def step(precision):
    def run():
        with autocast(args.device, precision):
            loss = model.loss(x, edge_index, args.pred_steps)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
    return run


load_before = open('/proc/loadavg').read().split()[:3]
m32, m16 = measure_pair(step('float32'), step('bf16'), args.repeat, 2,
                        args.device, memory=False)
load_after = open('/proc/loadavg').read().split()[:3]
print(json.dumps(dict(
    config=f'{args.system} {n} particles, batch {B}, hidden {enc_hidden} / '
    f'{dec_hidden}, '
    f'{T} frames, pred_steps {args.pred_steps}, {args.threads} thread(s), '
    f'{args.device}', float32_ms=round(m32.median_s * 1e3, 1),
    bf16_ms=round(m16.median_s * 1e3, 1),
    speedup=round(m32.median_s / m16.median_s, 2), repeat=args.repeat,
    cpu_capability=torch.backends.cpu.get_cpu_capability(),
    loadavg_before=load_before, loadavg_after=load_after,
    pid=os.getpid())))
