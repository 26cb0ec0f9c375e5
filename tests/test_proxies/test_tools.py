"""tools/analysis_tools/zero_cost_proxies.py and proxy_correlation.py, and the statistics."""
import csv
import importlib.util
import json
import math
import random

import numpy as np
import pytest

import seg101_mm  # noqa: F401
from seg101_mm.proxies.correlation import (PAPER_TABLE2_SPEARMAN, join, precision_at_top_k,
                                           rank_correlation, read_records, spans_decades)
from seg101_mm.space import Genotype, sample


def load_tool(repo_root, name):
    path = repo_root / 'tools' / 'analysis_tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_CONFIG = """
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    backbone=dict(type='ResNetV1c', depth=18, num_stages=2, out_indices=(0, 1),
                  strides=(1, 2), dilations=(1, 1), stem_channels=8, base_channels=8,
                  norm_cfg=norm_cfg,
                  init_cfg=dict(type='Pretrained', checkpoint='/nonexistent/r18.pth')),
    decode_head=dict(type='FCNHead', in_channels=16, in_index=1, channels=8, num_convs=1,
                     num_classes=2, norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
"""


def read_csv(path):
    with open(path, newline='') as fh:
        return list(csv.DictReader(fh))


def test_config_mode_records_nan_reasons_and_resumes(tmp_path, repo_root, capsys):
    tool = load_tool(repo_root, 'zero_cost_proxies')
    cfg = tmp_path / 'tiny_fcn.py'
    cfg.write_text(TINY_CONFIG)
    out = tmp_path / 'out'
    argv = [
        '--config',
        str(cfg), '--proxies', 'snip', 'params', 'zico', '--batch-size', '1', '--img-size', '32',
        '--out-dir',
        str(out), '--device', 'cpu'
    ]
    tool.main(argv)
    rows = read_csv(out / 'proxies.csv')
    assert len(rows) == 1 and rows[0]['key'] == 'tiny_fcn'
    row = rows[0]
    # SyncBN built as BN, the Pretrained init_cfg dropped (random init, nothing loaded)
    assert float(row['snip']) > 0 and float(row['params']) > 1000
    assert math.isnan(float(row['zico'])) and row['status'] == 'partial'
    assert 'at least 2 chunks' in json.loads(row['reasons'])['zico']
    payload = json.loads((out / 'proxies.json').read_text())
    assert payload['rows'][0]['zico'] is None and payload['proxies'] == ['snip', 'params', 'zico']
    # the rerun skips what is done and leaves the file as it was
    before = (out / 'proxies.csv').read_text()
    tool.main(argv)
    assert (out / 'proxies.csv').read_text() == before
    assert '1 architecture(s) already in' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='has columns'):
        tool.main(argv[:2] + ['--proxies', 'snip', '--out-dir', str(out)])


def test_ledger_mode_dedups_by_canonical_key_and_survives_a_torn_line(tmp_path, repo_root):
    tool = load_tool(repo_root, 'zero_cost_proxies')
    g0 = sample(0)
    swapped = Genotype.parse(
        str(g0).replace(f'h0={g0.heads[0]};h1={g0.heads[1]}',
                        f'h0={g0.heads[1]};h1={g0.heads[0]}'))
    assert swapped.key == g0.key
    ledger = tmp_path / 'ledger.jsonl'
    events = [
        dict(
            event='propose',
            candidates=[
                dict(id=0, genotype=str(g0), key=g0.key, status='queued'),
                dict(id=1, genotype=str(swapped), key=swapped.key, status='queued')
            ]),
        dict(event='update', id=0, fields=dict(status='done', metrics=dict(mIoU=61.5)))
    ]
    ledger.write_text(''.join(json.dumps(e) + '\n' for e in events) + '{"event": "upd')
    out = tmp_path / 'out'
    rows = tool.main([
        '--ledger',
        str(ledger), '--proxies', 'params', '--batch-size', '1', '--img-size', '128', '--out-dir',
        str(out), '--device', 'cpu'
    ])
    assert [r['key'] for r in rows] == [g0.key]
    from seg101_mm.models import build_seg101
    want = sum(p.numel() for p in build_seg101(g0, init_weights=False).parameters())
    assert rows[0]['params'] == want and rows[0]['status'] == 'ok'


def test_sampled_genotypes_are_distinct_and_seeded(tmp_path, repo_root):
    tool = load_tool(repo_root, 'zero_cost_proxies')
    args = tool.parse_args(['--num-genotypes', '3', '--genotype-seed', '5'])
    keys = [k for k, _, _ in tool.architectures(args)]
    rng = random.Random(5)
    assert keys == [sample(rng).key for _ in range(3)] and len(set(keys)) == 3
    with pytest.raises(SystemExit):
        tool.parse_args(['--num-genotypes', '2', '--proxies', 'snipp'])


def test_correlation_tool_joins_on_canonical_keys(tmp_path, repo_root, capsys):
    tool = load_tool(repo_root, 'proxy_correlation')
    rng = random.Random(0)
    genotypes = [sample(rng) for _ in range(12)]
    miou = np.linspace(40, 70, 12)
    with open(tmp_path / 'proxies.csv', 'w', newline='') as fh:
        w = csv.DictWriter(
            fh, fieldnames=['key', 'genotype', 'snip', 'synflow', 'grasp', 'status'])
        w.writeheader()
        for i, g in enumerate(genotypes):
            w.writerow(
                dict(
                    key=g.key,
                    genotype=str(g),
                    snip=miou[i] * 2,
                    synflow=10.0**(-i),
                    grasp='nan' if i == 3 else i % 3,
                    status='ok'))
    with open(tmp_path / 'measured.csv', 'w', newline='') as fh:
        w = csv.DictWriter(fh, fieldnames=['genotype', 'mIoU'])
        w.writeheader()
        for i, g in enumerate(genotypes):  # non-canonical text: the join must use the key
            w.writerow(dict(genotype=str(g), mIoU=miou[i]))
        w.writerow(dict(genotype=str(sample(99)), mIoU=50.0))  # no proxies: left out
    out = tmp_path / 'corr'
    results = tool.main([
        str(tmp_path / 'proxies.csv'), '--miou-csv',
        str(tmp_path / 'measured.csv'), '--bootstrap', '100', '--top-k', '3', '20', '--out-dir',
        str(out)
    ])
    by = {r['proxy']: r for r in results}
    assert by['snip']['spearman'] == pytest.approx(1.0)
    assert by['snip']['kendall'] == pytest.approx(1.0)
    assert by['synflow']['spearman'] == pytest.approx(-1.0)
    assert by['snip']['precision_at_3'] == 1.0 and by['synflow']['precision_at_3'] == 0.0
    assert math.isnan(by['snip']['precision_at_20'])
    assert by['grasp']['n'] == 11  # its NaN row is left out of grasp only
    assert by['snip']['paper_spearman'] == PAPER_TABLE2_SPEARMAN['snip'] == -0.46
    text = capsys.readouterr().out
    assert '12 architectures' in text and '-0.46' in text
    for name in ('snip', 'synflow', 'grasp'):
        assert (out / f'scatter_{name}.png').stat().st_size > 1000
    saved = json.loads((out / 'correlation.json').read_text())
    assert saved['num_architectures'] == 12 and saved['paper_num_architectures'] == 498


def test_rank_statistics():
    rng = np.random.default_rng(0)
    target = rng.normal(size=60)
    score = target + rng.normal(size=60)
    st = rank_correlation(score, target, num_bootstrap=300, seed=1, top_k=(5, 100))
    from scipy.stats import spearmanr
    assert st['spearman'] == pytest.approx(spearmanr(score, target)[0])
    lo, hi = st['spearman_ci']
    assert lo < st['spearman'] < hi and hi - lo < 0.5
    assert rank_correlation(score, target, num_bootstrap=300, seed=1)['spearman_ci'] == (lo, hi)
    assert math.isnan(st['precision_at'][100])
    assert precision_at_top_k([5, 4, 3, 2, 1], [1, 2, 3, 5, 4], 2) == 0.0
    assert precision_at_top_k([5, 4, 3, 2, 1], [5, 1, 2, 4, 3], 2) == 0.5
    with pytest.raises(ValueError, match=r'k must be in \[1, 5\], got 0'):
        precision_at_top_k([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 0)
    assert spans_decades([1e-3, 1, 10]) and not spans_decades([1, 10, 100]) \
        and not spans_decades([-1, 1e6])


def test_ledger_statuses_and_metrics(tmp_path):
    g0, g1, g2 = sample(0), sample(1), sample(2)
    path = tmp_path / 'ledger.jsonl'
    path.write_text('\n'.join(
        json.dumps(e) for e in [
            dict(
                event='propose',
                candidates=[
                    dict(id=i, genotype=str(g), key=g.key, status='queued')
                    for i, g in enumerate((g0, g1, g2))
                ]),
            dict(event='update', id=0, fields=dict(status='done', metrics=dict(mIoU=70.0))),
            dict(event='update', id=1, fields=dict(status='failed', cause='diverged')),
            dict(
                event='update', id=2, fields=dict(status='done', metrics=dict(mIoU=float('nan')))),
        ]) + '\n')
    rows = read_records(path)
    keys, values, miou = join([dict(key=g.key, snip=1.0) for g in (g0, g1, g2)], rows, ['snip'])
    assert keys == [g0.key] and list(miou) == [70.0]


def test_batch_from_a_dataset_config_train_pipeline(tmp_path, repo_root):
    import torch
    from mmengine.config import Config

    from seg101_mm.datasets.synthetic import make_synthetic_dataset
    from seg101_mm.proxies import batch_from_config, compute_proxies
    root = make_synthetic_dataset(
        tmp_path / 'roads', kind='roads', num_train=4, num_val=1, num_test=1, size=64, seed=0)
    cfg = Config.fromfile(str(repo_root / 'configs' / '_base_' / 'datasets' / 'mass_roads.py'))
    cfg.train_dataloader.dataset.data_root = str(root)
    batch = batch_from_config(cfg, batch_size=2, seed=3)
    again = batch_from_config(cfg, batch_size=2, seed=3)
    assert len(batch['inputs']) == 2 and batch['inputs'][0].dtype == torch.uint8
    assert batch['inputs'][0].shape[0] == 3
    for a, b in zip(batch['inputs'], again['inputs']):  # seeded sampling and augmentation
        assert torch.equal(a, b)
    labels = torch.cat([s.gt_sem_seg.data.flatten() for s in batch['data_samples']])
    assert set(labels.unique().tolist()) <= {0, 1, 255}  # 255 only from padding
    assert (labels == 1).any()  # roads are class 1, not the ignore index
    from toy_models import tiny_encoder_decoder
    torch.manual_seed(0)
    scores = compute_proxies(tiny_encoder_decoder(), batch, ['snip', 'params'])
    assert scores['snip'] > 0


def test_correlation_tool_reports_bad_rows_and_non_numeric_cells(tmp_path, repo_root, capsys):
    tool = load_tool(repo_root, 'proxy_correlation')
    genotypes = [sample(i) for i in range(5)]
    measured = tmp_path / 'measured.csv'
    with open(measured, 'w', newline='') as fh:
        w = csv.DictWriter(fh, fieldnames=['genotype', 'mIoU'])
        w.writeheader()
        for i, g in enumerate(genotypes):
            w.writerow(dict(genotype=str(g), mIoU='n/a' if i == 4 else 40 + i))

    def run(rows):
        path = tmp_path / 'proxies.csv'
        with open(path, 'w', newline='') as fh:
            w = csv.DictWriter(fh, fieldnames=['key', 'genotype', 'snip'])
            w.writeheader()
            w.writerows(rows)
        return tool.main([
            str(path), '--miou-csv',
            str(measured), '--bootstrap', '10', '--top-k', '2', '--out-dir',
            str(tmp_path / 'out')
        ])

    good = [dict(key=g.key, genotype=str(g), snip=i) for i, g in enumerate(genotypes)]
    with pytest.raises(
            SystemExit, match=r'error: .*proxies.csv row 3 has neither a genotype '
            r'nor a key'):
        run(good[:2] + [dict(key='', genotype='', snip=1.0)] + good[2:])
    with pytest.raises(
            SystemExit, match=r"error: .*proxies.csv row 2: genotype 'ga=oops' "
            r"does not parse"):
        run(good[:1] + [dict(key='k', genotype='ga=oops', snip=1.0)] + good[1:])
    rows = [dict(r) for r in good]
    rows[1]['snip'] = 'oom'
    results = run(rows)
    err = capsys.readouterr().err
    assert "warning: 2 non-numeric cell(s) left out of the statistics: " in err
    assert "proxies.csv row 2 snip='oom'" in err and "measured.csv row 5 mIoU='n/a'" in err
    assert results[0]['n'] == 3  # 4 measured architectures, one without a snip score
    saved = json.loads((tmp_path / 'out' / 'correlation.json').read_text())
    assert len(saved['non_numeric']) == 2
