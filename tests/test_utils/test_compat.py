import subprocess
import sys

import pytest

import seg101_mm  # noqa: F401
from seg101_mm.utils import MissingCompiledOpError, compat


def test_mmseg_models_import_and_registry_holds_our_modules():
    import mmseg.models  # noqa: F401  fails with "No module named 'mmcv._ext'" without the fix
    from mmseg.registry import MODELS
    for name in ('SEG101EnhanceNeck', 'SEG101FusionHead', 'TopKPixelCrossEntropyLoss'):
        assert MODELS.get(name) is not None, name


@pytest.mark.skipif(
    not compat.mmcv_ext_standin_active(),
    reason='stand-in inactive on this stack (full mmcv, or an mmseg that guards '
    'its mmcv.ops imports)')
def test_standin_raises_a_clear_error_naming_the_op():
    import torch
    from mmcv.ops import nms, point_sample

    # pure-PyTorch ops keep working
    assert point_sample(torch.rand(1, 2, 8, 8), torch.rand(1, 5, 2)).shape == (1, 2, 5)
    with pytest.raises(MissingCompiledOpError, match="'nms'.*mmcv-lite"):
        nms(torch.rand(3, 4), torch.rand(3), 0.5)
    ext = sys.modules['mmcv._ext']
    with pytest.raises(AttributeError):
        ext.__wrapped__  # dunder lookups must fail normally (mmengine scope inference)
    # mmengine's "is full mmcv installed?" check answers "no" instead of raising
    import pkgutil
    assert pkgutil.find_loader('mmcv._ext') is None
    assert not compat.install_mmcv_ext_standin()  # idempotent: already present


def test_standin_stays_out_of_the_way_when_the_real_extension_exists():
    # load compat.py alone, so that nothing imports mmcv.ops against the fake extension
    code = ('import importlib.util, sys, types\n'
            'real = types.ModuleType("mmcv._ext")\n'
            'sys.modules["mmcv._ext"] = real\n'
            f'spec = importlib.util.spec_from_file_location("compat", {compat.__file__!r})\n'
            'compat = importlib.util.module_from_spec(spec)\n'
            'spec.loader.exec_module(compat)\n'
            'assert compat.compiled_ops_available()\n'
            'assert compat.install_mmcv_ext_standin() is False\n'
            'assert sys.modules["mmcv._ext"] is real\n'
            'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'


def test_custom_imports_in_a_config_registers_everything(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['seg101_mm'], allow_failed_imports=False)\n")
    code = ('from mmengine.config import Config\n'
            f'Config.fromfile({str(cfg)!r})\n'
            'import mmseg.models\n'
            'from mmseg.registry import MODELS\n'
            'assert MODELS.get("SEG101FusionHead") is not None\n'
            'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith('ok')


def test_trusted_loader_reports_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        compat._load_local_trusted(str(tmp_path / 'nope.pth'))
