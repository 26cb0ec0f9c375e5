"""SEG101-MM: the SEG101 search space, NPENAS-NP search and zero-cost proxies on MMSegmentation.

``import seg101_mm`` registers every module of the package in mmseg's and mmengine's
registries and applies the compatibility fixes of :mod:`seg101_mm.utils.compat`; it writes no
file (the checkpoint loader's check waits for the first checkpoint load). Configs name
:mod:`seg101_mm.registration` in ``custom_imports``, which registers whatever was imported
before it.

The search space (:mod:`seg101_mm.space`) is pure Python: ``import seg101_mm.space`` (or of a
module under it) loads neither torch nor the OpenMMLab stack, even where they are installed.
When this package is first loaded as the parent of that import, it stays light: it registers on
the first access to a registering part through it (``seg101_mm.models``,
``from seg101_mm import proxies``), on :func:`register_all_modules`, or on
``import seg101_mm.registration``. On a machine without torch the package still imports, with
only the torch-free parts (space, search strategies' bookkeeping) usable.
"""
import importlib
import sys

__version__ = '0.1.0'

#: Subpackages that import neither torch nor the OpenMMLab stack.
_LIGHT_SUBPACKAGES = ('space', )
_SUBPACKAGES = ('benchmark', 'datasets', 'engine', 'evaluation', 'models', 'proxies', 'search',
                'space', 'tools', 'utils')


def _torch_available():
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != 'torch':
            raise
        return False
    return True


_REGISTRATION = {}


def register_all_modules():
    """Apply the compat fixes and import every registering submodule (idempotent)."""
    _REGISTRATION['started'] = True
    from .utils.compat import setup_compat
    setup_compat()
    from . import datasets, engine, evaluation, models, proxies, search  # noqa: F401
    from .benchmark import builder  # noqa: F401  (registers BenchmarkExportHook)


def _loaded_for_a_light_subpackage():
    """True when this package is being loaded only as the parent of a light subpackage's
    import (``import seg101_mm.space``, ``from seg101_mm.space.genotype import ...``).

    Python loads a package before any module under it; the module whose import needs this
    package is the next one up the import machinery's frames on this thread (``name`` of
    ``importlib._bootstrap._find_and_load``). Where that cannot be read, the answer is False:
    the package registers, as a plain ``import seg101_mm`` does.
    """
    getframe = getattr(sys, '_getframe', None)
    if getframe is None:
        return False
    pending = []
    frame = getframe(1)
    while frame is not None and len(pending) < 2:
        code = frame.f_code
        if code.co_name == '_find_and_load' and 'importlib._bootstrap' in code.co_filename:
            name = frame.f_locals.get('name')
            if not isinstance(name, str):
                return False
            pending.append(name)
        frame = frame.f_back
    if len(pending) < 2 or pending[0] != __name__:
        return False
    return any(pending[1] == f'{__name__}.{sub}' or pending[1].startswith(f'{__name__}.{sub}.')
               for sub in _LIGHT_SUBPACKAGES)


def __getattr__(name):
    """A subpackage reached through the package (``seg101_mm.models``): registers first, unless
    it is a light one (PEP 562; only called for names not already set)."""
    if name not in _SUBPACKAGES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    if (name not in _LIGHT_SUBPACKAGES and not _REGISTRATION.get('started')
            and _torch_available()):
        register_all_modules()
    return importlib.import_module(f'{__name__}.{name}')


if not _loaded_for_a_light_subpackage() and _torch_available():
    register_all_modules()
