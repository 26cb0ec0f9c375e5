"""Graph encoding of a genotype for the GIN predictor (docs/method.md section 4).

41 nodes: per stage s (nodes 7s .. 7s+6) an input node, the 4 group-op nodes, the enhancement
SE node and the stage-op node; per head h (nodes 28+6h .. 33+6h) three layer-1, two layer-2
and one layer-3 merge node; node 40 is the head merge. ``adjacency[i, j] == 1`` is an edge
i -> j. As in the authors' graph, group-op nodes have no incoming edge: they and the input node
feed the SE node. The genotype is put in canonical form first, so genotypes with the same key
get identical graphs.
"""
import numpy as np

from .genotype import Genotype
from .ops import NODE_LABELS, NUM_GROUPS, NUM_HEADS, NUM_L1, NUM_L2, NUM_STAGES

NODES_PER_STAGE = 2 + NUM_GROUPS + 1  # input, groups, SE, stage op
NODES_PER_HEAD = NUM_L1 + NUM_L2 + 1
NUM_NODES = NUM_STAGES * NODES_PER_STAGE + NUM_HEADS * NODES_PER_HEAD + 1
NUM_LABELS = len(NODE_LABELS)
LABEL_INDEX = {name: i for i, name in enumerate(NODE_LABELS)}


def stage_node(stage, part):
    """Index of ``part`` ('input', ('group', g), 'se', 'op') of ``stage``."""
    base = stage * NODES_PER_STAGE
    if part == 'input':
        return base
    if part == 'se':
        return base + 1 + NUM_GROUPS
    if part == 'op':
        return base + 2 + NUM_GROUPS
    return base + 1 + part[1]


def head_node(head, layer, index=0):
    base = NUM_STAGES * NODES_PER_STAGE + head * NODES_PER_HEAD
    return base + {1: 0, 2: NUM_L1, 3: NUM_L1 + NUM_L2}[layer] + index


FINAL_NODE = NUM_NODES - 1


def to_graph(genotype: Genotype):
    """Return ``(adjacency, labels)``: a 41x41 0/1 matrix and 41x12 one-hot node labels."""
    if not isinstance(genotype, Genotype):
        raise ValueError(f'to_graph expects a Genotype, got {type(genotype).__name__}')
    g = genotype.canonical()
    adj = np.zeros((NUM_NODES, NUM_NODES), dtype=np.float32)
    labels = np.zeros((NUM_NODES, NUM_LABELS), dtype=np.float32)
    for s in range(NUM_STAGES):
        se, op = stage_node(s, 'se'), stage_node(s, 'op')
        labels[stage_node(s, 'input'), LABEL_INDEX['input']] = 1
        adj[stage_node(s, 'input'), se] = 1
        for k, name in enumerate(g.group_ops(s)):
            node = stage_node(s, ('group', k))
            labels[node, LABEL_INDEX[name]] = 1
            adj[node, se] = 1
        labels[se, LABEL_INDEX['enhance_se']] = 1
        labels[op, LABEL_INDEX[g.stage_ops[s]]] = 1
        adj[se, op] = 1
    for h, head in enumerate(g.heads):
        for i, (a, b) in enumerate(head.l1):
            node = head_node(h, 1, i)
            labels[node, LABEL_INDEX['merge']] = 1
            adj[stage_node(a, 'op'), node] = 1
            adj[stage_node(b, 'op'), node] = 1
        for j, (p, q) in enumerate(head.l2):
            node = head_node(h, 2, j)
            labels[node, LABEL_INDEX['merge']] = 1
            adj[head_node(h, 1, p), node] = 1
            adj[head_node(h, 1, q), node] = 1
            adj[node, head_node(h, 3)] = 1
        labels[head_node(h, 3), LABEL_INDEX['merge']] = 1
        adj[head_node(h, 3), FINAL_NODE] = 1
    labels[FINAL_NODE, LABEL_INDEX[g.head_merge]] = 1
    return adj, labels
