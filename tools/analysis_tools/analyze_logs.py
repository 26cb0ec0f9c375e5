"""Plot and summarise mmengine's JSON training logs (mmseg's
``tools/analysis_tools/analyze_logs.py`` command line).

Examples::

    python tools/analysis_tools/analyze_logs.py \
        work_dirs/run/20260101_120000/vis_data/scalars.json --keys mIoU IoU.road --out miou.png
    python tools/analysis_tools/analyze_logs.py A.json B.json --keys loss --legend A B \
        --out loss.png

Prints, per log and key, the number of points, the last value and the best (highest, or lowest
for losses and times) with its step; with ``--out`` the curves against the step go to that file,
otherwise they are shown. ``--style`` is a matplotlib style (mmseg's takes a seaborn style).
"""
import argparse

from seg101_mm.tools.common import run_tool
from seg101_mm.tools.logs import load_json_log, plot_curve, summarize


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyze Json Log')
    parser.add_argument('json_logs', type=str, nargs='+', help='path of train log in json format')
    parser.add_argument(
        '--keys', type=str, nargs='+', default=['mIoU'], help='the metric that you want to plot')
    parser.add_argument('--title', type=str, help='title of figure')
    parser.add_argument('--legend', type=str, nargs='+', default=None, help='legend of each plot')
    parser.add_argument('--backend', type=str, default=None, help='backend of plt')
    parser.add_argument('--style', type=str, default='default', help='matplotlib style of plt')
    parser.add_argument('--out', type=str, default=None)
    return parser.parse_args(argv)


def run(args):
    logs = [load_json_log(path) for path in args.json_logs]
    for line in summarize(logs, args.keys, args.json_logs):
        print(line)
    out = plot_curve(
        logs,
        args.keys,
        legend=args.legend,
        title=args.title,
        out=args.out,
        style=args.style,
        backend=args.backend)
    if out:
        print(f'plot written to {out}')
    return logs


def main(argv=None):
    return run_tool(run, parse_args(argv), __file__)


if __name__ == '__main__':
    main()
