"""Operation names and choice domains of the SEG101 search space (docs/method.md section 2).

Pure Python: this module must not import torch, so that the search strategies can run
(and be tested) without building a single network.
"""
from itertools import combinations

#: Group ops of category A, shared by stages S1 and S2 (4 slots, one per channel group).
GROUP_OPS_A = ('conv3x3', 'dil3_conv3x3', 'avgpool_0.25')
#: Group ops of category B, shared by stages S3 and S4.
GROUP_OPS_B = ('avgpool_0.25', 'dil3_conv3x3', 'self_attention', 'se')
#: One stage op per stage, applied after the enhancement SE.
STAGE_OPS = ('conv3x3', 'dil3_conv3x3', 'dil5_conv3x3', 'avgpool_0.25', 'avgpool_0.75')
#: How the two heads are merged into the logits.
HEAD_MERGES = ('global_se_head', 'concat_head')

NUM_STAGES = 4
NUM_GROUPS = 4
NUM_L1 = 3  # layer-1 fusion nodes per head
NUM_L2 = 2  # layer-2 fusion nodes per head
NUM_HEADS = 2

#: The 6 unordered pairs of stages a layer-1 node may fuse.
STAGE_PAIRS = tuple(combinations(range(NUM_STAGES), 2))
#: The 3 unordered pairs of layer-1 nodes a layer-2 node may fuse.
L1_PAIRS = tuple(combinations(range(NUM_L1), 2))

#: Stage index -> group-op category ('a' for S1/S2, 'b' for S3/S4).
STAGE_CATEGORY = ('a', 'a', 'b', 'b')

#: Node labels of the predictor graph (docs/method.md section 4): 12 in all.
#: Group ops and stage ops share labels by name.
OP_LABELS = ('conv3x3', 'dil3_conv3x3', 'dil5_conv3x3', 'avgpool_0.25', 'avgpool_0.75',
             'self_attention', 'se')
NODE_LABELS = ('input', ) + OP_LABELS + ('enhance_se', 'merge') + HEAD_MERGES
