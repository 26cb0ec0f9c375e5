"""ResumedValidationHook: which resumed iterations validate, and how the train tool adds it.

A resumed run that validates its checkpoint is trained in
tests/test_configs/test_protocol_table.py (a row whose final validation was cut off)."""
import json

import pytest
from mmengine.config import Config

from seg101_mm.engine import is_validation_step, logged_validation
from seg101_mm.engine import validation_schedule as _loop
from seg101_mm.tools.train import add_resumed_validation


def test_validation_steps_follow_the_iteration_loop():
    loop = _loop(2000, 500)
    assert [i for i in range(0, 2001, 250) if is_validation_step(loop, i)] == [
        500, 1000, 1500, 2000
    ]
    # the last iteration validates even off the interval; nothing before val_begin does
    assert is_validation_step(_loop(1800, 500), 1800)
    assert not is_validation_step(_loop(2000, 500, val_begin=1001), 1000)
    # dynamic intervals: every 500 until 1000, then every 100 (the loop's own rule)
    loop = _loop(2000, 500, dynamic_intervals=[(999, 100)])
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


def test_a_logged_validation_is_found_in_the_scalar_logs_of_earlier_runs(tmp_path):
    assert not logged_validation(tmp_path, 500)  # no logs: validate
    logs = tmp_path / '20260101_000000' / 'vis_data'
    logs.mkdir(parents=True)
    train = dict(loss=0.4, lr=1e-3, time=0.8, iter=500, step=500)
    (logs / 'scalars.json').write_text(json.dumps(train) + '\n{"mIoU": 5')  # a torn line
    assert not logged_validation(tmp_path, 500)  # the training line of 500 is no validation
    with open(logs / 'scalars.json', 'a') as f:
        f.write('\n' + json.dumps(dict(mIoU=53.2, time=0.5, step=500)) + '\n')
    assert logged_validation(tmp_path, 500) and not logged_validation(tmp_path, 1000)
