"""Params, FLOPs and CPU latency of random SEG101 networks beside DeepLabV3+ and PSPNet.

For the genotypes ``sample(seed)``, seed = ``--seed-start`` ... ``--seed-start +
--num-genotypes - 1``, and for mmseg's DeepLabV3+ R50-D8 and PSPNet R50-D8 (from mmseg's own base
configs ``mmseg::_base_/models/deeplabv3plus_r50-d8.py`` and ``pspnet_r50-d8.py``, with BN
instead of SyncBN, ``pretrained=None``, ``num_classes=2`` and the training-only auxiliary FCN head
removed), all in one process so that the numbers compare:

- params: every parameter of the network that runs at inference;
- FLOPs: mmengine's counter (``FlopAnalyzer``, the FLOP half of
  ``mmengine.analysis.get_model_complexity_info``) on one ``1 x 3 x S x S`` image (one
  multiply-add counts as one FLOP; normalisation, pooling and resizing are not counted);
- latency: median wall time of ``--repeats`` forward passes (``--baseline-repeats`` for the
  baselines; after ``--warmup`` untimed ones) of a batch of one ``S x S`` image, eval mode,
  ``torch.no_grad()``, ``mode='tensor'`` (backbone, neck and decode head up to the logits,
  before the final resize), ``--threads`` CPU threads; and the median process CPU time of the
  same passes (all threads). The passes are interleaved: round after round, every network
  runs once, so that a change of load on a shared machine hits all networks alike.

Prints a markdown table (SEG101 min / median / max over the genotypes, and the same split by
head merge; one row per baseline) and writes per-model rows to ``--out-csv`` / ``--out-json``.
Run by hand (20 to 40 minutes on 2 shared cores at the defaults; all networks stay in
memory, about 3 GB)::

    python bench/bench_models.py --num-genotypes 20 --repeats 5 --baseline-repeats 3 \\
        --size 512 --out-csv bench_512.csv --out-json bench_512.json
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
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from seg101_mm.models import build_seg101
from seg101_mm.space import HEAD_MERGES, sample
from seg101_mm.tools.train import replace_sync_bn


def _seg101_info():
    """tools/analysis_tools/seg101_info.py (its FLOPs and activations counter) as a module."""
    import importlib.util
    path = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'tools', 'analysis_tools',
                    'seg101_info.py')
    spec = importlib.util.spec_from_file_location('_seg101_info', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


count_flops = _seg101_info().count_flops

#: mmseg base model configs of the two baselines of the paper (docs/method.md section 10).
BASELINES = (
    ('DeepLabV3+ R50-D8', 'mmseg::_base_/models/deeplabv3plus_r50-d8.py'),
    ('PSPNet R50-D8', 'mmseg::_base_/models/pspnet_r50-d8.py'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--num-genotypes',
        type=int,
        default=20,
        help='random SEG101 genotypes, sample(seed) (default: 20)')
    parser.add_argument('--seed-start', type=int, default=0, help='first seed (default: 0)')
    parser.add_argument('--size', type=int, default=512, help='square input size (default: 512)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='timed forward passes per SEG101 network (default: 5)')
    parser.add_argument(
        '--baseline-repeats',
        type=int,
        default=3,
        help='timed forward passes per baseline (default: 3)')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed forward passes before timing (default: 1)')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--num-classes', type=int, default=2)
    parser.add_argument('--no-baselines', action='store_true', help='SEG101 networks only')
    parser.add_argument('--out-csv', help='write one row per network to this CSV file')
    parser.add_argument('--out-json', help='write the rows and the table to this JSON file')
    args = parser.parse_args(argv)
    for name in ('num_genotypes', 'repeats', 'baseline_repeats'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.size < 32:
        parser.error(f'--size must be >= 32, got {args.size}')
    return args


def build_baseline(config, num_classes=2):
    """An mmseg base model config built on the CPU: BN for SyncBN, no weights, no aux head."""
    # `mmseg::` paths resolve only inside `_base_`
    cfg = Config.fromstring(f'_base_ = [{config!r}]', file_format='.py')
    init_default_scope('mmseg')
    model_cfg = replace_sync_bn(cfg.model)
    model_cfg.pretrained = None
    model_cfg.decode_head.num_classes = num_classes
    model_cfg.pop('auxiliary_head', None)  # training-only; SEG101 has none either
    return MODELS.build(model_cfg)


def count_model(name, model, size, **extra):
    """Params and FLOPs of ``model`` (put in eval mode) as a result row."""
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    flops, _ = count_flops(model, (size, size), activations=False)
    print(
        f'{name}: params {params / 1e6:.2f} M, FLOPs {flops / 1e9:.1f} G',
        file=sys.stderr,
        flush=True)
    return dict(name=name, params=params, flops=flops, **extra)


@torch.no_grad()
def interleaved_latency(entries, size, warmup):
    """Time forward passes of every model in rounds, each round visiting every model once.

    The machine may be shared: running the models in rounds (the starting model rotating from
    round to round) spreads changes of load evenly over all of them, which timing one model
    after the other would not. Each entry is ``(row, model, repeats)``; a model takes part in
    its first ``repeats`` rounds. Adds to each row the median wall time (``latency_s``) and
    the median process CPU time over all threads (``cpu_s``) of one forward, and the raw runs.
    """
    x = torch.randn(1, 3, size, size)
    for _, model, _ in entries:
        for _ in range(warmup):
            model(x, mode='tensor')
    for row, _, _ in entries:
        row['latency_runs'], row['cpu_runs'] = [], []
    rounds = max(n for _, _, n in entries)
    for r in range(rounds):
        start = time.perf_counter()
        order = entries[r % len(entries):] + entries[:r % len(entries)]
        for row, model, repeats in order:
            if r >= repeats:
                continue
            cpu0, wall0 = time.process_time(), time.perf_counter()
            model(x, mode='tensor')
            row['latency_runs'].append(round(time.perf_counter() - wall0, 4))
            row['cpu_runs'].append(round(time.process_time() - cpu0, 4))
        print(
            f'latency round {r + 1}/{rounds}: {time.perf_counter() - start:.0f} s',
            file=sys.stderr,
            flush=True)
    for row, _, _ in entries:
        row['latency_s'] = statistics.median(row['latency_runs'])
        row['cpu_s'] = statistics.median(row['cpu_runs'])


def _triple(values, fmt):
    return ' / '.join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def markdown_table(rows, size, repeats, baseline_repeats):
    """The summary table: SEG101 as min / median / max (all, then per head merge), baselines."""
    lines = [
        f'| network (input 1x3x{size}x{size}, CPU) | n | params (M) | FLOPs (G) | '
        f'latency (ms) | CPU time (ms) |', '|---|---|---|---|---|---|'
    ]
    seg = [r for r in rows if r.get('genotype')]
    groups = [('SEG101, random genotypes', seg)] + [
        (f'SEG101, hm={hm}', [r for r in seg if r['head_merge'] == hm]) for hm in HEAD_MERGES
    ]
    for label, group in groups:
        if not group:
            continue
        lines.append(f'| {label} (min / median / max) | {len(group)} | '
                     f'{_triple([r["params"] / 1e6 for r in group], lambda v: f"{v:.2f}")} | '
                     f'{_triple([r["flops"] / 1e9 for r in group], lambda v: f"{v:.1f}")} | '
                     f'{_triple([r["latency_s"] * 1e3 for r in group], lambda v: f"{v:.0f}")} | '
                     f'{_triple([r["cpu_s"] * 1e3 for r in group], lambda v: f"{v:.0f}")} |')
    for r in rows:
        if not r.get('genotype'):
            lines.append(f'| {r["name"]} | 1 | {r["params"] / 1e6:.2f} | {r["flops"] / 1e9:.1f} | '
                         f'{r["latency_s"] * 1e3:.0f} | {r["cpu_s"] * 1e3:.0f} |')
    lines.append('')
    runs = f'{repeats} (SEG101)'
    if any(not r.get('genotype') for r in rows):
        runs += f' / {baseline_repeats} (baselines)'
    lines.append(f'Latency (wall) and CPU time (process, all threads): medians of {runs} timed '
                 f'forward passes, interleaved over the networks in rounds; batch 1, eval mode, '
                 f'no_grad, torch threads {torch.get_num_threads()}. FLOPs: mmengine counter '
                 f'(1 multiply-add = 1 FLOP).')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    entries = []  # (row, model, repeats); all models stay in memory for interleaved timing
    for seed in range(args.seed_start, args.seed_start + args.num_genotypes):
        genotype = sample(seed)
        model = build_seg101(genotype, num_classes=args.num_classes, init_weights=False)
        row = count_model(
            f'SEG101 seed {seed}',
            model,
            args.size,
            seed=seed,
            genotype=str(genotype),
            head_merge=genotype.head_merge)
        entries.append((row, model, args.repeats))
    if not args.no_baselines:
        for name, config in BASELINES:
            model = build_baseline(config, args.num_classes)
            entries.append((count_model(name, model, args.size,
                                        config=config), model, args.baseline_repeats))
    interleaved_latency(entries, args.size, args.warmup)
    rows = [row for row, _, _ in entries]
    for row in rows:
        print(
            f'{row["name"]}: latency {row["latency_s"] * 1e3:.0f} ms (runs '
            f'{", ".join(f"{t * 1e3:.0f}" for t in row["latency_runs"])}), CPU '
            f'{row["cpu_s"] * 1e3:.0f} ms',
            file=sys.stderr)
    table = markdown_table(rows, args.size, args.repeats, args.baseline_repeats)
    print(table)
    if args.out_csv:
        fields = [
            'name', 'seed', 'head_merge', 'params', 'flops', 'latency_s', 'cpu_s', 'genotype',
            'config'
        ]
        with open(args.out_csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(rows)
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(dict(args=vars(args), rows=rows, table=table), f, indent=2)
    return rows, table


if __name__ == '__main__':
    main()
