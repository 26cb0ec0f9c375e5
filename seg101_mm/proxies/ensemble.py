"""Rank aggregation of proxy scores over a population of architectures.

A proxy's value means little on its own; what counts is its order over the candidates. These
functions turn each proxy column of a table into ranks (``scipy.stats.rankdata``, ties
averaged, ascending: the largest value gets rank ``m`` of ``m``) and merge them:

* ``how='mean'``: the mean rank over the proxies;
* ``how='log'``: ``sum over proxies of log(rank / m)``, the non-linear aggregation of AZ-NAS
  (Lee & Ham, CVPR 2024): one poor rank pulls the sum down more than a good rank lifts it.

Larger is better for the aggregate. A proxy for which smaller is better is given a sign of
-1 in ``signs``. A missing or non-finite value ranks below every finite one.
"""
import numpy as np
from scipy.stats import rankdata


def _column(table, name):
    if isinstance(table, dict) or hasattr(table, 'columns'):
        values = table[name]
    else:
        values = [row[name] for row in table]
    return np.asarray(values, dtype=np.float64)


def proxy_ranks(table, name, sign=1):
    """Ascending ranks (1 = worst, m = best) of column ``name`` times ``sign``."""
    values = sign * _column(table, name)
    values = np.where(np.isfinite(values), values, -np.inf)
    return rankdata(values)


def rank_aggregate(table, proxies, how='mean', signs=None):
    """The rank-aggregated score of every architecture of ``table``.

    Args:
        table: one row per architecture, as a list of dicts, a dict of columns or a pandas
            DataFrame.
        proxies (list[str]): the columns to merge.
        how (str): ``'mean'`` (mean rank) or ``'log'`` (sum of ``log(rank / m)``).
        signs (dict, optional): ``{proxy: -1}`` for proxies where smaller is better.

    Returns:
        np.ndarray: one aggregate per row, larger is better.
    """
    proxies = [proxies] if isinstance(proxies, str) else list(proxies)
    if not proxies:
        raise ValueError('rank_aggregate needs at least one proxy')
    if how not in ('mean', 'log'):
        raise ValueError(f"how must be 'mean' or 'log', got {how!r}")
    signs = signs or {}
    ranks = np.stack([proxy_ranks(table, p, signs.get(p, 1)) for p in proxies])
    if how == 'mean':
        return ranks.mean(0)
    return np.log(ranks / ranks.shape[1]).sum(0)
