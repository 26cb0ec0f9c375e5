"""Confusion matrix of saved test predictions (mmseg's
``tools/analysis_tools/confusion_matrix.py`` command line).

Example::

    python tools/test.py CONFIG CKPT --out work_dirs/preds
    python tools/analysis_tools/confusion_matrix.py CONFIG work_dirs/preds work_dirs/cm

Reads the predicted masks (PNG, one class index per pixel, named after each test image),
takes the ground truth from the config's test split through its pipeline, and writes
``confusion_matrix.png`` (rows: ground truth, columns: prediction, each row in percent) and
``confusion_matrix.json`` (pixel counts; per-class IoU, precision, recall) to SAVE_DIR.
"""
import argparse

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
from mmengine.config import DictAction

from seg101_mm.tools.browse import build_dataset
from seg101_mm.tools.common import load_config, run_tool
from seg101_mm.tools.confusion import (confusion_matrix, normalized, plot_confusion_matrix,
                                       save_matrix_json)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate confusion matrix from segmentation results')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('prediction_path', help='prediction path where test folder result saved')
    parser.add_argument('save_dir', help='directory where confusion matrix will be saved')
    parser.add_argument('--show', action='store_true', help='show confusion matrix')
    parser.add_argument('--color-theme', default='winter', help='theme of the matrix color map')
    parser.add_argument(
        '--title', default='Normalized Confusion Matrix', help='title of the matrix color map')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into the config file')
    return parser.parse_args(argv)


def run(args):
    cfg = load_config(args.config, args.cfg_options)
    dataset = build_dataset(cfg, 'test')
    classes = dataset.metainfo['classes']
    matrix = confusion_matrix(dataset, args.prediction_path)
    png = plot_confusion_matrix(
        matrix,
        classes,
        args.save_dir,
        show=args.show,
        title=args.title,
        color_theme=args.color_theme)
    path = save_matrix_json(matrix, classes, args.save_dir)
    pct = normalized(matrix)
    corner = 'gt \\ pred'
    width = max(len(corner), *(len(c) for c in classes))
    print(f'{corner:<{width}} ' + ' '.join(f'{c:>{max(len(c), 7)}}' for c in classes))
    for name, row in zip(classes, pct):
        print(f'{name:<{width}} ' + ' '.join(f'{v:>{max(len(c), 7)}.2f}'
                                             for c, v in zip(classes, row)))
    print(f'written: {png}, {path}')
    return matrix


def main(argv=None):
    return run_tool(run, parse_args(argv), __file__)


if __name__ == '__main__':
    main()
