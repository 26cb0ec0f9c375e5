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
- latency: median wall time of ``--repeats`` forward passes (after ``--warmup`` untimed ones) of
  a batch of one ``S x S`` image, eval mode, ``torch.no_grad()``, ``mode='tensor'`` (backbone,
  neck and decode head up to the logits, before the final resize), ``--threads`` CPU threads.

Prints a markdown table (SEG101 min / median / max over the genotypes, and the same split by
head merge; one row per baseline) and writes per-model rows to ``--out-csv`` / ``--out-json``.
Run by hand (about 15 minutes on 2 cores at the defaults)::

    python bench/bench_models.py --num-genotypes 20 --repeats 5 --baseline-repeats 3 \\
        --size 512 --out-csv bench/results.csv
"""
import argparse
import csv
import json
import os.path as osp
import statistics
import sys
import time

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmseg.registry import MODELS
from seg101_mm.models import build_seg101
from seg101_mm.space import HEAD_MERGES, sample

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', 'tools'))
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', 'tools', 'analysis_tools'))
from seg101_info import count_flops  # noqa: E402
from train import replace_sync_bn  # noqa: E402

#: mmseg base model configs of the two baselines of the paper (SEG101.md section 10).
BASELINES = (
    ('DeepLabV3+ R50-D8', 'mmseg::_base_/models/deeplabv3plus_r50-d8.py'),
    ('PSPNet R50-D8', 'mmseg::_base_/models/pspnet_r50-d8.py'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-genotypes', type=int, default=20,
                        help='random SEG101 genotypes, sample(seed) (default: 20)')
    parser.add_argument('--seed-start', type=int, default=0, help='first seed (default: 0)')
    parser.add_argument('--size', type=int, default=512, help='square input size (default: 512)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed forward passes per SEG101 network (default: 5)')
    parser.add_argument('--baseline-repeats', type=int, default=3,
                        help='timed forward passes per baseline (default: 3)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed forward passes before timing (default: 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
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


@torch.no_grad()
def median_latency(model, size, repeats, warmup):
    """Median seconds of ``repeats`` forward passes of a 1x3xSxS image (and the raw times)."""
    x = torch.randn(1, 3, size, size)
    for _ in range(warmup):
        model(x, mode='tensor')
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x, mode='tensor')
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def measure(name, model, size, repeats, warmup, **extra):
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    flops, _ = count_flops(model, (size, size), activations=False)
    latency, times = median_latency(model, size, repeats, warmup)
    row = dict(name=name, params=params, flops=flops, latency_s=latency,
               latency_runs=[round(t, 4) for t in times], **extra)
    print(f'{name}: params {params / 1e6:.2f} M, FLOPs {flops / 1e9:.1f} G, latency '
          f'{latency * 1e3:.0f} ms (runs {", ".join(f"{t * 1e3:.0f}" for t in times)})',
          file=sys.stderr, flush=True)
    return row


def _triple(values, fmt):
    return ' / '.join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def markdown_table(rows, size, repeats, baseline_repeats):
    """The summary table: SEG101 as min / median / max (all, then per head merge), baselines."""
    lines = [
        f'| network (input 1x3x{size}x{size}, CPU) | n | params (M) | FLOPs (G) | '
        f'latency (ms) |', '|---|---|---|---|---|'
    ]
    seg = [r for r in rows if r.get('genotype')]
    groups = [('SEG101, random genotypes', seg)] + [
        (f'SEG101, hm={hm}', [r for r in seg if r['head_merge'] == hm]) for hm in HEAD_MERGES
    ]
    for label, group in groups:
        if not group:
            continue
        lines.append(
            f'| {label} (min / median / max) | {len(group)} | '
            f'{_triple([r["params"] / 1e6 for r in group], lambda v: f"{v:.2f}")} | '
            f'{_triple([r["flops"] / 1e9 for r in group], lambda v: f"{v:.1f}")} | '
            f'{_triple([r["latency_s"] * 1e3 for r in group], lambda v: f"{v:.0f}")} |')
    for r in rows:
        if not r.get('genotype'):
            lines.append(f'| {r["name"]} | 1 | {r["params"] / 1e6:.2f} | {r["flops"] / 1e9:.1f} | '
                         f'{r["latency_s"] * 1e3:.0f} |')
    lines.append('')
    runs = f'{repeats} (SEG101)'
    if any(not r.get('genotype') for r in rows):
        runs += f' / {baseline_repeats} (baselines)'
    lines.append(f'Latency: median of {runs} timed '
                 f'forward passes, batch 1, eval mode, no_grad, torch threads '
                 f'{torch.get_num_threads()}. FLOPs: mmengine counter (1 multiply-add = 1 FLOP).')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for seed in range(args.seed_start, args.seed_start + args.num_genotypes):
        genotype = sample(seed)
        model = build_seg101(genotype, num_classes=args.num_classes, init_weights=False)
        rows.append(measure(f'SEG101 seed {seed}', model, args.size, args.repeats, args.warmup,
                            seed=seed, genotype=str(genotype), head_merge=genotype.head_merge))
        del model
    if not args.no_baselines:
        for name, config in BASELINES:
            model = build_baseline(config, args.num_classes)
            rows.append(measure(name, model, args.size, args.baseline_repeats, args.warmup,
                                config=config))
            del model
    table = markdown_table(rows, args.size, args.repeats, args.baseline_repeats)
    print(table)
    if args.out_csv:
        fields = ['name', 'seed', 'head_merge', 'params', 'flops', 'latency_s', 'genotype',
                  'config']
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
