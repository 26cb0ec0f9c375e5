import importlib.util
import subprocess
import sys

import numpy as np

from seg101_mm.space import NODE_LABELS, Genotype, sample, to_graph
from seg101_mm.space.graph import FINAL_NODE, head_node, stage_node

TEXT = ('ga=conv3x3,conv3x3,dil3_conv3x3,avgpool_0.25;gb=se,se,self_attention,avgpool_0.25;'
        'st=conv3x3,dil5_conv3x3,avgpool_0.75,conv3x3;h0=01+02+13/01+12;h1=02+03+23/01+02;'
        'hm=concat_head')


def test_graph_shapes_labels_and_edges():
    g = Genotype.parse(TEXT)
    adj, labels = to_graph(g)
    assert adj.shape == (41, 41) and labels.shape == (41, 12) and len(NODE_LABELS) == 12
    assert np.all(labels.sum(1) == 1)
    assert set(np.unique(adj)) <= {0.0, 1.0}
    # a DAG: nodes are in topological order, so the matrix is strictly upper triangular
    assert np.all(np.tril(adj) == 0)
    # per stage: 5 edges into SE, 1 into the stage op; per head: 6 + 4 + 2 = 12; final 2
    assert adj.sum() == 4 * 6 + 2 * 12 + 2
    name = {i: NODE_LABELS[int(labels[i].argmax())] for i in range(41)}
    assert name[stage_node(2, ('group', 2))] == 'self_attention'
    assert name[stage_node(1, 'op')] == 'dil5_conv3x3'
    assert name[stage_node(0, 'se')] == 'enhance_se'
    assert name[FINAL_NODE] == 'concat_head'
    # group ops have no incoming edge, as in the authors' graph
    for s in range(4):
        for k in range(4):
            assert adj[:, stage_node(s, ('group', k))].sum() == 0
    # canonical head order puts '01+02+13/01+12' first; its layer-1 node 2 reads stages 1 and 3
    l1_2 = head_node(0, 1, 2)
    assert set(np.nonzero(adj[:, l1_2])[0]) == {stage_node(1, 'op'), stage_node(3, 'op')}
    # the fused final node reads both layer-3 nodes
    assert set(np.nonzero(adj[:, FINAL_NODE])[0]) == {head_node(0, 3), head_node(1, 3)}


def test_equivalent_genotypes_share_one_graph():
    for seed in range(20):
        g = sample(seed)
        adj, labels = to_graph(g)
        for e in g.equivalents()[::37]:
            a2, l2 = to_graph(e)
            assert np.array_equal(adj, a2) and np.array_equal(labels, l2)


def test_space_imports_without_torch():
    # torch is installed here; the subprocess hides it (and the OpenMMLab stack) from imports,
    # as on a machine without them.
    assert importlib.util.find_spec('torch') is not None
    code = ('import sys\n'
            'class Block:\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            '        if name.split(".")[0] in ("torch", "mmengine", "mmseg", "mmcv"):\n'
            '            raise ModuleNotFoundError(name=name)\n'
            'sys.meta_path.insert(0, Block())\n'
            'from seg101_mm.space import sample, mutate, to_graph, space_size\n'
            'g = sample(0); to_graph(mutate(g, 1)); assert space_size() == 93312000000\n'
            'assert "torch" not in sys.modules\n'
            'assert "seg101_mm.models" not in sys.modules\n'
            'try:\n'
            '    import torch\n'
            'except ModuleNotFoundError:\n'
            '    print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
