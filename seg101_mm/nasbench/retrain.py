"""Retrain benchmark entries from what their file records: the reproducibility check.

An entry of SEG101-Bench is its genotype, the recipe its ``meta`` names (the search config and
its candidate template) and the recorded training seed. :func:`retrain` trains chosen entries
again through the search's own candidate configs and launcher, with the recorded seed and with
other seeds, and :func:`summarise` compares: the retraining with the recorded seed reproduces
an entry when its val mIoU lies within the seed noise (twice the standard deviation of val mIoU
over the seeds) of the recorded value. CPU training is not bit-reproducible across machines,
and a backbone regenerated on another machine has other weights (``backbone_sha256``), so the
seed noise, not equality, is the measure.

Every training writes ``result.json`` in its own work dir; a second run reuses the finished
ones, so a stopped check continues where it stopped. ``tools/analysis_tools/
retrain_nasbench.py`` is the command.
"""
import math
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .table import NASBench, NASBenchError

#: A retraining with the recorded seed reproduces its entry within this many standard
#: deviations of val mIoU over the seeds.
NOISE_SIGMAS = 2.0


def _entry(bench: NASBench, ref) -> dict:
    """An entry by id (int or digits) or by genotype / canonical key."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = [e for e in bench if e.get('id') == int(ref)]
        if not found:
            ids = sorted(e['id'] for e in bench)
            raise NASBenchError(f'no entry with id {ref} in the benchmark; expected one of '
                                f'{ids[:5]} ... {ids[-1]}' if ids else 'the benchmark is '
                                'empty')
        return found[0]
    return bench.query(ref)


def _template(bench: NASBench, config: Optional[str], data_root: Optional[str]):
    """The candidate template (resolved), data root and launcher config the entries used."""
    from mmengine.config import Config

    from seg101_mm.search.templates import load_template
    config = config or bench.meta.get('search_config')
    if not config or not Path(config).is_file():
        raise NASBenchError(f'search config {config!r} of the benchmark not found; expected '
                            'the file its meta names, or pass --config')
    train_cfg = Config.fromfile(config).to_dict().get('train_cfg') or {}
    cand = train_cfg.get('candidate') or {}
    root = data_root or cand.get('data_root')
    if root is None or not Path(root).is_dir():
        raise NASBenchError(f'data root {root!r} not found; expected the dataset folder the '
                            'benchmark was trained on (--data-root)')
    template = load_template(cand['template'], cand.get('overrides'), cand.get('iters'))
    launcher = train_cfg.get('launcher') or dict(type='LocalLauncher')
    return template, str(Path(root).resolve()), launcher, train_cfg.get('candidate_timeout')


def retrain(bench: NASBench,
            refs: Sequence,
            seeds: Sequence[int],
            work_dir,
            config: Optional[str] = None,
            data_root: Optional[str] = None,
            launcher: Optional[dict] = None,
            poll_interval: float = 2.0,
            progress: Optional[Callable[[str], None]] = None) -> list:
    """Train the entries ``refs`` (ids or genotypes) once per seed of ``seeds``.

    Returns one row per (entry, seed): ``id``, ``key``, ``seed``, ``recorded_seed``,
    ``recorded`` (the entry's val metrics), ``val`` (the retraining's, or None when it
    failed), ``cause`` and ``backbone_sha256``.
    """
    from seg101_mm.search.config_writer import candidate_config, write_config
    from seg101_mm.search.launchers import Job, build_launcher
    from seg101_mm.search.result_hook import read_result
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        raise NASBenchError(f'seeds {list(seeds)!r} are not allowed; expected ints')
    entries = [_entry(bench, r) for r in refs]
    template, root, launcher_cfg, timeout = _template(bench, config, data_root)
    work_dir = Path(work_dir)
    todo, rows = [], {}
    for e in entries:
        for seed in seeds:
            name = f'{e["id"]:04d}_seed{seed}'
            wd = work_dir / name
            rows[name] = dict(
                id=e['id'],
                key=e['key'],
                seed=seed,
                recorded_seed=(bench.meta.get('seeds') or {}).get('training'),
                recorded=e['val'],
                val=None,
                cause=None,
                backbone_sha256=None)
            done = read_result(wd)
            if done is not None and done.get('status') == 'done':
                _fill(rows[name], done)
                continue
            cfg = candidate_config(
                template,
                e['genotype'],
                data_root=root,
                work_dir=str(wd),
                seed=seed,
                extra_hooks=[dict(type='SearchResultHook', timeout=timeout)])
            path = write_config(
                work_dir / 'configs' / f'{name}.py',
                cfg,
                header=f'SEG101-Bench entry {e["id"]} retrained with seed '
                f'{seed}\ngenotype: {e["genotype"]}')
            todo.append(
                Job(cid=len(todo),
                    config=str(path),
                    work_dir=str(wd),
                    log=str(wd / 'train.log'),
                    timeout=timeout,
                    info=dict(name=name)))
    say = progress or (lambda m: None)
    say(f'{len(rows) - len(todo)} of {len(rows)} retrainings already done; training '
        f'{len(todo)}')
    runner = build_launcher(launcher or launcher_cfg)
    pending, finished = list(todo), 0
    try:
        while pending or runner.running:
            while pending and runner.slots() > 0:
                runner.submit(pending.pop(0))
            for job, result in runner.poll():
                finished += 1
                row = rows[job.info['name']]
                if result['status'] == 'done':
                    _fill(row, read_result(job.work_dir) or result)
                else:
                    row['cause'] = result.get('cause')
                say(f'[{finished}/{len(todo)}] entry {row["id"]} seed {row["seed"]}: ' +
                    (f'val mIoU {row["val"]["mIoU"]:.2f} (recorded '
                     f'{row["recorded"]["mIoU"]:.2f})' if row['val'] else f'failed: {row["cause"]}'
                     ))
            if pending or runner.running:
                time.sleep(poll_interval)
    finally:
        runner.shutdown()
    return list(rows.values())


def _fill(row: dict, result: dict):
    from .builder import rounded_metrics
    row['val'] = rounded_metrics(result.get('metrics'))
    row['backbone_sha256'] = result.get('backbone_sha256')


def summarise(rows: Sequence[dict], metric: str = 'mIoU') -> list:
    """Per entry: the recorded value, the retraining with the recorded seed, the mean and
    standard deviation over every seed, and whether the recorded seed reproduces it."""
    out = []
    for eid in sorted({r['id'] for r in rows}):
        mine = [r for r in rows if r['id'] == eid]
        vals = [r['val'][metric] for r in mine if r['val'] and metric in r['val']]
        same = [r['val'][metric] for r in mine if r['val'] and r['seed'] == r['recorded_seed']]
        recorded = mine[0]['recorded'].get(metric)
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
        gap = abs(same[0] - recorded) if same and recorded is not None else math.nan
        out.append(
            dict(
                id=eid,
                key=mine[0]['key'],
                metric=metric,
                recorded=recorded,
                recorded_seed_value=same[0] if same else None,
                seeds=[r['seed'] for r in mine],
                values=vals,
                mean=float(np.mean(vals)) if vals else math.nan,
                std=std,
                gap=gap,
                within_noise=bool(gap <= NOISE_SIGMAS *
                                  std) if math.isfinite(gap) and math.isfinite(std) else None))
    return out


def write_retrain(path, bench_path, rows: Sequence[dict], summary: Sequence[dict]):
    """The rows and the summary as one JSON file (through a temporary name and a rename)."""
    from seg101_mm.search.result_hook import write_result
    path = Path(path)
    data = dict(
        benchmark=str(bench_path),
        noise_sigmas=NOISE_SIGMAS,
        rows=list(rows),
        summary=[{
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in s.items()
        } for s in summary])
    write_result(path.parent, data, path.name)
    return path
