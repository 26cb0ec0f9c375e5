"""The launcher scripts build the right torchrun / srun command and pass extra args through.

A fake interpreter (``PYTHON=...``) and a fake ``srun`` on ``PATH`` record their argv, one
argument per line, so that arguments with spaces are checked exactly.
"""
import os
import stat
import subprocess

import pytest
from tool_helpers import REPO_ROOT, TOOLS

RECORDER = """#!/usr/bin/env bash
for a in "$@"; do printf '%s\\n' "$a"; done > "{out}"
"""


def _recorder(path, out):
    path.write_text(RECORDER.format(out=out))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _run(script, args, env_extra, tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('NNODES', 'NODE_RANK', 'PORT', 'MASTER_ADDR', 'GPUS', 'GPUS_PER_NODE',
                     'CPUS_PER_TASK', 'SRUN_ARGS')
    }
    env.update(env_extra)
    return subprocess.run(
        ['bash', str(TOOLS / script)] + args,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30)


@pytest.mark.parametrize('script,positional,entry', [
    ('dist_train.sh', ['my cfg.py', '2'], ['my cfg.py']),
    ('dist_test.sh', ['my cfg.py', 'ckpt.pth', '2'], ['my cfg.py', 'ckpt.pth']),
])
def test_dist_scripts_call_torchrun_and_pass_extra_args(tmp_path, script, positional, entry):
    out = tmp_path / 'argv.txt'
    fake_python = _recorder(tmp_path / 'fake_python', out)
    extra = ['--work-dir', 'w d', '--cfg-options', 'train_cfg.max_iters=5', 'a.b=[1,2]']
    proc = _run(
        script, positional + extra,
        dict(
            PYTHON=str(fake_python),
            NNODES='2',
            NODE_RANK='1',
            PORT='29777',
            MASTER_ADDR='10.0.0.5'), tmp_path)
    assert proc.returncode == 0, proc.stderr
    argv = out.read_text().splitlines()
    module = 'seg101_mm.tools.' + script.replace('dist_', '').replace('.sh', '')
    assert argv == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.5',
        '--nproc_per_node=2', '--master_port=29777', '-m', module
    ] + entry + extra + ['--launcher', 'pytorch']


def test_dist_train_defaults_to_one_local_node(tmp_path):
    out = tmp_path / 'argv.txt'
    fake_python = _recorder(tmp_path / 'fake_python', out)
    proc = _run('dist_train.sh', ['cfg.py', '4'], dict(PYTHON=str(fake_python)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    argv = out.read_text().splitlines()
    assert argv[2:7] == [
        '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1', '--nproc_per_node=4',
        '--master_port=29500'
    ]
    assert argv[-5:] == ['-m', 'seg101_mm.tools.train', 'cfg.py', '--launcher', 'pytorch']


@pytest.mark.parametrize('script,positional,entry', [
    ('slurm_train.sh', ['gpu_part', 'seg101', 'cfg.py', 'work dir'
                        ], ['seg101_mm.tools.train', 'cfg.py', '--work-dir=work dir']),
    ('slurm_test.sh', ['gpu_part', 'seg101', 'cfg.py', 'ckpt.pth'
                       ], ['seg101_mm.tools.test', 'cfg.py', 'ckpt.pth']),
])
def test_slurm_scripts_call_srun_and_pass_extra_args(tmp_path, script, positional, entry):
    out = tmp_path / 'argv.txt'
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    _recorder(bin_dir / 'srun', out)
    extra = ['--cfg-options', 'x=1 2', '--resume']
    proc = _run(
        script, positional + extra,
        dict(
            PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
            GPUS='8',
            GPUS_PER_NODE='4',
            CPUS_PER_TASK='6',
            SRUN_ARGS='--mem=0 --time=10',
            PYTHON='python3'), tmp_path)
    assert proc.returncode == 0, proc.stderr
    argv = out.read_text().splitlines()
    tool, rest = entry[0], entry[1:]
    assert argv == [
        '-p', 'gpu_part', '--job-name=seg101', '--gres=gpu:4', '--ntasks=8', '--ntasks-per-node=4',
        '--cpus-per-task=6', '--kill-on-bad-exit=1', '--mem=0', '--time=10', 'python3', '-u',
        '-m', tool
    ] + rest + extra + ['--launcher=slurm']


@pytest.mark.parametrize('script,usage', [
    ('dist_train.sh', 'CONFIG GPUS'),
    ('dist_test.sh', 'CONFIG CHECKPOINT GPUS'),
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT'),
])
def test_scripts_print_usage_when_arguments_are_missing(tmp_path, script, usage):
    proc = _run(script, ['only_one'], {}, tmp_path)
    assert proc.returncode == 2
    assert usage in proc.stderr


def test_scripts_are_executable():
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh'):
        assert os.access(REPO_ROOT / 'tools' / script, os.X_OK), script
    for script in ('dist_run.sh', 'slurm_run.sh'):
        assert os.access(REPO_ROOT / 'seg101_mm' / 'tools' / script, os.X_OK), script


def test_package_scripts_put_the_module_and_launcher_around_the_arguments(tmp_path):
    # what the search's launchers run when no script is configured: no checkout involved
    out = tmp_path / 'argv.txt'
    fake_python = _recorder(tmp_path / 'fake_python', out)
    proc = subprocess.run(
        ['bash', str(REPO_ROOT / 'seg101_mm' / 'tools' / 'dist_run.sh'), 'seg101_mm.tools.train',
         '3', 'c.py', '--work-dir', 'w'],
        env=dict(os.environ, PYTHON=str(fake_python), PORT='29611'),
        cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    argv = out.read_text().splitlines()
    assert argv[5:] == ['--nproc_per_node=3', '--master_port=29611', '-m',
                        'seg101_mm.tools.train', 'c.py', '--work-dir', 'w', '--launcher',
                        'pytorch']
    proc = subprocess.run(['bash', str(REPO_ROOT / 'seg101_mm' / 'tools' / 'slurm_run.sh'), 'p'],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert 'PARTITION JOB_NAME MODULE' in proc.stderr
