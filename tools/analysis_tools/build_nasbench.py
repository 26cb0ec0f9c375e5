"""Build SEG101-Bench: train uniformly sampled SEG101 architectures, score their proxies.

docs/study.md, 'Building the benchmark'. Example::

    python tools/analysis_tools/build_nasbench.py \\
        configs/nasbench/seg101-bench_seg101-regnetx400mf_cpu-120it_mass-roads-256x256.py \\
        [--num 100] [--work-dir work_dirs/seg101-bench] [--out nasbench/....json]

Run it again to continue after a kill; on a fresh machine (no work dir) it continues from the
entries of the committed benchmark file, so nothing in it is trained again.
"""
import argparse
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Build SEG101-Bench with the search machinery')
    p.add_argument(
        'config',
        help='benchmark config (a RandomSearch search config with a '
        'NASBenchExportHook)')
    p.add_argument('--num', type=int, help='entries to reach (train_cfg.budget)')
    p.add_argument('--work-dir', help='the dir of the build\'s search (ledger, candidates)')
    p.add_argument('--out', help='benchmark file (default: the hook\'s out)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override settings of the config')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import seg101_mm  # noqa: F401  registers the search loop and the export hook
    from seg101_mm.nasbench import NASBenchError
    from seg101_mm.nasbench.builder import build
    from seg101_mm.search.errors import SearchError
    from seg101_mm.search.ledger import LedgerError
    try:
        bench = build(args.config, args.work_dir, args.num, args.out, args.cfg_options)
    except (NASBenchError, SearchError, LedgerError) as e:
        # a stopped build continues with the same command, not with tools/search.py --resume
        text = str(e).replace('continue it with --resume', 'run the same command to continue')
        print(f'error: {text}', file=sys.stderr)
        return getattr(e, 'exit_code', 1)
    except KeyboardInterrupt:
        print('error: interrupted; run the same command again to continue', file=sys.stderr)
        return 130
    print(f'{len(bench)} entries ({len(bench.failed)} failed trainings) in the benchmark')
    return 0


if __name__ == '__main__':
    sys.exit(main())
