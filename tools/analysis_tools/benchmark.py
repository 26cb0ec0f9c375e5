"""FPS and latency of a config's model (mmseg's ``tools/analysis_tools/benchmark.py`` command
line).

Examples::

    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT] --device cpu --num-iters 50
    python tools/analysis_tools/benchmark.py CONFIG --shape 512 512 --device cuda --repeat-times 3

Times ``model(inputs, data_samples, mode='predict')`` on batches that the model's data
preprocessor has prepared (loading and normalisation untimed), after ``--warmup`` untimed
steps. Input: the config's test dataloader (its pipeline; cycled when it has fewer images than
the steps), or with ``--shape H W`` random images of that size. Prints the running FPS every
``--log-interval`` steps, the overall FPS and per-image latency of each repeat, their mean and
variance, and writes them to ``<work_dir>/fps_<timestamp>.json``. Without a checkpoint the
model keeps its constructor weights (speed does not depend on them).
"""
import argparse
import json
import os
import os.path as osp
import time

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
from mmengine.config import DictAction

from seg101_mm.tools.benchmark import benchmark, dataloader_batches, fixed_size_batches
from seg101_mm.tools.common import (ToolError, build_inference_model, check_device, load_config,
                                    parse_shape, run_tool)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MMSeg benchmark a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (optional)')
    parser.add_argument(
        '--work-dir',
        help='where fps_<timestamp>.json goes (default: the config\'s work_dir, '
        'else ./work_dirs/<config name>)')
    parser.add_argument('--num-iters', type=int, default=200, help='timed steps (default 200)')
    parser.add_argument(
        '--warmup', type=int, default=5, help='untimed steps before them (default 5)')
    parser.add_argument(
        '--log-interval',
        type=int,
        default=50,
        help='print the running FPS every this many '
        'steps (default 50)')
    parser.add_argument(
        '--repeat-times', type=int, default=1, help='repeat the measurement (default 1)')
    parser.add_argument(
        '--device',
        default=None,
        help="'cpu', 'cuda' or 'cuda:N' (default: cuda when "
        'available, else cpu)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='time random H [W] images instead of the test '
        'dataloader')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images per step (default 1, as mmseg)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into the config file')
    return parser.parse_args(argv)


def run(args):
    import torch
    device = check_device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if args.batch_size < 1:
        raise ToolError(f'--batch-size must be >= 1, got {args.batch_size}')
    cfg = load_config(args.config, args.cfg_options)
    shape = parse_shape(args.shape) if args.shape else None
    model = build_inference_model(cfg, args.checkpoint, device)
    if shape is None:

        def make_batches():
            return dataloader_batches(cfg, args.batch_size)
    else:

        def make_batches():
            return fixed_size_batches(shape, args.batch_size)

    source = 'test dataloader' if shape is None else f'random {shape[0]}x{shape[1]} images'
    print(f'benchmark: {osp.basename(args.config)} on {device}, {source}, batch '
          f'{args.batch_size}, {args.warmup} warmup + {args.num_iters} timed steps')
    result = benchmark(
        model,
        make_batches,
        num_iters=args.num_iters,
        warmup=args.warmup,
        log_interval=args.log_interval,
        repeat_times=args.repeat_times,
        device=device)
    work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs',
        osp.splitext(osp.basename(args.config))[0])
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, f'fps_{time.strftime("%Y%m%d_%H%M%S")}.json')
    result.update(
        config=args.config,
        checkpoint=args.checkpoint,
        device=device,
        input=source,
        batch_size=args.batch_size,
        num_iters=args.num_iters,
        warmup=args.warmup)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'results written to {path}')
    return result


def main(argv=None):
    return run_tool(run, parse_args(argv), __file__)


if __name__ == '__main__':
    main()
