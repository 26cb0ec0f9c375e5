"""FLOPs and parameters of a config's model (mmseg's ``tools/analysis_tools/get_flops.py``
command line).

Example::

    python tools/analysis_tools/get_flops.py configs/seg101/<config>.py --shape 512 512

Counts one forward of a ``1 x 3 x H x W`` image with the counter of the ``flops`` proxy and the
search's FLOPs budget (:func:`seg101_mm.proxies.flops.count_flops`: mmengine's FlopAnalyzer,
one multiply-add = one FLOP, normalisation / pooling / resizing / softmax not counted).
mmseg 1.2.2's own script does not run with mmengine >= 0.7.3. ``--shape`` defaults to the
model's training input size (``model.data_preprocessor.size``), else 512x512.
"""
import argparse
import json
import os
import os.path as osp

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
from mmengine.config import DictAction

from seg101_mm.tools.common import build_inference_model, load_config, parse_shape, run_tool
from seg101_mm.tools.complexity import default_shape, human, model_complexity


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Get the FLOPs of a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='input image size H [W] (default: the model\'s '
        'data_preprocessor size, else 512 512)')
    parser.add_argument('--json', help='also write flops, params and input_shape to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into the config file')
    return parser.parse_args(argv)


def run(args):
    cfg = load_config(args.config, args.cfg_options)
    shape = parse_shape(args.shape) if args.shape else default_shape(cfg)
    model = build_inference_model(cfg)
    result = model_complexity(model, shape)
    bar = '=' * 30
    print(f'{bar}\nCompute type: direct: a zero image of the input shape\n'
          f'Input shape: {tuple(result["input_shape"])}\n'
          f'Flops: {human(result["flops"])} ({result["flops"]:,})\n'
          f'Params: {human(result["params"])} ({result["params"]:,})\n{bar}')
    print('FLOPs count one multiply-add as one FLOP and leave out normalisation, pooling, '
          'resizing and softmax; check that this fits how you compare models.')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(result, config=args.config), f, indent=2)
    return result


def main(argv=None):
    return run_tool(run, parse_args(argv), __file__)


if __name__ == '__main__':
    main()
