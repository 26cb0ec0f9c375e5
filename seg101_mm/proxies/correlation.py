"""Rank correlation of proxy scores with measured mIoU (docs/method.md sections 8 and 10).

Signed Spearman rho and Kendall tau (scipy), percentile-bootstrap 95 % intervals over
architectures, and precision at top-k; reading of proxy tables and search ledgers.
"""
import csv
import json
import math
from pathlib import Path

import numpy as np

#: Spearman rho of each proxy against val mIoU over 498 architectures (paper, Table 2).
PAPER_TABLE2_SPEARMAN = dict(
    grad_norm=-0.45, snip=-0.46, grasp=0.07, fisher=-0.48, synflow=0.05, jacob_cov=0.03)
PAPER_NUM_ARCHITECTURES = 498
#: The paper scores every proxy on one batch of this many augmented training tiles.
PAPER_PROXY_BATCH = 32


def _finite(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def canonical_key(row):
    """The canonical genotype key of a row (from ``genotype`` if present, else ``key``)."""
    text = row.get('genotype')
    if text:
        from seg101_mm.space import Genotype
        try:
            return Genotype.parse(text).key if isinstance(text, str) else \
                Genotype.from_dict(text).key
        except (ValueError, TypeError, KeyError):
            pass
    key = row.get('key')
    if not key:
        raise ValueError(f'row has neither a parsable genotype nor a key: {dict(row)}')
    return str(key)


def read_records(path):
    """Rows of a CSV, a JSON list, or a JSONL file (plain records or search-ledger events).

    Ledger events (``propose`` / ``update`` / ``strategy``) are replayed read-only; a torn
    last line (a writer killed mid-line) is ignored. Later records of a key override earlier.
    """
    path = Path(path)
    if path.suffix.lower() == '.csv':
        with open(path, newline='') as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    text = path.read_text()
    if path.suffix.lower() == '.json':
        data = json.loads(text)
        return data['rows'] if isinstance(data, dict) else data
    lines = text.split('\n')
    complete = lines[:-1] if not text.endswith('\n') else lines
    records, by_id = [], {}
    for n, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}:{n} is not JSON ({err})') from None
        kind = obj.get('event')
        if kind == 'propose':
            for rec in obj.get('candidates', []):
                by_id[rec['id']] = dict(rec)
        elif kind == 'update':
            by_id.setdefault(obj['id'], {}).update(obj.get('fields', {}))
        elif kind is None:
            records.append(obj)
    return records + [by_id[i] for i in sorted(by_id)]


def miou_of(row, metric='mIoU'):
    """The measured metric of a ledger/CSV row (``metrics.<metric>`` or a ``<metric>`` column),
    or None if absent, not finite, or the candidate did not finish (status other than done)."""
    status = row.get('status')
    if status not in (None, '', 'done', 'ok'):
        return None
    metrics = row.get('metrics')
    if isinstance(metrics, str) and metrics.startswith('{'):
        metrics = json.loads(metrics)
    if isinstance(metrics, dict) and metric in metrics:
        return _finite(metrics[metric])
    return _finite(row.get(metric))


def join(proxy_rows, measured_rows, proxies, metric='mIoU'):
    """``(keys, {proxy: array}, miou array)`` over architectures present in both tables.

    Keys present on both sides with a finite metric are kept; per proxy, rows with a
    non-finite score are masked (NaN) and left out of that proxy's statistics only.
    """
    measured = {}
    for row in measured_rows:
        value = miou_of(row, metric)
        if value is not None:
            measured[canonical_key(row)] = value
    scores = {}
    for row in proxy_rows:
        scores[canonical_key(row)] = row
    keys = sorted(set(scores) & set(measured))
    values = {
        p:
        np.array([
            _finite(scores[k].get(p)) if _finite(scores[k].get(p)) is not None else np.nan
            for k in keys
        ],
                 dtype=float)
        for p in proxies
    }
    return keys, values, np.array([measured[k] for k in keys], dtype=float)


def precision_at_top_k(score, target, k):
    """Fraction of the k best by ``score`` that are among the k best by ``target``."""
    k = int(k)
    if not 1 <= k <= len(score):
        raise ValueError(f'k must be in [1, {len(score)}], got {k}')
    top_s = set(np.argsort(-np.asarray(score), kind='stable')[:k])
    top_t = set(np.argsort(-np.asarray(target), kind='stable')[:k])
    return len(top_s & top_t) / k


def rank_correlation(score, target, num_bootstrap=1000, seed=0, top_k=(10, ), ci=0.95):
    """Signed Spearman and Kendall with bootstrap intervals, and precision at top-k.

    Args:
        score, target (array-like): proxy scores and measured mIoU (NaN scores dropped).
        num_bootstrap (int): resamples of architectures (with replacement). Default: 1000.
        seed (int): bootstrap generator seed. Default: 0.
        top_k (tuple[int]): k values for precision at top-k (NaN where k > n). Default: (10, ).
        ci (float): interval coverage. Default: 0.95.
    """
    from scipy.stats import kendalltau, spearmanr
    score = np.asarray(score, dtype=float)
    target = np.asarray(target, dtype=float)
    ok = np.isfinite(score) & np.isfinite(target)
    s, t = score[ok], target[ok]
    n = int(ok.sum())
    out = dict(
        n=n,
        spearman=math.nan,
        kendall=math.nan,
        spearman_ci=(math.nan, math.nan),
        kendall_ci=(math.nan, math.nan),
        precision_at={})
    if n < 3 or np.ptp(s) == 0 or np.ptp(t) == 0:
        return out
    out['spearman'] = float(spearmanr(s, t)[0])
    out['kendall'] = float(kendalltau(s, t)[0])
    rng = np.random.default_rng(seed)
    rhos, taus = [], []
    for _ in range(num_bootstrap):
        idx = rng.integers(0, n, n)
        if np.ptp(s[idx]) == 0 or np.ptp(t[idx]) == 0:
            continue
        rhos.append(spearmanr(s[idx], t[idx])[0])
        taus.append(kendalltau(s[idx], t[idx])[0])
    lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    if rhos:
        out['spearman_ci'] = tuple(float(v) for v in np.nanpercentile(rhos, [lo, hi]))
        out['kendall_ci'] = tuple(float(v) for v in np.nanpercentile(taus, [lo, hi]))
    for k in top_k:
        out['precision_at'][int(k)] = precision_at_top_k(s, t, k) if k <= n else math.nan
    return out


def spans_decades(values, decades=3):
    """True if the positive finite values span at least ``decades`` orders of magnitude."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(len(v)) and bool((v > 0).all()) and math.log10(v.max() / v.min()) >= decades
