"""The committed SEG101-Bench files read with the loader and hold what their meta promises."""
import json
import math
from pathlib import Path

import pytest

from seg101_mm.nasbench import load_nasbench
from seg101_mm.space import Genotype

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(
    p for p in (REPO / 'nasbench').glob('*.json') if not p.name.endswith('_retrain.json'))
RETRAINED = sorted((REPO / 'nasbench').glob('*_retrain.json'))


@pytest.mark.skipif(not FILES, reason='no benchmark file committed under nasbench/')
@pytest.mark.parametrize('path', FILES, ids=[p.name for p in FILES])
def test_committed_nasbench_file(path):
    bench = load_nasbench(path)
    assert len(bench) >= 1
    assert path.stat().st_size < 1_000_000  # the repository stays small
    meta = bench.meta
    proto = meta['protocol']
    # the recipe that retrains an entry is in the repository
    assert (REPO / proto['candidate_template']).is_file()
    assert (REPO / meta['search_config']).is_file()
    iters = list(range(proto['val_interval'], proto['max_iters'] + 1, proto['val_interval']))
    names = meta['proxies']['names']
    for entry in bench:
        g = Genotype.parse(entry['genotype'])
        assert g.key == entry['key']
        assert [p['iter'] for p in entry['curve']] == iters
        assert entry['curve'][-1]['mIoU'] == entry['val']['mIoU']
        assert 0 <= entry['val']['mIoU'] <= 100 and 0 <= entry['test']['mIoU'] <= 100
        assert entry['train_seconds'] > 0
        # every proxy of the meta, scored (a NaN proxy is null with its reason kept)
        scored = set(entry['proxies']) | {'params', 'flops'}
        assert scored == set(names), entry['key']
        for k, v in entry['proxies'].items():
            assert (v is not None and math.isfinite(v)) or k in entry.get('proxy_failures', {})
        assert entry['params'] > 4.77e6  # RegNetX-400MF alone


@pytest.mark.skipif(not RETRAINED, reason='no retraining check committed under nasbench/')
@pytest.mark.parametrize('path', RETRAINED, ids=[p.name for p in RETRAINED])
def test_committed_retraining_check(path):
    """A retrain file compares with the entries of its own benchmark file, and its summary
    follows from its rows."""
    from seg101_mm.nasbench.retrain import summarise
    rep = json.loads(path.read_text())
    bench = load_nasbench(REPO / rep['benchmark'])
    by_id = {e['id']: e for e in bench}
    assert rep['rows']
    for row in rep['rows']:
        entry = by_id[row['id']]
        assert row['key'] == entry['key'] and row['recorded'] == entry['val']
        assert row['recorded_seed'] == bench.meta['seeds']['training']
    again = summarise(rep['rows'])
    assert [s['within_noise'] for s in again] == [s['within_noise'] for s in rep['summary']]
    for s, t in zip(again, rep['summary']):
        assert s['values'] == t['values'] and s['gap'] == pytest.approx(t['gap'])
