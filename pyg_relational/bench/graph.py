r"""Benchmarks of the Graph Network family.

* :func:`twin_cases`: :class:`~pyg_relational.nn.MPNNConv` built with
  ``from_module`` against PyG :class:`~torch_geometric.nn.GatedGraphConv`
  (outputs, input and parameter gradients).
* :func:`speed_cases`: forward+backward time and peak memory on random
  graphs of growing size: ``MPNNConv`` vs ``GatedGraphConv`` (same weights),
  and :class:`~pyg_relational.nn.GraphNetwork` vs PyG's
  :class:`~torch_geometric.nn.MetaLayer` running the same block models.
"""
import copy
from typing import Callable, List, Optional

import torch
from torch import Tensor

from .results import SpeedResult, TwinResult
from .timing import measure

__all__ = ['twin_cases', 'speed_cases']

_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _random_graph(num_nodes: int, avg_degree: int, gen: torch.Generator,
                  device) -> Tensor:
    num_edges = num_nodes * avg_degree
    return torch.randint(num_nodes, (2, num_edges), generator=gen).to(device)


def _max_err(a: List[Tensor], b: List[Tensor]) -> float:
    return max([float((x - y).detach().abs().max()) if x.numel() else 0.
                for x, y in zip(a, b)] or [0.])


def twin_cases(quick: bool = True, device='cpu',
               progress: Optional[Callable[[str], None]] = None
               ) -> List[TwinResult]:
    """``MPNNConv.from_module(GatedGraphConv)`` vs the module itself, in
    float64 and float32, for sum/mean/max aggregation."""
    from torch_geometric.nn import GatedGraphConv

    from ..nn.mpnn import MPNNConv
    num_nodes, channels, steps = (20, 8, 2) if quick else (1000, 64, 3)
    results = []
    for dtype in (torch.float64, torch.float32):
        for aggr in ('add', 'mean', 'max'):
            gen = torch.Generator().manual_seed(0)
            torch.manual_seed(0)
            ggc = GatedGraphConv(channels, steps, aggr=aggr).to(device, dtype)
            conv = MPNNConv.from_module(ggc)
            edge_index = _random_graph(num_nodes, 4, gen, device)
            x = torch.randn(num_nodes, channels, generator=gen,
                            dtype=dtype).to(device)
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            out_a, out_b = conv(xa, edge_index), ggc(xb, edge_index)
            g = torch.randn(out_b.shape, generator=gen, dtype=dtype).to(
                device)
            (out_a * g).sum().backward()
            (out_b * g).sum().backward()
            grads_a = [xa.grad, torch.stack([b.edge_model.weight.grad.t()
                                             for b in conv.message_blocks])]
            grads_b = [xb.grad, ggc.weight.grad]
            gru = conv.update_block.node_model.gru
            for name, p in ggc.rnn.named_parameters():
                grads_a.append(getattr(gru, name).grad)
                grads_b.append(p.grad)
            dname = str(dtype).replace('torch.', '')
            results.append(TwinResult(
                layer='MPNNConv', twin='GatedGraphConv',
                config=(f'{num_nodes} nodes, {edge_index.size(1)} edges, '
                        f'{channels} ch, {steps} steps, aggr={aggr}, '
                        f'{dname}'), dtype=dname,
                max_abs_err=_max_err([out_a], [out_b]),
                max_abs_grad_err=_max_err(grads_a, grads_b),
                tolerance=_TOL[dtype]))
            if progress is not None:
                progress(results[-1].config)
    return results


def _meta_layer(gn):
    """PyG :class:`MetaLayer` with the same models as ``gn``'s blocks."""
    from torch_geometric.nn import MetaLayer
    from torch_geometric.utils import scatter
    gn = copy.deepcopy(gn)

    class Edge(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = gn.edge_block.edge_model

        def forward(self, src, dst, edge_attr, u, batch):
            return self.m(torch.cat([edge_attr, src, dst, u[batch]], -1))

    class Node(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = gn.node_block.node_model

        def forward(self, x, edge_index, edge_attr, u, batch):
            agg = scatter(edge_attr, edge_index[1], 0, dim_size=x.size(0),
                          reduce='sum')
            return self.m(torch.cat([agg, x, u[batch]], -1))

    class Global(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = gn.global_block.global_model

        def forward(self, x, edge_index, edge_attr, u, batch):
            B = u.size(0)
            e = scatter(edge_attr, batch[edge_index[1]], 0, dim_size=B,
                        reduce='sum')
            v = scatter(x, batch, 0, dim_size=B, reduce='sum')
            return self.m(torch.cat([e, v, u], -1))

    return MetaLayer(Edge(), Node(), Global())


def speed_cases(quick: bool = True, device='cpu',
                progress: Optional[Callable[[str], None]] = None
                ) -> List[SpeedResult]:
    """Forward+backward on random graphs (average in-degree 8) of growing
    size; float32."""
    from torch_geometric.nn import GatedGraphConv

    from ..nn.graph_network import GraphNetwork
    from ..nn.mpnn import MPNNConv
    sizes = (100, ) if quick else (1_000, 10_000, 50_000)
    repeat = 2 if quick else 5
    channels = 16 if quick else 64
    results = []
    for n in sizes:
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        edge_index = _random_graph(n, 8, gen, device)
        E = edge_index.size(1)
        x = torch.randn(n, channels, generator=gen).to(device)
        x.requires_grad_()

        # MPNNConv vs GatedGraphConv (3 steps, same weights).
        ggc = GatedGraphConv(channels, 3).to(device)
        conv = MPNNConv.from_module(ggc)

        def run(layer):
            def fn():
                layer(x, edge_index).sum().backward()
            return fn
        a = measure(run(conv), repeat=repeat, warmup=1, device=device)
        b = measure(run(ggc), repeat=repeat, warmup=1, device=device)
        results.append(SpeedResult(
            operator='MPNNConv', baseline='GatedGraphConv',
            config=f'{n} nodes, {channels} ch, 3 steps', device=str(device),
            num_edges=E, graph_s=a.median_s, baseline_s=b.median_s,
            graph_peak_bytes=a.peak_bytes,
            baseline_peak_bytes=b.peak_bytes))
        if progress is not None:
            progress(results[-1].config)

        # GraphNetwork vs MetaLayer (same MLPs), 4 graphs in the batch.
        gn = GraphNetwork.from_sizes(channels, channels, channels, channels,
                                     hidden_channels=channels).to(device)
        meta = _meta_layer(gn)
        e = torch.randn(E, channels, generator=gen).to(device)
        u = torch.randn(4, channels, generator=gen).to(device)
        batch = torch.arange(n) * 4 // n
        # the same sources, each edge's target drawn inside its graph
        counts = torch.bincount(batch, minlength=4)
        starts = counts.cumsum(0) - counts
        src = edge_index[0].cpu()
        graph = batch.index_select(0, src)
        offset = torch.randint(0, 2**30, (E, ), generator=gen) % counts[graph]
        gn_edges = torch.stack([src, starts[graph] + offset]).to(device)
        batch = batch.to(device)

        def run_gn(layer):
            def fn():
                out = layer(x, gn_edges, e, u, batch)
                sum(o.sum() for o in out).backward()
            return fn
        a = measure(run_gn(gn), repeat=repeat, warmup=1, device=device)
        b = measure(run_gn(meta), repeat=repeat, warmup=1, device=device)
        results.append(SpeedResult(
            operator='GraphNetwork', baseline='MetaLayer',
            config=f'{n} nodes, {channels} ch, 4 graphs', device=str(device),
            num_edges=E, graph_s=a.median_s, baseline_s=b.median_s,
            graph_peak_bytes=a.peak_bytes,
            baseline_peak_bytes=b.peak_bytes))
        if progress is not None:
            progress(results[-1].config)
    return results
