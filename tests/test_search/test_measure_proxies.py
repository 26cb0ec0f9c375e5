"""Zero-cost guidance end to end: the loop's measure computes a real proxy on the network."""
import math

import numpy as np
from mmengine.config import Config

import seg101_mm  # noqa: F401
from seg101_mm.proxies import compute_proxies, random_batch
from seg101_mm.search import NPENASNP, ModelMeasure
from seg101_mm.space import sample

TEMPLATE = 'configs/search/candidates/seg101_regnetx400mf_1xb2-cpu-tiny_roads-64x64.py'


def test_measure_scores_snip_like_the_engine_and_guides_the_prefilter(repo_root):
    model_cfg = Config.fromfile(str(repo_root / TEMPLATE)).to_dict()['model']
    measure = ModelMeasure(
        model_cfg, names=['params', 'snip'], input_size=(64, 64), batch_size=2, seed=0)
    g = sample(3)
    scores = measure(g)
    assert set(scores) == {'params', 'snip'}
    assert math.isfinite(scores['snip']) and scores['snip'] > 0
    # the same network and batch through the engine directly give the same score
    model = measure.build(g)
    batch = random_batch(batch_size=2, size=(64, 64), seed=0)
    assert np.isclose(
        compute_proxies(model, batch, ['snip'], seed=0)['snip'], scores['snip'], rtol=1e-5)
    # a strategy that pre-filters its pool by snip asks the measure for every pool member
    calls = []

    def counting(genotype):
        out = measure(genotype)
        calls.append((genotype, out['snip']))
        return out

    s = NPENASNP(
        num_init=2,
        top_k=1,
        num_candidates=3,
        predictor=dict(epochs=5),
        budget=3,
        seed=0,
        measure=counting,
        prefilter=dict(by='snip', keep=2))
    first = s.ask(10)
    for genotype in first:
        s.tell(genotype, 50.0 + len(calls))
    before = len(calls)
    chosen = s.ask(10)
    assert len(chosen) == 1
    pool = calls[before:]
    assert len(pool) >= 3  # every candidate of the round's pool was scored
    # the predictor only ranks what the pre-filter kept: the 2 best of the pool by snip
    kept = sorted(pool, key=lambda c: c[1], reverse=True)[:2]
    assert chosen[0].key in {g.key for g, _ in kept}
