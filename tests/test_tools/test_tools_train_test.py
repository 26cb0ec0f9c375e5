"""The config route end to end: tools/train.py -> checkpoint -> tools/test.py, and torchrun.

A SEG101 config inheriting ``configs/_base_`` trains 3 iterations on 64x64 procedural road
scenes on the CPU; tools/test.py then loads the saved mmengine checkpoint (which needs the
trusted local loader on torch >= 2.6) and evaluates it; tools/dist_train.sh runs the same
config in 2 CPU processes (gloo).
"""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from tool_helpers import (GENOTYPE_UNUSED_S4, REPO_ROOT, free_port, run_tool, tool_env,
                          write_tiny_config)

MAX_ITERS = 3
PAPER_METRICS = ('mIoU', 'IoU.background', 'IoU.road', 'FWIoU', 'PA', 'MPA', 'Precision.road',
                 'Recall.road', 'F1.road')


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_dataset):
    """Train once for the module; return (config path, work dir, completed process)."""
    root = tmp_path_factory.mktemp('train')
    config = write_tiny_config(root / 'seg101_tiny.py', tiny_dataset, max_iters=MAX_ITERS)
    work_dir = root / 'work_dir'
    proc = run_tool(['python', 'tools/train.py', config, '--work-dir', work_dir])
    return config, work_dir, proc


def test_train_saves_a_checkpoint_of_the_seg101_model(trained):
    config, work_dir, _ = trained
    ckpt_path = work_dir / f'iter_{MAX_ITERS}.pth'
    assert ckpt_path.is_file(), sorted(p.name for p in work_dir.iterdir())
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith(ckpt_path.name)
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == MAX_ITERS
    state = ckpt['state_dict']
    # the genotype's modules are in the checkpoint: 4 enhancement stages, 2 fusion trees
    assert {k.split('.')[2] for k in state if k.startswith('neck.stages.')} == {'0', '1', '2', '3'}
    assert any(k.startswith('decode_head.trees.1.l3.') for k in state)
    assert state['decode_head.conv_seg.weight'].shape[0] == 2
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_train_logs_a_finite_loss_every_iteration(trained):
    _, work_dir, _ = trained
    scalars = list(work_dir.glob('*/vis_data/scalars.json'))
    assert len(scalars) == 1, scalars
    records = [json.loads(line) for line in scalars[0].read_text().splitlines()]
    losses = {r['step']: r['loss'] for r in records if 'loss' in r}
    assert sorted(losses) == list(range(1, MAX_ITERS + 1))
    assert all(math.isfinite(v) and v > 0 for v in losses.values()), losses
    # the end-of-training validation ran with the paper's metrics
    val = [r for r in records if 'mIoU' in r]
    assert len(val) == 1 and 0.0 <= val[0]['mIoU'] <= 100.0


def test_test_tool_loads_the_checkpoint_and_evaluates(trained, tiny_dataset, tmp_path):
    config, work_dir, _ = trained
    metrics_file = tmp_path / 'metrics.json'
    pred_dir = tmp_path / 'preds'
    proc = run_tool([
        'python', 'tools/test.py', config, work_dir / f'iter_{MAX_ITERS}.pth', '--work-dir',
        tmp_path / 'test_work_dir', '--metrics-out', metrics_file, '--out', pred_dir
    ])
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
    metrics = json.loads(metrics_file.read_text())
    missing = [k for k in PAPER_METRICS if k not in metrics]
    assert not missing, f'metrics {sorted(metrics)} lack {missing}'
    for name in PAPER_METRICS:
        value = metrics[name]
        assert isinstance(value, float) and math.isfinite(value), (name, value)
        assert 0.0 <= value <= 100.0, (name, value)
    # one 0/1 prediction mask per test image, at the image's size
    test_images = sorted(p.stem for p in (tiny_dataset / 'img_dir' / 'test').glob('*.png'))
    preds = sorted(pred_dir.glob('*.png'))
    assert [p.stem for p in preds] == test_images
    for p in preds:
        mask = np.asarray(Image.open(p))
        assert mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 1}


def test_dist_train_runs_two_cpu_processes_and_saves_a_checkpoint(tiny_dataset, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('checks the CPU (gloo) path; this machine has CUDA')
    config = write_tiny_config(
        tmp_path / 'seg101_tiny_dist.py', tiny_dataset, genotype=GENOTYPE_UNUSED_S4, max_iters=2)
    work_dir = tmp_path / 'work_dir'
    proc = run_tool(
        ['bash', REPO_ROOT / 'tools' / 'dist_train.sh', config, 2, '--work-dir', work_dir],
        env=tool_env(PORT=str(free_port())))
    out = proc.stdout + proc.stderr
    # (only rank 0 logs at INFO level)
    assert 'distributed run on CPU with the gloo backend (rank 0 of 2)' in out
    ckpt = torch.load(work_dir / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 2
    # DDP wraps the model, but the checkpoint holds the plain model's keys
    assert 'decode_head.conv_seg.weight' in ckpt['state_dict']
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
