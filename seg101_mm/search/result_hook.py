"""How a candidate's training reports back to the search: ``result.json`` in its work_dir.

Every generated candidate config adds ``dict(type='SearchResultHook')`` to ``custom_hooks``.
The hook writes (atomically, on rank 0) ``{"status": "done", "metrics": {...}}`` after the
final validation, or ``{"status": "failed", "cause": ...}`` when the training loss stops being
finite or the candidate runs past its time limit (it then raises, which ends the job). The
search reads the file with :func:`read_result`; a job that ends without writing it crashed.

A done result also holds the learning curve (``curve``: the metrics of every validation, with
its iteration), the seconds spent in validation (``val_seconds``) and, with ``test=True``, the
test split's metrics after training (``test_metrics``, ``test_seconds``): what a benchmark of
trained architectures records (docs/study.md). A backbone that starts from a local
``Pretrained`` file (an in-house backbone, :mod:`seg101_mm.models.backbone_weights`) is named by
the hash of its weights (``backbone_sha256``), so that every result says what it started from.
"""
import json
import math
import numbers
import os
import time
from pathlib import Path

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

RESULT_FILE = 'result.json'


def write_result(work_dir, result: dict, name: str = RESULT_FILE, sort_keys: bool = True):
    """Write ``result`` as JSON to ``work_dir/name`` atomically (a reader sees the old file or
    the new one); ``sort_keys=False`` keeps the dicts' own order (e.g. a curve by iteration)."""
    path = Path(work_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(name + f'.{os.getpid()}.tmp')
    with open(tmp, 'w') as fh:
        json.dump(result, fh, indent=1, sort_keys=sort_keys)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_result(work_dir, name: str = RESULT_FILE):
    """The result a candidate wrote, or None if it wrote none (or a damaged one)."""
    path = Path(work_dir) / name
    try:
        with open(path) as fh:
            result = json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) and 'status' in result else None


class CandidateFailed(RuntimeError):
    """Raised by :class:`SearchResultHook` to end a candidate that cannot succeed."""


@HOOKS.register_module()
class SearchResultHook(Hook):
    """Write a search candidate's final val metrics (or why it failed) to ``result.json``.

    Args:
        result_file (str): File name inside the runner's work_dir.
        timeout (float, optional): Seconds after ``before_run`` at which the candidate gives
            up (checked every iteration). The launchers also enforce it from outside.
        check_finite (bool): Fail on the first non-finite training loss.
        test (bool): After training, also run the test loop (``test_dataloader``,
            ``test_evaluator``) and record its metrics.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 result_file: str = RESULT_FILE,
                 timeout=None,
                 check_finite=True,
                 test: bool = False):
        self.result_file = result_file
        self.timeout = timeout
        self.check_finite = check_finite
        self.test = test
        self.metrics = None
        self.curve = []
        self.val_seconds = 0.0
        self.start = None
        self._val_start = None
        self.backbone_sha256 = None

    def _write(self, runner, result):
        if get_rank() == 0:
            result = dict(result, iter=runner.iter, elapsed=time.time() - (self.start or 0))
            write_result(runner.work_dir, result, self.result_file)

    def before_run(self, runner):
        self.start = time.time()
        path = Path(runner.work_dir) / self.result_file
        if get_rank() == 0 and path.exists():
            path.unlink()  # a stale result of an earlier attempt must not be read back
        from seg101_mm.models.backbone_weights import pretrained_weights_sha256
        model = (getattr(runner, 'cfg', None) or {}).get('model') or {}
        backbone = model.get('backbone') or {}
        self.backbone_sha256 = pretrained_weights_sha256(backbone.get('init_cfg'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.check_finite and outputs:
            for name, value in outputs.items():
                value = float(value.detach()) if hasattr(value, 'detach') else float(value)
                if 'loss' in name and not math.isfinite(value):
                    cause = f'non-finite {name} ({value}) at iteration {runner.iter + 1}'
                    self._write(runner, dict(status='failed', cause=cause))
                    raise CandidateFailed(cause)
        if self.timeout is not None and time.time() - self.start > self.timeout:
            cause = f'timeout: over {self.timeout} s at iteration {runner.iter + 1}'
            self._write(runner, dict(status='failed', cause=cause))
            raise CandidateFailed(cause)

    def before_val_epoch(self, runner):
        self._val_start = time.time()

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = _numbers(metrics)
        self.curve.append(dict(iter=runner.iter, metrics=self.metrics))
        if self._val_start is not None:
            self.val_seconds += time.time() - self._val_start

    def after_train(self, runner):
        if self.metrics is None:
            self._write(
                runner,
                dict(
                    status='failed',
                    cause='training ended without a '
                    'validation: set train_cfg.val_interval <= max_iters'))
            return
        result = dict(
            status='done', metrics=self.metrics, curve=self.curve, val_seconds=self.val_seconds)
        if self.backbone_sha256 is not None:
            result['backbone_sha256'] = self.backbone_sha256
        if self.test:
            start = time.time()
            result['test_metrics'] = _numbers(runner.test_loop.run())
            result['test_seconds'] = time.time() - start
        self._write(runner, result)


def _numbers(metrics) -> dict:
    return {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, numbers.Real)}
