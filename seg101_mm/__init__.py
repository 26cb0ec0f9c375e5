"""SEG101-MM: the SEG101 search space, NPENAS-NP search and zero-cost proxies on MMSegmentation.

``import seg101_mm`` (or ``custom_imports=dict(imports=['seg101_mm'])`` in an mmseg config)
applies the compatibility fixes of :mod:`seg101_mm.utils.compat` and registers every module of
the package in mmseg's and mmengine's registries.

The search space (:mod:`seg101_mm.space`) is pure Python. On a machine without torch the
package still imports, with only the torch-free parts (space, search strategies' bookkeeping)
usable.
"""
__version__ = '0.1.0'


def _torch_available():
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != 'torch':
            raise
        return False
    return True


def register_all_modules():
    """Apply the compat fixes and import every registering submodule (idempotent)."""
    from .utils.compat import setup_compat
    setup_compat()
    from . import datasets, engine, evaluation, models, proxies, search  # noqa: F401
    from .nasbench import builder  # noqa: F401  (registers NASBenchExportHook)


if _torch_available():
    register_all_modules()
