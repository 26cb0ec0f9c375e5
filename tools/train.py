"""Train a segmentor from an mmseg config: ``python tools/train.py -h``.

The command line lives in the package, :mod:`seg101_mm.tools.train`, so an installed
seg101_mm runs it without this checkout: ``python -m seg101_mm.tools.train``.
"""
import sys

from seg101_mm.tools.train import cli

if __name__ == '__main__':
    sys.exit(cli())
