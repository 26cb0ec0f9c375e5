"""Run an architecture search: tools/search.py CONFIG [--work-dir DIR] [--resume].

The search config sets ``train_cfg=dict(type='NPENASSearchLoop', ...)`` (see
configs/search/ and docs/search.md); mmengine's Runner runs it. Every candidate gets its own
config and training job under ``<work_dir>/candidates/``; ``<work_dir>/ledger.jsonl`` records
them all, so ``--resume`` continues an interrupted search without retraining anything.
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='SEG101 architecture search (NPENAS-NP)')
    parser.add_argument('config', help='search config file path')
    parser.add_argument('--work-dir', help='the dir holding the search (ledger, candidates)')
    parser.add_argument('--resume', action='store_true',
                        help='continue the search recorded in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the search config, e.g. train_cfg.budget=20')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import seg101_mm  # noqa: F401  registers the search loop, hooks and models
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if cfg.train_cfg.get('type') not in ('NPENASSearchLoop', 'mmseg.NPENASSearchLoop'):
        raise ValueError(f'{args.config} is not a search config: train_cfg.type is '
                         f'{cfg.train_cfg.get("type")!r}, expected NPENASSearchLoop')
    cfg.train_cfg.resume = bool(args.resume)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
