r"""pyg_relational: classic neural operators as message passing on sparse
``edge_index`` graphs — swap the graph, keep the layer."""
from . import datasets, graphs, nn, structure, transforms
from .graphs import (bipartite_graph, chain_graph, complete_graph, grid_graph,
                     relative_position, window_graph)
from .structure import (BipartiteBlocks, Chains, CompleteBlocks, Grid,
                        GraphStructure, Windows, clear_cache, structure_of)
from .transforms import (ImageToGraph, SequenceToGraph, image_to_nodes,
                         nodes_to_image, nodes_to_sequence, sequence_to_nodes)

__version__ = '0.1.0'

__all__ = [
    'datasets', 'graphs', 'nn', 'structure', 'transforms', 'GraphStructure',
    'CompleteBlocks', 'BipartiteBlocks', 'Chains', 'Windows', 'Grid',
    'structure_of', 'clear_cache', 'chain_graph', 'complete_graph',
    'bipartite_graph', 'window_graph', 'grid_graph', 'relative_position',
    'SequenceToGraph', 'ImageToGraph', 'sequence_to_nodes',
    'nodes_to_sequence', 'image_to_nodes', 'nodes_to_image', '__version__'
]
