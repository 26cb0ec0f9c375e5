"""Train a segmentor from an mmseg config (mmseg 1.2.2's ``tools/train.py`` command line).

Examples::

    python -m seg101_mm.tools.train configs/seg101/<config>.py --work-dir work_dirs/run1
    python tools/train.py CONFIG --cfg-options train_cfg.max_iters=200 --amp   # same, checkout
    tools/dist_train.sh CONFIG 2            # torchrun, 2 processes (GPUs, or CPUs via gloo)

The package's import (which comes first, as this is one of its modules) registers the SEG101
modules and applies the compat fixes (mmcv-lite stand-in, trusted local checkpoint loading on
torch >= 2.6).

Distributed runs without a GPU (``--launcher pytorch`` and no CUDA) are prepared by
:func:`prepare_cpu_distributed` before the Runner is built, because mmengine's own
``init_dist`` calls ``torch.cuda.set_device`` unconditionally.

A resumed run (``--resume``) validates its checkpoint first when that checkpoint falls on a
validation step (:class:`~seg101_mm.engine.ResumedValidationHook`), so a run stopped during a
validation keeps a complete val curve.
"""
import argparse
import datetime
import logging
import os
import os.path as osp
import sys

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from seg101_mm.engine import ResumedValidationHook

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
# Normalisation layers that need a GPU process group, and what replaces them on a CPU.
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm')
CPU_BN_TYPE = 'BN'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    return parse_run_args(parser, argv)


def parse_run_args(parser, argv=None):
    """Add the options that training and testing share (``--cfg-options``, ``--launcher``,
    ``--local-rank``) to ``parser``, parse ``argv``, and set ``LOCAL_RANK`` when unset."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into the config file. A list value is written key="[a,b]" or key=a,b; '
        'nested lists/tuples as key="[(a,b),(c,d)]" (quotes needed, no white space).')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.run passes LOCAL_RANK in the environment; older launchers pass
    # --local_rank (or --local-rank) on the command line.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def replace_sync_bn(node, bn_type=CPU_BN_TYPE):
    """Return a copy of a config node with every SyncBN norm dict turned into ``bn_type``.

    ``torch.nn.SyncBatchNorm`` only runs on CUDA tensors, so a CPU process group needs plain
    BN. Every dict (at any depth, inside lists/tuples too) whose ``type`` is one of
    :data:`SYNC_BN_TYPES` gets ``type=bn_type``; everything else is copied unchanged.
    """
    if isinstance(node, dict):
        out = {k: replace_sync_bn(v, bn_type) for k, v in node.items()}
        if out.get('type') in SYNC_BN_TYPES:
            out['type'] = bn_type
        return ConfigDict(out) if isinstance(node, ConfigDict) else out
    if isinstance(node, (list, tuple)):
        return type(node)(replace_sync_bn(v, bn_type) for v in node)
    return node


def prepare_cpu_distributed(cfg, launcher):
    """Make a ``--launcher pytorch`` run work on a machine without CUDA (gloo backend).

    mmengine's ``init_dist`` calls ``torch.cuda.set_device(local_rank)`` before creating the
    process group, which fails without CUDA. ``Runner.setup_env`` skips ``init_dist`` when a
    process group already exists, so the group is created here from the ``RANK`` /
    ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` variables that torchrun sets. The model
    is then wrapped with ``MMDistributedDataParallel(device_ids=None)`` (CPU DDP) unless the
    config already names a wrapper, and every SyncBN in ``cfg.model`` / ``cfg.norm_cfg``
    becomes BN, and ``cfg.sync_bn`` (which would convert BN back) is dropped.

    Does nothing (returns False) when the launcher is not ``pytorch`` or CUDA is available.

    Args:
        cfg (Config): The loaded config; modified in place.
        launcher (str): The ``--launcher`` value.

    Returns:
        bool: Whether the CPU distributed set-up was applied.
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    missing = [
        k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ
    ]
    if missing:
        raise RuntimeError(
            f'--launcher pytorch needs the environment variables {missing} that torchrun sets; '
            f'start the job with tools/dist_train.sh or `python -m torch.distributed.run`.')
    if not torch_dist.is_initialized():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
        timeout = dist_cfg.get('timeout', None)
        kwargs = {}
        if timeout is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)
    if cfg.get('model_wrapper_cfg', None) is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model = replace_sync_bn(cfg.model)
    if cfg.get('norm_cfg', None) is not None:
        cfg.norm_cfg = replace_sync_bn(cfg.norm_cfg)
    if cfg.get('sync_bn', None) is not None:
        cfg.sync_bn = None
    print_log(
        'No CUDA device: distributed run on CPU with the gloo backend '
        f'(rank {torch_dist.get_rank()} of {torch_dist.get_world_size()}); SyncBN, if any, '
        'is replaced by BN.',
        logger='current')
    return True


def set_work_dir(cfg, work_dir, config_path):
    """``--work-dir`` > ``work_dir`` in the config > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def enable_amp(cfg, device=None):
    """Switch the config's ``OptimWrapper`` to mixed precision for ``device``.

    On a GPU (NPU, MLU) mmengine's ``AmpOptimWrapper`` with a dynamic loss scale (float16); on
    the CPU, where mmengine's wrapper refuses to start, :class:`~seg101_mm.engine.
    CPUAmpOptimWrapper` (bfloat16 autocast, no loss scale). ``device`` defaults to mmengine's
    ``get_device()``.
    """
    from mmengine.device import get_device
    device = device or get_device()
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type in ('AmpOptimWrapper', 'CPUAmpOptimWrapper'):
        print_log(
            'AMP training is already enabled in your config.',
            logger='current',
            level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type == "OptimWrapper", got '
                         f'{wrapper_type!r}')
    if device == 'cpu':
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
    else:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'


def add_resumed_validation(cfg):
    """For a resumed run, add :class:`ResumedValidationHook` to ``custom_hooks`` (once): a run
    stopped during a validation then still logs that validation."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('ResumedValidationHook', ResumedValidationHook) for h in hooks):
        hooks.append(dict(type='ResumedValidationHook'))
    cfg.custom_hooks = hooks


def build_runner(cfg):
    """The default Runner, or ``RUNNERS.build`` when the config sets ``runner_type``."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def destroy_distributed(barrier=False):
    """Tear the process group down (after a barrier, when all ranks finished normally)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        if barrier:
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def exit_launched_job(launcher, code=0):
    """End a launched worker process (``launcher`` not ``'none'``) without the interpreter's
    finalization; return at once for a job that was not launched.

    A finished gloo job can abort at interpreter exit ("terminate called without an active
    exception", SIGABRT) while DDP, process-group and gloo threads are torn down in arbitrary
    order, turning a complete run into a failed one for the launcher. Everything the run wrote
    is on disk by now; logs and streams are flushed here, then the process ends.
    """
    if launcher == 'none':
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_launched(runner_method, launcher):
    """Call ``runner_method()``; for a launched job, end the process group cleanly after."""
    if launcher == 'none':
        return runner_method()
    try:
        result = runner_method()
    except BaseException:
        destroy_distributed()  # no barrier: the other ranks may be gone
        raise
    destroy_distributed(barrier=True)
    return result


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        enable_amp(cfg)
    cfg.resume = args.resume
    if cfg.resume:
        add_resumed_validation(cfg)
    prepare_cpu_distributed(cfg, args.launcher)

    runner = build_runner(cfg)
    run_launched(runner.train, args.launcher)


def cli(argv=None):
    """The command line: :func:`main`, then a launched worker ends without finalization."""
    main(argv)
    exit_launched_job(parse_args(argv).launcher)


if __name__ == '__main__':
    cli()
