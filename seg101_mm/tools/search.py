"""Run an architecture search: ``python -m seg101_mm.tools.search CONFIG [--work-dir DIR]
[--resume]`` (``tools/search.py`` in a checkout).

The search config sets ``train_cfg=dict(type='NPENASSearchLoop', ...)`` (see
configs/search/ and docs/search.md); mmengine's Runner runs it. Every candidate gets its own
config and training job under ``<work_dir>/candidates/``; ``<work_dir>/ledger.jsonl`` records
them all, so ``--resume`` continues an interrupted search without retraining anything.

The search config is checked before anything is written: a bad value, a work dir that holds a
search (without ``--resume``) or that another search holds ends with one ``error:`` line, and
leaves the work dir as it was.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='SEG101 architecture search (NPENAS-NP)')
    parser.add_argument('config', help='search config file path')
    parser.add_argument('--work-dir', help='the dir holding the search (ledger, candidates)')
    parser.add_argument(
        '--resume', action='store_true', help='continue the search recorded in the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the search config, e.g. train_cfg.budget=20')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from seg101_mm.search import lock
    from seg101_mm.search.errors import SearchConfigError
    from seg101_mm.search.loop import preflight
    if not osp.isfile(args.config):
        raise SearchConfigError(f'search config {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('type') not in ('NPENASSearchLoop', 'mmseg.NPENASSearchLoop'):
        raise SearchConfigError(f'{args.config} is not a search config: train_cfg.type is '
                                f'{train_cfg.get("type")!r}, expected NPENASSearchLoop')
    cfg.train_cfg.resume = bool(args.resume)
    work_dir = osp.abspath(cfg.work_dir)
    preflight(cfg.train_cfg.to_dict(), work_dir, args.resume)
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    finally:
        lock.release(work_dir)


def cli(argv=None) -> int:
    """:func:`main` with its refusals and stops printed as one ``error:`` line."""
    from seg101_mm.search.errors import SearchError
    from seg101_mm.search.ledger import LedgerError
    try:
        main(argv)
    except (SearchError, LedgerError) as e:
        print(f'error: {e}', file=sys.stderr)
        return getattr(e, 'exit_code', 1)
    except KeyboardInterrupt:
        print('error: interrupted; continue the search with --resume', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(cli())
