"""Seconds per training iteration of segmentation configs, measured side by side on the CPU.

Each config's own model, loss, optimiser (``optim_wrapper``), batch size and crop size are
built as training builds them (SyncBN as BN, no pretrained weights read), and one iteration is
``model.train_step(batch, optim_wrapper)``: data preprocessing, forward, losses, backward and
the optimiser step. The batch is fixed and synthetic (random images; label maps of straight
target-class bands and an ignored border, a road-like share of about 10 %), so data loading
does not enter the time. The iterations are interleaved: round after round every config runs
once, the first config changing from round to round, so that a change of load on a shared
machine hits all of them alike. Prints per config the median wall time and process CPU time
of an iteration and its ratio to the first config, as a markdown table. By default the three
CPU-protocol configs of one dataset (docs/datasets.md, 'The CPU protocol'). ``--precisions fp32
bf16`` times every config twice, in float32 and with bfloat16 autocast (``tools/train.py --amp``
on the CPU), side by side::

    python bench/bench_train_step.py --dataset mass-roads --rounds 5 --out-json steps.json
    python bench/bench_train_step.py --dataset mass-roads --precisions fp32 bf16
    python bench/bench_train_step.py \\
        configs/pspnet/pspnet_r50-d8_1xb4-cpu-2k_mass-roads-256x256.py \\
        configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py
"""
import argparse
import csv
import json
import os.path as osp
import statistics
import sys
import time

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from seg101_mm.tools.protocol import DATASETS, PROTOCOL_CONFIGS
from seg101_mm.tools.train import enable_amp, replace_sync_bn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the protocol's configs, first the one the ratios refer to
PROTOCOL = tuple(PROTOCOL_CONFIGS.values())
#: training arithmetic: float32, or bfloat16 autocast (``tools/train.py --amp`` on the CPU)
PRECISIONS = ('fp32', 'bf16')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'configs', nargs='*', help='training configs; the first is the ratios\' reference')
    parser.add_argument(
        '--dataset',
        choices=DATASETS,
        default='mass-roads',
        help='without configs: the CPU-protocol configs of this dataset (default: mass-roads)')
    parser.add_argument(
        '--rounds', type=int, default=5, help='timed iterations per config (default: 5)')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed iterations per config (default: 1)')
    parser.add_argument(
        '--batch-size', type=int, help='images per iteration (default: each config\'s own)')
    parser.add_argument(
        '--crop', type=int, help='square crop size (default: each config\'s preprocessor size)')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument(
        '--precisions',
        nargs='+',
        choices=PRECISIONS,
        default=['fp32'],
        help='time every config in each of these: fp32, or bf16 for bfloat16 autocast '
        '(tools/train.py --amp on the CPU); default fp32')
    parser.add_argument('--out-csv', help='write one row per config to this CSV file')
    parser.add_argument('--out-json', help='write the rows and the table to this JSON file')
    args = parser.parse_args(argv)
    for name in ('rounds', 'batch_size', 'crop', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {value}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if not args.configs:
        args.configs = [osp.join(REPO, c.format(args.dataset)) for c in PROTOCOL]
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'config {config!r} is not a file')
    return args


def _no_weights(model_cfg):
    """A model config that reads no checkpoint: ``pretrained`` and every ``init_cfg`` dropped."""
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    for part in ('backbone', 'neck', 'decode_head', 'auxiliary_head'):
        node = model_cfg.get(part)
        for sub in (node if isinstance(node, (list, tuple)) else [node]):
            init_cfg = sub.get('init_cfg') if isinstance(sub, dict) else None
            if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
                sub.init_cfg = None
    return model_cfg


def build_trainee(config, batch_size=None, crop=None, precision='fp32'):
    """``(model, optim_wrapper, batch size, crop)`` of a training config, on the CPU."""
    cfg = Config.fromfile(config)
    if precision == 'bf16':
        enable_amp(cfg, device='cpu')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = _no_weights(replace_sync_bn(cfg.model))
    size = model_cfg.get('data_preprocessor', {}).get('size')
    crop = crop or (size[0] if size else 512)
    if size:
        model_cfg.data_preprocessor.size = (crop, crop)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper, batch_size or cfg.train_dataloader.batch_size, crop


def synthetic_batch(batch_size, crop, seed=0):
    """A fixed batch as mmseg's ``PackSegInputs`` gives it: uint8 images and 0/1/255 labels."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, crop, crop), dtype=torch.uint8, generator=gen))
        label = torch.zeros(crop, crop, dtype=torch.int64)
        for _ in range(2):  # two bands of crop/20 pixels: about 10 % target class
            at = int(torch.randint(0, crop - crop // 20, (1, ), generator=gen))
            label[:, at:at + crop // 20] = 1
        label[:crop // 32] = 255  # an ignored border, as no-data is
        sample = SegDataSample(metainfo=dict(img_shape=(crop, crop), ori_shape=(crop, crop)))
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def interleaved_steps(entries, rounds, warmup):
    """Run ``train_step`` of every entry in rounds, adding median wall and CPU seconds to rows."""
    for row, model, optim_wrapper, batch in entries:
        for _ in range(warmup):
            model.train_step(batch, optim_wrapper)
        row['step_runs'], row['cpu_runs'] = [], []
    for r in range(rounds):
        start = time.perf_counter()
        for row, model, optim_wrapper, batch in entries[r % len(entries):] + entries[:r % len(
                entries)]:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            losses = model.train_step(batch, optim_wrapper)
            row['step_runs'].append(round(time.perf_counter() - wall0, 4))
            row['cpu_runs'].append(round(time.process_time() - cpu0, 4))
            if not all(torch.isfinite(v).all() for v in losses.values()):
                raise RuntimeError(f'{row["config"]}: a non-finite loss in round {r + 1}')
        print(
            f'round {r + 1}/{rounds}: {time.perf_counter() - start:.0f} s',
            file=sys.stderr,
            flush=True)
    for row, *_ in entries:
        row['s_per_iter'] = statistics.median(row['step_runs'])
        row['cpu_s_per_iter'] = statistics.median(row['cpu_runs'])
    ref = entries[0][0]['s_per_iter']
    for row, *_ in entries:
        row['ratio'] = row['s_per_iter'] / ref


def markdown_table(rows, rounds):
    lines = [
        '| config | precision | params (M) | batch x crop | s / iteration | CPU s / iteration | '
        'ratio |', '|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        lines.append(f'| {osp.basename(r["config"])} | {r["precision"]} | '
                     f'{r["params"] / 1e6:.2f} | '
                     f'{r["batch_size"]} x {r["crop"]} | {r["s_per_iter"]:.2f} | '
                     f'{r["cpu_s_per_iter"]:.2f} | {r["ratio"]:.2f} |')
    lines.append('')
    lines.append(f'Medians of {rounds} training iterations per config (train_step: '
                 f'preprocessing, forward, loss, backward, optimiser step), interleaved in '
                 f'rounds; torch threads {torch.get_num_threads()}; ratio: wall time over the '
                 f'first config\'s.')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    MMLogger.get_instance('mmengine', log_level='WARNING')  # no per-parameter optimiser lines
    entries = []
    for config in args.configs:
        for precision in args.precisions:
            model, optim_wrapper, batch_size, crop = build_trainee(config, args.batch_size,
                                                                   args.crop, precision)
            row = dict(
                config=osp.relpath(config, REPO) if config.startswith(REPO) else config,
                precision=precision,
                params=sum(p.numel() for p in model.parameters()),
                batch_size=batch_size,
                crop=crop)
            print(f'{row["config"]} ({precision}): {row["params"] / 1e6:.2f} M parameters',
                  file=sys.stderr)
            entries.append((row, model, optim_wrapper, synthetic_batch(batch_size, crop)))
    interleaved_steps(entries, args.rounds, args.warmup)
    rows = [row for row, *_ in entries]
    table = markdown_table(rows, args.rounds)
    print(table)
    if args.out_csv:
        fields = [
            'config', 'precision', 'params', 'batch_size', 'crop', 's_per_iter',
            'cpu_s_per_iter', 'ratio'
        ]
        with open(args.out_csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(rows)
    if args.out_json:
        with open(args.out_json, 'w') as f:
            saved = dict(vars(args), configs=[r['config'] for r in rows[::len(args.precisions)]])
            json.dump(dict(args=saved, rows=rows, table=table), f, indent=2)
    return rows, table


if __name__ == '__main__':
    main()
