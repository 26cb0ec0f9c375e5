"""``import seg101_mm`` does nothing beyond registration (issue 28, section 5).

Each check runs in a fresh interpreter, so that nothing this test session imported counts.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

STACK = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmseg', 'mmpretrain')

#: Records, through an audit hook, every file or folder created or opened for writing under
#: $TMPDIR while ``STATEMENT`` runs, then prints a JSON report.
_WATCH = textwrap.dedent('''
    import json, os, sys, tempfile
    TMP = os.path.realpath(tempfile.gettempdir())
    WRITES = []

    def _under_tmp(path):
        try:
            path = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return path == TMP or path.startswith(TMP + os.sep)

    def _hook(event, args):
        if event == 'open' and args and _under_tmp(args[0]):
            mode, flags = args[1], args[2]
            if (mode and any(c in mode for c in 'wax+')) or (
                    not mode and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                WRITES.append(('open', os.fsdecode(args[0])))
        elif event in ('os.mkdir', 'os.rename', 'os.symlink') and args and _under_tmp(args[0]):
            WRITES.append((event, os.fsdecode(args[0])))

    sys.addaudithook(_hook)
    STATEMENT
    report = dict(writes=list(WRITES), listing=sorted(os.listdir(TMP)),
                  stack=sorted({m.split('.')[0] for m in sys.modules} & set(STACK)))
    EXTRA
    print('REPORT ' + json.dumps(report))
''')


def _run(tmp_path, statement, extra=''):
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    code = _WATCH.replace('STACK', repr(STACK)).replace('STATEMENT',
                                                        statement).replace('EXTRA', extra)
    env = dict(os.environ, TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith('REPORT ')][-1]
    return json.loads(line[len('REPORT '):])


@pytest.mark.parametrize('statement', [
    'import seg101_mm.space', 'from seg101_mm.space import Genotype, sample',
    'import seg101_mm.space.graph'
])
def test_the_search_space_loads_neither_torch_nor_the_openmmlab_stack(tmp_path, statement):
    report = _run(tmp_path, statement + '\nimport seg101_mm',
                  "report['registered'] = 'seg101_mm.models' in sys.modules")
    assert report['stack'] == [], report['stack']
    assert report['registered'] is False
    assert report['writes'] == [] and report['listing'] == []


def test_the_light_package_registers_when_a_registering_part_is_reached(tmp_path):
    pytest.importorskip('mmseg')
    report = _run(
        tmp_path, 'import seg101_mm.space\nimport seg101_mm.registration', 'from mmseg.registry '
        "import MODELS\nreport['head'] = MODELS.get('SEG101FusionHead') is not None")
    assert report['head'] is True
    assert report['writes'] == [] and report['listing'] == []


def test_import_writes_no_file_and_leaves_the_checkpoint_loader_to_mmengine(tmp_path):
    pytest.importorskip('mmengine')
    extra = textwrap.dedent('''
        from mmengine.runner import checkpoint as ckpt
        from mmseg.registry import MODELS
        from seg101_mm.utils import compat
        loader = ckpt.CheckpointLoader._schemes['']
        report['registered'] = MODELS.get('SEG101FusionHead') is not None
        report['trusted'] = compat.trusted_checkpoint_loader_active()
        report['pending'] = compat.checkpoint_check_pending()
        report['delegates_to_mmengine'] = loader is ckpt.load_from_local or (
            compat.checkpoint_check_pending()
            and compat._PREVIOUS_LOCAL_LOADER['loader'] is ckpt.load_from_local)
        # positive control: the check itself writes its probe in $TMPDIR, so the hook sees it
        n = len(WRITES)
        compat.resolve_checkpoint_loader()
        report['check_writes'] = len(WRITES) - n
        report['pending_after_check'] = compat.checkpoint_check_pending()
    ''')
    report = _run(tmp_path, 'import seg101_mm', extra)
    assert report['registered'] is True
    assert report['writes'] == [] and report['listing'] == []
    assert report['trusted'] is False
    assert report['delegates_to_mmengine'] is True
    assert report['check_writes'] > 0
    assert report['pending_after_check'] is False


def test_first_checkpoint_load_runs_the_check_once_and_loads_runner_checkpoints(tmp_path):
    pytest.importorskip('mmengine')
    ckpt = tmp_path / 'runner.pth'
    extra = textwrap.dedent(f'''
        import numpy as np, torch
        from mmengine.logging import HistoryBuffer
        from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
        from seg101_mm.utils import compat
        buffer = HistoryBuffer()
        buffer.update(np.float64(0.5), 1)
        torch.save(dict(state_dict=dict(w=torch.ones(1)),
                        message_hub=dict(log_scalars={{'loss': buffer}})), {str(ckpt)!r})
        report['pending_before'] = compat.checkpoint_check_pending()
        first = CheckpointLoader.load_checkpoint({str(ckpt)!r}, map_location='cpu')
        report['loaded'] = isinstance(first['message_hub']['log_scalars']['loss'], HistoryBuffer)
        report['pending_after'] = compat.checkpoint_check_pending()
        report['trusted'] = compat.trusted_checkpoint_loader_active()
        compat._PREVIOUS_LOCAL_LOADER['loader'] = load_from_local
        report['mmengine_alone'] = compat.mmengine_loads_own_checkpoints()
        n = len(WRITES)
        CheckpointLoader.load_checkpoint({str(ckpt)!r}, map_location='cpu')
        report['second_load_writes'] = len(WRITES) - n
    ''')
    report = _run(tmp_path, 'import seg101_mm', extra)
    assert report['pending_before'] is True
    assert report['loaded'] is True
    assert report['pending_after'] is False
    # the trusted loader is on exactly where mmengine cannot read its own checkpoints
    assert report['trusted'] is (not report['mmengine_alone'])
    assert report['second_load_writes'] == 0
