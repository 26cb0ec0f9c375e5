"""Validation of a resumed checkpoint whose validation may not have been logged.

mmengine's iteration loop saves the checkpoint of a validation step before it validates. A
run stopped during that validation resumes from the checkpoint and goes on training, so the
validation of that step is never logged and the run's val curve has a hole. This hook
validates once before the resumed training starts when the checkpoint falls on a validation
step; when the earlier run had logged it, the same scores are logged again.
"""
import bisect

from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS


def is_validation_step(loop: IterBasedTrainLoop, iteration: int) -> bool:
    """Whether ``loop`` validates right after training iteration ``iteration`` (the rule of
    ``IterBasedTrainLoop.run``, dynamic intervals included)."""
    if iteration <= 0 or iteration < loop.val_begin:
        return False
    step = bisect.bisect(loop.dynamic_milestones, iteration + 1)
    interval = loop.dynamic_intervals[step - 1]
    return iteration % interval == 0 or iteration == loop.max_iters


@HOOKS.register_module()
class ResumedValidationHook(Hook):
    """Before a resumed iteration-based run trains, validate the resumed checkpoint when its
    iteration is a validation step. Epoch-based loops and fresh runs are left alone."""

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop) or runner.val_loop is None:
            return
        if is_validation_step(loop, runner.iter):
            runner.logger.info(f'Validating the resumed checkpoint of iteration {runner.iter}')
            runner.val_loop.run()
