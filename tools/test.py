"""Test (and evaluate) a segmentor checkpoint: ``python tools/test.py -h``.

The command line lives in the package, :mod:`seg101_mm.tools.test`, so an installed
seg101_mm runs it without this checkout: ``python -m seg101_mm.tools.test``.
"""
import sys

from seg101_mm.tools.test import cli

if __name__ == '__main__':
    sys.exit(cli())
