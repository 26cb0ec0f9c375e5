"""Train and test SEG101, DeepLabV3+ and PSPNet with the CPU protocol: Table 1 at small scale.

docs/datasets.md, 'Table 1 at small scale'. Example (two trainings at a time, one thread each,
bfloat16 autocast)::

    python tools/analysis_tools/protocol_table.py mass-roads --data-root data/mass_roads \\
        --work-root work_dirs/cpu-protocol --amp --jobs 2 \\
        --out results/cpu-protocol/table1_mass-roads.json

Each model trains with its ``*_1xb4-cpu-2k_<dataset>-256x256.py`` config in
``<work-root>/<config name>_seed<seed>`` (checkpoints every ``--checkpoint-interval``
iterations), then its last checkpoint is tested. ``--out`` gets one row per model (val curve,
test metrics, seconds per iteration, training time, command, environment) as soon as the
model is done, and the table is printed at the end; a model still training has a row with its
val curve so far, updated at every progress line. Run the same command again to continue:
finished models are not retrained and a stopped training resumes from its last checkpoint.

``--genotypes`` trains other SEG101 architectures with the same protocol, one row each: give
SEG101-Bench entry ids (looked up in ``--bench``) or genotype texts. Each gets a standalone
config in ``<work-root>/configs``::

    python tools/analysis_tools/protocol_table.py mass-roads --data-root data/mass_roads \\
        --amp --genotypes 2 4 7 8 9 --out results/cpu-protocol/genotypes_mass-roads.json
"""
import argparse
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    from seg101_mm.tools.protocol import DATASETS, PROTOCOL_CONFIGS
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('dataset', choices=DATASETS, help='which protocol configs to run')
    p.add_argument('--data-root', help='converted dataset folder (default: each config\'s)')
    p.add_argument(
        '--models',
        nargs='+',
        choices=list(PROTOCOL_CONFIGS),
        help='models to train (default: all three, or none when --genotypes is given)')
    p.add_argument(
        '--genotypes',
        nargs='+',
        default=[],
        metavar='ID_OR_GENOTYPE',
        help='SEG101 architectures to train with the SEG101 protocol config, one row each: '
        'SEG101-Bench entry ids (see --bench) or genotype texts')
    p.add_argument(
        '--bench',
        default=str(REPO / 'nasbench' / 'seg101-bench_mass-roads-cpu.json'),
        help='the SEG101-Bench file that --genotypes ids refer to (default: the committed '
        'Massachusetts one)')
    p.add_argument('--seed', type=int, default=0, help='training seed (default 0)')
    p.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: bfloat16 autocast on the CPU (tools/train.py --amp)')
    p.add_argument(
        '--jobs', type=int, default=1, help='trainings at the same time (default 1)')
    p.add_argument(
        '--threads', type=int, help='CPU threads per training (default: cores / jobs)')
    p.add_argument(
        '--checkpoint-interval',
        type=int,
        default=250,
        help='iterations between checkpoints, the most a stop loses (default 250)')
    p.add_argument(
        '--work-root', default='work_dirs/cpu-protocol', help='where the runs go')
    p.add_argument(
        '--out',
        help='result JSON (default: <work-root>/table1_<dataset>.json, or '
        'genotypes_<dataset>.json for a command with --genotypes only)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='more overrides for every run, passed to the train and test command lines')
    p.add_argument(
        '--poll', type=float, default=60.0, help='seconds between progress lines (default 60)')
    return p.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # a kill stops the running trainings too, as Ctrl-C does


def main(argv=None) -> int:
    import seg101_mm  # noqa: F401  (registers modules and applies compat fixes)
    from seg101_mm.tools.common import ToolError
    from seg101_mm.tools.protocol import (PROTOCOL_CONFIGS, markdown_table, resolve_genotypes,
                                          run_table)
    args = parse_args(argv)
    if args.models is None:
        args.models = [] if args.genotypes else list(PROTOCOL_CONFIGS)
    kind = 'table1' if args.models else 'genotypes'
    out = args.out or str(Path(args.work_root) / f'{kind}_{args.dataset}.json')
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        genotypes = resolve_genotypes(args.genotypes, args.bench, REPO)
        record = run_table(
            args.dataset,
            args.work_root,
            out,
            repo=str(REPO),
            models=args.models,
            genotypes=genotypes,
            seed=args.seed,
            data_root=args.data_root,
            amp=args.amp,
            jobs=args.jobs,
            threads=args.threads,
            checkpoint_interval=args.checkpoint_interval,
            cfg_options=args.cfg_options,
            poll_s=args.poll,
            progress=lambda m: print(f'[protocol] {m}', file=sys.stderr, flush=True))
    except ToolError as e:
        print(f'{Path(__file__).name}: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{Path(__file__).name}: error: interrupted (the trainings were stopped; their '
              'rows hold the val curves so far); run the same command again to continue',
              file=sys.stderr)
        return 130
    target = 'road' if args.dataset == 'mass-roads' else 'building'
    print(markdown_table(record, target))
    print(f'\nrows written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
