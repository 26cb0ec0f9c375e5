"""Curves and summaries of mmengine's JSON logs (``analyze_logs.py``'s work).

mmengine writes one JSON object per line: ``<work_dir>/<timestamp>/vis_data/scalars.json``
(every scalar, training and validation) and ``<work_dir>/<timestamp>/<timestamp>.json`` (the
same lines plus the final test metrics, logged at step 0). Each line has a ``step`` (the
iteration, or the epoch for epoch-based validation); a line without one, or at step 0, belongs
to the step before it, as in mmseg's reader.
"""
import json
import math
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from .common import ToolError


def load_json_log(path: str) -> Dict[int, Dict[str, list]]:
    """``{step: {key: [values...]}}`` of one log, steps in file order."""
    if not osp.isfile(path):
        raise ToolError(f'log {path!r} does not exist (expected an mmengine JSON log, e.g. '
                        f'<work_dir>/<timestamp>/vis_data/scalars.json)')
    steps: Dict[int, Dict[str, list]] = {}
    prev = 0
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ToolError(f'{path}:{lineno}: not a JSON line ({e.msg})') from None
            if not isinstance(entry, dict):
                raise ToolError(f'{path}:{lineno}: expected a JSON object, got '
                                f'{type(entry).__name__}')
            step = entry.get('step')
            if isinstance(step, int) and step != 0:
                prev = step
            step = prev
            bucket = steps.setdefault(step, defaultdict(list))
            for key, value in entry.items():
                if key != 'step':
                    bucket[key].append(value)
    return steps


def series(log: Dict[int, Dict[str, list]], key: str):
    """``(steps, values)`` of one key; numeric values only, the last one at each step."""
    xs, ys = [], []
    for step, values in log.items():
        vals = [
            v for v in values.get(key, ())
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if vals:
            xs.append(step)
            ys.append(float(vals[-1]))
    return xs, ys


def log_keys(log) -> List[str]:
    return sorted({k for values in log.values() for k in values})


def _lower_is_better(key: str) -> bool:
    name = key.rsplit('/', 1)[-1].lower()
    return 'loss' in name or name in ('time', 'data_time', 'memory', 'lr')


def summarize(logs: Sequence[dict], keys: Sequence[str], names: Sequence[str]) -> List[str]:
    """One line per log and key: number of points, last value and best value (max, or min
    for losses and times) with its step."""
    lines = []
    for log, name in zip(logs, names):
        for key in keys:
            xs, ys = series(log, key)
            if not xs:
                raise ToolError(f'key {key!r} is not in {name} (keys there: '
                                f'{", ".join(log_keys(log)) or "none"})')
            pick = min if _lower_is_better(key) else max
            best = pick(range(len(ys)), key=lambda i: ys[i])
            lines.append(f'{name}: {key}: {len(xs)} points, last {ys[-1]:.4f} at step '
                         f'{xs[-1]}, best {ys[best]:.4f} at step {xs[best]}')
    return lines


def plot_curve(logs: Sequence[dict],
               keys: Sequence[str],
               legend: Optional[Sequence[str]] = None,
               title: Optional[str] = None,
               out: Optional[str] = None,
               style: str = 'default',
               backend: Optional[str] = None) -> Optional[str]:
    """One curve per (log, key) against the step, in one figure; saved to ``out`` when given,
    shown otherwise."""
    import matplotlib
    if backend is not None:
        matplotlib.use(backend)
    elif out is not None:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    curves = len(logs) * len(keys)
    if legend is None:
        legend = [
            f'{name}' if len(logs) == 1 else f'log{i}_{name}' for i in range(len(logs))
            for name in keys
        ]
    if len(legend) != curves:
        raise ToolError(f'--legend needs {curves} names (logs x keys), got {len(legend)}')
    if style not in plt.style.available and style != 'default':
        raise ToolError(f'--style {style!r} is not a matplotlib style (e.g. default, ggplot, '
                        f'{", ".join(sorted(plt.style.available)[:3])})')
    with plt.style.context(style):
        fig, ax = plt.subplots(figsize=(6, 4))
        i = 0
        for log in logs:
            for key in keys:
                xs, ys = series(log, key)
                ys = [y if math.isfinite(y) else float('nan') for y in ys]
                ax.plot(xs, ys, marker='o' if len(xs) < 30 else None, label=legend[i])
                i += 1
        ax.set_xlabel('step')
        ax.set_ylabel(keys[0] if len(keys) == 1 else 'value')
        if title:
            ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        if out is not None:
            os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
            fig.savefig(out, dpi=120)
        else:
            plt.show()
        plt.close(fig)
    return out
