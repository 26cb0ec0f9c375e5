"""SEG101-Bench: trained SEG101 architectures on real tiles, with their proxies.

:func:`load_nasbench` / :class:`NASBench` read the committed file (torch-free);
:mod:`.builder` builds it with the search machinery (``tools/analysis_tools/build_nasbench.py``)
and :mod:`.study` turns it into the study report (``tools/analysis_tools/nasbench_study.py``).
"""
from .table import NASBench, NASBenchError, canonical_key, load_nasbench

__all__ = ['NASBench', 'NASBenchError', 'canonical_key', 'load_nasbench']
