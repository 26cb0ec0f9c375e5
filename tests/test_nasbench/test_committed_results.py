"""The committed CPU-protocol result files agree with themselves and with the configs they name."""
import json
import shlex
import statistics
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / 'results' / 'cpu-protocol'
STEP_FILES = sorted(RESULTS.glob('train-step_*.json'))
RUN_FILES = sorted(RESULTS.glob('seg101_*.json'))
TABLE_FILES = sorted(RESULTS.glob('table1_*.json'))
# more seeds of the same rows, for the seed noise: seed<N>/table1_<dataset>.json
SEED_TABLE_FILES = sorted(RESULTS.glob('seed*/table1_*.json'))
GENOTYPE_FILES = sorted(RESULTS.glob('genotypes_*.json'))


def test_the_result_folder_holds_every_kind():
    assert STEP_FILES and RUN_FILES and TABLE_FILES


@pytest.mark.parametrize('path', STEP_FILES, ids=[p.name for p in STEP_FILES])
def test_train_step_file(path):
    record = json.loads(path.read_text())
    rows, args = record['rows'], record['args']
    precisions = args.get('precisions', ['fp32'])
    assert [r['config'] for r in rows] == [c for c in args['configs'] for _ in precisions]
    assert [r.get('precision', 'fp32') for r in rows] == precisions * len(args['configs'])
    ref = rows[0]['s_per_iter']
    for row in rows:
        assert (REPO / row['config']).is_file(), row['config']
        assert args['dataset'] in row['config']
        assert len(row['step_runs']) == len(row['cpu_runs']) == args['rounds']
        assert row['s_per_iter'] == statistics.median(row['step_runs'])
        assert row['cpu_s_per_iter'] == statistics.median(row['cpu_runs'])
        assert row['ratio'] == pytest.approx(row['s_per_iter'] / ref)
        # the printed table is the one of these rows
        precision = f' {row["precision"]} |' if 'precision' in row else ''
        assert (f'| {Path(row["config"]).name} |{precision} {row["params"] / 1e6:.2f} |'
                in record['table'])
        assert f'| {row["s_per_iter"]:.2f} | {row["cpu_s_per_iter"]:.2f} |' in record['table']
        # the configs time what they train: batch and crop of the config
        cfg = Config.fromfile(REPO / row['config'])
        assert row['batch_size'] == cfg.train_dataloader.batch_size
        assert (row['crop'], row['crop']) == tuple(cfg.model.data_preprocessor.size)


@pytest.mark.parametrize('path', RUN_FILES, ids=[p.name for p in RUN_FILES])
def test_protocol_run_file(path):
    record = json.loads(path.read_text())
    assert record['runs']
    for run in record['runs']:
        words = shlex.split(run['command'])
        config = next(w for w in words if w.endswith('.py') and w.startswith('configs/'))
        cfg = Config.fromfile(REPO / config)
        target = cfg.test_evaluator.target_class
        interval, max_iters = cfg.train_cfg.val_interval, cfg.train_cfg.max_iters
        assert run['iterations'] == max_iters
        assert f'randomness.seed={run["seed"]}' in words
        weight = ','.join(str(w) for w in run['class_weight'])
        assert f'model.decode_head.loss_decode.class_weight=[{weight}]' in words
        steps = [str(i) for i in range(interval, max_iters + 1, interval)]
        assert list(run['val']) == steps
        assert sorted(run['test'], key=int) == steps
        for metrics in list(run['val'].values()) + list(run['test'].values()):
            iou = (metrics['IoU.background'], metrics[f'IoU.{target}'])
            assert metrics['mIoU'] == pytest.approx(sum(iou) / 2, abs=0.01)
            p, r = metrics[f'Precision.{target}'], metrics[f'Recall.{target}']
            assert metrics[f'F1.{target}'] == pytest.approx(2 * p * r / (p + r), abs=0.02)
            assert 0 <= metrics['mIoU'] <= 100 and metrics['PA'] >= metrics['FWIoU']


def _genotype_row_config(model, row, dataset):
    """The protocol config a genotype row's written config came from, after checking that the
    row's key, genotype, label and written config name agree (and match SEG101-Bench's
    entry)."""
    import hashlib

    from seg101_mm.space import Genotype
    from seg101_mm.tools.protocol import GENOTYPE_LABEL, PROTOCOL_CONFIGS
    genotype = Genotype.parse(row['genotype'])
    assert str(genotype.canonical()) == row['genotype']
    assert model.startswith('seg101_')
    label = model[len('seg101_'):]
    assert GENOTYPE_LABEL.fullmatch(label)
    if row['bench_id'] is not None:
        assert label == f'bench{row["bench_id"]}'
        entries = json.loads((REPO / row['bench']).read_text())['entries'].values()
        recorded = next(e['genotype'] for e in entries if e['id'] == row['bench_id'])
        assert str(Genotype.parse(recorded).canonical()) == row['genotype']
        assert row['model'] == f'SEG101, SEG101-Bench entry {row["bench_id"]}'
    else:
        assert label == 'g' + hashlib.sha256(genotype.key.encode()).hexdigest()[:8]
        assert row['model'] == f'SEG101, genotype {label}'
    base = PROTOCOL_CONFIGS['seg101'].format(dataset)
    assert Path(row['config']).name == f'{Path(base).stem}_{label}.py'
    return base


PROTOCOL_FILES = TABLE_FILES + SEED_TABLE_FILES + GENOTYPE_FILES


@pytest.mark.parametrize(
    'path', PROTOCOL_FILES, ids=[str(p.relative_to(RESULTS)) for p in PROTOCOL_FILES])
def test_protocol_table_file(path):
    """Rows of tools/analysis_tools/protocol_table.py: their configs, curves and metrics agree."""
    from seg101_mm.tools.protocol import PROTOCOL_CONFIGS
    record = json.loads(path.read_text())
    kind = path.name.split('_', 1)[0]
    assert path.name == f'{kind}_{record["dataset"]}.json'
    assert record['rows']
    if kind == 'table1':
        assert set(record['rows']) <= set(PROTOCOL_CONFIGS)
    for model, row in record['rows'].items():
        if 'genotype' not in row:  # a baseline or the reference SEG101 row
            config = row['config']
            assert config == PROTOCOL_CONFIGS[model].format(record['dataset'])
        else:  # a genotype row trains a written copy of the SEG101 protocol config
            config = _genotype_row_config(model, row, record['dataset'])
        assert row['dataset'] == record['dataset']
        cfg = Config.fromfile(REPO / config)
        target = cfg.test_evaluator.target_class
        interval, max_iters = cfg.train_cfg.val_interval, cfg.train_cfg.max_iters
        assert row['iterations'] == max_iters
        assert 0 <= row['trained_iterations'] <= max_iters
        words = shlex.split(row['command'])
        assert words[:3] == ['python', 'tools/train.py', row['config']]
        assert f'randomness.seed={row["seed"]}' in words
        assert ('--amp' in words) == row['environment']['precision'].startswith('bfloat16')
        steps = [str(i) for i in range(interval, row['trained_iterations'] + 1, interval)]
        assert list(row['val']) == steps
        complete = row['trained_iterations'] == max_iters
        assert bool(row['test']) == complete  # tested exactly when trained to the end
        if row['s_per_iter'] is None:  # started, no training iteration logged yet
            assert row['trained_iterations'] == 0 and row['train_hours'] is None
        else:
            assert row['s_per_iter'] > 0
            assert row['train_hours'] == pytest.approx(row['s_per_iter'] * max_iters / 3600,
                                                       abs=0.01)
        for metrics in list(row['val'].values()) + ([row['test']] if complete else []):
            iou = (metrics['IoU.background'], metrics[f'IoU.{target}'])
            assert metrics['mIoU'] == pytest.approx(sum(iou) / 2, abs=0.01)
            p, r = metrics[f'Precision.{target}'], metrics[f'Recall.{target}']
            assert metrics[f'F1.{target}'] == pytest.approx(2 * p * r / (p + r), abs=0.02)
            assert 0 <= metrics['mIoU'] <= 100 and metrics['PA'] >= metrics['FWIoU']


def _without_seed(command, seed):
    """A protocol command's words less its seed and its work dir (which names the seed)."""
    words = shlex.split(command)
    work_dir = words.index('--work-dir') + 1
    assert words[work_dir].endswith(f'_seed{seed}')
    assert f'randomness.seed={seed}' in words
    return [w for i, w in enumerate(words)
            if i != work_dir and w != f'randomness.seed={seed}']


@pytest.mark.parametrize(
    'path', SEED_TABLE_FILES, ids=[str(p.relative_to(RESULTS)) for p in SEED_TABLE_FILES])
def test_protocol_seed_file(path):
    """A seed's rows rerun the main table's rows of the same model: same config, precision
    (``--amp``, tied to the recorded precision by test_protocol_table_file), data and overrides;
    only the seed (and so the work dir) differs."""
    seed = int(path.parent.name[len('seed'):])
    assert path.parent.name == f'seed{seed}' and seed != 0
    main = json.loads((RESULTS / path.name).read_text())['rows']
    for model, row in json.loads(path.read_text())['rows'].items():
        ref = main[model]
        assert row['seed'] == seed != ref['seed']
        assert _without_seed(row['command'], seed) == _without_seed(ref['command'], ref['seed'])


SEARCH_BOARDS = sorted((REPO / 'results' / 'search').glob('*/leaderboard.csv'))


@pytest.mark.parametrize('path', SEARCH_BOARDS, ids=[p.parent.name for p in SEARCH_BOARDS])
def test_search_leaderboard_file(path):
    """A committed search's leaderboard: ranked by its score, one row per architecture, and its
    best.json names the first row."""
    import csv

    from seg101_mm.search.reports import columns
    from seg101_mm.space import Genotype
    with open(path, newline='') as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    score = header[4]
    assert tuple(header) == columns(score)
    done = [r for r in rows if r['status'] == 'done']
    assert rows[:len(done)] == done and [int(r['rank']) for r in done] == list(
        range(1, len(done) + 1))
    scores = [float(r[score]) for r in done]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)
    keys = [r['key'] for r in rows]
    assert len(set(keys)) == len(keys)
    assert all(Genotype.parse(k).key == k for k in keys)
    assert sorted(int(r['id']) for r in rows) == list(range(len(rows)))
    best = json.loads((path.parent / 'best.json').read_text())
    assert best['key'] == done[0]['key'] and best['id'] == int(done[0]['id'])
    assert best.get('score', best.get('mIoU')) == pytest.approx(scores[0])
    assert best['metrics'][best.get('score_metric', 'mIoU')] == pytest.approx(scores[0])


SEED_FILES = sorted((REPO / 'results' / 'search').glob('*/seed_noise.json'))


@pytest.mark.parametrize('path', SEED_FILES, ids=[p.parent.name for p in SEED_FILES])
def test_search_seed_noise_file(path):
    """Seed 0 reproduces the search's own result, and the spreads are those of the seeds."""
    import csv
    record = json.loads(path.read_text())
    with open(path.parent / 'leaderboard.csv', newline='') as fh:
        board = {r['id']: r for r in csv.DictReader(fh)}
    assert record['candidates']
    for cid, cand in record['candidates'].items():
        assert cand['seeds']['0'] == cand['recorded']
        assert float(board[cid]['mIoU']) == cand['recorded']['mIoU']
        for key, spread in cand['spread'].items():
            values = [cand['seeds'][s][key] for s in sorted(cand['seeds'])]
            assert len(values) >= 3
            assert spread['mean'] == pytest.approx(statistics.mean(values), abs=0.006)
            assert spread['std'] == pytest.approx(statistics.stdev(values), abs=0.006)
