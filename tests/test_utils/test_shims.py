"""Each compatibility shim is on exactly where its stack needs it, and says why."""
import subprocess
import sys
from importlib import metadata

import pytest

import seg101_mm  # noqa: F401
from seg101_mm.utils import Shim, compat, shim_status, stack_name

SHIMS = ('mmcv_ext_standin', 'trusted_checkpoint_loader', 'setuptools_below_82',
         'missing_ops_warning_filter')


def _installed(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def test_version_tuple_reads_release_numbers():
    assert compat._version_tuple('1.2.2') == (1, 2, 2)
    assert compat._version_tuple('1.3.0rc1') == (1, 3, 0)
    assert compat._version_tuple('0.10.12+local') == (0, 10, 12)
    assert compat._version_tuple('1.2.2') <= compat._version_tuple(compat._LAST_UNGUARDED_MMSEG)
    assert compat._version_tuple('1.4.2') > compat._version_tuple(compat._LAST_UNGUARDED_MMSEG)


def test_shim_status_reports_every_shim_with_a_reason():
    status = shim_status()
    assert tuple(status) == SHIMS
    for name, shim in status.items():
        assert isinstance(shim, Shim) and shim.name == name
        assert isinstance(shim.active, bool) and len(shim.reason) > 10


@pytest.mark.skipif(stack_name() != 'upstream', reason='checks the upstream stack')
def test_upstream_stack_needs_all_three_shims():
    import mmengine
    import mmseg
    import torch
    status = shim_status()
    if mmseg.__version__ == '1.2.2' and not compat.compiled_ops_available():
        assert status['mmcv_ext_standin'].active, status['mmcv_ext_standin']
        assert 'imports mmcv.ops unguarded' in status['mmcv_ext_standin'].reason
    if mmengine.__version__ == '0.10.7' and compat._version_tuple(torch.__version__) >= (2, 6):
        assert status['trusted_checkpoint_loader'].active
        assert 'trusts the file' in status['trusted_checkpoint_loader'].reason
        assert status['setuptools_below_82'].active
        assert 'it is importable' in status['setuptools_below_82'].reason
    # the stand-in makes mmcv.ops importable: mmcv has nothing to warn about
    assert not status['missing_ops_warning_filter'].active


@pytest.mark.skipif(stack_name() != 'onedl', reason='checks the OneDL stack')
def test_onedl_stack_needs_none_of_the_upstream_shims():
    status = shim_status()
    upstream = ('mmcv_ext_standin', 'trusted_checkpoint_loader', 'setuptools_below_82')
    assert not any(status[name].active for name in upstream), status
    assert status['missing_ops_warning_filter'].active == (not compat.compiled_ops_available())
    assert not compat.mmcv_ext_standin_active()
    assert 'guards its mmcv.ops imports' in status['mmcv_ext_standin'].reason or \
        compat.compiled_ops_available()
    # mmengine's own safe loader is left in place
    from mmengine.runner.checkpoint import CheckpointLoader
    assert CheckpointLoader._schemes[''].__module__ == 'mmengine.runner.checkpoint'


def test_standin_decision_follows_the_mmseg_release(monkeypatch):
    import mmseg
    monkeypatch.setattr(mmseg, '__version__', '1.2.2')
    assert compat.mmseg_imports_ops_unguarded()
    monkeypatch.setattr(mmseg, '__version__', '1.4.2')
    assert not compat.mmseg_imports_ops_unguarded()
    # with the extension module present (stand-in or real), nothing is installed again
    monkeypatch.setitem(sys.modules, 'mmcv._ext', sys.modules.get('mmcv._ext', object()))
    assert not compat.mmcv_ext_standin_needed()


def test_runner_checkpoint_round_trip_on_this_stack(tmp_path):
    """What the loader shim is for: a checkpoint holding a HistoryBuffer loads back."""
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner.checkpoint import CheckpointLoader, save_checkpoint
    hub = MessageHub.get_instance('seg101_shim_test')
    hub.update_scalar('train/loss', 0.75)
    hub.update_info('best_score', np.float64(61.5))
    path = tmp_path / 'iter_2.pth'
    save_checkpoint(
        dict(
            meta=dict(iter=2, seed=np.int64(0)),
            state_dict={'w': torch.ones(3)},
            message_hub=hub.state_dict()), str(path))
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(3))
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.current() == 0.75
    assert float(loaded['message_hub']['runtime_info']['best_score']) == 61.5


def test_loader_override_stays_off_where_mmengine_loads_its_checkpoints(monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader
    own = CheckpointLoader._schemes['']
    if compat.trusted_checkpoint_loader_active():
        own = compat._PREVIOUS_LOCAL_LOADER['loader']
    # register_scheme rebinds CheckpointLoader._schemes: patch the attribute, not the dict
    monkeypatch.setattr(CheckpointLoader, '_schemes', dict(CheckpointLoader._schemes, **{'': own}))
    monkeypatch.setattr(compat, 'mmengine_loads_own_checkpoints', lambda: True)
    assert compat.install_trusted_local_checkpoint_loader() is False
    assert CheckpointLoader._schemes[''] is own
    monkeypatch.setattr(compat, 'mmengine_loads_own_checkpoints', lambda: False)
    assert compat.install_trusted_local_checkpoint_loader() is True
    assert compat.trusted_checkpoint_loader_active()


def test_pkg_resources_need_matches_the_installed_mmengine():
    import mmengine
    needs = compat.mmengine_needs_pkg_resources()
    assert needs == (
        compat._version_tuple(mmengine.__version__) <= (0, 10, 7)
        and _installed('onedl-mmengine') is None)
    if needs:
        assert compat.pkg_resources_available(), "mmengine needs pip install 'setuptools<82'"


def test_command_line_report():
    out = subprocess.run([sys.executable, '-W', 'ignore', '-m', 'seg101_mm.utils.compat'],
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f'OpenMMLab stack: {stack_name()}' in lines
    status = shim_status()
    for name, shim in status.items():
        assert f'{name}: {"ACTIVE" if shim.active else "off"} ({shim.reason})' in lines


def test_importing_mmseg_models_gives_no_missing_ops_warning():
    code = ('import warnings\n'
            'warnings.simplefilter("always")\n'
            'with warnings.catch_warnings(record=True) as caught:\n'
            '    warnings.simplefilter("always")\n'
            '    import seg101_mm, mmseg.models\n'
            'print([str(w.message)[:60] for w in caught if "Fail to import" in '
            'str(w.message)])\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '[]'
    assert 'Fail to import' not in out.stderr


def test_loader_probe_without_a_temporary_folder_judges_by_release(monkeypatch):
    import mmengine
    import torch

    def no_tmp(*args, **kwargs):
        raise OSError('read-only file system')

    monkeypatch.setattr(compat.tempfile, 'TemporaryDirectory', no_tmp)
    expected = not (compat._version_tuple(mmengine.__version__) <= (0, 10, 7)
                    and compat._version_tuple(torch.__version__) >= (2, 6))
    assert compat.mmengine_loads_own_checkpoints() is expected
