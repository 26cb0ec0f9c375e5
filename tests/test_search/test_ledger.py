"""The JSONL ledger: replay, torn last line after a kill, validation."""
import json

import pytest

from seg101_mm.search.ledger import Ledger


def make(tmp_path, fsync=False):
    return Ledger(tmp_path / 'ledger.jsonl', fsync=fsync)


def test_events_replay_to_the_same_state(tmp_path):
    led = make(tmp_path, fsync=True)
    led.propose([dict(id=0, genotype='g0', key='k0', round=0),
                 dict(id=1, genotype='g1', key='k1', round=0)], dict(round=1, seed=0))
    led.update(0, status='running', started_at=1.0, pid=123)
    led.update(0, status='done', score=55.5, metrics={'mIoU': 55.5})
    led.update(1, status='failed', cause='timeout: killed after 5 s', log='x.log')
    led.save_strategy(dict(round=2, seed=0))
    led.close()
    again = make(tmp_path)
    assert again.records() == led.records()
    assert [r['status'] for r in again.records()] == ['done', 'failed']
    assert again.records('done')[0]['score'] == 55.5 and again.records()[0]['pid'] == 123
    assert again.strategy_state == dict(round=2, seed=0)
    assert again.next_id() == 2 and len(again) == 2


def test_torn_last_line_is_dropped_and_truncated(tmp_path):
    led = make(tmp_path)
    led.propose([dict(id=0, genotype='g0', key='k0', round=0)], dict(round=1))
    led.update(0, status='running')
    led.close()
    path = tmp_path / 'ledger.jsonl'
    good = path.read_bytes()
    full_event = json.dumps(dict(event='update', id=0, fields=dict(status='done'))).encode()
    for cut in (1, len(full_event) // 2, len(full_event)):  # a kill at any byte of a write
        path.write_bytes(good + full_event[:cut])
        led = make(tmp_path)
        assert led.records()[0]['status'] == 'running'
        assert led.dropped_tail == full_event[:cut]
        assert path.read_bytes() == good  # the next event starts on a fresh line
        led.update(0, status='done')
        led.close()
        assert make(tmp_path).records()[0]['status'] == 'done'
        path.write_bytes(good)


def test_damage_before_the_last_line_and_bad_fields_are_errors(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    path.write_bytes(b'{not json}\n{"event": "strategy", "strategy": {}}\n')
    with pytest.raises(ValueError, match='ledger.jsonl:1 is not a JSON event'):
        make(tmp_path)
    path.write_bytes(b'{"event": "update", "id": 7, "fields": {}}\n')
    with pytest.raises(ValueError, match='update of unknown candidate id 7'):
        make(tmp_path)
    path.unlink()
    led = make(tmp_path)
    led.propose([dict(id=0, genotype='g', key='k', round=0)])
    with pytest.raises(ValueError, match="status must be one of"):
        led.update(0, status='finished')
    with pytest.raises(ValueError, match=r"unknown candidate fields \['colour'\]"):
        led.update(0, colour='red')
    with pytest.raises(ValueError, match='Out of range float'):
        led.update(0, score=float('nan'))  # JSON has no NaN: a failed score is None
