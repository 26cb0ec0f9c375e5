"""Test (and evaluate) a segmentor checkpoint (mmseg 1.2.2's ``tools/test.py`` command line).

Examples::

    python -m seg101_mm.tools.test CONFIG work_dirs/run1/iter_2000.pth
    python tools/test.py CONFIG CKPT --show-dir vis --out preds --metrics-out metrics.json
    tools/dist_test.sh CONFIG CKPT 2

The package's import (which comes first) registers the modules and routes local checkpoint
loading through ``torch.load(weights_only=False)``, which mmengine 0.10.7 needs on
torch >= 2.6 to read its own checkpoints. **This trusts the checkpoint file** (unpickling can
run code): only test checkpoints you made or trust.
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from seg101_mm.tools import train as train_tool  # launchers and the CPU set-up


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the dir for logs; the evaluation metrics are also dumped there as json')
    parser.add_argument(
        '--out',
        type=str,
        help='the directory to save output prediction masks (PNG) for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted predictions of every test image are saved (in '
        '<show-dir>/vis_data/vis_image/)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--metrics-out', help='also write the returned metrics to this JSON file (rank 0 only)')
    parser.add_argument('--tta', action='store_true', help='Test time augmentation')
    return train_tool.parse_run_args(parser, argv)


def trigger_visualization_hook(cfg, args):
    """Turn on drawing in the config's ``VisualizationHook`` for ``--show`` / ``--show-dir``."""
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError('--show/--show-dir need a VisualizationHook in default_hooks, e.g. '
                           "default_hooks = dict(visualization=dict(type='SegVisualizationHook'))")
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    # The hook draws every `interval`-th batch (50 unless the config says otherwise); painting
    # only some images is rarely what --show/--show-dir is asked for.
    hook.setdefault('interval', 1)
    return cfg


def enable_tta(cfg):
    """Swap the test pipeline for ``tta_pipeline`` and wrap the model in ``tta_model``."""
    for key in ('tta_pipeline', 'tta_model'):
        if cfg.get(key, None) is None:
            raise ValueError(f'--tta needs `{key}` in the config; it has none')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def set_prediction_dir(cfg, out_dir):
    """Make every test evaluator save its predicted masks as PNGs in ``out_dir``."""
    evaluators = cfg.test_evaluator
    for evaluator in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
        evaluator['output_dir'] = out_dir


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    train_tool.set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        enable_tta(cfg)
    if args.out is not None:
        set_prediction_dir(cfg, args.out)
    train_tool.prepare_cpu_distributed(cfg, args.launcher)

    runner = Runner.from_cfg(cfg)

    def test_and_save():
        metrics = runner.test()
        if args.metrics_out and is_main_process():
            os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
            with open(args.metrics_out, 'w') as f:
                json.dump(dict(metrics), f, indent=2, default=float)
        return metrics

    return train_tool.run_launched(test_and_save, args.launcher)


def cli(argv=None):
    """The command line: :func:`main`, then a launched worker ends without finalization."""
    main(argv)
    train_tool.exit_launched_job(parse_args(argv).launcher)


if __name__ == '__main__':
    cli()
