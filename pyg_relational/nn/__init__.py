r"""Graph layers: every classic operator as a
:class:`torch_geometric.nn.MessagePassing` subclass, one family per module
(in the order of the inductive-bias table)."""
from .typed import gather_typed, typed_aggregate, typed_transform
from .linear import FullyConnectedConv
from .lattice import LatticeConv
from .recurrent import RecurrentConv
from .attention import (AttentionConv, AttentionScore, BahdanauAttention,
                        LuongAttention, attention_score, edge_softmax)
from .gat import GATConv, GATv2Conv
from .transformer import (MultiheadAttentionConv, PositionalEncoding,
                          TransformerDecoderLayer, TransformerEncoderLayer)
from .non_local import NonLocalBlock
from .graph_network import EdgeBlock, GlobalBlock, GraphNetwork, NodeBlock
from .interaction import InteractionNetwork
from .mpnn import GatedGraphConv, MPNNConv
from .nri import NRI, NRIDecoder, NRIEncoder, NRIRNNDecoder

__all__ = [
    'typed_transform',
    'gather_typed',
    'typed_aggregate',
    'FullyConnectedConv',
    'LatticeConv',
    'RecurrentConv',
    'AttentionConv',
    'AttentionScore',
    'attention_score',
    'edge_softmax',
    'BahdanauAttention',
    'LuongAttention',
    'GATConv',
    'GATv2Conv',
    'MultiheadAttentionConv',
    'TransformerEncoderLayer',
    'TransformerDecoderLayer',
    'PositionalEncoding',
    'NonLocalBlock',
    'EdgeBlock',
    'NodeBlock',
    'GlobalBlock',
    'GraphNetwork',
    'InteractionNetwork',
    'MPNNConv',
    'GatedGraphConv',
    'NRIEncoder',
    'NRIDecoder',
    'NRIRNNDecoder',
    'NRI',
]
