"""The search ledger: every candidate of a search and what became of it, in one JSONL file.

Each line is one event, written with a single ``write`` followed by ``flush`` and ``fsync``:

- ``{"event": "propose", "strategy": {...}, "candidates": [{...}, ...]}``: new candidates
  (status ``queued``) together with the strategy state right after it proposed them, in one line,
  so that the two can never disagree;
- ``{"event": "update", "id": 3, "fields": {...}}``: a change of one candidate (status
  ``running`` / ``done`` / ``failed``, metrics, params / FLOPs, times, cause, log path ...);
- ``{"event": "strategy", "strategy": {...}}``: a strategy state after results were told.

A kill -9 at any moment leaves at most one torn last line; :class:`Ledger` drops it when it
opens the file (and truncates it, so the next event starts on a fresh line). Replaying the
complete lines always gives a consistent state. Plain JSON and no torch or mmengine import.
"""
import json
import os
import time
from copy import deepcopy
from pathlib import Path
from typing import Dict, List, Optional

STATUSES = ('queued', 'running', 'done', 'failed')

#: Fields of a candidate record (all JSON values).
FIELDS = ('id', 'genotype', 'key', 'round', 'status', 'config', 'work_dir', 'log', 'seed',
          'score', 'metrics', 'measures', 'cause', 'attempts', 'queued_at', 'started_at',
          'ended_at', 'pid')


class Ledger:
    """Append-only, crash-consistent record of a search.

    Args:
        path (str | Path): The JSONL file (created with its folder if missing).
        fsync (bool): fsync after every event (the durability guarantee). Tests may turn it off
            for speed; a kill -9 of the process still leaves a consistent file, only a power cut
            would not.
    """

    def __init__(self, path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.candidates: Dict[int, dict] = {}
        self.strategy_state: Optional[dict] = None
        self.dropped_tail = b''
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._replay()
        self._fh = open(self.path, 'ab')

    # ------------------------------------------------------------------ reading
    def _replay(self):
        data = self.path.read_bytes()
        good = data.rfind(b'\n') + 1
        lines = data[:good].split(b'\n')[:-1]
        if good < len(data):
            # A torn last event from a kill during a write: it never happened.
            self.dropped_tail = data[good:]
            with open(self.path, 'r+b') as fh:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        for n, line in enumerate(lines, 1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{self.path}:{n} is not a JSON event ({e}); only the last '
                                 f'line of a ledger may be damaged') from None
            self._apply(event, where=f'{self.path}:{n}')

    def _apply(self, event, where='event'):
        kind = event.get('event')
        if kind == 'propose':
            for rec in event['candidates']:
                if rec['id'] in self.candidates:
                    raise ValueError(f'{where}: candidate id {rec["id"]} proposed twice')
                self.candidates[rec['id']] = dict(rec)
            self.strategy_state = event.get('strategy', self.strategy_state)
        elif kind == 'update':
            if event['id'] not in self.candidates:
                raise ValueError(f'{where}: update of unknown candidate id {event["id"]}')
            self.candidates[event['id']].update(event['fields'])
        elif kind == 'strategy':
            self.strategy_state = event['strategy']
        else:
            raise ValueError(f'{where}: unknown ledger event {kind!r}; expected propose, '
                             f'update or strategy')

    # ------------------------------------------------------------------ writing
    def _append(self, event: dict):
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

    def close(self):
        if not self._fh.closed:
            self._fh.close()

    # ------------------------------------------------------------------ queries
    def records(self, status=None) -> List[dict]:
        """Candidate records in id order (copies), optionally of one status."""
        if status is not None and status not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}, got {status!r}')
        return [deepcopy(r) for _, r in sorted(self.candidates.items())
                if status is None or r['status'] == status]

    def next_id(self) -> int:
        return max(self.candidates, default=-1) + 1

    def __len__(self):
        return len(self.candidates)
