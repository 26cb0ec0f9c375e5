"""The study on a made-up benchmark whose answers are known: a proxy that is the val mIoU plus
small noise ranks near 1 and beats params; one that is pure noise does not; early curve points
equal to the final value rank 1; the simulation's proxy ranking finds the top at once."""
import json
import math

import numpy as np
import pytest

from seg101_mm.nasbench import NASBench, study
from seg101_mm.nasbench.report import write_study
from seg101_mm.space import sample


def made_up(n=30, seed=0):
    rng = np.random.default_rng(seed)
    entries, seen = {}, set()
    import random
    r = random.Random(seed)
    while len(entries) < n:
        g = sample(r).canonical()
        if g.key in seen:
            continue
        seen.add(g.key)
        miou = float(rng.uniform(50, 70))
        entries[g.key] = dict(
            genotype=str(g),
            id=len(entries),
            val={
                'mIoU': miou,
                'IoU.road': miou - 40
            },
            test={'mIoU': miou + rng.normal(0, 0.1)},
            curve=[dict(iter=10, mIoU=miou - 5),
                   dict(iter=20, mIoU=miou)],
            params=float(rng.uniform(5e6, 9e6)),
            flops=float(rng.uniform(1e9, 3e9)),
            proxies=dict(
                good=miou + float(rng.normal(0, 0.01)), noise=float(rng.normal()), bad=-miou))
    return NASBench(entries, meta=dict(protocol=dict(max_iters=20, val_interval=10)))


def test_correlations_find_the_planted_signal():
    rows = {r['name']: r for r in study.correlations(made_up(), num_bootstrap=200)}
    assert rows['good']['spearman'] > 0.99 and rows['good']['spearman_ci'][0] > 0.95
    assert rows['bad']['spearman'] == pytest.approx(-1.0)
    assert abs(rows['noise']['spearman']) < 0.5
    assert rows['good']['precision_at_top_k'] == 1.0 and rows['good']['top_k'] == 3
    assert rows['params']['kind'] == 'baseline' and rows['good']['kind'] == 'proxy'
    assert 'ensemble (all, mean rank)' in rows
    beats = study.beats_baselines(list(rows.values()))
    assert 'good' in beats and 'bad' in beats and 'noise' not in beats


def test_early_vs_final_and_val_vs_test():
    rows = study.early_vs_final(made_up(), num_bootstrap=100)
    assert [(r['iter'], r['against']) for r in rows] == [(10, 'final val'), (20, 'final val'),
                                                         (20, 'test')]
    # mIoU - 5 has the same order as mIoU
    assert rows[0]['spearman'] == pytest.approx(1.0) and rows[0]['fraction'] == 0.5
    assert rows[2]['spearman'] > 0.95


def test_simulation_proxy_ranking_finds_the_top_first():
    sim = study.simulate_search(
        made_up(n=20), seeds=3, num_init=4, top_k=4, proxy='good', epochs=20)
    ranking = sim['methods']['proxy ranking (good)']
    assert sim['n_top'] == 1 and ranking['trainings_to_top_median'] == 1.0
    assert ranking['reached_top'] == 1.0
    rnd = sim['methods']['random']
    assert len(rnd['best_so_far_mean']) == 20
    # best-so-far curves never go down and end at the table's best for a full budget
    for m in sim['methods'].values():
        curve = np.asarray(m['best_so_far_mean'])
        assert (np.diff(curve) >= -1e-9).all()
    assert rnd['best_so_far_mean'][-1] == pytest.approx(sim['threshold'])
    with pytest.raises(ValueError, match="unknown proxy 'nope'"):
        study.simulate_search(made_up(n=20), seeds=1, proxy='nope')


def test_predictor_study_rows():
    rows = study.predictor_study(
        made_up(n=30), sizes=(10, None), repeats=2, features=['good'], epochs=20)
    assert [(r['train_size'], r['features']) for r in rows] == [(10, False), (10, True),
                                                                (24, False), (24, True)]
    assert all(r['held_out'] == 6 and r['repeats'] == 2 for r in rows)
    # with the planted proxy as an input the predictor ranks the held-out entries well
    assert rows[-1]['spearman_mean'] > 0.8


def test_report_is_written_from_the_file(tmp_path):
    path = tmp_path / 'bench.json'
    made_up(n=24).save(path)
    out = tmp_path / 'docs' / 'study.md'
    res = write_study(
        path,
        out,
        tmp_path / 'docs' / 'figures',
        num_bootstrap=50,
        sim_seeds=2,
        sim_epochs=10,
        predictor_repeats=1,
        predictor_epochs=10)
    text = out.read_text()
    assert '**24 trained architectures**' in text
    good = next(r for r in res['correlations'] if r['name'] == 'good')
    assert f'| good | proxy | 24 | {good["spearman"]:.2f}' in text
    for png in ('proxies_vs_miou', 'early_vs_final', 'predictor_rho', 'search_simulation'):
        assert (tmp_path / 'docs' / 'figures' / f'{png}.png').stat().st_size > 5000
        assert f'figures/{png}.png' in text
    saved = json.loads((tmp_path / 'docs' / 'figures' / 'study.json').read_text())
    assert saved['n'] == 24 and math.isclose(saved['correlations'][0]['spearman'],
                                             res['correlations'][0]['spearman'])


def test_npenas_pool_order_is_a_permutation_that_stops_fitting_at_the_best():
    from seg101_mm.space import Genotype
    bench = made_up(n=20)
    t = study.table(bench)
    genotypes = [Genotype.parse(k) for k in t['keys']]
    y = np.asarray(t['target'])
    calls = []
    import seg101_mm.search.predictor as predictor
    fit = predictor.fit_predictor

    def counting_fit(*args, **kwargs):
        calls.append(len(args[0]))
        return fit(*args, **kwargs)

    predictor.fit_predictor = counting_fit
    fitted = 0
    try:
        for seed in range(4):
            calls.clear()
            order = study._npenas_pool(genotypes, y, np.random.default_rng(seed), 20, 4, 4, 20,
                                       seed)
            assert sorted(order) == list(range(20))  # every entry once: the whole budget
            first_best = order.index(int(np.argmax(y)))
            # fitted once per round of 4 until the best is trained, never after
            assert calls == [4 + 4 * r for r in range(len(calls))]
            assert first_best < (calls[-1] + 4 if calls else 4)
            assert not calls or first_best >= calls[-1]
            fitted += len(calls)
    finally:
        predictor.fit_predictor = fit
    assert fitted > 0
