"""The SEG101 genotype: an immutable, validated value with a canonical text form.

Text form (what ``str(genotype)`` prints and :meth:`Genotype.parse` reads)::

    ga=conv3x3,conv3x3,dil3_conv3x3,avgpool_0.25;gb=se,se,self_attention,avgpool_0.25;
    st=conv3x3,dil5_conv3x3,avgpool_0.75,conv3x3;h0=01+02+13/01+12;h1=02+03+23/01+02;
    hm=concat_head

(on one line). ``ga``/``gb`` are the four group ops of category A (stages S1, S2) and B
(S3, S4), ``st`` the four stage ops, ``h0``/``h1`` the two heads: three layer-1 pairs of
stages, a slash, two layer-2 pairs of layer-1 nodes; ``hm`` the head merge.

The canonical key (docs/method.md section 2) removes the three symmetries that leave the network
unchanged: the order of the layer-1 nodes of a head (with the layer-2 pairs relabelled), the
order of the layer-2 nodes, and the order of the two heads. Stages that no head reads are still
built and run (they cost parameters and FLOPs), so their ops stay part of the key.
"""
from dataclasses import dataclass
from itertools import permutations
from typing import Tuple

from .ops import (GROUP_OPS_A, GROUP_OPS_B, HEAD_MERGES, L1_PAIRS, NUM_GROUPS, NUM_L1, NUM_L2,
                  NUM_STAGES, STAGE_OPS, STAGE_PAIRS)

Pair = Tuple[int, int]

_FIELDS = ('ga', 'gb', 'st', 'h0', 'h1', 'hm')


def _fail(field, value, expected):
    raise ValueError(f'invalid genotype field {field!r}: got {value!r}, expected {expected}')


def _check_ops(field, ops, domain, count):
    if isinstance(ops, str) or not isinstance(ops, (list, tuple)):
        _fail(field, ops, f'a list of {count} op names from {list(domain)}')
    if len(ops) != count:
        _fail(field, ops, f'exactly {count} op names from {list(domain)}, got {len(ops)}')
    for op in ops:
        if not isinstance(op, str) or op not in domain:
            _fail(field, op, f'one of {list(domain)}')
    return tuple(ops)


def _check_pairs(field, pairs, domain, count, what):
    if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)):
        _fail(field, pairs, f'a list of {count} distinct pairs of {what}')
    if len(pairs) != count:
        _fail(field, pairs, f'exactly {count} distinct pairs of {what}, got {len(pairs)}')
    out = []
    for pair in pairs:
        if (isinstance(pair, str) or not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)):
            _fail(field, pair, f'a pair (a, b) of {what} with a < b, one of {list(domain)}')
        pair = tuple(pair)
        if pair not in domain:
            _fail(field, pair, f'a pair (a, b) of {what} with a < b, one of {list(domain)}')
        if pair in out:
            _fail(field, pair, f'{count} distinct pairs; {pair} is repeated')
        out.append(pair)
    return tuple(out)


@dataclass(frozen=True)
class HeadGenotype:
    """One fusion head: 3 layer-1 pairs of stages, 2 layer-2 pairs of layer-1 nodes."""

    l1: Tuple[Pair, Pair, Pair]
    l2: Tuple[Pair, Pair]

    def __post_init__(self, field='head'):
        object.__setattr__(self, 'l1',
                           _check_pairs(f'{field}.l1', self.l1, STAGE_PAIRS, NUM_L1, 'stages 0-3'))
        object.__setattr__(
            self, 'l2', _check_pairs(f'{field}.l2', self.l2, L1_PAIRS, NUM_L2,
                                     'layer-1 nodes 0-2'))

    def canonical(self) -> 'HeadGenotype':
        """The head with layer-1 nodes sorted (layer-2 pairs relabelled) and layer-2 sorted."""
        order = sorted(range(NUM_L1), key=lambda i: self.l1[i])
        new_index = {old: new for new, old in enumerate(order)}
        l1 = tuple(self.l1[i] for i in order)
        l2 = tuple(sorted(tuple(sorted((new_index[a], new_index[b]))) for a, b in self.l2))
        return HeadGenotype(l1, l2)

    def stages_used(self):
        return sorted({s for pair in self.l1 for s in pair})

    def __str__(self):
        l1 = '+'.join(f'{a}{b}' for a, b in self.l1)
        l2 = '+'.join(f'{a}{b}' for a, b in self.l2)
        return f'{l1}/{l2}'


def _parse_pairs(field, text, count):
    parts = text.split('+')
    if len(parts) != count:
        _fail(field, text, f'{count} pairs joined by "+", such as "01+02+13"')
    pairs = []
    for part in parts:
        if len(part) != 2 or not part.isdigit():
            _fail(field, part, 'a pair written as two digits, such as "01"')
        pairs.append((int(part[0]), int(part[1])))
    return pairs


def _parse_head(field, text):
    if text.count('/') != 1:
        _fail(field, text, 'layer-1 pairs "/" layer-2 pairs, such as "01+02+13/01+12"')
    l1, l2 = text.split('/')
    return HeadGenotype(
        _check_pairs(f'{field}.l1', _parse_pairs(f'{field}.l1', l1, NUM_L1), STAGE_PAIRS, NUM_L1,
                     'stages 0-3'),
        _check_pairs(f'{field}.l2', _parse_pairs(f'{field}.l2', l2, NUM_L2), L1_PAIRS, NUM_L2,
                     'layer-1 nodes 0-2'))


def _coerce_head(field, head):
    if isinstance(head, HeadGenotype):
        return head
    if isinstance(head, dict):
        if set(head) != {'l1', 'l2'}:
            _fail(field, head, 'a dict with keys "l1" and "l2"')
        l1 = _check_pairs(
            f'{field}.l1',
            [tuple(p) if isinstance(p, list) else p
             for p in _as_list(f'{field}.l1', head['l1'])], STAGE_PAIRS, NUM_L1, 'stages 0-3')
        l2 = _check_pairs(
            f'{field}.l2',
            [tuple(p) if isinstance(p, list) else p
             for p in _as_list(f'{field}.l2', head['l2'])], L1_PAIRS, NUM_L2, 'layer-1 nodes 0-2')
        return HeadGenotype(l1, l2)
    if isinstance(head, str):
        return _parse_head(field, head)
    _fail(field, head, 'a HeadGenotype, a dict with "l1" and "l2", or text like "01+02+13/01+12"')


def _as_list(field, value):
    if isinstance(value, (list, tuple)):
        return list(value)
    _fail(field, value, 'a list')


@dataclass(frozen=True)
class Genotype:
    """A point of the SEG101 search space (docs/method.md section 2).

    Args:
        group_a (tuple[str]): 4 group ops of category A (channel groups of S1 and S2),
            from :data:`GROUP_OPS_A`.
        group_b (tuple[str]): 4 group ops of category B (S3 and S4), from :data:`GROUP_OPS_B`.
        stage_ops (tuple[str]): one op per stage S1..S4, from :data:`STAGE_OPS`.
        heads (tuple[HeadGenotype]): the two fusion heads.
        head_merge (str): one of :data:`HEAD_MERGES`.
    """

    group_a: Tuple[str, ...]
    group_b: Tuple[str, ...]
    stage_ops: Tuple[str, ...]
    heads: Tuple[HeadGenotype, HeadGenotype]
    head_merge: str

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, 'group_a', _check_ops('ga', self.group_a, GROUP_OPS_A, NUM_GROUPS))
        set_(self, 'group_b', _check_ops('gb', self.group_b, GROUP_OPS_B, NUM_GROUPS))
        set_(self, 'stage_ops', _check_ops('st', self.stage_ops, STAGE_OPS, NUM_STAGES))
        heads = self.heads
        if isinstance(heads, str) or not isinstance(heads, (list, tuple)) or len(heads) != 2:
            _fail('heads', heads, 'a pair of heads (h0, h1)')
        set_(self, 'heads', tuple(_coerce_head(f'h{i}', h) for i, h in enumerate(heads)))
        if not isinstance(self.head_merge, str) or self.head_merge not in HEAD_MERGES:
            _fail('hm', self.head_merge, f'one of {list(HEAD_MERGES)}')

    # ------------------------------------------------------------------ text form
    def __str__(self):
        return (f'ga={",".join(self.group_a)};gb={",".join(self.group_b)};'
                f'st={",".join(self.stage_ops)};h0={self.heads[0]};h1={self.heads[1]};'
                f'hm={self.head_merge}')

    @classmethod
    def parse(cls, text: str) -> 'Genotype':
        """Read the text form written by ``str(genotype)`` (whitespace is ignored)."""
        if isinstance(text, Genotype):
            return text
        if not isinstance(text, str):
            _fail('text', text, 'a genotype string such as "ga=...;gb=...;st=...;h0=...;'
                  'h1=...;hm=..."')
        compact = ''.join(text.split())
        fields = {}
        for item in compact.split(';'):
            if not item:
                continue
            if '=' not in item:
                _fail('text', item, f'"name=value" items separated by ";" with names {_FIELDS}')
            name, value = item.split('=', 1)
            if name not in _FIELDS:
                _fail('text', name, f'one of the field names {_FIELDS}')
            if name in fields:
                _fail(name, value, 'the field only once')
            fields[name] = value
        missing = [f for f in _FIELDS if f not in fields]
        if missing:
            _fail('text', text, f'all fields {_FIELDS}; missing {missing}')
        return cls(
            group_a=tuple(fields['ga'].split(',')),
            group_b=tuple(fields['gb'].split(',')),
            stage_ops=tuple(fields['st'].split(',')),
            heads=(_parse_head('h0', fields['h0']), _parse_head('h1', fields['h1'])),
            head_merge=fields['hm'])

    # ------------------------------------------------------------------ dict form
    def to_dict(self) -> dict:
        """A JSON-friendly dict; :meth:`from_dict` reads it back."""
        return dict(
            group_a=list(self.group_a),
            group_b=list(self.group_b),
            stage_ops=list(self.stage_ops),
            heads=[
                dict(l1=[list(p) for p in h.l1], l2=[list(p) for p in h.l2]) for h in self.heads
            ],
            head_merge=self.head_merge)

    @classmethod
    def from_dict(cls, d: dict) -> 'Genotype':
        keys = {'group_a', 'group_b', 'stage_ops', 'heads', 'head_merge'}
        if not isinstance(d, dict):
            _fail('dict', d, f'a dict with keys {sorted(keys)}')
        if set(d) != keys:
            _fail('dict', sorted(d), f'exactly the keys {sorted(keys)}')
        heads = d['heads']
        if isinstance(heads, str) or not isinstance(heads, (list, tuple)) or len(heads) != 2:
            _fail('heads', heads, 'a list of two heads')
        return cls(
            group_a=d['group_a'],
            group_b=d['group_b'],
            stage_ops=d['stage_ops'],
            heads=tuple(_coerce_head(f'h{i}', h) for i, h in enumerate(heads)),
            head_merge=d['head_merge'])

    # ------------------------------------------------------------------ canonical form
    def canonical(self) -> 'Genotype':
        """The representative of this genotype's equivalence class (docs/method.md section 2)."""
        heads = sorted((h.canonical() for h in self.heads), key=str)
        return Genotype(self.group_a, self.group_b, self.stage_ops, tuple(heads), self.head_merge)

    @property
    def key(self) -> str:
        """Canonical key: equal exactly for genotypes that build the same network."""
        return str(self.canonical())

    def is_canonical(self) -> bool:
        return self == self.canonical()

    # ------------------------------------------------------------------ helpers
    def group_ops(self, stage: int) -> Tuple[str, ...]:
        """The four group ops of ``stage`` (category A for stages 0, 1; B for 2, 3)."""
        if stage not in range(NUM_STAGES):
            _fail('stage', stage, f'a stage index in 0..{NUM_STAGES - 1}')
        return self.group_a if stage < 2 else self.group_b

    def stages_used(self):
        """Stages that at least one head reads."""
        return sorted({s for h in self.heads for s in h.stages_used()})

    def equivalents(self):
        """All genotypes with the same key that differ only by the listed symmetries."""
        out = set()
        for head_order in ((0, 1), (1, 0)):
            variants = [_head_variants(self.heads[i]) for i in head_order]
            for h0 in variants[0]:
                for h1 in variants[1]:
                    out.add(
                        Genotype(self.group_a, self.group_b, self.stage_ops, (h0, h1),
                                 self.head_merge))
        return sorted(out, key=str)


def _head_variants(head: HeadGenotype):
    out = set()
    for perm in permutations(range(NUM_L1)):  # perm[new] = old
        new_index = {old: new for new, old in enumerate(perm)}
        l1 = tuple(head.l1[i] for i in perm)
        l2 = [tuple(sorted((new_index[a], new_index[b]))) for a, b in head.l2]
        for l2_order in (l2, l2[::-1]):
            out.add(HeadGenotype(l1, tuple(l2_order)))
    return out
