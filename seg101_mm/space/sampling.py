"""Uniform sampling, mutation and exact size of the SEG101 space (docs/method.md sections 2 and 5).

The space counts unordered choices: a head's 3 layer-1 pairs are a set of pairs of stages and
its 2 layer-2 pairs a set of pairs of layer-1 nodes; the two heads are ordered. ``sample``
draws uniformly from exactly the set that :func:`space_size` counts, returning each head in
sorted (canonical) order.
"""
import random
from itertools import combinations
from math import comb, prod

from .genotype import Genotype, HeadGenotype
from .ops import (GROUP_OPS_A, GROUP_OPS_B, HEAD_MERGES, L1_PAIRS, NUM_GROUPS, NUM_HEADS, NUM_L1,
                  NUM_L2, NUM_STAGES, STAGE_OPS, STAGE_PAIRS)


def _rng(seed_or_rng):
    if isinstance(seed_or_rng, random.Random):
        return seed_or_rng
    if seed_or_rng is None or (isinstance(seed_or_rng, int) and not isinstance(seed_or_rng, bool)):
        return random.Random(seed_or_rng)
    raise ValueError(f'seed_or_rng must be an int seed, None or a random.Random, '
                     f'got {seed_or_rng!r}')


def space_breakdown(group_ops_a=GROUP_OPS_A,
                    group_ops_b=GROUP_OPS_B,
                    stage_ops=STAGE_OPS,
                    head_merges=HEAD_MERGES,
                    num_stages=NUM_STAGES,
                    num_groups=NUM_GROUPS,
                    num_l1=NUM_L1,
                    num_l2=NUM_L2,
                    num_heads=NUM_HEADS):
    """Number of choices of every variable of the space; their product is its size.

    The arguments exist so that tests can shrink the domains and compare the formula with a
    brute-force enumeration.
    """
    stage_pairs = comb(num_stages, 2)
    l1_pairs = comb(num_l1, 2)
    return {
        'group_ops_a': len(group_ops_a)**num_groups,
        'group_ops_b': len(group_ops_b)**num_groups,
        'stage_ops': len(stage_ops)**num_stages,
        'layer1_pairs_per_head': comb(stage_pairs, num_l1),
        'layer2_pairs_per_head': comb(l1_pairs, num_l2),
        'heads': num_heads,
        'head_merge': len(head_merges),
    }


def space_size(**domains) -> int:
    """Exact number of genotypes: 3^4 * 4^4 * 5^4 * (C(6,3) * C(3,2))^2 * 2 = 93,312,000,000."""
    b = space_breakdown(**domains)
    per_head = b['layer1_pairs_per_head'] * b['layer2_pairs_per_head']
    return prod([
        b['group_ops_a'], b['group_ops_b'], b['stage_ops'], per_head**b['heads'], b['head_merge']
    ])


def _sample_head(rng):
    l1 = tuple(sorted(rng.sample(STAGE_PAIRS, NUM_L1)))
    l2 = tuple(sorted(rng.sample(L1_PAIRS, NUM_L2)))
    return HeadGenotype(l1, l2)


def sample(seed_or_rng=None) -> Genotype:
    """Draw a genotype uniformly from the space (reproducible for an int seed)."""
    rng = _rng(seed_or_rng)
    return Genotype(
        group_a=tuple(rng.choice(GROUP_OPS_A) for _ in range(NUM_GROUPS)),
        group_b=tuple(rng.choice(GROUP_OPS_B) for _ in range(NUM_GROUPS)),
        stage_ops=tuple(rng.choice(STAGE_OPS) for _ in range(NUM_STAGES)),
        heads=tuple(_sample_head(rng) for _ in range(NUM_HEADS)),
        head_merge=rng.choice(HEAD_MERGES))


def enumerate_space(group_ops_a=GROUP_OPS_A,
                    group_ops_b=GROUP_OPS_B,
                    stage_ops=STAGE_OPS,
                    head_merges=HEAD_MERGES):
    """Yield every genotype over the given (usually reduced) op domains, heads in sorted form.

    Meant for tests: over the full domains this is 9.3e10 genotypes.
    """
    from itertools import product
    heads = [
        HeadGenotype(l1, l2) for l1 in combinations(STAGE_PAIRS, NUM_L1)
        for l2 in combinations(L1_PAIRS, NUM_L2)
    ]
    for ga in product(group_ops_a, repeat=NUM_GROUPS):
        for gb in product(group_ops_b, repeat=NUM_GROUPS):
            for st in product(stage_ops, repeat=NUM_STAGES):
                for h0 in heads:
                    for h1 in heads:
                        for hm in head_merges:
                            yield Genotype(ga, gb, st, (h0, h1), hm)


class Mutator:
    """Mutation of docs/method.md section 5, the authors' probabilities as defaults.

    Every event is independent: with ``p_group`` each category-A slot changes to a different op
    with ``p_group_slot`` (the same for category B); with ``p_stage`` each stage op is redrawn
    uniformly over all its ops with ``p_stage_slot``; with ``p_head_merge`` the head merge flips;
    with ``p_pairs`` each of head-0 L1, head-1 L1, head-0 L2, head-1 L2 is redrawn. A mutant with
    the parent's canonical key is discarded and drawn again (at most ``max_tries`` times).
    """

    def __init__(self,
                 p_group=0.6,
                 p_group_slot=0.375,
                 p_stage=0.6,
                 p_stage_slot=0.25,
                 p_head_merge=0.6,
                 p_pairs=0.6,
                 max_tries=1000):
        for name, p in (('p_group', p_group), ('p_group_slot', p_group_slot), ('p_stage', p_stage),
                        ('p_stage_slot', p_stage_slot), ('p_head_merge', p_head_merge), ('p_pairs',
                                                                                         p_pairs)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f'{name} must be a probability in [0, 1], got {p!r}')
        if p_group * p_group_slot + p_stage * p_stage_slot + p_head_merge + p_pairs == 0:
            raise ValueError('all mutation probabilities are 0: no mutant can differ from its '
                             'parent')
        self.p_group = p_group
        self.p_group_slot = p_group_slot
        self.p_stage = p_stage
        self.p_stage_slot = p_stage_slot
        self.p_head_merge = p_head_merge
        self.p_pairs = p_pairs
        self.max_tries = max_tries

    def _mutate_groups(self, ops, domain, rng):
        ops = list(ops)
        if rng.random() < self.p_group:
            for i, op in enumerate(ops):
                if rng.random() < self.p_group_slot:
                    ops[i] = rng.choice([o for o in domain if o != op])
        return tuple(ops)

    def _mutate_once(self, g: Genotype, rng) -> Genotype:
        group_a = self._mutate_groups(g.group_a, GROUP_OPS_A, rng)
        group_b = self._mutate_groups(g.group_b, GROUP_OPS_B, rng)
        stage_ops = list(g.stage_ops)
        if rng.random() < self.p_stage:
            for i in range(NUM_STAGES):
                if rng.random() < self.p_stage_slot:
                    stage_ops[i] = rng.choice(STAGE_OPS)
        head_merge = g.head_merge
        if rng.random() < self.p_head_merge:
            head_merge = next(m for m in HEAD_MERGES if m != head_merge)
        l1 = [h.l1 for h in g.heads]
        l2 = [h.l2 for h in g.heads]
        for h in range(NUM_HEADS):
            if rng.random() < self.p_pairs:
                l1[h] = tuple(sorted(rng.sample(STAGE_PAIRS, NUM_L1)))
        for h in range(NUM_HEADS):
            if rng.random() < self.p_pairs:
                l2[h] = tuple(sorted(rng.sample(L1_PAIRS, NUM_L2)))
        heads = tuple(HeadGenotype(l1[h], l2[h]) for h in range(NUM_HEADS))
        return Genotype(group_a, group_b, tuple(stage_ops), heads, head_merge)

    def __call__(self, genotype: Genotype, seed_or_rng=None) -> Genotype:
        if not isinstance(genotype, Genotype):
            raise ValueError(f'mutate expects a Genotype, got {type(genotype).__name__}: '
                             f'{genotype!r}')
        rng = _rng(seed_or_rng)
        parent_key = genotype.key
        for _ in range(self.max_tries):
            child = self._mutate_once(genotype, rng)
            if child.key != parent_key:
                return child
        raise RuntimeError(f'no mutant differing from the parent after {self.max_tries} tries; '
                           f'the mutation probabilities are too small')


_DEFAULT_MUTATOR = Mutator()


def mutate(genotype: Genotype, seed_or_rng=None, mutator: Mutator = None) -> Genotype:
    """One mutant of ``genotype`` whose canonical key differs from the parent's."""
    return (mutator or _DEFAULT_MUTATOR)(genotype, seed_or_rng)
