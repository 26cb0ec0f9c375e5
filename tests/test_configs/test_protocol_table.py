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
