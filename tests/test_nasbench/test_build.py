"""SEG101-Bench built by the search machinery on generated scenes: learning curves, test
metrics and proxies per entry, the file as the loader reads it, resume after a stop, and a
fresh work dir that continues from the file without training its entries again."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from seg101_mm.nasbench import NASBenchError, load_nasbench
from seg101_mm.search.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = 'configs/search/candidates/seg101_regnetx400mf_1xb2-cpu-tiny_roads-64x64.py'
PROXIES = ['params', 'flops', 'snip', 'nwot']


def write_config(path, out, budget=3, batch_size=2, seed=0, backbone=None):
    overrides = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 1}
    if backbone is not None:
        overrides['model.backbone.init_cfg'] = dict(
            _delete_=True, type='Pretrained', checkpoint=str(backbone), prefix='backbone.')
    text = f'''
default_scope = 'mmseg'
custom_imports = dict(imports=['seg101_mm'], allow_failed_imports=False)
train_cfg = dict(
    type='NPENASSearchLoop', strategy=dict(type='RandomSearch', batch_size={batch_size}),
    budget={budget}, seed={seed}, launcher=dict(type='InProcessLauncher'),
    candidate=dict(template={str(REPO / TEMPLATE)!r},
                   overrides={overrides!r},
                   synthetic=dict(kind='roads', num_train=4, num_val=1, num_test=2, size=64),
                   test=True),
    max_failures=3, poll_interval=0.05, fsync=False)
custom_hooks = [dict(type='NASBenchExportHook', out={str(out)!r},
                     proxies=dict(names={PROXIES!r}, batch_size=4, chunk_size=2, seed=0),
                     meta=dict(name='test bench'))]
model = dict(type='SearchController')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.0))
train_dataloader = dict()
default_hooks = dict(runtime_info=None, timer=None, logger=None, param_scheduler=None,
                     checkpoint=None, sampler_seed=None)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
log_level = 'WARNING'
'''
    Path(path).write_text(text)
    return str(path)


def load_script(relpath):
    """A script of the checkout imported as a module, without its folder on ``sys.path``."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location('_script_' + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tool(argv):
    return load_script('tools/analysis_tools/build_nasbench.py').main(argv)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bench')
    out = tmp / 'bench.json'
    # every entry starts from an in-house backbone file, as SEG101-Bench's do
    import torch
    from mmengine.registry import init_default_scope

    from seg101_mm.models import build_seg101
    from seg101_mm.models.backbone_weights import extract_backbone
    init_default_scope('mmseg')
    torch.manual_seed(0)
    seg = build_seg101(
        'ga=conv3x3,dil3_conv3x3,avgpool_0.25,conv3x3;'
        'gb=se,self_attention,avgpool_0.25,dil3_conv3x3;'
        'st=conv3x3,avgpool_0.75,dil5_conv3x3,avgpool_0.25;'
        'h0=01+02+12/01+12;h1=01+02+12/01+02;hm=concat_head',
        num_classes=2)
    torch.save(dict(state_dict=seg.state_dict()), tmp / 'trained.pth')
    backbone = extract_backbone(tmp / 'trained.pth', tmp / 'backbone.pth')
    cfg = write_config(tmp / 'bench_cfg.py', out, backbone=tmp / 'backbone.pth')
    assert build_tool([cfg, '--work-dir', str(tmp / 'wd')]) == 0
    tmp.joinpath('backbone_sha256').write_text(backbone['weights_sha256'])
    return tmp, cfg, out


def test_entries_hold_curves_test_metrics_and_proxies(built):
    tmp, _, out = built
    bench = load_nasbench(out)
    recs = Ledger(tmp / 'wd' / 'ledger.jsonl', readonly=True).records()
    assert len(bench) == 3 and sorted(bench.keys()) == sorted(r['key'] for r in recs)
    for rec in recs:
        e = bench.query(rec['key'])
        assert e['val']['mIoU'] == pytest.approx(rec['score'], abs=1e-4)
        # validated after iterations 1 and 2: the curve ends at the final val metrics
        assert [p['iter'] for p in e['curve']] == [1, 2]
        assert e['curve'][-1]['mIoU'] == e['val']['mIoU']
        assert {'mIoU', 'IoU.road', 'FWIoU', 'PA', 'MPA'} <= set(e['test'])
        assert 0 <= e['test']['mIoU'] <= 100
        assert e['train_seconds'] > 0
        # the weights it started from are named in its ledger record and its entry
        sha = (tmp / 'backbone_sha256').read_text()
        assert rec['backbone_sha256'] == e['backbone_sha256'] == sha
        # RegNetX-400MF alone has 4.77 M parameters
        assert 4.77e6 < e['params'] < 1e8 and e['flops'] > 1e7
        assert sorted(e['proxies']) == ['nwot', 'snip']
        assert all(math.isfinite(v) for v in e['proxies'].values())
    meta = bench.meta
    assert meta['name'] == 'test bench' and meta['seeds'] == dict(sampling=0, training=0)
    assert meta['proxies']['batch_size'] == 4 and meta['strategy']['type'] == 'RandomSearch'
    assert meta['protocol']['max_iters'] == 2 and meta['protocol']['val_interval'] == 1
    assert bench.curve_iters == [1, 2]
    # the proxies were scored once each and cached in the work dir
    lines = (tmp / 'wd' / 'proxies.jsonl').read_text().splitlines()
    assert sorted(json.loads(x)['key'] for x in lines) == sorted(bench.keys())


def test_loader_queries_and_csv(built, tmp_path):
    _, _, out = built
    bench = load_nasbench(out)
    key = bench.keys()[0]
    entry = bench.query(key)
    # a genotype string and the key name the same entry
    assert bench.query(entry['genotype'])['val'] == entry['val']
    assert entry['genotype'] in bench and 'not a genotype' not in bench
    with pytest.raises(NASBenchError, match='is not a SEG101 genotype'):
        bench.query('ga=nope')
    assert bench.values('proxies.snip')[key] == entry['proxies']['snip']
    assert bench.values('mIoU@1')[key] == entry['curve'][0]['mIoU']
    assert bench.values('mIoU', split='test')[key] == entry['test']['mIoU']
    path = bench.to_csv(tmp_path / 'bench.csv')
    import csv
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 3 and {'val.mIoU', 'test.mIoU', 'mIoU@1', 'proxies.snip', 'params'} <= set(
        rows[0])
    row = next(r for r in rows if r['key'] == key)
    assert float(row['val.mIoU']) == entry['val']['mIoU']


def test_loader_refuses_bad_files(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"format": "other"}')
    with pytest.raises(NASBenchError, match="not a seg101-bench file"):
        load_nasbench(bad)
    bad.write_text('{')
    with pytest.raises(NASBenchError, match='not a JSON file'):
        load_nasbench(bad)
    with pytest.raises(NASBenchError, match='does not exist'):
        load_nasbench(tmp_path / 'missing.json')


def test_retraining_with_the_recorded_seed_reproduces_an_entry(built, tmp_path, capsys):
    from seg101_mm.nasbench.retrain import retrain, summarise, write_retrain
    tmp, cfg, out = built
    bench = load_nasbench(out)
    entry = min(bench, key=lambda e: e['id'])
    rows = retrain(
        bench, [str(entry['id'])], [0, 1],
        tmp_path / 'rt',
        data_root=str(tmp / 'wd' / 'data'),
        poll_interval=0.01)
    assert [(r['id'], r['seed'], r['recorded_seed']) for r in rows] == \
        [(entry['id'], 0, 0), (entry['id'], 1, 0)]
    # in one process the recorded seed gives the recorded numbers again, from the same backbone
    same = rows[0]
    assert same['val']['mIoU'] == pytest.approx(entry['val']['mIoU'], abs=0.011)
    assert same['val']['IoU.road'] == pytest.approx(entry['val']['IoU.road'], abs=0.011)
    assert same['backbone_sha256'] == entry['backbone_sha256']
    summary = summarise(rows)
    assert len(summary) == 1 and summary[0]['gap'] <= 0.011
    assert summary[0]['values'] == [rows[0]['val']['mIoU'], rows[1]['val']['mIoU']]
    path = write_retrain(tmp_path / 'rt.json', out, rows, summary)
    saved = json.loads(path.read_text())
    assert saved['rows'] == json.loads(json.dumps(rows)) and saved['summary'][0]['id'] == \
        entry['id']
    # a second run reuses the finished trainings (their result.json)
    again = retrain(
        bench, [entry['key']], [0], tmp_path / 'rt', data_root=str(tmp / 'wd' / 'data'))
    assert again[0]['val'] == same['val']
    with pytest.raises(NASBenchError, match='no entry with id 999 in the benchmark'):
        retrain(bench, ['999'], [0], tmp_path / 'rt2', data_root=str(tmp / 'wd' / 'data'))
    with pytest.raises(NASBenchError, match="data root '/nope' not found"):
        retrain(bench, [str(entry['id'])], [0], tmp_path / 'rt2', data_root='/nope')
    retrain_nasbench = load_script('tools/analysis_tools/retrain_nasbench.py')
    assert retrain_nasbench.main([
        str(out), '--entries', '999', '--work-dir',
        str(tmp_path / 'rt3'), '--data-root',
        str(tmp / 'wd' / 'data')
    ]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'error: no entry with id 999 in the benchmark; expected one of '
        f'{sorted(e["id"] for e in bench)[:5]} ... {max(e["id"] for e in bench)}'
    ]
    assert not (tmp_path / 'rt3').exists()


def test_fresh_work_dir_continues_from_the_file(built, tmp_path, capsys):
    """A new machine: no work dir, the committed file. The build grows the file to 5 entries
    and trains only the 2 it lacks; the first 3 are kept as they were."""
    _, cfg, out = built
    before = json.loads(Path(out).read_text())
    copy = tmp_path / 'bench.json'
    copy.write_text(Path(out).read_text())
    assert build_tool([cfg, '--work-dir',
                       str(tmp_path / 'wd2'), '--num', '5', '--out',
                       str(copy)]) == 0
    assert 'from 3 entries' in capsys.readouterr().err
    after = load_nasbench(copy)
    assert len(after) == 5
    for key, entry in before['entries'].items():
        assert after.entries[key] == entry
    recs = Ledger(tmp_path / 'wd2' / 'ledger.jsonl', readonly=True).records()
    trained = [r for r in recs if not r.get('imported')]
    assert len(trained) == 2 and all(r['status'] == 'done' for r in trained)
    assert not set(r['key'] for r in trained) & set(before['entries'])
    # the same sequence as one uninterrupted build of 5: the random search is replayed
    assert [r['round'] for r in recs] == [0, 0, 1, 1, 2]


def test_refuses_a_file_built_with_another_seed(built, tmp_path, capsys):
    tmp, _, out = built
    cfg = write_config(tmp_path / 'cfg.py', out, seed=1)
    assert build_tool([cfg, '--work-dir', str(tmp_path / 'wd')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'sampling_seed 0 (file) vs 1 (config)' in err[0]
    assert not (tmp_path / 'wd').exists()


def test_missing_export_hook_is_one_error(tmp_path, capsys):
    cfg = write_config(tmp_path / 'cfg.py', tmp_path / 'b.json')
    text = Path(cfg).read_text().replace('NASBenchExportHook', 'NoSuchHook')
    Path(cfg).write_text(text)
    assert build_tool([cfg, '--work-dir', str(tmp_path / 'wd')]) == 1
    assert 'needs one NASBenchExportHook' in capsys.readouterr().err


def test_proxy_batch_passes_over_blank_tiles(built):
    """The proxies' batch keeps only tiles with enough labelled pixels, and says so when the
    data cannot give a full batch."""
    import numpy as np

    from seg101_mm.nasbench.builder import ProxyScorer
    from seg101_mm.search.templates import load_template
    tmp, _, _ = built
    template = load_template(str(REPO / TEMPLATE))
    data = str(tmp / 'wd' / 'data')
    scorer = ProxyScorer(template, data, names=['params'], batch_size=2, min_labelled=0.5)
    batch = scorer.batch
    assert len(batch['inputs']) == 2
    for s in batch['data_samples']:
        assert float((s.gt_sem_seg.data != 255).float().mean()) >= 0.5
    strict = ProxyScorer(template, data, names=['params'], batch_size=2, min_labelled=1.01)
    with pytest.raises(
            ValueError,
            match=r'only 0 of 4 drawn training tiles have >= 101% '
            r'labelled pixels; expected 2'):
        strict.batch
    assert np.isfinite(
        scorer('ga=conv3x3,conv3x3,conv3x3,conv3x3;gb=se,se,se,se;'
               'st=conv3x3,conv3x3,conv3x3,conv3x3;h0=01+02+13/01+12;'
               'h1=02+03+23/01+02;hm=concat_head')['values']['params'])


def test_scores_of_other_proxy_settings_are_computed_again(built, tmp_path):
    """A file whose proxies were scored with other settings (e.g. another batch size) gets
    every entry scored again; no score of the old settings stays beside the new meta."""
    from seg101_mm.nasbench.builder import ProxyCache, export_nasbench
    tmp, _, out = built
    copy = tmp_path / 'bench.json'
    copy.write_text(Path(out).read_text())
    bench = load_nasbench(copy)
    records = Ledger(tmp / 'wd' / 'ledger.jsonl', readonly=True).records()
    calls = []

    def scorer(genotype):
        calls.append(genotype)
        return dict(values=dict(params=1.0, snip=float(len(calls))), reasons={}, seconds=0.5)

    meta = dict(bench.meta, proxies=dict(bench.meta['proxies'], batch_size=99))
    cache = ProxyCache(tmp_path / 'proxies.jsonl')
    new = export_nasbench(records, copy, meta, scorer, cache, progress=False)
    assert len(calls) == 3 and new.meta['proxies']['batch_size'] == 99
    assert sorted(e['proxies']['snip'] for e in new) == [1.0, 2.0, 3.0]
    assert all(e['params'] == 1.0 and 'nwot' not in e['proxies'] for e in new)
    # the same settings again: nothing is scored, the cache answers
    export_nasbench(
        records, copy, meta, scorer, ProxyCache(tmp_path / 'proxies.jsonl'), progress=False)
    assert len(calls) == 3
    # other settings and no scorer (a stopped build): the entries carry no proxies
    meta3 = dict(meta, proxies=dict(meta['proxies'], seed=5))
    bare = export_nasbench(
        records, copy, meta3, None, ProxyCache(tmp_path / 'proxies.jsonl'), progress=False)
    assert len(bare) == 3 and all('proxies' not in e and 'params' not in e for e in bare)
