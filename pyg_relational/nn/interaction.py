r"""Interaction Network (Battaglia et al., 2016) as a rewiring of the Graph
Network blocks: the relational model :math:`f_R` is an
:class:`~pyg_relational.nn.EdgeBlock` and the object model :math:`f_O` a
:class:`~pyg_relational.nn.NodeBlock` (both without globals)."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from .._checks import check_features, check_int, check_optional_features
from .graph_network import (EdgeBlock, NodeBlock, _aggr_width, _lazy_sum,
                            _num_nodes, _refuse_sizes, _resolve_graph,
                            mlp)

__all__ = ['InteractionNetwork']


class InteractionNetwork(Module):
    r"""The Interaction Network from the `"Interaction Networks for Learning
    about Objects, Relations and Physics" <https://arxiv.org/abs/1612.00222>`_
    paper

    .. math::
        \mathbf{e}_{k} &= f_R\left(\mathbf{r}_k, \mathbf{o}_{s_k},
        \mathbf{o}_{r_k}\right) \\
        \mathbf{p}_{i} &= f_O\left(\sum_{k : r_k = i} \mathbf{e}_k,\;
        \mathbf{o}_i,\; \mathbf{x}_i\right)

    i.e. :math:`B = m(G)` gathers, per relation :math:`k` (edge
    :math:`s_k = j \to r_k = i`), the sender and receiver objects and the
    relation attribute :math:`\mathbf{r}_k`; :math:`E = f_R(B)` are the
    effects; :math:`C = a(G, X, E)` sums the effects received by each object
    and concatenates its state :math:`\mathbf{o}_i` and external effect
    :math:`\mathbf{x}_i`; :math:`P = f_O(C)`.

    Here :math:`f_R` is an :class:`~pyg_relational.nn.EdgeBlock` (edges,
    senders, receivers) and :math:`f_O` a
    :class:`~pyg_relational.nn.NodeBlock` (received effects, nodes) whose
    node input is ``cat([o, x])``.

    .. note::
        The paper concatenates :math:`[\mathbf{o}_{r_k}, \mathbf{o}_{s_k},
        \mathbf{r}_k]`; the GN blocks use the order :math:`[\mathbf{r}_k,
        \mathbf{o}_{s_k}, \mathbf{o}_{r_k}]`, a permutation of the first
        layer's inputs (same family of functions). The optional abstraction
        model :math:`\phi_A` of the paper is left out (apply a readout on
        the output). ``aggr`` other than ``'sum'`` departs from the paper.

    Args:
        node_channels (int): object state size :math:`D_S` (``-1``: from
            the first input, lazy).
        out_channels (int): prediction size :math:`D_P`.
        edge_channels (int, optional): relation attribute size :math:`D_R`
            (``0``: none). (default: :obj:`0`)
        external_channels (int, optional): external effect size :math:`D_X`
            (``0``: none). (default: :obj:`0`)
        effect_channels (int, optional): effect size :math:`D_E`.
            (default: :obj:`50`)
        relation_hidden_channels (int, optional): hidden size of
            :math:`f_R`. (default: :obj:`150`)
        relation_layers (int, optional): linear layers of :math:`f_R`.
            (default: :obj:`5`, i.e. four hidden layers as in the paper)
        object_hidden_channels (int, optional): hidden size of :math:`f_O`.
            (default: :obj:`100`)
        object_layers (int, optional): linear layers of :math:`f_O`.
            (default: :obj:`2`)
        aggr (str or list, optional): effect aggregation; a list (a
            :class:`~torch_geometric.nn.aggr.MultiAggregation`) widens the
            input of :math:`f_O`. (default: :obj:`'sum'`)

    Shapes:
        - **input:** objects :math:`(|\mathcal{V}|, D_S)`, edge indices
          :math:`(2, |\mathcal{E}|)` or an ``adj_t``
          :math:`(|\mathcal{V}|, |\mathcal{V}|)` (``SparseTensor`` /
          ``torch.sparse``; ``[E, D_R]`` values are the relation attributes
          when ``edge_attr`` is None; effects come in its edge order),
          relation attributes
          :math:`(|\mathcal{E}|, D_R)` *(optional)*, external effects
          :math:`(|\mathcal{V}|, D_X)` *(optional)*
        - **output:** predictions :math:`(|\mathcal{V}|, D_P)`, and the
          effects :math:`(|\mathcal{E}|, D_E)` with ``return_effects=True``

    Example:
        >>> net = InteractionNetwork(4, 2, edge_channels=1,
        ...                          external_channels=1)
        >>> net
        InteractionNetwork(4, 2, edge_channels=1, external_channels=1)
        >>> edge_index = complete_graph(3)
        >>> net(torch.randn(3, 4), edge_index, torch.randn(9, 1),
        ...     torch.randn(3, 1)).shape
        torch.Size([3, 2])
    """
    def __init__(self, node_channels: int, out_channels: int,
                 edge_channels: int = 0, external_channels: int = 0,
                 effect_channels: int = 50,
                 relation_hidden_channels: int = 150,
                 relation_layers: int = 5,
                 object_hidden_channels: int = 100, object_layers: int = 2,
                 aggr='sum'):
        super().__init__()
        self.node_channels = node_channels if node_channels == -1 else \
            check_int(node_channels, 'node_channels', 1)
        self.out_channels = check_int(out_channels, 'out_channels', 1)
        self.edge_channels = check_int(edge_channels, 'edge_channels', 0)
        self.external_channels = check_int(external_channels,
                                           'external_channels', 0)
        self.effect_channels = check_int(effect_channels, 'effect_channels',
                                         1)
        # f_R: effects from (relation, sender, receiver).
        self.relation_block = EdgeBlock(
            mlp(_lazy_sum([edge_channels, node_channels, node_channels]),
                effect_channels,
                relation_hidden_channels, relation_layers),
            use_edges=edge_channels > 0, use_globals=False)
        # f_O: predictions from (summed effects, object, external effect).
        self.object_block = NodeBlock(
            mlp(_lazy_sum([_aggr_width(aggr, effect_channels), node_channels,
                           external_channels]),
                out_channels, object_hidden_channels, object_layers),
            aggr=aggr, use_globals=False)
        self.reset_parameters()

    def reset_parameters(self):
        self.relation_block.reset_parameters()
        self.object_block.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Optional[Tensor] = None,
                external: Optional[Tensor] = None,
                return_effects: bool = False
                ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Predictions ``[N, D_P]`` (and effects ``[E, D_E]``)."""
        _refuse_sizes(edge_attr=edge_attr, external=external)
        if self.node_channels != -1:
            check_features(x, self.node_channels, 'x')
        N = _num_nodes(x)[0]
        edge_index, edge_attr = _resolve_graph(edge_index, edge_attr, N, N,
                                               device=x.device)
        check_optional_features(edge_attr, self.edge_channels, 'edge_attr',
                                'edge_channels')
        check_optional_features(external, self.external_channels, 'external',
                                'external_channels', rows=x.size(0))
        node_in = x if external is None else torch.cat([x, external], -1)
        effects = self.relation_block(x, edge_index, edge_attr)  # [E, D_E]
        out = self.object_block(node_in, edge_index, effects)  # [N, D_P]
        return (out, effects) if return_effects else out

    def __repr__(self) -> str:
        extra = ''
        if self.edge_channels:
            extra += f', edge_channels={self.edge_channels}'
        if self.external_channels:
            extra += f', external_channels={self.external_channels}'
        return (f'{self.__class__.__name__}({self.node_channels}, '
                f'{self.out_channels}{extra})')
