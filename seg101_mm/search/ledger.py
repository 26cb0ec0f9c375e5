"""The search ledger: every candidate of a search and what became of it, in one JSONL file.

Each line is one event, written with a single ``write`` followed by ``flush`` and ``fsync``:

- ``{"event": "propose", "strategy": {...}, "candidates": [{...}, ...]}``: new candidates
  (status ``queued``) together with the strategy state right after it proposed them, in one line,
  so that the two can never disagree;
- ``{"event": "update", "id": 3, "fields": {...}}``: a change of one candidate (status
  ``running`` / ``done`` / ``failed``, metrics, params / FLOPs, times, cause, log path ...);
- ``{"event": "strategy", "strategy": {...}}``: a strategy state after results were told.

- ``{"event": "setup", "setup": {...}}``: facts of the search that a resume must keep (the
  dataset its candidates train on).

A kill -9 at any moment leaves at most one torn last line. :class:`Ledger` keeps a last event
that is complete but lacks its newline (the newline is added); anything else after the last
newline is copied to a side file ``ledger.jsonl.dropped-N`` and then truncated, so the next
event starts on a fresh line. Replaying the complete lines always gives a consistent state; any
other damage is an error that names the file and line. Plain JSON and no torch or mmengine
import.
"""
import json
import os
import time
from copy import deepcopy
from pathlib import Path
from typing import Dict, List, Optional

STATUSES = ('queued', 'running', 'done', 'failed')

#: Fields of a candidate record (all JSON values).
FIELDS = ('id', 'genotype', 'key', 'round', 'status', 'config', 'work_dir', 'log', 'seed', 'score',
          'metrics', 'measures', 'cause', 'attempts', 'queued_at', 'started_at', 'ended_at', 'pid',
          'curve', 'test_metrics', 'train_seconds', 'imported', 'backbone_sha256')


class LedgerError(ValueError):
    """A ledger that cannot be replayed: the message names the file and line."""


class Ledger:
    """Append-only, crash-consistent record of a search.

    Args:
        path (str | Path): The JSONL file (created with its folder if missing).
        fsync (bool): fsync after every event (the durability guarantee). Tests may turn it off
            for speed; a kill -9 of the process still leaves a consistent file, only a power cut
            would not.
        readonly (bool): Replay the file without changing it (a torn last line is ignored);
            no event can be written.
    """

    def __init__(self, path, fsync: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.readonly = readonly
        self.candidates: Dict[int, dict] = {}
        self.strategy_state: Optional[dict] = None
        self.setup: dict = {}
        self.dropped_tail = b''
        self.dropped_path: Optional[Path] = None
        self._fh = None
        if readonly:
            if self.path.exists():
                self._replay()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._replay()
        self._fh = open(self.path, 'ab')

    # ------------------------------------------------------------------ reading
    def _decode(self, line: bytes, n: int):
        where = f'{self.path}:{n}'
        try:
            text = line.decode('utf-8')
        except UnicodeDecodeError as e:
            raise LedgerError(f'{where} is not UTF-8 text ({e}); only the last line of a '
                              f'ledger may be damaged') from None
        if '\0' in text:
            raise LedgerError(f'{where} holds NUL bytes; only the last line of a ledger may be '
                              f'damaged')
        try:
            event = json.loads(text)
        except json.JSONDecodeError as e:
            raise LedgerError(f'{where} is not a JSON event ({e}); only the last line of a '
                              f'ledger may be damaged') from None
        if not isinstance(event, dict):
            raise LedgerError(f'{where} is a JSON {type(event).__name__}, not an event object '
                              f'({text[:60]!r})')
        return event

    def _complete_tail(self, tail: bytes) -> bool:
        """Whether ``tail`` (the bytes after the last newline) is a whole event.

        Every event is one JSON object, and no proper prefix of a JSON object parses as one.
        """
        try:
            return isinstance(json.loads(tail.decode('utf-8')), dict) and b'\0' not in tail
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False

    def _replay(self):
        data = self.path.read_bytes()
        good = data.rfind(b'\n') + 1
        tail = data[good:]
        lines = data[:good].split(b'\n')[:-1]
        if tail and self._complete_tail(tail):
            # A kill between the event and its newline: the event happened, keep it.
            lines.append(tail)
            if not self.readonly:
                self._write_durably(lambda fh: fh.write(b'\n'), 'ab')
        elif tail:
            # A torn last event from a kill during a write: it never happened. Its bytes are
            # kept beside the ledger before the ledger is cut back to its last full line.
            self.dropped_tail = tail
            if not self.readonly:
                self.dropped_path = self._side_file()
                with open(self.dropped_path, 'wb') as fh:
                    fh.write(tail)
                    fh.flush()
                    os.fsync(fh.fileno())
                self._write_durably(lambda fh: fh.truncate(good), 'r+b')
        for n, line in enumerate(lines, 1):
            self._apply(self._decode(line, n), where=f'{self.path}:{n}')

    def _write_durably(self, fn, mode):
        with open(self.path, mode) as fh:
            fn(fh)
            fh.flush()
            os.fsync(fh.fileno())

    def _side_file(self) -> Path:
        n = 1
        while self.path.with_name(f'{self.path.name}.dropped-{n}').exists():
            n += 1
        return self.path.with_name(f'{self.path.name}.dropped-{n}')

    def _apply(self, event, where='event'):
        try:
            self._apply_event(event, where)
        except LedgerError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise LedgerError(f'{where}: malformed {event.get("event")!r} event '
                              f'({type(e).__name__}: {e})') from None

    def _apply_event(self, event, where):
        kind = event.get('event')
        if kind == 'propose':
            for rec in event['candidates']:
                cid = rec['id']
                if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
                    raise LedgerError(f'{where}: candidate id {cid!r} is not a non-negative '
                                      f'int')
                if cid in self.candidates:
                    raise LedgerError(f'{where}: candidate id {cid} proposed twice')
                self.candidates[cid] = dict(rec)
            self.strategy_state = event.get('strategy', self.strategy_state)
        elif kind == 'update':
            if event['id'] not in self.candidates:
                raise LedgerError(f'{where}: update of unknown candidate id {event["id"]!r}')
            self.candidates[event['id']].update(event['fields'])
        elif kind == 'strategy':
            self.strategy_state = event['strategy']
        elif kind == 'setup':
            self.setup.update(event['setup'])
        else:
            raise LedgerError(f'{where}: unknown ledger event {kind!r}; expected propose, '
                              f'update, strategy or setup')

    # ------------------------------------------------------------------ writing
    def _append(self, event: dict):
        if self._fh is None:
            raise RuntimeError(f'{self.path} was opened read-only')
        line = json.dumps(event, sort_keys=True, allow_nan=False).encode() + b'\n'
        self._apply(json.loads(line))
        self._fh.write(line)
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def propose(self, records: List[dict], strategy_state: Optional[dict] = None):
        """Add new candidates (status ``queued``) and the strategy state, atomically."""
        now = time.time()
        out = []
        for rec in records:
            rec = dict(rec)
            unknown = set(rec) - set(FIELDS)
            if unknown:
                raise ValueError(f'unknown candidate fields {sorted(unknown)}; expected some '
                                 f'of {FIELDS}')
            rec.setdefault('status', 'queued')
            rec.setdefault('queued_at', now)
            rec.setdefault('attempts', 0)
            out.append(rec)
        event = dict(event='propose', candidates=out)
        if strategy_state is not None:
            event['strategy'] = strategy_state
        self._append(event)

    def update(self, cid: int, **fields):
        """Change fields of candidate ``cid`` (one durable event)."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f'unknown candidate fields {sorted(unknown)}; expected some of '
                             f'{FIELDS}')
        if 'status' in fields and fields['status'] not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}, got {fields["status"]!r}')
        self._append(dict(event='update', id=cid, fields=fields))

    def save_strategy(self, state: dict):
        self._append(dict(event='strategy', strategy=state))

    def save_setup(self, **facts):
        """Record facts of the search (e.g. its ``data_root``) for later resumes."""
        self._append(dict(event='setup', setup=facts))

    def close(self):
        if self._fh is not None and not self._fh.closed:
            self._fh.close()

    # ------------------------------------------------------------------ queries
    def records(self, status=None) -> List[dict]:
        """Candidate records in id order (copies), optionally of one status."""
        if status is not None and status not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}, got {status!r}')
        return [
            deepcopy(r) for _, r in sorted(self.candidates.items())
            if status is None or r['status'] == status
        ]

    def next_id(self) -> int:
        return max(self.candidates, default=-1) + 1

    def __len__(self):
        return len(self.candidates)
