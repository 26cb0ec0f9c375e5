"""The JSONL ledger: replay, torn last line after a kill, validation."""
import json

import pytest

from seg101_mm.search.ledger import Ledger, LedgerError


def make(tmp_path, fsync=False):
    return Ledger(tmp_path / 'ledger.jsonl', fsync=fsync)


def test_events_replay_to_the_same_state(tmp_path):
    led = make(tmp_path, fsync=True)
    led.propose([
        dict(id=0, genotype='g0', key='k0', round=0),
        dict(id=1, genotype='g1', key='k1', round=0)
    ], dict(round=1, seed=0))
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
    for n, cut in enumerate((1, len(full_event) // 2, len(full_event) - 1), 1):
        # a kill at any byte of a write
        path.write_bytes(good + full_event[:cut])
        led = make(tmp_path)
        assert led.records()[0]['status'] == 'running'
        assert led.dropped_tail == full_event[:cut]
        assert path.read_bytes() == good  # the next event starts on a fresh line
        # the dropped bytes are kept beside the ledger, one side file per drop
        assert led.dropped_path == tmp_path / f'ledger.jsonl.dropped-{n}'
        assert led.dropped_path.read_bytes() == full_event[:cut]
        led.update(0, status='done')
        led.close()
        assert make(tmp_path).records()[0]['status'] == 'done'
        path.write_bytes(good)
    # a kill after the whole event but before its newline: the event happened
    path.write_bytes(good + full_event)
    led = make(tmp_path)
    assert led.records()[0]['status'] == 'done' and led.dropped_tail == b''
    assert path.read_bytes() == good + full_event + b'\n'
    led.update(0, score=1.5)
    led.close()
    assert make(tmp_path).records()[0]['score'] == 1.5
    assert not (tmp_path / 'ledger.jsonl.dropped-4').exists()
    # a read-only replay changes nothing, not even a torn tail
    path.write_bytes(good + full_event[:5])
    ro = Ledger(path, readonly=True)
    assert ro.records()[0]['status'] == 'running' and path.read_bytes() == good + full_event[:5]
    with pytest.raises(RuntimeError, match='read-only'):
        ro.update(0, status='done')


@pytest.mark.parametrize('payload, message', [
    (b'{"event": "strategy", "strategy": {"x": "\xff\xfe"}}', r':2 is not UTF-8 text'),
    (b'\x00\x00\x00{}', r':2 holds NUL bytes'),
    (b'{"event": "strategy", "strategy": {}}\x00', r':2 holds NUL bytes'),
    (b'[1, 2, 3]', r':2 is a JSON list, not an event object'),
    (b'"update"', r':2 is a JSON str, not an event object'),
    (b'{"event": "update", "id": 0}', r":2: malformed 'update' event \(KeyError: 'fields'\)"),
    (b'{"event": "update", "id": [0], "fields": {}}', r":2: malformed 'update' event"),
    (b'{"event": "propose", "candidates": 5}', r":2: malformed 'propose' event"),
    (b'{"event": "propose", "candidates": [{"id": "0007"}]}',
     r":2: candidate id '0007' is not a non-negative int"),
    (b'{"event": "propose", "candidates": [{"id": 0}]}', r':2: candidate id 0 proposed twice'),
])
def test_damaged_middle_lines_name_file_and_line(tmp_path, payload, message):
    path = tmp_path / 'ledger.jsonl'
    first = json.dumps(dict(event='propose', candidates=[dict(id=0, genotype='g', key='k')]))
    last = json.dumps(dict(event='strategy', strategy={}))
    path.write_bytes(first.encode() + b'\n' + payload + b'\n' + last.encode() + b'\n')
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=r'ledger.jsonl' + message):
        make(tmp_path)
    assert path.read_bytes() == before  # nothing is cut or rewritten


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
