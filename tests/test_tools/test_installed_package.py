"""seg101_mm installed with ``pip install .`` (not editable) into a scratch virtual environment
works without this checkout on its path: a tiny search, with real training jobs, and the proxies
tool, both run from another directory.

The environment sees the system's packages (torch, mmseg, ...) but its own copy of seg101_mm
comes first; the checks assert that this copy, not the checkout, is the one that ran.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seg101_mm.search.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
SEARCH = 'configs/search/npenas-np_seg101-regnetx400mf_cpu-40it_synthetic-roads-64x64.py'


def _run(cmd, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The scratch environment's interpreter, and a directory outside the checkout."""
    tmp = tmp_path_factory.mktemp('installed')
    src = tmp / 'src'  # a copy: an in-tree build would write into the checkout
    shutil.copytree(REPO / 'seg101_mm', src / 'seg101_mm',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.py', 'README.md'):
        shutil.copy(REPO / name, src / name)
    venv = tmp / 'venv'
    # without a pip of its own: a venv's bundled setuptools would shadow the system's, and
    # this pip installs into it (--python) with no download (--no-index, no build isolation)
    proc = _run([sys.executable, '-m', 'venv', '--system-site-packages', '--without-pip', venv],
                tmp)
    assert proc.returncode == 0, proc.stderr
    python = venv / 'bin' / 'python'
    proc = _run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q', '--no-deps',
                 '--no-index', '--no-build-isolation', src], tmp)
    if proc.returncode != 0:
        pytest.fail(f'pip install . failed: {proc.stderr[-2000:]}')
    elsewhere = tmp / 'elsewhere'
    elsewhere.mkdir()
    proc = _run([python, '-c', 'import seg101_mm; print(seg101_mm.__file__)'], elsewhere)
    assert proc.returncode == 0, proc.stderr
    where = Path(proc.stdout.strip())
    assert venv in where.parents and REPO not in where.parents, where
    # the launchers' torchrun and srun scripts are installed with the package
    for script in ('dist_run.sh', 'slurm_run.sh'):
        assert (where.parent / 'tools' / script).is_file(), script
    return python, elsewhere


def test_search_and_proxies_run_from_another_directory(installed):
    python, elsewhere = installed
    # the search config's templates resolve next to it (as _base_ does), not from the cwd
    proc = _run([
        python, '-m', 'seg101_mm.tools.search', REPO / SEARCH, '--work-dir', 'wd',
        '--cfg-options', 'train_cfg.budget=1', 'train_cfg.strategy.num_init=1',
        'train_cfg.candidate.iters=1', 'train_cfg.candidate.synthetic.num_train=2',
        'train_cfg.candidate.synthetic.num_val=1', 'train_cfg.candidate.synthetic.num_test=1'
    ], elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wd = elsewhere / 'wd'
    records = Ledger(wd / 'ledger.jsonl', readonly=True).records()
    done = [r for r in records if r.get('status') == 'done']
    assert len(done) == 1, [r.get('cause') for r in records if r.get('status') == 'failed']
    log = Path(done[0]['log']).read_text()
    assert 'gloo' in log  # a real torchrun job of the installed seg101_mm.tools.train
    assert json.loads((Path(done[0]['work_dir']) / 'result.json').read_text())['iter'] == 1
    best = sorted(wd.glob('best_*_full-train.py'))
    assert len(best) == 1, sorted(p.name for p in wd.iterdir())
    # the proxies tool of the checkout, run by the installed package on the exported config
    out = elsewhere / 'proxies'
    proc = _run([
        python, REPO / 'tools' / 'analysis_tools' / 'zero_cost_proxies.py', '--config', best[0],
        '--proxies', 'params', 'snip', '--batch-size', '2', '--img-size', '64', '--out-dir', out,
        '--device', 'cpu'
    ], elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads((out / 'proxies.json').read_text())['rows'][0]
    assert row['params'] > 1e6 and row['snip'] > 0, row
