"""The SEG101 search space: genotypes, sampling, mutation, canonical keys, graph encoding.

Pure Python (numpy for the graph): nothing here imports torch.
"""
from .genotype import Genotype, HeadGenotype
from .graph import NUM_LABELS, NUM_NODES, to_graph
from .ops import (GROUP_OPS_A, GROUP_OPS_B, HEAD_MERGES, L1_PAIRS, NODE_LABELS, STAGE_OPS,
                  STAGE_PAIRS)
from .sampling import Mutator, enumerate_space, mutate, sample, space_breakdown, space_size

__all__ = [
    'Genotype', 'HeadGenotype', 'sample', 'mutate', 'Mutator', 'space_size', 'space_breakdown',
    'enumerate_space', 'to_graph', 'NUM_NODES', 'NUM_LABELS', 'GROUP_OPS_A', 'GROUP_OPS_B',
    'STAGE_OPS', 'HEAD_MERGES', 'STAGE_PAIRS', 'L1_PAIRS', 'NODE_LABELS'
]
