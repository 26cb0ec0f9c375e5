"""SEG101-Bench: trained SEG101 architectures on real tiles, with their proxies.

:func:`load_benchmark` / :class:`Benchmark` read the committed file (torch-free);
:mod:`.builder` builds it with the search machinery (``tools/analysis_tools/build_benchmark.py``)
and :mod:`.study` turns it into the study report (``tools/analysis_tools/benchmark_study.py``).
"""
from .bench import Benchmark, BenchmarkError, canonical_key, load_benchmark

__all__ = ['Benchmark', 'BenchmarkError', 'canonical_key', 'load_benchmark']
