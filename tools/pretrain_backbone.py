"""Train a backbone once in-house and save it for every candidate of a search or benchmark.

Trains CONFIG with ``python -m seg101_mm.tools.train`` (seeded, resumable), then keeps the
``backbone.*`` weights of its last checkpoint in ``--out`` and prints the SHA-256 of the
weights, which is also written beside it (``<out>.json``) and names the backbone in results.
Start a config from it with::

    --cfg-options model.backbone.init_cfg.type=Pretrained \\
        model.backbone.init_cfg.checkpoint=<out> model.backbone.init_cfg.prefix=backbone.

Weights never belong in the repository: keep ``--out`` in a cache folder; the same command
with the same seed regenerates it on a new machine.

Example::

    python tools/pretrain_backbone.py \\
        configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py \\
        --data-root data/mass_roads --seed 0 \\
        --out ~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0.pth
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

#: The training command line that this one runs.
TRAIN_MODULE = 'seg101_mm.tools.train'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor and keep its backbone')
    parser.add_argument('config', help='training config whose backbone is kept')
    parser.add_argument('--out', required=True, help='backbone weights file to write')
    parser.add_argument('--work-dir', help='training work dir (default: <out without suffix>)')
    parser.add_argument('--data-root', help='dataset folder for every dataloader')
    parser.add_argument('--seed', type=int, default=0, help='training seed (default 0)')
    parser.add_argument('--iters', type=int, help='training iterations (default: the config)')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[], help='more key=value overrides for the config')
    args = parser.parse_args(argv)
    if not Path(args.config).is_file():
        parser.error(f'config not found: {args.config}')
    if args.iters is not None and args.iters <= 0:
        parser.error(f'--iters must be positive, got {args.iters}')
    if args.data_root is not None and not Path(args.data_root).is_dir():
        parser.error(f'--data-root is not a folder: {args.data_root}')
    return args


def train_options(args) -> list:
    """The ``--cfg-options`` words of the training run."""
    opts = [f'randomness.seed={args.seed}', 'randomness.deterministic=False']
    if args.iters is not None:
        opts += [
            f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
            f'default_hooks.checkpoint.interval={args.iters}'
        ]
    if args.data_root is not None:
        opts += [
            f'{loader}.dataset.data_root={args.data_root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        ]
    return opts + list(args.cfg_options)


def last_checkpoint(work_dir: Path):
    """The checkpoint that mmengine's ``last_checkpoint`` file names, or None."""
    pointer = work_dir / 'last_checkpoint'
    if not pointer.is_file():
        return None
    path = Path(pointer.read_text().strip())
    return path if path.is_file() else None


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    import seg101_mm  # noqa: F401
    from seg101_mm.models.backbone_weights import extract_backbone

    out = Path(os.path.expanduser(args.out))
    work_dir = Path(args.work_dir) if args.work_dir else out.with_suffix('')
    cfg = Config.fromfile(args.config)
    iters = args.iters or cfg.train_cfg.max_iters
    cmd = [sys.executable, '-m', TRAIN_MODULE, args.config, '--work-dir', str(work_dir)]
    if last_checkpoint(work_dir) is not None:
        cmd.append('--resume')  # continue an interrupted run (a finished one returns at once)
    cmd += ['--cfg-options'] + train_options(args)
    print('training:', ' '.join(cmd), flush=True)
    done = subprocess.run(cmd)
    if done.returncode != 0:
        sys.exit(f'error: training failed with exit code {done.returncode}; see the log in '
                 f'{work_dir}')
    ckpt = last_checkpoint(work_dir)
    if ckpt is None:
        sys.exit(f'error: training wrote no checkpoint in {work_dir}; the config must keep '
                 'default_hooks.checkpoint')
    record = extract_backbone(
        ckpt,
        out,
        meta=dict(
            config=str(args.config),
            seed=args.seed,
            iters=iters,
            data_root=args.data_root,
            checkpoint=str(ckpt)))
    print(f'backbone: {record["tensors"]} tensors, {record["params"] / 1e6:.2f} M parameters '
          f'-> {out}\nweights sha256: {record["weights_sha256"]}')


if __name__ == '__main__':
    main()
