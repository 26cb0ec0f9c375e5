"""Make mmseg 1.2.2 work on the stack in README without editing installed packages.

Two fixes, both applied by :func:`setup_compat` when ``seg101_mm`` is imported:

1. ``mmcv-lite`` ships no compiled extension, and a few mmseg modules import ``mmcv.ops``
   unguarded, so ``import mmseg.models`` fails with ``No module named 'mmcv._ext'``. When (and
   only when) the real extension is absent, a stand-in module ``mmcv._ext`` is registered whose
   every op raises a :class:`MissingCompiledOpError` naming the op when called. Pure-PyTorch parts
   of ``mmcv.ops`` (``point_sample``) keep working. With full mmcv installed this does nothing.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine 0.10.7 does not pass the
   flag, so its own checkpoints (which hold a ``HistoryBuffer``) fail to load. Local files are
   therefore loaded with ``weights_only=False``. **This trusts the file**: a checkpoint can run
   code when unpickled, so only load checkpoints you made or trust.
"""
import importlib.machinery
import importlib.util
import os.path as osp
import sys
import types

_STANDIN_NAME = 'mmcv._ext'


class MissingCompiledOpError(RuntimeError):
    """A compiled mmcv op was called, but only mmcv-lite (no compiled ops) is installed."""


def _standin_op(name):

    def op(*args, **kwargs):
        raise MissingCompiledOpError(
            f'mmcv compiled op {name!r} is not available: mmcv-lite has no compiled extension. '
            f'Install full mmcv (see README, "GPU / full mmcv") to use models that need it.')

    op.__name__ = name
    return op


class _ExtStandIn(types.ModuleType):
    """Module object standing in for ``mmcv._ext``: every attribute is an op that raises."""

    __seg101_standin__ = True

    def __getattr__(self, name):
        # Dunder lookups must fail normally, or mmengine's registry scope inference (which
        # inspects module attributes) and copy/pickle machinery break.
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        op = _standin_op(name)
        setattr(self, name, op)
        return op


def compiled_ops_available() -> bool:
    """True when the real ``mmcv._ext`` is importable (full mmcv), False for mmcv-lite."""
    module = sys.modules.get(_STANDIN_NAME)
    if module is not None:
        return not getattr(module, '__seg101_standin__', False)
    try:
        return importlib.util.find_spec(_STANDIN_NAME) is not None
    except (ImportError, ValueError):
        return False


def install_mmcv_ext_standin() -> bool:
    """Register the stand-in when the compiled extension is missing; return whether it did."""
    if _STANDIN_NAME in sys.modules or compiled_ops_available():
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    module = _ExtStandIn(_STANDIN_NAME,
                         'Stand-in for the compiled mmcv extension (see seg101_mm.utils.compat).')
    # A spec without a loader: ``pkgutil.find_loader('mmcv._ext')`` (mmengine's "is full mmcv
    # installed?" check in Runner.wrap_model) then answers "no" instead of raising ValueError.
    module.__spec__ = importlib.machinery.ModuleSpec(_STANDIN_NAME, None)
    sys.modules[_STANDIN_NAME] = module
    return True


def _load_local_trusted(filename, map_location=None):
    """Load a local checkpoint with ``weights_only=False`` (this trusts the file)."""
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)


def install_trusted_local_checkpoint_loader():
    """Route mmengine's local checkpoint loading through :func:`_load_local_trusted`."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local_trusted, force=True)


_DONE = False


def setup_compat():
    """Apply both fixes once (idempotent)."""
    global _DONE
    if _DONE:
        return
    install_mmcv_ext_standin()
    install_trusted_local_checkpoint_loader()
    _DONE = True
