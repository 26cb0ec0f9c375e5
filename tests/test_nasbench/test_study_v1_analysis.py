"""Issue 27, section 1: the paired, partial and within-head tests, the all-background
baseline, the sign convention, the paired simulation, the trivial rankers and the
cross-backbone replicate, each on a small hand-made table whose answer is known."""
import csv
import math
import random

import numpy as np
import pytest
from scipy.stats import spearmanr

from seg101_mm.nasbench import NASBench, study
from seg101_mm.proxies.ensemble import rank_aggregate
from seg101_mm.space import sample


def _metrics(r, tp, fp):
    """Rounded metrics of a prediction with road share r, TP and FP shares (of all pixels)."""
    fn = r - tp
    tn = 1 - tp - fp - fn
    p = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / r
    iou_bg, iou_fg = tn / (tn + fn + fp), tp / (tp + fp + fn)
    f1 = 2 * p * rec / (p + rec) if p + rec else 0.0
    mpa = (tn / (tn + fp) + rec) / 2
    return {
        k: round(100 * v, 2)
        for k, v in {
            'mIoU': (iou_bg + iou_fg) / 2,
            'IoU.background': iou_bg,
            'IoU.road': iou_fg,
            'F1.road': f1,
            'Precision.road': p,
            'Recall.road': rec,
            'PA': tp + tn,
            'MPA': mpa
        }.items()
    }


def hand_made(n=40, seed=0, share=0.1):
    """Entries whose val and test metrics come from known confusion shares (road share
    ``share``), a curve at 10 and 20 iterations, heads from the sampler, and planted scores:
    ``inner`` ranks the entries within each head type, ``twin`` has params' ranks."""
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    entries, keys = {}, set()
    while len(entries) < n:
        g = sample(r).canonical()
        if g.key in keys:
            continue
        keys.add(g.key)
        concat = g.head_merge == 'concat_head'
        u = float(rng.uniform(0, 1))
        tp = share * (0.2 + 0.3 * concat + 0.4 * u)
        fp = 0.05 * (1 - u)
        val = _metrics(share, tp, fp)
        params = float(rng.uniform(5e6, 6e6) if concat else rng.uniform(8e6, 9e6))
        entries[g.key] = dict(
            genotype=str(g),
            id=len(entries),
            val=val,
            test=_metrics(share, tp * 0.9, fp),
            curve=[dict(val, iter=10, mIoU=val['mIoU'] - 1),
                   dict(val, iter=20)],
            params=params,
            flops=params * 200 + float(rng.uniform(0, 1e8)),
            proxies=dict(inner=u, twin=2 * params, noise=float(rng.normal())))
    return NASBench(entries, meta=dict(protocol=dict(max_iters=20, val_interval=10)))


# ---------------------------------------------------------------------- correlations
def test_spearman_matrix_matches_scipy():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=30), np.round(rng.normal(size=30)), rng.random(30)])
    np.testing.assert_allclose(study._spearman_matrix(x), spearmanr(x)[0], atol=1e-12)


def test_partial_spearman_is_the_partial_correlation_of_ranks():
    rng = np.random.default_rng(2)
    z = rng.normal(size=200)
    x = z + 0.3 * rng.normal(size=200)
    y = z + 0.3 * rng.normal(size=200)
    # the standard formula on Spearman rhos gives the same for one covariate
    rxy, rxz, ryz = (spearmanr(a, b)[0] for a, b in ((x, y), (x, z), (y, z)))
    formula = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert study.partial_spearman(x, y, [z]) == pytest.approx(formula, abs=1e-10)
    # x and y are related only through z: strong raw rho, small partial rho
    assert rxy > 0.8 and abs(study.partial_spearman(x, y, [z])) < 0.2
    # a log of the covariate changes nothing; x given an unrelated covariate stays x
    w = np.exp(rng.normal(size=200))
    assert study.partial_spearman(x, y, [w]) == pytest.approx(
        study.partial_spearman(x, y, [np.log(w)]), abs=1e-12)
    assert study.partial_spearman(x, x, [w]) == pytest.approx(1.0)


def test_paired_bootstrap_shares_its_resamples():
    rows = {r['name']: r for r in study.paired_vs_baselines(hand_made(), num_bootstrap=300)}
    # twin has params' ranks: on shared resamples the difference is exactly 0 every time
    twin = rows['twin']['vs']['params']
    assert twin['diff'] == pytest.approx(0.0, abs=1e-12)
    assert twin['ci'] == pytest.approx([0.0, 0.0], abs=1e-12) and twin['share_above'] == 0.0
    for name, r in rows.items():
        assert r['n'] == 40 and set(r['vs']) == {'params', 'flops'}
        lo, hi = r['vs']['params']['ci']
        assert lo <= r['vs']['params']['diff'] + 1e-9 and r['vs']['params']['diff'] <= hi + 1e-9
    t = study.table(hand_made())
    full = abs(spearmanr(t['columns']['noise'], t['target'])[0]) - abs(
        spearmanr(t['columns']['params'], t['target'])[0])
    assert rows['noise']['vs']['params']['diff'] == pytest.approx(full)
    assert 'twin' not in study.beats_baselines_paired(list(rows.values()))


def test_within_head_and_partial_separate_size_from_the_proxy():
    bench = hand_made(n=60)
    heads = {r['name']: r['heads'] for r in study.within_head(bench, num_bootstrap=100)}
    t = study.table(bench)
    counts = {h: t['heads'].count(h) for h in set(t['heads'])}
    for h, v in heads['inner'].items():
        # val mIoU = head offset + a monotone function of inner (up to rounding)
        assert v['n'] == counts[h] and v['spearman'] > 0.95
    assert abs(heads['params']['concat_head']['spearman']) < 0.5
    part = {r['name']: r['partial'] for r in study.partial_correlations(bench, num_bootstrap=50)}
    raw = spearmanr(t['columns']['inner'], t['target'])[0]
    assert part['inner']['params']['rho'] > raw  # the head offset (= size) removed
    assert set(part['inner']) == {'params', 'params+flops'}


def test_target_correlations_cover_every_target():
    bench = hand_made()
    res = study.target_correlations(bench, num_bootstrap=20)
    assert res['targets'] == [
        'val mIoU', 'val road IoU', 'val road F1', 'test mIoU',
        'val mIoU, mean of the last two validations'
    ]
    names = [r['name'] for r in res['rows']]
    assert study.HEAD_SCORE_NAME in names and 'params' in names
    last2 = study.target_values(bench, 'mIoU', 'last2')
    key = next(iter(last2))
    assert last2[key] == pytest.approx(bench.query(key)['val']['mIoU'] - 0.5)


# ---------------------------------------------------------------------- all-background
def test_all_background_from_the_metrics():
    bench = hand_made(share=0.1)
    ab = study.all_background(bench)
    assert ab['shares']['val']['fraction'] == pytest.approx(0.1, abs=2e-4)
    rows = {r['target']: r for r in ab['rows']}
    assert rows['val mIoU']['value'] == pytest.approx(45.0, abs=0.02)
    assert rows['val road IoU']['value'] == 0.0 and rows['val road F1']['value'] == 0.0
    y = np.array(list(bench.values('mIoU').values()))
    assert rows['val mIoU']['below'] == int((y < round(rows['val mIoU']['value'], 2)).sum())
    # an all-background prediction (R = 0, MPA = 50) identifies r as 1 - PA
    only = study.foreground_fraction([_metrics(0.07, 0.0, 0.0)])
    assert only['n'] == 1 and only['fraction'] == pytest.approx(0.07)
    # R = 0 with false positives does not identify r
    assert study.foreground_fraction([_metrics(0.07, 0.0, 0.02)])['n'] == 0


def test_pooled_seed_sd():
    rows = [dict(key='a', seed=0, val=dict(mIoU=1.0)), dict(key='a', seed=1, val=dict(mIoU=3.0)),
            dict(key='b', seed=0, val=dict(mIoU=2.0)), dict(key='b', seed=1, val=dict(mIoU=4.0)),
            dict(key='b', seed=2, val=dict(mIoU=6.0)), dict(key='c', seed=0, val=dict(mIoU=9.0))]
    out = study.pooled_seed_sd(dict(rows=rows))
    assert out['dof'] == 3 and out['entries'] == 2
    assert out['sd'] == pytest.approx(math.sqrt((2 * 1 + 4 * 2) / 3))
    assert math.isnan(study.pooled_seed_sd(None)['sd'])


# ---------------------------------------------------------------------- signs
def test_sign_convention_orients_the_ensembles_in_advance():
    assert study.proxy_sign('snip') == -1 and study.proxy_sign('grad_norm') == -1
    assert study.proxy_sign('synflow') == 1 and study.proxy_sign('meco') == 1
    assert study.proxy_sign('params') == 1
    rng = np.random.default_rng(3)
    cols = {n: rng.normal(size=20) for n in ('snip', 'fisher', 'grasp', 'meco', 'params')}
    ens = study.ensemble_columns(cols)
    np.testing.assert_allclose(
        ens['ensemble (paper six, mean rank)'],
        rank_aggregate(cols, ['snip', 'grasp', 'fisher'], signs=dict(snip=-1, fisher=-1)))
    # all proxies: the baselines stay out, snip and fisher reversed
    np.testing.assert_allclose(
        ens['ensemble (all, mean rank)'],
        rank_aggregate(cols, ['snip', 'fisher', 'grasp', 'meco'], signs=dict(snip=-1,
                                                                             fisher=-1)))


# ---------------------------------------------------------------------- simulation
def test_order_by_and_head_type_order():
    perm = np.array([3, 1, 0, 2])
    assert study.order_by([1.0, 1.0, 0.0, 1.0], perm) == [3, 1, 0, 2]
    y = np.array([0.0, 5.0, 1.0, 4.0, 2.0, 3.0])
    heads = ['a', 'b', 'a', 'b', 'a', 'b']
    order = study.head_type_order(y, heads, np.array([0, 2, 1, 3, 4, 5]), num_init=2)
    # both initial draws are head a (mean 0.5): the untried head b goes next and wins
    assert order[:2] == [0, 2] and order[2:] == [1, 3, 5, 4]


def test_simulation_seeds_are_paired_and_report_regret(monkeypatch):
    bench = hand_made(n=20)
    t = study.table(bench)
    score = study.score_columns(t)['inner']
    keep = np.argsort(-score)[:10]
    methods = study._sim_methods(t, score, keep, 3, 4, 4, 20, 10, 'inner', 0.5)
    rnd = methods['random']
    for s in range(3):
        for name in ('NPENAS-NP (pool)', 'head-type order'):
            assert methods[name][s][:4] == rnd[s][:4]  # the shared initial draws
        assert sorted(methods['-params order'][s]) == list(range(20))
    sim = study.simulate_search(bench, seeds=3, num_init=4, top_k=4, proxy='inner', epochs=10,
                                seed_sd=2.0, ks=(1, 5, 20, 50))
    assert sim['ks'] == [1, 5, 20] and sim['seed_sd'] == 2.0
    y = t['target']
    for name, m in sim['methods'].items():
        p = [m['p_top_within'][k] for k in sim['ks']]
        assert p == sorted(p) and p[-1] == 1.0  # a full budget reaches the top
        assert m['regret_at'][20] == pytest.approx(0.0)
        assert m['regret_mean'][0] == pytest.approx(
            np.mean([(y.max() - y[o[0]]) / 2.0 for o in methods[name]]))
    assert sim['methods']['random']['vs_random'] == dict(sooner=0.0, same=1.0, later=0.0)
    assert sim['top_span'] == pytest.approx((y.max() - sim['threshold']) / 2.0)


# ---------------------------------------------------------------------- predictor, facts
def test_trivial_rankers_fit_their_direction_on_the_training_entries():
    bench = hand_made(n=30)
    rows = {(r['ranker'], r['train_size']): r for r in study.trivial_rankers(
        bench, sizes=(10, None), repeats=3)}
    assert set(rows) == {(n, m) for n in ('params', 'flops', 'head type') for m in (10, 24)}
    # larger params = global_se_head = lower mIoU here: the fitted sign is negative
    assert rows[('params', 24)]['directions'] == {'negative': 3}
    assert rows[('params', 24)]['spearman_mean'] > 0
    assert rows[('head type', 24)]['directions'] == {'concat_head': 3}


def test_cross_backbone_replicate(tmp_path):
    bench = hand_made(n=12)
    keys = sorted(bench.keys())[:8]
    for name, metric, sign in (('a', 'IoU.road', -1.0), ('b', 'mIoU', 1.0)):
        d = tmp_path / name
        d.mkdir()
        with open(d / 'leaderboard.csv', 'w', newline='') as fh:
            w = csv.writer(fh)
            w.writerow(['rank', 'id', 'round', 'status', metric, 'key'])
            for i, k in enumerate(keys):
                w.writerow([i + 1, i, 0, 'done', sign * bench.query(k)['val'][metric], k])
            w.writerow([9, 9, 1, 'done', 99.0, sorted(bench.keys())[-1]])  # not round 0
    out = study.cross_backbone(bench, [tmp_path / 'a', tmp_path / 'b', tmp_path / 'none'])
    assert set(out['metrics']) == {'IoU.road', 'mIoU'}
    assert out['metrics']['IoU.road']['n'] == 8
    assert out['metrics']['IoU.road']['spearman'] == pytest.approx(-1.0)
    assert out['metrics']['mIoU']['spearman'] == pytest.approx(1.0)
    eff = out['metrics']['mIoU']['head_effect']
    assert eff['benchmark'] == pytest.approx(eff['replicate'])
    sc = study.scope(bench, data_root=str(tmp_path / 'missing'))
    assert sc['train_images'] is None and sc['backbone_not_recorded'] == 12


def test_report_publishes_the_new_sections(tmp_path):
    import json

    from seg101_mm.nasbench.report import write_study
    bench = hand_made(n=24)
    path = tmp_path / 'bench.json'
    bench.save(path)
    keys = sorted(bench.keys())
    rows = [dict(key=k, id=i, seed=s, val=dict(mIoU=bench.query(k)['val']['mIoU'] + d))
            for i, k in enumerate(keys[:2]) for s, d in ((0, 0.0), (1, 1.0), (2, -1.0))]
    (tmp_path / 'bench_retrain.json').write_text(json.dumps(dict(rows=rows, summary=[])))
    rep = tmp_path / 'search'
    rep.mkdir()
    with open(rep / 'leaderboard.csv', 'w', newline='') as fh:
        w = csv.writer(fh)
        w.writerow(['rank', 'id', 'round', 'status', 'mIoU', 'key'])
        for i, k in enumerate(keys[:6]):
            w.writerow([i + 1, i, 0, 'done', -bench.query(k)['val']['mIoU'], k])
    out = tmp_path / 'docs' / 'study.md'
    res = write_study(path, out, tmp_path / 'docs' / 'figures', replicate_dirs=[rep],
                      num_bootstrap=30, sim_seeds=2, sim_epochs=5, predictor_repeats=1,
                      predictor_epochs=5)
    text = out.read_text()
    for head in ('## Sign convention', '## Scope', '### Cross-backbone replicate',
                 '## Baselines and targets', '## Proxies against the size baselines',
                 '### Within each head type'):
        assert head in text
    assert study.SIGN_CONVENTION in text
    assert res['seed_noise']['dof'] == 4 and res['seed_noise']['sd'] == pytest.approx(1.0)
    assert 'in units of the pooled seed SD of the retrain file, 1.00 mIoU points' in text
    assert '| mIoU | `' in text and '| 6 (' in text and '| -1.00 |' in text
    ab = next(r for r in res['all_background']['rows'] if r['target'] == 'val mIoU')
    assert f'| val mIoU | {ab["value"]:.2f} | {ab["below"]} of 24 |' in text
    assert '| params | 10 | - |' in text and '| GIN predictor | 10 | no |' in text
    assert 'P(T <= 10)' in text and '| -params order |' in text
