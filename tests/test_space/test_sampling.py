import math
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from seg101_mm.space import (GROUP_OPS_A, GROUP_OPS_B, HEAD_MERGES, STAGE_OPS, Genotype, Mutator,
                             enumerate_space, mutate, sample, space_breakdown, space_size)


def test_space_size_value_and_breakdown():
    assert space_size() == 93_312_000_000
    b = space_breakdown()
    assert b == {
        'group_ops_a': 81,
        'group_ops_b': 256,
        'stage_ops': 625,
        'layer1_pairs_per_head': 20,
        'layer2_pairs_per_head': 3,
        'heads': 2,
        'head_merge': 2
    }
    # The paper's 6.48e8 counts one op per stage instead of one per channel group.
    paper = 3 * 3 * 4 * 4 * 5**4 * (math.comb(6, 3) * math.comb(3, 2))**2 * 2
    assert paper == 648_000_000


@pytest.mark.parametrize('domains', [
    dict(
        group_ops_a=('conv3x3', ),
        group_ops_b=('se', ),
        stage_ops=('conv3x3', ),
        head_merges=('concat_head', )),
    dict(
        group_ops_a=('conv3x3', 'avgpool_0.25'),
        group_ops_b=('se', ),
        stage_ops=('conv3x3', ),
        head_merges=HEAD_MERGES),
])
def test_counting_formula_matches_brute_force_enumeration(domains):
    genotypes = set(enumerate_space(**domains))
    assert len(genotypes) == space_size(**domains)
    # every enumerated genotype is valid and its per-head form is already sorted (canonical)
    for g in list(genotypes)[:200]:
        assert all(h.canonical() == h for h in g.heads)
    # and the heads: 60 distinct per head, ordered pair of heads
    heads = {g.heads[0] for g in genotypes}
    assert len(heads) == math.comb(6, 3) * math.comb(3, 2)


def test_sampling_is_reproducible_and_seed_dependent():
    assert [str(sample(s)) for s in range(20)] == [str(sample(s)) for s in range(20)]
    assert len({sample(s).key for s in range(200)}) == 200
    import random
    rng = random.Random(5)
    a = [sample(rng) for _ in range(3)]
    rng = random.Random(5)
    assert a == [sample(rng) for _ in range(3)]
    with pytest.raises(ValueError, match='seed_or_rng'):
        sample('five')


def test_sampling_is_uniform_over_every_variable():
    n = 6000
    gs = [sample(s) for s in range(n)]

    def chi2_p(values, domain):
        counts = Counter(values)
        assert set(counts) <= set(domain)
        observed = [counts[d] for d in domain]
        return stats.chisquare(observed).pvalue

    assert chi2_p([g.group_a[1] for g in gs], GROUP_OPS_A) > 1e-3
    assert chi2_p([g.group_b[3] for g in gs], GROUP_OPS_B) > 1e-3
    assert chi2_p([g.stage_ops[2] for g in gs], STAGE_OPS) > 1e-3
    assert chi2_p([g.head_merge for g in gs], HEAD_MERGES) > 1e-3
    l1_sets = list(combinations(list(combinations(range(4), 2)), 3))
    assert chi2_p([g.heads[0].l1 for g in gs], l1_sets) > 1e-3
    l2_sets = list(combinations(list(combinations(range(3), 2)), 2))
    assert chi2_p([g.heads[1].l2 for g in gs], l2_sets) > 1e-3


def test_mutation_never_returns_the_parent_key_and_is_reproducible():
    for seed in range(300):
        parent = sample(seed)
        child = mutate(parent, seed)
        assert child.key != parent.key
        assert isinstance(child, Genotype)
    p = sample(1)
    assert [mutate(p, s) for s in range(10)] == [mutate(p, s) for s in range(10)]


def test_mutation_rates_follow_the_authors_probabilities():
    parent = sample(3)
    n = 4000
    children = [
        Mutator(p_head_merge=0.6, max_tries=1)._mutate_once(parent,
                                                            __import__('random').Random(s))
        for s in range(n)
    ]
    flip = np.mean([c.head_merge != parent.head_merge for c in children])
    assert abs(flip - 0.6) < 0.03
    # a category-A slot changes with p 0.6 * 0.375 = 0.225, always to a different op
    slot = np.mean([c.group_a[0] != parent.group_a[0] for c in children])
    assert abs(slot - 0.225) < 0.03
    # a stage op is redrawn over all 5 ops with p 0.6 * 0.25: it changes with p 0.12
    stage = np.mean([c.stage_ops[0] != parent.stage_ops[0] for c in children])
    assert abs(stage - 0.6 * 0.25 * 0.8) < 0.03
    # head-0 layer-1 pairs redrawn with p 0.6: different with p 0.6 * 19/20
    l1 = np.mean([c.heads[0].l1 != parent.heads[0].l1 for c in children])
    assert abs(l1 - 0.6 * 19 / 20) < 0.03


def test_mutation_with_only_one_event_changes_only_that_variable():
    parent = sample(7)
    m = Mutator(p_group=0, p_stage=0, p_head_merge=1.0, p_pairs=0)
    child = m(parent, 0)
    assert child.head_merge != parent.head_merge
    assert (child.group_a, child.group_b, child.stage_ops,
            child.heads) == (parent.group_a, parent.group_b, parent.stage_ops, parent.heads)
