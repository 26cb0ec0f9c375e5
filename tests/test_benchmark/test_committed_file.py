"""The committed SEG101-Bench files read with the loader and hold what their meta promises."""
import math
from pathlib import Path

import pytest

from seg101_mm.benchmark import load_benchmark
from seg101_mm.space import Genotype

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / 'benchmarks').glob('*.json'))


@pytest.mark.skipif(not FILES, reason='no benchmark file committed under benchmarks/')
@pytest.mark.parametrize('path', FILES, ids=[p.name for p in FILES])
def test_committed_benchmark_file(path):
    bench = load_benchmark(path)
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
