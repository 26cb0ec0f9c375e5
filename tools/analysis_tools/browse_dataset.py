"""Show or save what a config's training pipeline produces, ground truth painted over each image
(mmseg's ``tools/analysis_tools/browse_dataset.py`` command line).

Example::

    python tools/analysis_tools/browse_dataset.py CONFIG --output-dir work_dirs/browse \
        --not-show [--max-images 20] [--split val]

Each sample of the dataset goes through the config's pipeline (train by default: crops,
flips, resizes as training sees them) and is painted with its mask in the dataset's palette by
the config's visualizer; one PNG per sample, named after the image.
"""
import argparse

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
from mmengine.config import DictAction

from seg101_mm.tools.browse import browse_dataset
from seg101_mm.tools.common import load_config, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Browse a dataset')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--output-dir',
        default=None,
        type=str,
        help='If there is no display interface, you can save it')
    parser.add_argument('--not-show', default=False, action='store_true')
    parser.add_argument('--show-interval', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--max-images', type=int, default=None, help='stop after this many samples')
    parser.add_argument(
        '--split',
        choices=('train', 'val', 'test'),
        default='train',
        help='whose dataloader dataset to browse (default: train)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into the config file')
    return parser.parse_args(argv)


def run(args):
    cfg = load_config(args.config, args.cfg_options)
    written = browse_dataset(
        cfg,
        output_dir=args.output_dir,
        show=not args.not_show,
        show_interval=args.show_interval,
        max_images=args.max_images,
        split=args.split)
    if written:
        print(f'{len(written)} images written to {args.output_dir}')
    return written


def main(argv=None):
    return run_tool(run, parse_args(argv), __file__)


if __name__ == '__main__':
    main()
