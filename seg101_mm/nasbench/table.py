"""SEG101-Bench: a file of trained SEG101 architectures, their learning curves and proxies.

The file is one JSON object (docs/study.md, 'The benchmark file')::

    {"format": "seg101-bench", "version": 1,
     "meta": {"protocol": {...}, "data": {...}, "seeds": {...}, "proxies": {...}, ...},
     "entries": {"<canonical key>": {"genotype": "...", "id": 0, "val": {...},
                                     "curve": [{"iter": 30, "mIoU": ..., ...}, ...],
                                     "test": {...}, "params": ..., "flops": ...,
                                     "train_seconds": ..., "proxies": {...}}},
     "failed": {"<canonical key>": {"genotype": "...", "id": 7, "cause": "..."}}}

as NAS-Bench-Suite-Zero keeps one record per architecture: genotype -> metrics and scores.
:class:`NASBench` reads it, answers queries by genotype or key, iterates and exports CSV. This
module needs neither torch nor mmengine.
"""
import csv
import json
import math
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

from seg101_mm.space import Genotype

FORMAT = 'seg101-bench'
VERSION = 1


class NASBenchError(ValueError):
    """A benchmark file that cannot be read, or a query it cannot answer."""


def canonical_key(genotype: Union[str, Genotype]) -> str:
    """The canonical key of a genotype given as text (key or genotype string) or object."""
    if isinstance(genotype, Genotype):
        return genotype.key
    try:
        return Genotype.parse(genotype).key
    except (TypeError, ValueError) as e:
        raise NASBenchError(f'{genotype!r} is not a SEG101 genotype: {e}') from None


class NASBench:
    """The entries of a SEG101-Bench file.

    Args:
        entries (dict): canonical key -> entry (see the module docstring).
        meta (dict): how the entries were produced (protocol, data, seeds, proxies).
        failed (dict): canonical key -> ``genotype``, ``id`` and ``cause`` of the candidates
            whose training failed.
    """

    def __init__(self,
                 entries: Optional[Dict[str, dict]] = None,
                 meta: Optional[dict] = None,
                 failed: Optional[Dict[str, dict]] = None):
        self.entries = dict(entries or {})
        self.meta = dict(meta or {})
        self.failed = dict(failed or {})

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, path) -> 'NASBench':
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NASBenchError(f'benchmark file {str(path)!r} does not exist') from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise NASBenchError(f'{path}: not a JSON file ({e})') from None
        if not isinstance(data, dict) or data.get('format') != FORMAT:
            raise NASBenchError(f'{path}: not a {FORMAT} file (its "format" is '
                                f'{data.get("format") if isinstance(data, dict) else None!r})')
        if data.get('version') != VERSION:
            raise NASBenchError(f'{path}: version {data.get("version")!r}; expected {VERSION}')
        entries = data.get('entries')
        if not isinstance(entries, dict):
            raise NASBenchError(f'{path}: "entries" must be an object keyed by genotype')
        for key, entry in entries.items():
            if not isinstance(entry, dict) or 'val' not in entry:
                raise NASBenchError(f'{path}: entry {key!r} has no "val" metrics')
        return cls(entries, data.get('meta'), data.get('failed'))

    def to_dict(self) -> dict:
        return dict(
            format=FORMAT,
            version=VERSION,
            meta=self.meta,
            entries={k: self.entries[k]
                     for k in sorted(self.entries)},
            failed={k: self.failed[k]
                    for k in sorted(self.failed)})

    def save(self, path):
        """Write the file atomically (a kill leaves the old file or the new one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f'.{os.getpid()}.tmp')
        with open(tmp, 'w') as fh:
            json.dump(self.to_dict(), fh, indent=1, sort_keys=True, allow_nan=False)
            fh.write('\n')
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # ------------------------------------------------------------------ queries
    def __len__(self):
        return len(self.entries)

    def __iter__(self) -> Iterator[dict]:
        """Entries in key order, each with its ``key``."""
        for key in sorted(self.entries):
            yield dict(self.entries[key], key=key)

    def __contains__(self, genotype) -> bool:
        try:
            return canonical_key(genotype) in self.entries
        except NASBenchError:
            return False

    def keys(self) -> List[str]:
        return sorted(self.entries)

    def query(self, genotype) -> dict:
        """The entry of ``genotype`` (a Genotype, its string or its canonical key)."""
        key = canonical_key(genotype)
        if key not in self.entries:
            cause = (f'; its training failed: {self.failed[key].get("cause")}'
                     if key in self.failed else '')
            raise NASBenchError(f'{key} is not in the benchmark ({len(self)} entries){cause}')
        return dict(self.entries[key], key=key)

    @property
    def proxy_names(self) -> List[str]:
        names = set()
        for entry in self.entries.values():
            names.update(entry.get('proxies') or {})
        return sorted(names)

    @property
    def curve_iters(self) -> List[int]:
        """The iterations at which every entry was validated."""
        sets = [{p['iter'] for p in e.get('curve') or []} for e in self.entries.values()]
        return sorted(set.intersection(*sets)) if sets else []

    def values(self, field: str, split: str = 'val') -> Dict[str, float]:
        """``key -> value`` of a metric (``split`` 'val' or 'test'), a proxy
        (``proxies.<name>``), a curve point (``<metric>@<iter>``), ``params``, ``flops`` or
        ``train_seconds``; entries without it are left out."""
        out = {}
        for key, entry in self.entries.items():
            v = _field(entry, field, split)
            if v is not None and math.isfinite(v):
                out[key] = v
        return out

    # ------------------------------------------------------------------ export
    def rows(self) -> List[dict]:
        """One flat dict per entry: ``val.*``, ``test.*``, ``<metric>@<iter>``,
        ``proxies.*``, size and time."""
        rows = []
        for entry in self:
            row = dict(
                key=entry['key'], genotype=entry.get('genotype', entry['key']), id=entry.get('id'))
            for split in ('val', 'test'):
                for k, v in sorted((entry.get(split) or {}).items()):
                    row[f'{split}.{k}'] = v
            for point in entry.get('curve') or []:
                for k, v in sorted(point.items()):
                    if k != 'iter':
                        row[f'{k}@{point["iter"]}'] = v
            for k in ('params', 'flops', 'train_seconds'):
                row[k] = entry.get(k)
            for k, v in sorted((entry.get('proxies') or {}).items()):
                row[f'proxies.{k}'] = v
            rows.append(row)
        return rows

    def to_csv(self, path) -> Path:
        rows = self.rows()
        columns = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f'.{os.getpid()}.tmp')
        with open(tmp, 'w', newline='') as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        return path


def _field(entry: dict, field: str, split: str) -> Optional[float]:
    if field.startswith('proxies.'):
        v = (entry.get('proxies') or {}).get(field[len('proxies.'):])
    elif '@' in field:
        name, _, it = field.partition('@')
        v = next((p.get(name) for p in entry.get('curve') or [] if str(p['iter']) == it), None)
    elif field in ('params', 'flops', 'train_seconds'):
        v = entry.get(field)
    else:
        v = (entry.get(split) or {}).get(field)
    return None if v is None else float(v)


def load_nasbench(path) -> NASBench:
    """Read a SEG101-Bench file (:class:`NASBench`)."""
    return NASBench.load(path)
