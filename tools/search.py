"""Run an architecture search (NPENAS-NP): ``python tools/search.py -h``.

The command line lives in the package, :mod:`seg101_mm.tools.search`, so an installed
seg101_mm runs it without this checkout: ``python -m seg101_mm.tools.search``.
"""
import sys

from seg101_mm.tools.search import cli

if __name__ == '__main__':
    sys.exit(cli())
