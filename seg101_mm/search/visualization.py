"""Search progress as scalars for mmengine's visualization backends (TensorBoard and others).

:func:`write_search_scalars` turns the ledger's finished candidates into one point per
candidate, in the order they finished, so a long search can be watched live in TensorBoard:

- ``search/score``: the candidate's score (the search's ``score`` metric, val mIoU by
  default), for those that trained;
- ``search/best_score``: the best score so far;
- ``search/failed``: how many candidates have failed so far;
- ``search/round``: the round that proposed the candidate;
- ``candidate/<metric>``: each numeric val metric of the candidate (``candidate/IoU.road``...);
- ``measure/<name>``: each numeric measure of the candidate (params, FLOPs, proxy scores).

The step of a point is the number of candidates finished when it finished (1, 2, ...).
Given the number already written, a call writes only the new points, so the loop can call it
after every finished candidate.
"""
import math
from pathlib import Path
from typing import List

FINISHED = ('done', 'failed')


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def finished_in_order(records: List[dict]) -> List[dict]:
    """Done and failed records in the order they finished (``ended_at``, then ``id``);
    records without an end time come last, by id."""
    done = [r for r in records if r.get('status') in FINISHED]
    return sorted(
        done, key=lambda r: (r.get('ended_at') is None, r.get('ended_at') or 0.0, r['id']))


def search_scalars(records: List[dict]) -> List[dict]:
    """One ``{tag: value}`` dict per finished candidate, in finishing order (see module doc)."""
    out, best, failed = [], None, 0
    for rec in finished_in_order(records):
        point = {}
        score = _number(rec.get('score')) if rec['status'] == 'done' else None
        if rec['status'] == 'failed':
            failed += 1
        if score is not None:
            point['search/score'] = score
            best = score if best is None else max(best, score)
        if best is not None:
            point['search/best_score'] = best
        point['search/failed'] = float(failed)
        if _number(rec.get('round')) is not None:
            point['search/round'] = float(rec['round'])
        for group, values in (('candidate', rec.get('metrics')), ('measure', rec.get('measures'))):
            for name, value in sorted((values or {}).items()):
                if _number(value) is not None:
                    point[f'{group}/{name}'] = _number(value)
        out.append(point)
    return out


def write_search_scalars(target, records: List[dict], start: int = 0) -> int:
    """Write the per-candidate and best-so-far scalars of ``records`` from point ``start`` on.

    Args:
        target: An mmengine ``Visualizer`` (its backends receive the points: a
            ``TensorboardVisBackend`` writes events, a ``LocalVisBackend`` its
            ``scalars.json``), or a log folder (str / Path), where a ``TensorboardVisBackend``
            is opened, written and closed.
        records (list[dict]): Ledger records (``Ledger.records()``); unfinished ones are
            skipped.
        start (int): Points already written (the value a previous call returned).

    Returns:
        int: The number of finished candidates, i.e. ``start`` for the next call.
    """
    if start < 0:
        raise ValueError(f'start must be >= 0 (points already written), got {start}')
    points = search_scalars(records)
    if isinstance(target, (str, Path)):
        from mmengine.visualization import TensorboardVisBackend
        backend = TensorboardVisBackend(save_dir=str(target))
        try:
            for step, point in enumerate(points[start:], start + 1):
                backend.add_scalars(point, step=step)
        finally:
            backend.close()
    elif hasattr(target, 'add_scalars'):
        for step, point in enumerate(points[start:], start + 1):
            target.add_scalars(point, step=step)
    else:
        raise TypeError(f'target must be an mmengine Visualizer or a log folder path, got '
                        f'{type(target).__name__}')
    return len(points)
