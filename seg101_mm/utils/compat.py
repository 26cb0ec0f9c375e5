"""Make both OpenMMLab stacks run this project without editing installed packages.

The project runs on the upstream stack (mmengine 0.10.7, mmcv-lite 2.1.0, mmsegmentation 1.2.2,
mmpretrain 1.2.0) and on the maintained OneDL forks (onedl-mmengine 0.10.12, onedl-mmcv 2.3.6,
onedl-mmsegmentation 1.4.2, onedl-mmpretrain 1.3.6; same import names). Each shim below checks
whether the installed stack needs it and stays off otherwise; :func:`shim_status` reports which
are active and why (``python -m seg101_mm.utils.compat`` prints it).

1. ``mmcv._ext`` stand-in. mmcv-lite (and onedl-mmcv built without ops) ships no compiled
   extension, and mmsegmentation <= 1.2.2 imports ``mmcv.ops`` unguarded in a few modules, so
   ``import mmseg.models`` fails with ``No module named 'mmcv._ext'``. Only when the real
   extension is absent *and* the installed mmseg is one of those releases, a stand-in module
   ``mmcv._ext`` is registered whose every op raises a :class:`MissingCompiledOpError` naming
   the op when called; pure-PyTorch parts of ``mmcv.ops`` (``point_sample``) keep working.
   onedl-mmsegmentation guards those imports itself, and full mmcv has the real extension.
2. Trusted local checkpoint loader. torch >= 2.6 loads checkpoints with ``weights_only=True``;
   mmengine 0.10.7 does not pass the flag, so its own checkpoints (which hold a
   ``HistoryBuffer``) fail to load. Only when mmengine's own local loader fails on such a
   checkpoint (checked once, on a small file written to a temporary folder), local files are
   loaded with ``weights_only=False``. **This trusts the file**: a checkpoint can run code when
   unpickled, so only load checkpoints you made or trust. onedl-mmengine loads its checkpoints
   with an allowlist of safe types, and is left alone.
3. ``setuptools < 82`` (a pin in ``requirements.txt``, not code). mmengine 0.10.7 resolves
   ``mmseg::`` config bases and package paths through ``pkg_resources``, which setuptools 82
   removed; onedl-mmengine uses ``importlib.metadata`` and takes any setuptools, so
   ``requirements-onedl.txt`` has no pin. :func:`shim_status` says whether the installed
   mmengine needs ``pkg_resources`` and whether it is importable.
4. Quiet import on mmcv without compiled ops. Without the stand-in (onedl-mmcv built without
   ops), ``import mmseg.models`` makes mmcv warn that ``MultiScaleDeformableAttention`` failed
   to import and advise installing mmcv "rather than mmcv-lite". No model of this project uses
   that op, and a config that did would still fail to build it; so exactly this warning is
   filtered, only when the compiled extension is absent and the stand-in is off.
"""
import importlib.machinery
import importlib.util
import os.path as osp
import re
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass
from typing import Dict

_STANDIN_NAME = 'mmcv._ext'
#: The last mmsegmentation release that imports ``mmcv.ops`` without a guard.
_LAST_UNGUARDED_MMSEG = '1.2.2'


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


def _version_tuple(text):
    """``'1.2.2'`` -> ``(1, 2, 2)``; ``'1.3.0rc1'`` -> ``(1, 3, 0)`` (the numeric release)."""
    return tuple(int(n) for n in re.findall(r'\d+', re.match(r'[\d.]*', text).group())[:3])


def mmseg_imports_ops_unguarded() -> bool:
    """True when the installed mmseg imports ``mmcv.ops`` unguarded (releases <= 1.2.2)."""
    if importlib.util.find_spec('mmseg') is None:
        return False
    from mmseg import __version__
    return _version_tuple(__version__) <= _version_tuple(_LAST_UNGUARDED_MMSEG)


def mmcv_ext_standin_needed() -> bool:
    """The stand-in is needed: mmcv is installed without its compiled extension, and mmseg
    would fail to import without it."""
    if _STANDIN_NAME in sys.modules or compiled_ops_available():
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    return mmseg_imports_ops_unguarded()


def install_mmcv_ext_standin() -> bool:
    """Register the stand-in when :func:`mmcv_ext_standin_needed`; return whether it did."""
    if not mmcv_ext_standin_needed():
        return False
    module = _ExtStandIn(_STANDIN_NAME,
                         'Stand-in for the compiled mmcv extension (see seg101_mm.utils.compat).')
    # A spec without a loader: ``pkgutil.find_loader('mmcv._ext')`` (mmengine's "is full mmcv
    # installed?" check in Runner.wrap_model) then answers "no" instead of raising ValueError.
    module.__spec__ = importlib.machinery.ModuleSpec(_STANDIN_NAME, None)
    sys.modules[_STANDIN_NAME] = module
    return True


def mmcv_ext_standin_active() -> bool:
    """True when ``mmcv._ext`` in this process is the stand-in."""
    module = sys.modules.get(_STANDIN_NAME)
    return module is not None and getattr(module, '__seg101_standin__', False)


def _load_local_trusted(filename, map_location=None):
    """Load a local checkpoint with ``weights_only=False`` (this trusts the file)."""
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)


def mmengine_loads_own_checkpoints() -> bool:
    """Whether mmengine's registered local loader reads a checkpoint of the kind it writes.

    A small checkpoint holding what a Runner saves besides tensors (a ``HistoryBuffer`` of
    numpy values, numpy scalars, plain containers) is written to a temporary folder and read
    back through ``CheckpointLoader``'s local scheme, before any override is registered.
    Fails on mmengine 0.10.7 with torch >= 2.6 (``weights_only=True``); passes on
    onedl-mmengine (allowlisted safe types) and on torch < 2.6.
    """
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader
    loader = CheckpointLoader._schemes.get('')
    if loader is None:
        return False
    if getattr(loader, '__func__', loader) is _load_local_trusted:
        loader = _PREVIOUS_LOCAL_LOADER.get('loader')
        if loader is None:
            return False
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5), 1)
    probe = dict(
        meta=dict(epoch=1, iter=2, seed=np.int64(3)),
        state_dict=dict(weight=torch.zeros(2)),
        message_hub=dict(
            log_scalars={'train/loss': buffer}, runtime_info=dict(iter=2, best=np.float64(0.25))))
    try:
        tmp_dir = tempfile.TemporaryDirectory(prefix='seg101_ckpt_probe_')
    except OSError:
        # no writable temporary folder: judge by the releases (the last upstream mmengine,
        # 0.10.7, does not pass weights_only; torch defaults to True from 2.6)
        import mmengine
        return not (_version_tuple(mmengine.__version__) <= (0, 10, 7)
                    and _version_tuple(torch.__version__) >= (2, 6))
    with tmp_dir as tmp:
        path = osp.join(tmp, 'probe.pth')
        torch.save(probe, path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                loaded = loader(path, map_location='cpu')
        except Exception:  # noqa: BLE001  (any failure means: it cannot)
            return False
    hub = loaded.get('message_hub', {}) if isinstance(loaded, dict) else {}
    return isinstance(hub.get('log_scalars', {}).get('train/loss'), HistoryBuffer)


_PREVIOUS_LOCAL_LOADER = {}


def install_trusted_local_checkpoint_loader() -> bool:
    """Route mmengine's local checkpoint loading through :func:`_load_local_trusted` when
    mmengine cannot load its own checkpoints; return whether the override is installed."""
    from mmengine.runner.checkpoint import CheckpointLoader
    if trusted_checkpoint_loader_active():
        return True
    if mmengine_loads_own_checkpoints():
        return False
    _PREVIOUS_LOCAL_LOADER['loader'] = CheckpointLoader._schemes.get('')
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local_trusted, force=True)
    return True


def trusted_checkpoint_loader_active() -> bool:
    """True when mmengine's local scheme is :func:`_load_local_trusted`."""
    from mmengine.runner.checkpoint import CheckpointLoader
    loader = CheckpointLoader._schemes.get('')
    return getattr(loader, '__func__', loader) is _load_local_trusted


def mmengine_needs_pkg_resources() -> bool:
    """True when the installed mmengine's package utilities import ``pkg_resources``
    (mmengine <= 0.10.7), which ``setuptools >= 82`` no longer provides."""
    spec = importlib.util.find_spec('mmengine')
    if spec is None or not spec.submodule_search_locations:
        return False
    path = osp.join(list(spec.submodule_search_locations)[0], 'utils', 'package_utils.py')
    try:
        with open(path, encoding='utf-8') as f:
            return 'import pkg_resources' in f.read()
    except OSError:
        return False


def pkg_resources_available() -> bool:
    try:
        return importlib.util.find_spec('pkg_resources') is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Shim:
    """One compatibility shim: whether it is active in this process, and why."""
    name: str
    active: bool
    reason: str


def _distribution(name):
    from importlib import metadata
    for dist in (f'onedl-{name}', name, f'{name}-lite'):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def stack_name() -> str:
    """``'onedl'`` when onedl-mmengine is installed, ``'upstream'`` for mmengine, else
    ``'none'``."""
    dist, _ = _distribution('mmengine')
    if dist is None:
        return 'none'
    return 'onedl' if dist.startswith('onedl-') else 'upstream'


def shim_status() -> Dict[str, Shim]:
    """Which compatibility shims are active here, each with the reason.

    Returns:
        dict[str, Shim]: ``'mmcv_ext_standin'``, ``'trusted_checkpoint_loader'``,
        ``'setuptools_below_82'`` (the pin: active means the installed mmengine needs
        ``pkg_resources``; the reason says whether it is importable) and
        ``'missing_ops_warning_filter'``.
    """
    setup_compat()
    out = {}
    if mmcv_ext_standin_active():
        import mmseg
        reason = (f'mmcv has no compiled extension and mmseg {mmseg.__version__} imports '
                  f'mmcv.ops unguarded')
    elif compiled_ops_available():
        reason = 'the compiled mmcv extension is installed'
    elif importlib.util.find_spec('mmcv') is None:
        reason = 'mmcv is not installed'
    else:
        import mmseg
        reason = (f'mmcv has no compiled extension, but mmseg {mmseg.__version__} guards its '
                  f'mmcv.ops imports')
    out['mmcv_ext_standin'] = Shim('mmcv_ext_standin', mmcv_ext_standin_active(), reason)

    import mmengine
    import torch
    active = trusted_checkpoint_loader_active()
    if active:
        reason = (f'mmengine {mmengine.__version__} cannot load its own checkpoints with '
                  f'torch {torch.__version__} (weights_only=True): local files are loaded with '
                  f'weights_only=False, which trusts the file')
    else:
        reason = (f'mmengine {mmengine.__version__} loads its own checkpoints with torch '
                  f'{torch.__version__}')
    out['trusted_checkpoint_loader'] = Shim('trusted_checkpoint_loader', active, reason)

    needed = mmengine_needs_pkg_resources()
    if needed:
        reason = (f'mmengine {mmengine.__version__} imports pkg_resources; ' +
                  ('it is importable'
                   if pkg_resources_available() else "it is MISSING: pip install 'setuptools<82'"))
    else:
        reason = f'mmengine {mmengine.__version__} does not use pkg_resources'
    out['setuptools_below_82'] = Shim('setuptools_below_82', needed, reason)

    active = bool(_WARNING_FILTER.get('set'))
    if active:
        reason = ('no compiled mmcv extension and no stand-in: mmcv\'s import warning about '
                  'MultiScaleDeformableAttention (an op no model here uses) is filtered')
    else:
        reason = ('the compiled mmcv extension or the stand-in is present: mmcv gives no such '
                  'warning')
    out['missing_ops_warning_filter'] = Shim('missing_ops_warning_filter', active, reason)
    return out


#: The start of the warning that mmcv.cnn.bricks.transformer gives without compiled ops.
_MSDA_WARNING = r'Fail to import ``MultiScaleDeformableAttention``'
_WARNING_FILTER = {}


def quiet_missing_ops_warning() -> bool:
    """Filter mmcv's import warning about ``MultiScaleDeformableAttention`` when the compiled
    extension is absent and the stand-in is off; return whether the filter is set."""
    if _WARNING_FILTER.get('set'):
        return True
    if compiled_ops_available() or mmcv_ext_standin_active():
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    warnings.filterwarnings('ignore', message=_MSDA_WARNING, category=UserWarning)
    _WARNING_FILTER['set'] = True
    return True


_DONE = False


def setup_compat():
    """Apply the shims this stack needs, once (idempotent)."""
    global _DONE
    if _DONE:
        return
    _DONE = True
    install_mmcv_ext_standin()
    quiet_missing_ops_warning()
    install_trusted_local_checkpoint_loader()


def main():
    status = shim_status()
    print(f'OpenMMLab stack: {stack_name()}')
    for name in ('mmengine', 'mmcv', 'mmsegmentation', 'mmpretrain'):
        dist, version = _distribution(name)
        print(f'  {dist or name}: {version or "not installed"}')
    for shim in status.values():
        print(f'{shim.name}: {"ACTIVE" if shim.active else "off"} ({shim.reason})')


if __name__ == '__main__':
    # Run the package's copy of this module: ``python -m`` executes a second one as __main__,
    # whose functions are not the ones registered with mmengine.
    from seg101_mm.utils.compat import main as _main
    _main()
