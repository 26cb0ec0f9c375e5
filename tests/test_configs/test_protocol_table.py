"""tools/analysis_tools/protocol_table.py: train, test and tabulate protocol configs, resumably.

The runs are the protocol's real configs shrunk for a CPU test (2 iterations, 64x64 crops, a
tiny dataset the test writes), driven through the tool's command line and its child processes.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_every_config_trains import _write_tiny_dataset

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'protocol_table.py'
SHRINK = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.logger.interval=1',
    'model.data_preprocessor.size=(64,64)', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
    'train_dataloader.dataset.pipeline.2.scales=[(64,64),(96,96)]',
    'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
    'val_dataloader.dataset.pipeline.1.scale=(64,64)',
    'test_dataloader.dataset.pipeline.1.scale=(64,64)'
]


def _run(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=600)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return _write_tiny_dataset(tmp_path_factory.mktemp('protocol_tiles'))


def _headers(log: Path):
    return [line for line in log.read_text().splitlines() if line.startswith('# ')]


def test_a_row_is_trained_tested_written_and_resumed(tiny, tmp_path):
    out = tmp_path / 'table.json'
    common = ('mass-roads', '--data-root', tiny, '--models', 'seg101', '--work-root',
              tmp_path / 'runs', '--out', out, '--checkpoint-interval', '1', '--threads', '1',
              '--amp', '--cfg-options', *SHRINK, 'default_hooks.checkpoint.max_keep_ckpts=2')
    res = _run(*common)
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads(out.read_text())
    row = record['rows']['seg101']
    assert record['dataset'] == 'mass-roads'
    assert row['config'] == 'configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py'
    assert row['iterations'] == row['trained_iterations'] == 2
    assert list(row['val']) == ['2'] and 0 <= row['val']['2']['mIoU'] <= 100
    test = row['test']
    assert set(test) >= {'mIoU', 'IoU.road', 'FWIoU', 'PA', 'MPA'}
    assert test['mIoU'] == pytest.approx((test['IoU.background'] + test['IoU.road']) / 2, abs=0.01)
    assert row['s_per_iter'] > 0 and row['environment']['threads'] == 1
    assert row['environment']['precision'].startswith('bfloat16')
    assert row['command'].startswith('python tools/train.py configs/seg101/')
    assert '--amp' in row['command'] and 'randomness.seed=0' in row['command']
    # the printed table is the row's
    assert f'| {test["mIoU"]:.2f} | {test["IoU.road"]:.2f} |' in res.stdout
    assert '| SEG101, reference genotype | 2 / 2 |' in res.stdout

    work = tmp_path / 'runs' / 'seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256_seed0'
    train_log = work / 'train.out'
    assert len(_headers(train_log)) == 1 and len(_headers(work / 'test.out')) == 1
    # a rerun of a finished row trains and tests nothing
    res = _run(*common)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(_headers(train_log)) == 1 and len(_headers(work / 'test.out')) == 1
    assert json.loads(out.read_text())['rows']['seg101']['test'] == test
    # a stopped training (the last checkpoint lost) resumes from the one before, then retests
    (work / 'iter_2.pth').unlink()
    (work / 'last_checkpoint').write_text(str(work / 'iter_1.pth'))
    res = _run(*common)
    assert res.returncode == 0, res.stderr[-3000:]
    headers = _headers(train_log)
    assert len(headers) == 2 and '--resume' in headers[1] and '--resume' not in headers[0]
    assert 'resumed epoch: 0, iter: 1' in train_log.read_text()
    assert len(_headers(work / 'test.out')) == 2
    assert (work / 'iter_2.pth').is_file()
    # stopped during the final validation (checkpoint saved, val never logged): the rerun
    # resumes the final checkpoint, which validates it and trains nothing; the checkpoint is
    # unchanged, so its test stands
    for scalars in work.glob('*/vis_data/scalars.json'):
        lines = scalars.read_text().splitlines(keepends=True)
        scalars.write_text(''.join(line for line in lines if '"mIoU"' not in line))
    res = _run(*common)
    assert res.returncode == 0, res.stderr[-3000:]
    headers = _headers(train_log)
    assert len(headers) == 3 and '--resume' in headers[2]
    assert 'Validating the resumed checkpoint of iteration 2' in train_log.read_text()
    assert len(_headers(work / 'test.out')) == 2
    row = json.loads(out.read_text())['rows']['seg101']
    assert list(row['val']) == ['2'] and row['trained_iterations'] == 2
    # the same work dir with other settings (float32 instead of --amp) is refused, not mixed
    res = _run(*[a for a in common if a != '--amp'])
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(f'protocol_table.py: error: {work} '
                                                          'holds a run with other settings')


def test_a_work_dir_in_use_by_another_command_is_refused(tiny, tmp_path):
    import fcntl
    work = tmp_path / 'runs' / 'seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256_seed0'
    work.mkdir(parents=True)
    with open(work / 'protocol.lock', 'w') as held:
        held.write('4242')
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        res = _run('mass-roads', '--data-root', tiny, '--models', 'seg101', '--work-root',
                   tmp_path / 'runs', '--out', tmp_path / 'table.json')
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f'protocol_table.py: error: {work} is in use by another protocol_table.py (pid 4242); '
        'wait for it or stop it first'
    ]
    assert sorted(p.name for p in work.iterdir()) == ['protocol.lock']


def test_a_training_that_leaves_no_final_checkpoint_fails_once(tiny, tmp_path):
    out = tmp_path / 'table.json'
    res = _run('mass-roads', '--data-root', tiny, '--models', 'seg101', '--work-root',
               tmp_path / 'runs', '--out', out, '--checkpoint-interval', '5', '--threads', '1',
               '--cfg-options', *SHRINK, 'default_hooks.checkpoint.save_last=False')
    assert res.returncode == 1
    assert res.stderr.count('training exited without iter_2.pth') == 2  # progress + error
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('protocol_table.py: error: failed: seg101 (training: training '
                           'exited without iter_2.pth')
    assert last.endswith('fix the cause and rerun the same command to continue')
    work = tmp_path / 'runs' / 'seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256_seed0'
    assert len(_headers(work / 'train.out')) == 1  # trained once, not again and again
    # a row written while it trained (at a progress line) holds no test and no checkpoint
    if out.exists():
        row = json.loads(out.read_text())['rows']['seg101']
        assert row['test'] == {} and row['trained_iterations'] == 0


def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path):
    out = tmp_path / 'table.json'
    res = _run('mass-roads', '--data-root', tmp_path / 'no_such_dir', '--out', out,
               '--work-root', tmp_path / 'runs')
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"protocol_table.py: error: data root '{tmp_path / 'no_such_dir'}' is not a directory "
        '(expected the output folder of tools/dataset_converters, with img_dir/ and ann_dir/)'
    ]
    assert not out.exists() and not (tmp_path / 'runs').exists()
    res = _run('mass-roads', '--jobs', '0', '--out', out)
    assert res.returncode == 1 and res.stderr.strip() == (
        'protocol_table.py: error: --jobs must be >= 1, got 0')
    # an out file of another dataset is kept, not overwritten
    out.write_text(json.dumps(dict(dataset='whu-building', rows={})))
    (tmp_path / 'img_dir').mkdir()
    (tmp_path / 'ann_dir').mkdir()
    res = _run('mass-roads', '--data-root', tmp_path, '--out', out)
    assert res.returncode == 1
    assert "holds the table of dataset 'whu-building', not 'mass-roads'" in res.stderr
    assert json.loads(out.read_text()) == dict(dataset='whu-building', rows={})


def test_a_checkpoint_counts_in_a_row_once_its_validation_is_logged(tmp_path):
    from seg101_mm.engine import validation_schedule
    from seg101_mm.tools.protocol import _Job, row_record
    work = tmp_path / 'run'
    (work / '20260101_000000' / 'vis_data').mkdir(parents=True)
    scalars = work / '20260101_000000' / 'vis_data' / 'scalars.json'
    lines = [dict(iter=i, loss=0.5, time=0.8) for i in range(50, 1001, 50)]
    lines.insert(10, dict(mIoU=50.0, step=500))
    scalars.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    job = _Job('seg101', REPO / 'configs' / 'seg101' / 'x.py', work, [], [], True, 2000,
               validation_schedule(2000, 500), REPO)
    (work / 'iter_750.pth').write_bytes(b'')
    row = row_record(job, 'mass-roads', 0, {})
    assert row['trained_iterations'] == 750 and list(row['val']) == ['500']
    # iteration 1000 saved, its validation not yet logged: the row stays at the last logged one
    (work / 'iter_750.pth').unlink()
    (work / 'iter_1000.pth').write_bytes(b'')
    row = row_record(job, 'mass-roads', 0, {})
    assert row['trained_iterations'] == 500 and list(row['val']) == ['500']
    with open(scalars, 'a') as f:
        f.write(json.dumps(dict(mIoU=55.0, step=1000)) + '\n')
    row = row_record(job, 'mass-roads', 0, {})
    assert row['trained_iterations'] == 1000 and list(row['val']) == ['500', '1000']
    assert '--resume' in job.next_command()
    assert job.stage == 'training (resumed from iter_1000.pth)'
    # a config without validation counts every checkpoint
    job.validation = None
    (work / 'iter_1000.pth').unlink()
    (work / 'iter_1500.pth').write_bytes(b'')
    assert row_record(job, 'mass-roads', 0, {})['trained_iterations'] == 1500


def test_the_table_keeps_val_curves_in_iteration_order(tmp_path):
    from seg101_mm.tools.protocol import save_row
    path = tmp_path / 'table1_mass-roads.json'
    curve = {str(i): dict(mIoU=float(i) / 100) for i in (1000, 1500, 2000, 500)}  # a sorted file
    path.write_text(json.dumps(dict(dataset='mass-roads', rows=dict(pspnet=dict(val=curve)))))
    save_row(path, 'mass-roads', 'seg101', dict(val={'500': dict(mIoU=1.0)}))
    record = json.loads(path.read_text())
    assert list(record['rows']) == ['pspnet', 'seg101']
    assert list(record['rows']['pspnet']['val']) == ['500', '1000', '1500', '2000']
    assert record['rows']['pspnet']['val']['1500'] == dict(mIoU=15.0)
    text = path.read_text()
    assert text.index('"500"') < text.index('"1000"')


BENCH = REPO / 'nasbench' / 'seg101-bench_mass-roads-cpu.json'


def _bench_genotype(entry_id):
    entries = json.loads(BENCH.read_text())['entries'].values()
    return next(e['genotype'] for e in entries if e['id'] == entry_id)


def test_a_genotype_row_trains_its_own_written_config(tiny, tmp_path):
    import ast

    from mmengine.config import Config

    from seg101_mm.space import Genotype

    # run from outside the checkout, with a relative work root and the default --out
    common = ('mass-roads', '--data-root', tiny, '--genotypes', '4', '--work-root', 'runs',
              '--threads', '1', '--cfg-options', *SHRINK)
    res = _run(*common, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / 'runs' / 'genotypes_mass-roads.json'
    record = json.loads(out.read_text())
    assert list(record['rows']) == ['seg101_bench4']  # no baselines without --models
    row = record['rows']['seg101_bench4']
    expected = str(Genotype.parse(_bench_genotype(4)).canonical())
    assert row['genotype'] == expected and row['bench_id'] == 4
    assert row['bench'] == 'nasbench/seg101-bench_mass-roads-cpu.json'
    assert row['model'] == 'SEG101, SEG101-Bench entry 4'
    config = tmp_path / 'runs' / 'configs' / (
        'seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256_bench4.py')
    assert row['config'] == str(config)
    assert row['command'].startswith(f'python tools/train.py {config} ')
    assert row['trained_iterations'] == 2 and 'IoU.road' in row['test']
    # the written config is literals only and trains the genotype in neck and head
    tree = ast.parse(config.read_text())
    assert all(isinstance(stmt, ast.Assign) for stmt in tree.body)
    cfg = Config.fromfile(config)
    assert cfg.model.neck.genotype == cfg.model.decode_head.genotype == expected
    reference = Config.fromfile(
        REPO / 'configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py')
    assert cfg.model.decode_head.loss_decode == reference.model.decode_head.loss_decode
    assert cfg.train_cfg == reference.train_cfg and cfg.optim_wrapper == reference.optim_wrapper
    work = tmp_path / 'runs' / 'seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256_bench4_seed0'
    assert (work / 'iter_2.pth').is_file() and (work / 'test_metrics.json').is_file()
    assert '| SEG101, SEG101-Bench entry 4 | 2 / 2 |' in res.stdout
    # a rerun trains nothing and leaves the written config as it was
    written = config.read_text()
    res = _run(*common, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(_headers(work / 'train.out')) == 1 and config.read_text() == written
    # another architecture under the same label (entry 4 of another benchmark file) is refused
    # before its config is rewritten: the finished row is not relabelled
    other = _bench_genotype(7)
    fake = tmp_path / 'other_bench.json'
    fake.write_text(
        json.dumps(
            dict(format='seg101-bench', version=1, meta={}, failed={},
                 entries={Genotype.parse(other).key: dict(id=4, genotype=other, val={})})))
    res = _run(*common[:5], '--bench', fake, *common[5:], cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        f'protocol_table.py: error: {work} holds a run with other settings '
        f'({work / "protocol_settings.json"}); pass another --work-root, or the options of that '
        'run')
    assert config.read_text() == written
    assert json.loads(out.read_text())['rows']['seg101_bench4']['genotype'] == expected


def test_genotypes_are_resolved_from_ids_or_texts_with_one_error_line(tmp_path):
    import hashlib

    from seg101_mm.space import Genotype
    from seg101_mm.tools.common import ToolError
    from seg101_mm.tools.protocol import resolve_genotypes
    text = _bench_genotype(7)
    key = Genotype.parse(text).canonical().key
    found = resolve_genotypes(['2', text], str(BENCH))
    assert [g['label'] for g in found] == [
        'bench2', 'g' + hashlib.sha256(key.encode()).hexdigest()[:8]]
    assert found[1]['bench_id'] is None
    assert found[0]['genotype'] == str(Genotype.parse(_bench_genotype(2)).canonical())
    with pytest.raises(ToolError, match=r"^genotype '7' is the same architecture as 'ga="):
        resolve_genotypes([text, '7'], str(BENCH))
    with pytest.raises(ToolError, match=r"^genotype '100': no entry with that id in .*; "
                       r'expected one of 0-99$'):
        resolve_genotypes(['100'], str(BENCH))
    with pytest.raises(ToolError, match=r"^genotype 'ga=conv9x9' is not a SEG101 genotype"):
        resolve_genotypes(['ga=conv9x9'], str(BENCH))
    with pytest.raises(ToolError, match=r"^benchmark file '.*missing.json' does not exist$"):
        resolve_genotypes(['3'], str(tmp_path / 'missing.json'))
    with pytest.raises(ToolError, match=r"^benchmark file '.*' cannot be read \(Is a directory\)"):
        resolve_genotypes(['3'], str(tmp_path))
    with pytest.raises(ToolError, match=r"^genotype '²' is not a SEG101 genotype"):
        resolve_genotypes(['²'], str(BENCH))  # a digit to str.isdigit, not an entry id
    # a bad genotype stops the command before anything is written
    res = _run('mass-roads', '--genotypes', '2', 'ga=conv9x9', '--work-root', tmp_path / 'runs',
               '--out', tmp_path / 'out.json')
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 'out.json').exists()
