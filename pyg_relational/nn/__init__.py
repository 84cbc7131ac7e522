r"""Graph layers: every classic operator as a
:class:`torch_geometric.nn.MessagePassing` subclass.

Each family lives in its own module; the public names are exported here.
"""
from .typed import gather_typed, typed_aggregate, typed_transform

__all__ = ['typed_transform', 'gather_typed', 'typed_aggregate']

# One block per module (import + __all__ entry), in the order of DESIGN.md.
from .linear import FullyConnectedConv  # noqa: E402
__all__ += ['FullyConnectedConv']
from .lattice import LatticeConv  # noqa: E402
__all__ += ['LatticeConv']
from .recurrent import RecurrentConv  # noqa: E402
__all__ += ['RecurrentConv']
from .attention import (AttentionConv, AttentionScore,  # noqa: E402
                        BahdanauAttention, LuongAttention,
                        attention_score, edge_softmax)
__all__ += ['AttentionConv', 'BahdanauAttention', 'LuongAttention',
            'AttentionScore', 'attention_score', 'edge_softmax']
from .transformer import (MultiheadAttentionConv,  # noqa: E402
                          PositionalEncoding, TransformerDecoderLayer,
                          TransformerEncoderLayer)
__all__ += ['MultiheadAttentionConv', 'TransformerEncoderLayer',
            'TransformerDecoderLayer', 'PositionalEncoding']
from .non_local import NonLocalBlock
__all__ += ['NonLocalBlock']
from .graph_network import (EdgeBlock, GlobalBlock, GraphNetwork,  # noqa: E402
                            NodeBlock)
__all__ += ['EdgeBlock', 'NodeBlock', 'GlobalBlock', 'GraphNetwork']
from .interaction import InteractionNetwork  # noqa: E402
__all__ += ['InteractionNetwork']
from .mpnn import MPNNConv  # noqa: E402
__all__ += ['MPNNConv']
from .nri import NRI, NRIDecoder, NRIEncoder, NRIRNNDecoder  # noqa: E402
__all__ += ['NRIEncoder', 'NRIDecoder', 'NRIRNNDecoder', 'NRI']
