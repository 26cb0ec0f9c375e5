"""Validation of a resumed checkpoint whose validation may not have been logged.

mmengine's iteration loop saves the checkpoint of a validation step before it validates. A
run stopped during that validation resumes from the checkpoint and goes on training, so the
validation of that step is never logged and the run's val curve has a hole. This hook
validates once before the resumed training starts when the checkpoint falls on a validation
step that the work dir's scalar logs do not hold.
"""
import bisect
import json
from pathlib import Path
from types import SimpleNamespace

from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.utils import calc_dynamic_intervals
from mmseg.registry import HOOKS


def validation_schedule(max_iters: int,
                        val_interval: int = 1000,
                        val_begin: int = 1,
                        dynamic_intervals=None) -> SimpleNamespace:
    """The validation steps of an ``IterBasedTrainLoop`` built with these arguments (its
    defaults), in the shape :func:`is_validation_step` reads, without building the loop."""
    milestones, intervals = calc_dynamic_intervals(val_interval, dynamic_intervals)
    return SimpleNamespace(max_iters=max_iters, val_interval=val_interval, val_begin=val_begin,
                           dynamic_milestones=milestones, dynamic_intervals=intervals)


def is_validation_step(loop: IterBasedTrainLoop, iteration: int) -> bool:
    """Whether ``loop`` validates right after training iteration ``iteration`` (the rule of
    ``IterBasedTrainLoop.run``, dynamic intervals included)."""
    if iteration <= 0 or iteration < loop.val_begin:
        return False
    step = bisect.bisect(loop.dynamic_milestones, iteration + 1)
    interval = loop.dynamic_intervals[step - 1]
    return iteration % interval == 0 or iteration == loop.max_iters


def scalar_log_entries(work_dir):
    """The JSON lines of the runs' ``<timestamp>/vis_data/scalars.json`` in ``work_dir``
    (mmengine's local visualisation backend), oldest run first; lines torn by a kill are
    skipped."""
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        with open(path) as f:
            for line in f:
                try:
                    entry = json.loads(line) if line.strip() else None
                except json.JSONDecodeError:
                    entry = None
                if isinstance(entry, dict):
                    yield entry


def logged_validation(work_dir, step: int) -> bool:
    """Whether a run in ``work_dir`` logged a validation at ``step``: a scalar-log line with
    that ``step`` and no training ``iter``."""
    return any(
        entry.get('step') == step and 'iter' not in entry
        for entry in scalar_log_entries(work_dir))


@HOOKS.register_module()
class ResumedValidationHook(Hook):
    """Before a resumed iteration-based run trains, validate the resumed checkpoint when its
    iteration is a validation step that the work dir's earlier runs have not logged (without
    their scalar logs, it validates). Epoch-based loops and fresh runs are left alone."""

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop) or runner.val_loop is None:
            return
        if is_validation_step(loop, runner.iter) and \
                not logged_validation(runner.work_dir, runner.iter):
            runner.logger.info(f'Validating the resumed checkpoint of iteration {runner.iter}')
            runner.val_loop.run()
