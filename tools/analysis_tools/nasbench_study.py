"""The proxy study of a SEG101-Bench file: docs/study.md, its PNG figures and a JSON of numbers.

docs/study.md. Example::

    python tools/analysis_tools/nasbench_study.py nasbench/seg101-bench_mass-roads-cpu.json
"""
import argparse
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='SEG101-Bench proxy study report')
    p.add_argument('benchmark', help='a SEG101-Bench JSON file')
    p.add_argument('--out', default='docs/study.md', help='the page to write')
    p.add_argument('--fig-dir', default='docs/figures/study', help='PNGs and study.json')
    p.add_argument('--bootstrap', type=int, default=1000, help='bootstrap resamples')
    p.add_argument('--sim-seeds', type=int, default=100, help='seeds of the simulation')
    p.add_argument(
        '--sim-epochs',
        type=int,
        default=200,
        help='predictor epochs per round of the simulated NPENAS-NP')
    p.add_argument('--predictor-repeats', type=int, default=5)
    p.add_argument('--predictor-epochs', type=int, default=300)
    p.add_argument(
        '--replicate',
        nargs='*',
        default=None,
        help='search directories (leaderboard.csv) whose random first round replicates '
        'entries on another backbone; default: every <benchmark dir>/search/*/ with a '
        'leaderboard')
    args = p.parse_args(argv)
    for k in ('bootstrap', 'sim_seeds', 'sim_epochs', 'predictor_repeats', 'predictor_epochs'):
        if getattr(args, k) < 1:
            p.error(f'--{k.replace("_", "-")} must be >= 1, got {getattr(args, k)}')
    return args


def replicate_dirs(args) -> list:
    if args.replicate is not None:
        return list(args.replicate)
    root = Path(args.benchmark).parent / 'search'
    return sorted(str(p.parent) for p in root.glob('*/leaderboard.csv'))


def main(argv=None) -> int:
    args = parse_args(argv)
    from seg101_mm.nasbench import NASBenchError
    from seg101_mm.nasbench.report import write_study
    try:
        res = write_study(
            args.benchmark,
            args.out,
            args.fig_dir,
            num_bootstrap=args.bootstrap,
            sim_seeds=args.sim_seeds,
            sim_epochs=args.sim_epochs,
            predictor_repeats=args.predictor_repeats,
            predictor_epochs=args.predictor_epochs,
            replicate_dirs=replicate_dirs(args),
            progress=lambda m: print(f'[study] {m}', file=sys.stderr))
    except NASBenchError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.out} ({res["n"]} entries) and the figures in {args.fig_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
