r"""Data-parallel training with ``torch.distributed``: a Graph Network infers
which particles of a simulated spring system are joined by springs
(supervised edge classification), one process or many, same numbers.

One process, the whole global batch::

    python examples/distributed.py --quick --save one.pt

Two processes on this machine, half the global batch each (gloo on CPU)::

    torchrun --standalone --nproc_per_node 2 examples/distributed.py \
        --quick --save two.pt

With ``--quick`` (a few steps, no dropout, fixed seed) the two saved state
dicts agree within 1e-5: every rank draws the same initial weights,
:class:`~torch.utils.data.distributed.DistributedSampler` gives rank ``r``
the samples ``r, r + W, r + 2W, ...`` of one shuffled order (the same order
the single process walks through with ``num_replicas=1``), so the ranks'
batches of one step together are the single process's batch of that step;
each rank takes the mean loss over its batch and
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients,
which equals the gradient of the mean loss over the global batch (every
system has the same number of candidate edges). The model has no batch
norm (it would need :class:`~torch.nn.SyncBatchNorm` to stay equal).
Dropout (off with ``--quick``) draws per rank, so with dropout one and
several processes train equally well but not bit for bit alike.

Several machines: run the same command on each node, naming the number of
nodes and one rendezvous endpoint reachable from all of them::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-id job42 \
        --rdzv-backend c10d --rdzv-endpoint node0.example:29400 \
        examples/distributed.py --epochs 20 --batch-size 512 --save gn.pt

GPUs: when CUDA is available each rank uses the device ``cuda:LOCAL_RANK``
(one device per rank; start as many processes per node as it has GPUs)
and the ``nccl`` backend; otherwise ``cpu`` and ``gloo``. ``--device cpu``
forces the CPU, ``--backend`` the backend. Only rank 0 writes the
checkpoint (``model.state_dict()`` of the unwrapped model, so it loads
into the plain model) and prints.

What was tested: CPU, gloo, 2 processes on one machine
(``tests/test_distributed.py``); the NCCL and multi-node launches follow
the PyTorch recipes but were not run here.
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.loader import DataLoader

from pyg_relational.datasets import SpringsDataset
from pyg_relational.nn import EdgeBlock, GraphNetwork


class EdgeClassifier(torch.nn.Module):
    r"""Trajectories ``[N, T, 4]`` → one logit per candidate edge: a node
    encoder, a :class:`~pyg_relational.nn.GraphNetwork` (edge then node
    update, no globals), a second one with its edge block only and a linear
    edge read-out. Every parameter reaches the loss (DDP requires it unless
    ``find_unused_parameters=True``)."""

    def __init__(self, in_channels: int, hidden_channels: int = 64,
                 dropout: float = 0.):
        super().__init__()
        self.encoder = torch.nn.Linear(in_channels, hidden_channels)
        self.dropout = torch.nn.Dropout(dropout)
        H = hidden_channels
        self.gn1 = GraphNetwork.from_sizes(node_channels=H, edge_channels=0,
                                           global_channels=0,
                                           out_channels=(H, H, 0))
        self.gn2 = GraphNetwork(EdgeBlock.from_sizes(  # edges only
            edge_channels=H, node_channels=H, global_channels=0,
            out_channels=H))
        self.head = torch.nn.Linear(H, 1)

    def forward(self, x, edge_index):
        x = x.reshape(x.size(0), -1)  # [N, T, 4] -> [N, T*4]
        x = self.dropout(torch.relu(self.encoder(x)))
        x, e, _ = self.gn1(x, edge_index)
        x, e, _ = self.gn2(torch.relu(x), edge_index, torch.relu(e))
        return self.head(torch.relu(e)).view(-1)  # [E]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true',
                   help='a few steps on a small set, no dropout')
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--steps', type=int, default=None,
                   help='stop after this many optimizer steps')
    p.add_argument('--batch-size', type=int, default=64,
                   help='global batch (systems), split across the ranks')
    p.add_argument('--train', type=int, default=4096,
                   help='training systems')
    p.add_argument('--test', type=int, default=512)
    p.add_argument('--particles', type=int, default=5)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--dropout', type=float, default=0.1)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--root', default=None,
                   help='cache folder of the simulated data (default: none)')
    p.add_argument('--device', default=None,
                   help="'cpu' or 'cuda' (default: cuda if available)")
    p.add_argument('--backend', default=None,
                   help="'gloo' or 'nccl' (default: nccl on cuda, else gloo)")
    p.add_argument('--save', default=None, help='checkpoint path (rank 0)')
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.steps, args.batch_size = 1, 4, 16
        args.train, args.test, args.dropout = 64, 32, 0.
    return args


def setup(args):
    r"""``(rank, world_size, device)``; joins the process group when
    started by ``torchrun`` (``WORLD_SIZE`` set)."""
    distributed = int(os.environ.get('WORLD_SIZE', '1')) > 1
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    world = int(os.environ.get('WORLD_SIZE', '1'))
    cuda = torch.cuda.is_available() if args.device is None \
        else args.device.startswith('cuda')
    device = torch.device(f'cuda:{local_rank}' if cuda else 'cpu')
    if args.batch_size % world != 0:
        raise ValueError(f"--batch-size {args.batch_size} is not divisible by "
                         f"the {world} processes; pass a multiple of {world}")
    if cuda:
        torch.cuda.set_device(device)
    if distributed:
        dist.init_process_group(args.backend or ('nccl' if cuda else 'gloo'))
    return rank, world, device


def make_data(args):
    sim = dict(num_particles=args.particles, num_steps=1000,
               sample_every=100)
    train = SpringsDataset(args.root, args.train, seed=args.seed, **sim)
    test = SpringsDataset(args.root, args.test, seed=args.seed + 1,
                          stats=train.stats, **sim)
    return train, test


@torch.no_grad()
def accuracy(model, dataset, device) -> float:
    model.eval()
    batch = dataset.batch(torch.arange(len(dataset))).to(device)
    logits = model(batch.x, batch.edge_index)
    model.train()
    return ((logits > 0).long() == batch.edge_label).float().mean().item()


def global_mean(value: torch.Tensor, world: int) -> torch.Tensor:
    r"""The mean of ``value`` over the ranks (a detached copy).

    It returns only once the backend has let go of the buffer. gloo's worker
    thread drops its reference to a collective's tensors a moment after the
    collective completes, and must take the GIL to do so because the tensor
    lives in Python. If the process group is then destroyed by a thread that
    holds the GIL (freeing the DDP wrapper at the end of :func:`main` joins
    the worker threads), each waits for the other forever: the process
    prints its last line and never exits. It happened about once in ten
    ``torchrun`` launches on a loaded machine. Sleeping releases the GIL, so
    the worker finishes and no Python tensor is left in flight."""
    total = value.detach().clone()
    dist.all_reduce(total)
    while total._use_count() > 1:  # the worker still holds the buffer
        time.sleep(1e-4)
    return total / world


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = setup(args)
    train, test = make_data(args)
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = EdgeClassifier(train.num_frames * 4, args.hidden,
                           args.dropout).to(device)
    torch.manual_seed(args.seed + rank)  # dropout: one stream per rank
    net = DistributedDataParallel(model) if world > 1 else model
    sampler = DistributedSampler(train, num_replicas=world, rank=rank,
                                 shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train, batch_size=args.batch_size // world,
                        sampler=sampler, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, start = 0, time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffled order, equal on all ranks
        for batch in loader:
            batch = batch.to(device)
            logits = net(batch.x, batch.edge_index)
            loss = F.binary_cross_entropy_with_logits(
                logits, batch.edge_label.float())  # mean over local edges
            optimizer.zero_grad()
            loss.backward()  # DDP: gradients averaged over the ranks
            optimizer.step()
            step += 1
            if world > 1:  # the global batch's mean loss, for the log
                loss = global_mean(loss, world)
            if rank == 0 and (args.quick or step % 50 == 0):
                print(f'epoch {epoch} step {step} loss {loss.item():.5f}',
                      flush=True)
            if args.steps is not None and step >= args.steps:
                break
        if args.steps is not None and step >= args.steps:
            break
    if rank == 0:
        print(f'{step} steps in {time.perf_counter() - start:.1f} s on '
              f'{world} process(es), {device}; test edge accuracy '
              f'{accuracy(model, test, device):.4f}', flush=True)
        if args.save:
            torch.save(model.state_dict(), args.save)
    if world > 1:
        dist.barrier()  # nobody leaves before the checkpoint is written
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
