"""Helpers for the tests of the command-line tools: a tiny SEG101 config, tool runners."""
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'

#: Reads only stages S1, S2 and S3: S4 (and the backbone's last stage) get no gradient, which
#: a distributed run must tolerate.
GENOTYPE_UNUSED_S4 = ('ga=conv3x3,dil3_conv3x3,avgpool_0.25,conv3x3;'
                      'gb=se,self_attention,avgpool_0.25,dil3_conv3x3;'
                      'st=conv3x3,avgpool_0.75,dil5_conv3x3,avgpool_0.25;'
                      'h0=01+02+12/01+12;h1=01+02+12/01+02;hm=concat_head')

TINY_CONFIG = """\
_base_ = [
    '{base}/models/seg101_regnetx400mf.py', '{base}/datasets/mass_roads.py',
    '{base}/default_runtime.py', '{base}/schedules/sgd-poly_warmup1k.py'
]
genotype = {genotype!r}
data_root = {data_root!r}
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    neck=dict(genotype=genotype),
    decode_head=dict(genotype=genotype))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
max_iters = {max_iters}
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0,
                        end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
# S4 is read by no head, so its parameters get no gradient: DDP must be told.
find_unused_parameters = True
randomness = dict(seed=0)
"""


def write_tiny_config(path, data_root, genotype=GENOTYPE_UNUSED_S4, max_iters=3):
    """A SEG101 config on the base files of ``configs/_base_``: 64x64 crops, batch 2."""
    path = Path(path)
    path.write_text(
        TINY_CONFIG.format(
            base=(REPO_ROOT / 'configs' / '_base_').as_posix(),
            genotype=genotype,
            data_root=str(data_root),
            max_iters=max_iters))
    return path


def tool_env(**extra):
    """Environment for a tool subprocess: one thread per process, repo importable."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] +
                                        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.update(extra)
    return env


def run_tool(args, timeout=240, env=None, cwd=None):
    """Run a command, return the CompletedProcess; fail the test with its output if it fails."""
    proc = subprocess.run([str(a) for a in args],
                          cwd=cwd or REPO_ROOT,
                          env=env or tool_env(),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{args} exited with {proc.returncode}\n--- stdout ---\n'
                    f'{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


def load_tool(relpath):
    """Import a tool script (e.g. ``'train.py'``) as a module."""
    path = TOOLS / relpath
    name = 'seg101_tool_' + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_port():
    """A TCP port nobody listens on right now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
