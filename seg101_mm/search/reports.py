"""What a search leaves in its work_dir besides the ledger (docs/method.md s. 6, paper Fig. 2).

The score is the val metric the search ranks by (``train_cfg.score``, val mIoU by default).

- ``leaderboard.csv``: every candidate, best score first (failed ones last, with the cause
  and the log that holds it); the score's column is named after its metric;
- ``best.json`` and ``best_<key-hash>_full-train.py``: the best architecture, and a standalone
  mmseg config that trains it with the full recipe (the search config's ``export`` template,
  the paper's 100 epochs by default); when another candidate takes the lead, its config
  replaces the previous one;
- ``plots/top10_per_round.png``: box plot of the 10 best scores after each round;
  ``plots/miou_hist.png``: histogram of every score; ``plots/best_so_far.png``: best score
  against the number of trained candidates.

Plots use matplotlib's Agg backend and are skipped with a message if matplotlib is missing.
"""
import csv
import hashlib
import json
import os
import re
from pathlib import Path
from typing import List, Optional

#: Candidates per round in ``plots/top10_per_round.png``: the paper's Fig. 2 box-plots the 10
#: best val mIoU after each round.
TOP_PER_ROUND = 10
#: Name of the exported full-training config: ``best_<first 8 hex of sha1(key)>_full-train.py``.
EXPORT_NAME = re.compile(r'best_[0-9a-f]{8}_full-train\.py')
#: The search's score unless its config names another val metric (``train_cfg.score``).
DEFAULT_SCORE = 'mIoU'


def columns(score: str = DEFAULT_SCORE) -> tuple:
    """Columns of ``leaderboard.csv``; the score's column is named after its metric."""
    return ('rank', 'id', 'round', 'status', score, 'key', 'params', 'flops', 'train_s', 'cause',
            'log', 'config')


def leaderboard(records: List[dict], score: str = DEFAULT_SCORE) -> List[dict]:
    """Rows of the leaderboard: done candidates by score (ties by id), then the others."""
    done = sorted((r for r in records if r['status'] == 'done'),
                  key=lambda r: (-r['score'], r['id']))
    rest = sorted((r for r in records if r['status'] != 'done'), key=lambda r: r['id'])
    rows = []
    for i, r in enumerate(done + rest):
        m = r.get('measures') or {}
        t = (r['ended_at'] - r['started_at']) if r.get('ended_at') and r.get('started_at') \
            else None
        rows.append(
            dict(
                rank=i + 1 if r['status'] == 'done' else '',
                id=r['id'],
                round=r.get('round'),
                status=r['status'],
                **{score: '' if r.get('score') is None else f'{r["score"]:.4f}'},
                key=r['key'],
                params=m.get('params', ''),
                flops=m.get('flops', ''),
                train_s='' if t is None else f'{t:.1f}',
                cause=r.get('cause') or '',
                log=r.get('log', '') if r['status'] == 'failed' else '',
                config=r.get('config', '')))
    return rows


def _replace(path, write, mode='w'):
    # reports are rewritten after every round: a reader never sees a half-written one
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, mode, newline='') as fh:
        write(fh)
    os.replace(tmp, path)
    return path


def write_leaderboard(records, path, score: str = DEFAULT_SCORE):

    def write(fh):
        writer = csv.DictWriter(fh, fieldnames=columns(score))
        writer.writeheader()
        writer.writerows(leaderboard(records, score))

    return _replace(Path(path), write)


def export_best(records,
                work_dir,
                export: dict,
                data_root=None,
                score: str = DEFAULT_SCORE) -> Optional[Path]:
    """Write the full-training config of the best candidate; None if nothing succeeded."""
    from mmengine.config import Config

    from .config_writer import candidate_config, write_config
    done = [r for r in records if r['status'] == 'done']
    if not done:
        return None
    best = max(done, key=lambda r: (r['score'], -r['id']))
    cfg = Config.fromfile(export['template'])
    if export.get('overrides'):
        cfg.merge_from_dict(dict(export['overrides']))
    tag = hashlib.sha1(best['key'].encode()).hexdigest()[:8]
    name = f'best_{tag}_full-train'
    out = candidate_config(
        cfg.to_dict(), best['genotype'], data_root=data_root, work_dir=f'./work_dirs/{name}')
    path = Path(work_dir) / f'{name}.py'
    header = (f'Best architecture of the search in {work_dir}: candidate {best["id"]}, search '
              f'val {score} {best["score"]:.2f}\nFull training (docs/method.md section 7): '
              f'tools/dist_train.sh {path} <GPUS>\nThe backbone starts from random weights '
              'unless model.backbone.init_cfg points at a pretrained checkpoint.')
    write_config(path, out, header=header)
    text = json.dumps(
        dict(
            id=best['id'],
            genotype=best['genotype'],
            key=best['key'],
            score=best['score'],
            score_metric=score,
            metrics=best.get('metrics'),
            config=str(path)),
        indent=1)
    _replace(Path(work_dir) / 'best.json', lambda fh: fh.write(text))
    # a config exported when another candidate led would read as a second best
    for stale in Path(work_dir).glob('best_*_full-train.py'):
        if stale.name != path.name and EXPORT_NAME.fullmatch(stale.name):
            stale.unlink()
    return path


def plot_search(records, out_dir, score: str = DEFAULT_SCORE) -> List[Path]:
    """The three PNG plots; returns their paths."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = sorted((r for r in records if r['status'] == 'done'), key=lambda r: r['id'])
    if not done:
        return []
    paths = []

    def save(fig, ax, name, xlabel, ylabel):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.tight_layout()
        paths.append(out_dir / name)
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

    rounds = sorted({r['round'] for r in done})
    boxes = []
    for rnd in rounds:
        scores = sorted((r['score'] for r in done if r['round'] <= rnd), reverse=True)
        boxes.append(scores[:TOP_PER_ROUND])
    fig, ax = plt.subplots(figsize=(max(4, len(rounds) * 0.6 + 2), 3.5))
    ax.boxplot(boxes)
    ax.set_xticks(range(1, len(rounds) + 1), [str(r) for r in rounds])
    save(fig, ax, f'top{TOP_PER_ROUND}_per_round.png', 'round',
         f'val {score} (%) of the {TOP_PER_ROUND} best so far')

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist([r['score'] for r in done], bins=min(20, max(5, len(done) // 2)))
    save(fig, ax, 'miou_hist.png', f'val {score} (%)', 'candidates')

    trained = sorted((r for r in records if r['status'] in ('done', 'failed')),
                     key=lambda r: r['id'])
    best, xs, ys = float('-inf'), [], []
    for i, r in enumerate(trained, 1):
        if r['status'] == 'done':
            best = max(best, r['score'])
        if best > float('-inf'):
            xs.append(i)
            ys.append(best)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.step(xs, ys, where='post')
    save(fig, ax, 'best_so_far.png', 'candidates trained', f'best val {score} so far (%)')
    return paths


def write_reports(records,
                  work_dir,
                  export: Optional[dict] = None,
                  data_root=None,
                  score: str = DEFAULT_SCORE):
    """Leaderboard, plots and (with ``export``) the best full-training config."""
    work_dir = Path(work_dir)
    out = dict(
        leaderboard=write_leaderboard(records, work_dir / 'leaderboard.csv', score),
        plots=plot_search(records, work_dir / 'plots', score))
    if export:
        out['best_config'] = export_best(records, work_dir, export, data_root, score)
    return out
