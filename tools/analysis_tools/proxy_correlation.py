"""Rank correlation of zero-cost proxies with measured mIoU, beside the paper's Table 2.

docs/method.md sections 8 and 10. Examples::

    python tools/analysis_tools/proxy_correlation.py work_dirs/proxies/proxies.csv \\
        --ledger work_dirs/search/ledger.jsonl --out-dir work_dirs/proxies/correlation
    python tools/analysis_tools/proxy_correlation.py proxies.csv --miou-csv measured.csv

The measured table is a search ledger (JSONL events or records with ``key``, ``genotype``,
``status``, ``metrics.mIoU``) or any CSV/JSON with a ``genotype`` (or ``key``) and an ``mIoU``
column. Architectures are joined on the canonical genotype key. Prints signed Spearman rho and
Kendall tau with percentile-bootstrap 95 % intervals and precision at top-k, writes
``correlation.csv``/``.json`` and one scatter PNG per proxy (log x when the scores span three
or more decades, as synflow's do).

A row without a genotype or key, or with a genotype that does not parse, stops the tool with an
``error:`` that names the file and row; cells that are not numbers are left out of the
statistics and listed in a warning and in ``correlation.json`` (``non_numeric``).
"""
import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

import seg101_mm  # noqa: F401
from seg101_mm.proxies.correlation import (PAPER_NUM_ARCHITECTURES, PAPER_TABLE2_SPEARMAN, join,
                                           rank_correlation, read_records, spans_decades)

NON_PROXY_COLUMNS = {'key', 'genotype', 'status', 'seconds', 'chunk_size', 'reasons', 'config'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Proxy scores vs measured mIoU')
    p.add_argument('proxies_file', help='proxies.csv or proxies.json of zero_cost_proxies.py')
    measured = p.add_mutually_exclusive_group(required=True)
    measured.add_argument('--ledger', help='search ledger (JSONL)')
    measured.add_argument('--miou-csv', help='CSV/JSON with genotype (or key) and mIoU')
    p.add_argument('--metric', default='mIoU', help='measured metric name')
    p.add_argument('--proxies', nargs='+', help='proxies to correlate (default: all columns)')
    p.add_argument(
        '--top-k',
        type=int,
        nargs='+',
        default=[5, 10, 20],
        help='k of precision at top-k (n/a where k exceeds the number of architectures)')
    p.add_argument('--bootstrap', type=int, default=1000, help='bootstrap resamples')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out-dir', default=None, help='default: next to proxies_file')
    return p.parse_args(argv)


def check_rows(rows, path):
    """Stop with an ``error:`` naming the row (counted from 1, after a CSV header) that has no
    key to join on or a genotype that does not parse."""
    from seg101_mm.space import Genotype
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise SystemExit(f'error: {path} row {i} is a {type(row).__name__}, expected a '
                             f'record with a genotype or key')
        text = row.get('genotype')
        if text:
            try:
                Genotype.parse(text) if isinstance(text, str) else Genotype.from_dict(text)
            except (ValueError, TypeError, KeyError) as e:
                raise SystemExit(f'error: {path} row {i}: genotype {text!r} does not parse '
                                 f'({e})') from None
        elif not row.get('key'):
            raise SystemExit(f'error: {path} row {i} has neither a genotype nor a key, so it '
                             f'cannot be joined: {row}')


def non_numeric_cells(rows, path, columns):
    """``row N name='value'`` of every present cell of ``columns`` that is not a number
    (empty cells are missing values, and 'nan' / 'inf' are numbers that are left out)."""
    out = []
    for i, row in enumerate(rows, 1):
        metrics = row.get('metrics')
        if isinstance(metrics, str) and metrics.startswith('{'):
            try:
                metrics = json.loads(metrics)
            except json.JSONDecodeError:
                out.append(f'{path} row {i} metrics={metrics!r}')
                continue
        for c in columns:
            v = row.get(c)
            if v is None and isinstance(metrics, dict):
                v = metrics.get(c)
            if v is None or v == '':
                continue
            try:
                float(v)
            except (TypeError, ValueError):
                out.append(f'{path} row {i} {c}={v!r}')
    return out


def fmt(v, spec='+.3f'):
    return 'n/a' if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def scatter(path, name, x, y, stats, metric):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ok = np.isfinite(x)
    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=120)
    ax.scatter(x[ok], y[ok], s=12, alpha=0.7)
    if spans_decades(x[ok]):
        ax.set_xscale('log')
    elif np.isfinite(x[ok]).any() and (x[ok] != 0).any() and \
            np.ptp(np.log10(np.abs(x[ok][x[ok] != 0]))) >= 3:
        ax.set_xscale('symlog', linthresh=float(np.min(np.abs(x[ok][x[ok] != 0]))))
    ax.set_xlabel(name)
    ax.set_ylabel(f'{metric} (%)')
    paper = PAPER_TABLE2_SPEARMAN.get(name)
    ax.set_title(
        f'{name}: rho {fmt(stats["spearman"])} (n={stats["n"]})' +
        (f', paper {paper:+.2f}' if paper is not None else ''),
        fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    proxy_rows = read_records(args.proxies_file)
    measured_rows = read_records(args.ledger or args.miou_csv)
    if not proxy_rows:
        raise SystemExit(f'no rows in {args.proxies_file}')
    columns = [c for c in proxy_rows[0] if c not in NON_PROXY_COLUMNS]
    names = args.proxies or columns
    missing = sorted(set(names) - set(columns))
    if missing:
        raise SystemExit(f'proxies {missing} are not columns of {args.proxies_file} '
                         f'(it has {columns})')
    check_rows(proxy_rows, args.proxies_file)
    check_rows(measured_rows, args.ledger or args.miou_csv)
    non_numeric = (
        non_numeric_cells(proxy_rows, args.proxies_file, names) +
        non_numeric_cells(measured_rows, args.ledger or args.miou_csv, [args.metric]))
    if non_numeric:
        print(
            f'warning: {len(non_numeric)} non-numeric cell(s) left out of the statistics: ' +
            ', '.join(non_numeric[:10]) + (', ...' if len(non_numeric) > 10 else ''),
            file=sys.stderr)
    keys, values, miou = join(proxy_rows, measured_rows, names, args.metric)
    if len(keys) < 3:
        raise SystemExit(f'only {len(keys)} architecture(s) have both proxy scores and a '
                         f'measured {args.metric}; need at least 3')
    out_dir = Path(args.out_dir or Path(args.proxies_file).parent / 'correlation')
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    header = (f'{"proxy":<10} {"n":>4} {"spearman [95% CI]":>26} {"kendall [95% CI]":>26} ' +
              ' '.join(f'{"P@" + str(k):>6}' for k in args.top_k) + f' {"paper rho":>9}')
    print(f'{len(keys)} architectures with proxies and {args.metric}; paper Table 2: '
          f'{PAPER_NUM_ARCHITECTURES} architectures')
    print(header)
    for name in names:
        st = rank_correlation(values[name], miou, args.bootstrap, args.seed, args.top_k)
        prec = {k: st['precision_at'].get(k, math.nan) for k in args.top_k}
        paper = PAPER_TABLE2_SPEARMAN.get(name)
        print(f'{name:<10} {st["n"]:>4} '
              f'{fmt(st["spearman"]):>7} [{fmt(st["spearman_ci"][0])}, '
              f'{fmt(st["spearman_ci"][1])}]   '
              f'{fmt(st["kendall"]):>7} [{fmt(st["kendall_ci"][0])}, '
              f'{fmt(st["kendall_ci"][1])}]   ' +
              ' '.join(f'{fmt(v, ".2f"):>6}' for v in prec.values()) + f' {fmt(paper, "+.2f"):>9}')
        row = dict(
            proxy=name,
            n=st['n'],
            spearman=st['spearman'],
            spearman_lo=st['spearman_ci'][0],
            spearman_hi=st['spearman_ci'][1],
            kendall=st['kendall'],
            kendall_lo=st['kendall_ci'][0],
            kendall_hi=st['kendall_ci'][1],
            paper_spearman=paper)
        row.update({f'precision_at_{k}': v for k, v in prec.items()})
        results.append(row)
        if st['n'] >= 1:
            scatter(out_dir / f'scatter_{name}.png', name, values[name], miou, st, args.metric)
    fields = sorted({k
                     for r in results
                     for k in r},
                    key=lambda k: list(results[0]).index(k) if k in results[0] else 99)
    with open(out_dir / 'correlation.csv', 'w', newline='') as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(results)

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    (out_dir / 'correlation.json').write_text(
        json.dumps(
            dict(
                metric=args.metric,
                num_architectures=len(keys),
                bootstrap=args.bootstrap,
                non_numeric=non_numeric,
                paper_num_architectures=PAPER_NUM_ARCHITECTURES,
                results=[{
                    k: clean(v)
                    for k, v in r.items()
                } for r in results]),
            indent=1))
    print(f'wrote {out_dir / "correlation.csv"}, correlation.json and scatter PNGs')
    return results


if __name__ == '__main__':
    main()
