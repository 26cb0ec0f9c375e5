"""Retrain SEG101-Bench entries with the recorded seed and with others: are they reproduced?

docs/study.md, 'Reproducibility'. Example::

    python tools/analysis_tools/retrain_nasbench.py nasbench/seg101-bench_mass-roads-cpu.json \\
        --entries 3 17 42 --seeds 0 1 2 --work-dir work_dirs/seg101-bench-retrain

Writes ``--out`` (default: ``<benchmark>_retrain.json`` beside the file) with every
retraining's val metrics and, per entry, whether the recorded seed gives the recorded val mIoU
within twice the seed-to-seed standard deviation. Run it again to continue after a stop.
"""
import argparse
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Retrain benchmark entries from their records')
    p.add_argument('benchmark', help='a SEG101-Bench JSON file')
    p.add_argument('--entries', nargs='+', required=True, help='entry ids or genotypes to retrain')
    p.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=[0, 1, 2],
        help='training seeds (default 0 1 2; the file records its own)')
    p.add_argument(
        '--work-dir', default='work_dirs/seg101-bench-retrain', help='where the retrainings run')
    p.add_argument('--config', help='search config (default: the one the file names)')
    p.add_argument('--data-root', help='dataset folder (default: the config\'s)')
    p.add_argument('--out', help='result JSON (default: <benchmark>_retrain.json)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import seg101_mm  # noqa: F401  registers the launchers and the result hook
    from seg101_mm.nasbench import NASBenchError, load_nasbench
    from seg101_mm.nasbench.retrain import retrain, summarise, write_retrain
    from seg101_mm.search.errors import SearchError
    bench_path = Path(args.benchmark)
    out = Path(args.out) if args.out else bench_path.with_name(bench_path.stem + '_retrain.json')
    try:
        bench = load_nasbench(bench_path)
        rows = retrain(
            bench,
            args.entries,
            args.seeds,
            args.work_dir,
            config=args.config,
            data_root=args.data_root,
            progress=lambda m: print(f'[retrain] {m}', file=sys.stderr))
    except (NASBenchError, SearchError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('error: interrupted; run the same command again to continue', file=sys.stderr)
        return 130
    summary = summarise(rows)
    write_retrain(out, bench_path, rows, summary)
    for s in summary:
        values = ', '.join(f'{v:.2f}' for v in s['values'])
        print(f'entry {s["id"]}: recorded val mIoU {s["recorded"]:.2f}; seeds {s["seeds"]}: '
              f'{values} (std {s["std"]:.2f}); recorded seed off by {s["gap"]:.2f}: ' + {
                  True: 'within',
                  False: 'OUTSIDE',
                  None: 'no'
              }[s['within_noise']] + ' the seed noise')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
