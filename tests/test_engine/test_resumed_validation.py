"""ResumedValidationHook: which resumed iterations validate, and how the train tool adds it."""
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.runner.utils import calc_dynamic_intervals

from seg101_mm.engine import is_validation_step
from seg101_mm.tools.train import add_resumed_validation


def _loop(val_interval, max_iters, val_begin=1, dynamic_intervals=None):
    milestones, intervals = calc_dynamic_intervals(val_interval, dynamic_intervals)
    return SimpleNamespace(val_interval=val_interval, val_begin=val_begin, max_iters=max_iters,
                           dynamic_milestones=milestones, dynamic_intervals=intervals)


def test_validation_steps_follow_the_iteration_loop():
    loop = _loop(500, 2000)
    assert [i for i in range(0, 2001, 250) if is_validation_step(loop, i)] == [
        500, 1000, 1500, 2000
    ]
    # the last iteration validates even off the interval; nothing before val_begin does
    assert is_validation_step(_loop(500, 1800), 1800)
    assert not is_validation_step(_loop(500, 2000, val_begin=1001), 1000)
    # dynamic intervals: every 500 until 1000, then every 100 (the loop's own rule)
    loop = _loop(500, 2000, dynamic_intervals=[(999, 100)])
    assert [i for i in (500, 900, 1000, 1100, 1150) if is_validation_step(loop, i)] == [
        500, 1000, 1100
    ]


@pytest.mark.parametrize('hooks', [None, [dict(type='EMAHook')]])
def test_the_train_tool_adds_the_hook_once_to_a_resumed_run(hooks):
    cfg = Config(dict(custom_hooks=hooks) if hooks is not None else {})
    add_resumed_validation(cfg)
    add_resumed_validation(cfg)
    types = [h['type'] for h in cfg.custom_hooks]
    assert types == [h['type'] for h in hooks or []] + ['ResumedValidationHook']
