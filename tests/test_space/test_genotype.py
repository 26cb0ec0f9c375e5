import json
import random

import pytest

from seg101_mm.space import GROUP_OPS_A, HEAD_MERGES, Genotype, HeadGenotype, mutate, sample

TEXT = ('ga=conv3x3,conv3x3,dil3_conv3x3,avgpool_0.25;gb=se,se,self_attention,avgpool_0.25;'
        'st=conv3x3,dil5_conv3x3,avgpool_0.75,conv3x3;h0=01+02+13/01+12;h1=02+03+23/01+02;'
        'hm=concat_head')


def test_text_round_trip_is_exact():
    g = Genotype.parse(TEXT)
    assert str(g) == TEXT
    assert g.group_b == ('se', 'se', 'self_attention', 'avgpool_0.25')
    assert g.heads[0].l1 == ((0, 1), (0, 2), (1, 3))
    assert g.heads[1].l2 == ((0, 1), (0, 2))
    assert Genotype.parse(';\n  '.join(TEXT.split(';'))) == g  # whitespace ignored


def test_dict_and_json_round_trip():
    for seed in range(50):
        g = sample(seed)
        assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
        assert Genotype.parse(str(g)) == g


def test_genotype_is_immutable_and_hashable():
    g = Genotype.parse(TEXT)
    with pytest.raises(Exception):
        g.head_merge = 'global_se_head'
    assert len({g, Genotype.parse(TEXT)}) == 1


@pytest.mark.parametrize(
    'text, field, bad',
    [
        (TEXT.replace('ga=conv3x3', 'ga=conv7x7'), 'ga', 'conv7x7'),
        (TEXT.replace('gb=se,se', 'gb=conv3x3,se'), 'gb', 'conv3x3'),  # conv3x3 is category A only
        (TEXT.replace('st=conv3x3,dil5_conv3x3,', 'st=dil5_conv3x3,'), 'st', '3'),
        (TEXT.replace('h0=01+02+13', 'h0=01+01+13'), 'h0.l1', '(0, 1)'),
        (TEXT.replace('h0=01+02+13', 'h0=01+02+14'), 'h0.l1', '(1, 4)'),
        (TEXT.replace('h0=01+02+13', 'h0=10+02+13'), 'h0.l1', '(1, 0)'),
        (TEXT.replace('/01+12;h1', '/01+13;h1'), 'h0.l2', '(1, 3)'),
        (TEXT.replace('/01+12;h1', '/01;h1'), 'h0.l2', '01'),
        (TEXT.replace('hm=concat_head', 'hm=sum_head'), 'hm', 'sum_head'),
        (TEXT.replace(';hm=concat_head', ''), 'text', 'missing'),
        (TEXT + ';xx=1', 'text', 'xx'),
        ('garbage', 'text', 'garbage'),
    ])
def test_malformed_text_names_field_and_value(text, field, bad):
    with pytest.raises(ValueError) as exc:
        Genotype.parse(text)
    msg = str(exc.value)
    assert repr(field) in msg and bad in msg
    assert 'expected' in msg


def test_malformed_values_in_code_and_dicts():
    g = Genotype.parse(TEXT)
    with pytest.raises(ValueError, match=r"'ga'.*expected exactly 4"):
        Genotype(g.group_a[:3], g.group_b, g.stage_ops, g.heads, g.head_merge)
    with pytest.raises(ValueError, match=r"'ga'.*'conv3x3'.*a list"):
        Genotype('conv3x3', g.group_b, g.stage_ops, g.heads, g.head_merge)
    with pytest.raises(ValueError, match=r"'hm'.*None"):
        Genotype(g.group_a, g.group_b, g.stage_ops, g.heads, None)
    with pytest.raises(ValueError, match='heads'):
        Genotype(g.group_a, g.group_b, g.stage_ops, g.heads[:1], g.head_merge)
    d = g.to_dict()
    d['heads'][1]['l1'][0] = [2, 2]
    with pytest.raises(ValueError, match=r"'h1.l1'.*\(2, 2\)"):
        Genotype.from_dict(d)
    d = g.to_dict()
    d['heads'][0]['l1'][0] = [0, True]
    with pytest.raises(ValueError, match="'h0.l1'"):
        Genotype.from_dict(d)
    with pytest.raises(ValueError, match='exactly the keys'):
        Genotype.from_dict({'group_a': []})
    with pytest.raises(ValueError, match="'text'.*42"):
        Genotype.parse(42)
    with pytest.raises(ValueError, match="'stage'.*4"):
        g.group_ops(4)


def _permuted(g, head_swap, l1_perms, l2_swaps):
    heads = []
    for h, perm, swap in zip(g.heads, l1_perms, l2_swaps):
        new_of_old = {old: new for new, old in enumerate(perm)}
        l1 = tuple(h.l1[i] for i in perm)
        l2 = [tuple(sorted((new_of_old[a], new_of_old[b]))) for a, b in h.l2]
        heads.append(HeadGenotype(l1, tuple(l2[::-1] if swap else l2)))
    if head_swap:
        heads = heads[::-1]
    return Genotype(g.group_a, g.group_b, g.stage_ops, tuple(heads), g.head_merge)


def test_canonical_key_is_invariant_under_the_three_symmetries():
    rng = random.Random(0)
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    for seed in range(30):
        g = sample(seed)
        for _ in range(5):
            other = _permuted(g,
                              rng.random() < 0.5,
                              [rng.choice(perms), rng.choice(perms)],
                              [rng.random() < 0.5, rng.random() < 0.5])
            assert other.key == g.key
            assert other.canonical() == g.canonical()
        assert all(e.key == g.key for e in g.equivalents())
        assert g.canonical().is_canonical()


def test_canonical_key_separates_different_networks():
    g = Genotype.parse(TEXT)
    # Layer-2 pairs that are NOT a relabelling: h0 fuses (L1_0, L1_2) instead of (L1_1, L1_2).
    changed_l2 = Genotype.parse(TEXT.replace('h0=01+02+13/01+12', 'h0=01+02+13/01+02'))
    # Same layer-1 set but layer-2 wired to different stage pairs.
    rewired = Genotype.parse(TEXT.replace('h0=01+02+13/01+12', 'h0=01+02+13/02+12'))
    # Group ops are bound to fixed backbone channels: permuting them is a different network.
    permuted_groups = Genotype.parse(
        TEXT.replace('ga=conv3x3,conv3x3,dil3_conv3x3,avgpool_0.25',
                     'ga=avgpool_0.25,conv3x3,dil3_conv3x3,conv3x3'))
    keys = {g.key, changed_l2.key, rewired.key, permuted_groups.key}
    assert len(keys) == 4
    # Over random samples, equal keys only where the genotypes are related by a symmetry.
    seen = {}
    for seed in range(2000):
        s = sample(seed)
        if s.key in seen:
            assert s in set(seen[s.key].equivalents())
        seen[s.key] = s


def test_equivalence_class_size_counts_the_symmetries():
    g = Genotype.parse(TEXT)
    # Each head: 3! layer-1 orders x 2 layer-2 orders = 12; two distinct heads, swappable: 288.
    assert len(g.equivalents()) == 12 * 12 * 2
    same_heads = Genotype(g.group_a, g.group_b, g.stage_ops, (g.heads[0], g.heads[0]),
                          g.head_merge)
    assert len(same_heads.equivalents()) == 12 * 12


def test_mutation_probabilities_are_validated():
    from seg101_mm.space import Mutator
    with pytest.raises(ValueError, match=r'p_group.*1\.5'):
        Mutator(p_group=1.5)
    with pytest.raises(ValueError, match='all mutation probabilities are 0'):
        Mutator(p_group=0, p_stage=0, p_head_merge=0, p_pairs=0)
    with pytest.raises(ValueError, match='Genotype'):
        mutate(TEXT, 0)


def test_head_merges_and_ops_domains():
    assert HEAD_MERGES == ('global_se_head', 'concat_head')
    assert GROUP_OPS_A == ('conv3x3', 'dil3_conv3x3', 'avgpool_0.25')
