"""Compute zero-cost proxies for one mmseg config, N sampled SEG101 genotypes, or a ledger.

docs/method.md section 8. Examples::

    # 20 SEG101 genotypes sampled with seed 0, random batch of 4 images at 256x256
    python tools/analysis_tools/zero_cost_proxies.py --num-genotypes 20 --seed 0 \\
        --out-dir work_dirs/proxies
    # the genotypes of a search ledger (JSONL) or a CSV with a ``genotype`` column,
    # on a batch from a dataset config's training pipeline (e.g. the real tiles)
    python tools/analysis_tools/zero_cost_proxies.py --ledger work_dirs/search/ledger.jsonl \\
        --data-config configs/_base_/datasets/mass_roads.py \\
        --cfg-options train_dataloader.dataset.data_root=data/mass_roads
    # one config (any mmseg segmentor; SyncBN becomes BN on a CPU)
    python tools/analysis_tools/zero_cost_proxies.py --config my_pspnet.py --proxies snip synflow

Writes ``proxies.csv`` (one row per architecture, appended as it goes) and ``proxies.json``.
A rerun with the same ``--out-dir`` skips keys already written. A proxy that fails or comes
out NaN/inf is written as NaN with its reason in the ``reasons`` column; the run goes on.
Each model is initialised with a seed derived from its key, so a row does not depend on the
order or the resumption of the run.
"""
import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar

from seg101_mm.nasbench.builder import stable_seed
from seg101_mm.models.builder import without_pretrained
from seg101_mm.proxies import (PAPER_PROXIES, ProxyEngine, available_proxies, batch_from_config,
                               random_batch)
from seg101_mm.proxies.correlation import read_records

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Zero-cost proxies of mmseg segmentors')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--config', help='an mmseg config whose model is scored')
    src.add_argument('--num-genotypes', type=int, help='sample this many SEG101 genotypes')
    src.add_argument(
        '--ledger',
        help='CSV/JSON/JSONL with a "genotype" column or field '
        '(a search ledger works)')
    p.add_argument('--genotype-seed', type=int, default=0, help='seed of the sampling')
    p.add_argument(
        '--proxies',
        nargs='+',
        default=list(PAPER_PROXIES) + ['nwot', 'zico', 'params', 'flops'],
        help=f'proxies to compute, from {available_proxies()}')
    p.add_argument(
        '--data-config',
        help='take the batch from this config\'s train pipeline '
        '(default: random tensors, or --config\'s own train_dataloader with '
        '--batch-from-config)')
    p.add_argument(
        '--batch-from-config',
        action='store_true',
        help='take the batch from --config\'s own train_dataloader')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument(
        '--img-size', type=int, nargs='+', default=[256], help='H [W] of the random batch')
    p.add_argument('--num-classes', type=int, default=2)
    p.add_argument('--chunk-size', type=int, default=None, help='micro-batch size')
    p.add_argument('--seed', type=int, default=0, help='seed of the batch and the passes')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads; 1 is much faster on a busy CPU machine')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out-dir', default='work_dirs/zero_cost_proxies')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override settings of --config / --data-config')
    args = p.parse_args(argv)
    unknown = sorted(set(args.proxies) - set(available_proxies()))
    if unknown:
        p.error(f'unknown proxies {unknown}; choose from {available_proxies()}')
    if args.num_genotypes is not None and args.num_genotypes < 1:
        p.error(f'--num-genotypes must be >= 1, got {args.num_genotypes}')
    return args


def bn_for_cpu(cfg):
    """Replace SyncBN norm configs by BN, recursively (SyncBN needs a GPU process group)."""
    if isinstance(cfg, dict):
        if cfg.get('type') in SYNC_BN_TYPES:
            cfg['type'] = 'BN'
        for v in cfg.values():
            bn_for_cpu(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            bn_for_cpu(v)
    return cfg


def architectures(args):
    """``[(key, description, build)]`` of the architectures to score."""
    from seg101_mm.space import Genotype, sample
    if args.config:
        cfg = Config.fromfile(args.config)
        cfg.merge_from_dict(args.cfg_options)

        def build():
            from mmseg.registry import MODELS
            model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model
            if args.device == 'cpu':
                bn_for_cpu(model_cfg)
            model_cfg.pop('pretrained', None)
            without_pretrained(model_cfg)
            with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
                model = MODELS.build(model_cfg)
            model.init_weights()
            return model

        key = Path(args.config).stem
        return [(key, args.config, build)]
    if args.num_genotypes:
        rng = random.Random(args.genotype_seed)
        genotypes, seen = [], set()
        while len(genotypes) < args.num_genotypes:
            g = sample(rng)
            if g.key not in seen:
                seen.add(g.key)
                genotypes.append(g)
    else:
        genotypes, seen = [], set()
        for row in read_records(args.ledger):
            text = row.get('genotype')
            if not text:
                continue
            g = Genotype.parse(text) if isinstance(text, str) else Genotype.from_dict(text)
            if g.key not in seen:
                seen.add(g.key)
                genotypes.append(g)
        if not genotypes:
            raise SystemExit(f'no genotype found in {args.ledger}; expected a "genotype" '
                             f'column or field')

    def builder(g):

        def build():
            from seg101_mm.models import build_seg101
            return build_seg101(g, num_classes=args.num_classes)

        return build

    return [(g.key, str(g), builder(g)) for g in genotypes]


def make_batch(args):
    data_cfg = args.data_config or (args.config if args.batch_from_config else None)
    if data_cfg:
        cfg = Config.fromfile(data_cfg)
        cfg.merge_from_dict(args.cfg_options)
        return batch_from_config(cfg, args.batch_size, seed=args.seed)
    size = tuple(args.img_size) if len(args.img_size) == 2 else (args.img_size[0], ) * 2
    return random_batch(args.batch_size, size, args.num_classes, seed=args.seed)


def done_keys(csv_path):
    if not csv_path.exists():
        return [], set()
    with open(csv_path, newline='') as fh:
        rows = list(csv.DictReader(fh))
    return rows, {r['key'] for r in rows}


def score_one(key, build, batch, args):
    """One output row; never raises (a failure becomes NaN scores and a reason)."""
    row = dict(key=key)
    engine = ProxyEngine(chunk_size=args.chunk_size, seed=args.seed)
    start = time.perf_counter()
    try:
        torch.manual_seed(stable_seed(key))
        model = build().to(args.device)
        scores = engine.compute(model, batch, args.proxies, errors='nan')
        row.update(scores)
        row['status'] = 'ok' if not engine.last_reasons else 'partial'
        reasons = dict(engine.last_reasons)
        del model
    except Exception as err:  # noqa: BLE001  recorded in the row, the run goes on
        row.update({p: math.nan for p in args.proxies})
        row['status'] = 'error'
        reasons = {'*': f'{type(err).__name__}: {err}'}
    row['seconds'] = round(time.perf_counter() - start, 3)
    row['chunk_size'] = engine.last_chunk_size
    row['reasons'] = json.dumps(reasons, sort_keys=True)
    return row


def write_json(path, rows, args):

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    payload = dict(
        proxies=args.proxies,
        batch_size=args.batch_size,
        seed=args.seed,
        rows=[{
            k: clean(v)
            for k, v in r.items()
        } for r in rows])
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def main(argv=None):
    args = parse_args(argv)
    # init_weights logs every tensor at INFO; keep the progress bar readable
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel('WARNING')
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / 'proxies.csv', out_dir / 'proxies.json'
    fields = ['key', 'genotype'] + list(
        args.proxies) + ['status', 'seconds', 'chunk_size', 'reasons']
    old_rows, done = done_keys(csv_path)
    if old_rows and list(old_rows[0].keys()) != fields:
        raise SystemExit(f'{csv_path} has columns {list(old_rows[0].keys())}, this run writes '
                         f'{fields}; use another --out-dir or the same --proxies')
    todo = [a for a in architectures(args) if a[0] not in done]
    print(
        f'{len(done)} architecture(s) already in {csv_path}, {len(todo)} to score',
        file=sys.stderr)
    rows = list(old_rows)
    if todo:
        batch = make_batch(args)
        new_file = not csv_path.exists()
        with open(csv_path, 'a', newline='') as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            if new_file:
                writer.writeheader()
            bar = ProgressBar(len(todo), file=sys.stderr)
            for key, description, build in todo:
                row = score_one(key, build, batch, args)
                row['genotype'] = description
                writer.writerow(row)
                fh.flush()
                rows.append(row)
                write_json(json_path, rows, args)
                bar.update()
            sys.stderr.write('\n')
    write_json(json_path, rows, args)
    bad = [r['key'] for r in rows if r.get('status') not in ('ok', )]
    print(f'wrote {len(rows)} row(s) to {csv_path} and {json_path}' +
          (f'; {len(bad)} with NaN/inf or errors (see the reasons column)' if bad else ''))
    return rows


if __name__ == '__main__':
    main()
