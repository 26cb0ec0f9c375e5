"""Helpers for the analysis-tool tests: the repository's configs pointed at generated scenes,
and the scripts run in-process."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ANALYSIS_TOOLS = REPO_ROOT / 'tools' / 'analysis_tools'

#: The pipelines of configs/_base_/datasets at 64x64: same transforms, small sizes.
TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[(64, 64), (96, 96)],
        resize_type='Resize',
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(64, 64)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs')
]
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


def repo_config(pattern):
    """The first repository config matching ``pattern`` (relative to configs/)."""
    found = sorted((REPO_ROOT / 'configs').glob(pattern))
    assert found, f'no config matches configs/{pattern}'
    return str(found[0])


def data_options(root, small=True):
    """``--cfg-options`` (as a dict) that point every dataloader at ``root``, in-process
    loading; with ``small`` also the 64x64 pipelines above."""
    opts = {}
    for split in ('train', 'val', 'test'):
        opts[f'{split}_dataloader.dataset.data_root'] = str(root)
        opts[f'{split}_dataloader.num_workers'] = 0
        opts[f'{split}_dataloader.persistent_workers'] = False
    if small:
        opts['train_dataloader.dataset.pipeline'] = TRAIN_PIPELINE
        opts['test_dataloader.dataset.pipeline'] = TEST_PIPELINE
        opts['val_dataloader.dataset.pipeline'] = TEST_PIPELINE
    return opts


def load_script(name):
    """Import ``tools/analysis_tools/<name>.py`` as a module."""
    mod_name = f'seg101_analysis_tool_{name}'
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, ANALYSIS_TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def run_script(name, argv, cfg_options=None):
    """``parse_args(argv)`` then ``run``, with ``cfg_options`` (a dict) merged in."""
    tool = load_script(name)
    args = tool.parse_args([str(a) for a in argv])
    if cfg_options is not None:
        args.cfg_options = dict(args.cfg_options or {}, **cfg_options)
    return tool.run(args)


def script_error(name, argv, capsys):
    """Run the script's ``main`` on bad input; return the one line it prints to stderr."""
    tool = load_script(name)
    with pytest.raises(SystemExit) as exc:
        tool.main([str(a) for a in argv])
    message = exc.value.code if isinstance(exc.value.code, str) else capsys.readouterr().err
    lines = [line for line in str(message).splitlines() if 'error:' in line]
    assert len(lines) == 1, message
    return lines[0]


TENSORBOARD_LINE = ("visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
                    "dict(type='TensorboardVisBackend')])")


def write_child_config(path, base, root, max_iters=2, extra_lines=()):
    """A config that inherits ``base`` and trains ``max_iters`` iterations on ``root`` with
    the 64x64 pipelines, validating at the end; ``extra_lines`` are appended verbatim."""
    lines = [f'_base_ = [{str(base)!r}]']
    for split, pipeline in (('train', TRAIN_PIPELINE), ('val', TEST_PIPELINE), ('test',
                                                                                TEST_PIPELINE)):
        lines.append(f'{split}_dataloader = dict(batch_size=2 if {split!r} == "train" else 1, '
                     f'num_workers=0, persistent_workers=False, '
                     f'dataset=dict(data_root={str(root)!r}, pipeline={pipeline!r}))')
    lines += [
        "model = dict(data_preprocessor=dict(size=(64, 64)))",
        f'train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})',
        'default_hooks = dict(logger=dict(interval=1), '
        f'checkpoint=dict(interval={max_iters}, save_last=False))',
        'env_cfg = dict(cudnn_benchmark=False)',
        'randomness = dict(seed=0)',
    ]
    lines += list(extra_lines)
    Path(path).write_text('\n'.join(lines) + '\n')
    return Path(path)


def run_subprocess(args, timeout=300):
    """A command with one thread and the repository importable; fails the test on error."""
    import os
    import subprocess
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] +
                                        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    proc = subprocess.run(
        [sys.executable] + [str(a) for a in args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{args} exited with {proc.returncode}\n--- stdout ---\n'
                    f'{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}')
    return proc


def read_scalars(log_dir):
    """``{tag: [(step, value), ...]}`` from the TensorBoard event files in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir), size_guidance={'scalars': 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}
