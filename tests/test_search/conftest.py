"""Helpers of the search tests: the fake trainer and search configs written into tmp_path."""
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TEMPLATE = 'configs/search/candidates/seg101_regnetx400mf_1xb2-cpu-tiny_roads-64x64.py'
EXPORT = 'configs/search/full/seg101_regnetx400mf_2xb2-100e_mass-roads-512x512.py'


@pytest.fixture
def fake_script():
    return str(HERE / 'fake_dist_train.sh')


@pytest.fixture
def search_config(repo_root):
    """``search_config(path, launcher, **options)`` writes a search config for tests."""

    def write(path, launcher, **kwargs):
        return _search_config(path, repo_root, launcher, **kwargs)

    return write


def _search_config(path,
                   repo_root,
                   launcher,
                   budget=4,
                   num_init=2,
                   top_k=2,
                   iters=1,
                   max_failures=5,
                   timeout=None,
                   poll=0.05,
                   strategy='NPENASNP',
                   seed=0,
                   measure=None,
                   data_root=None,
                   synthetic=dict(kind='roads', num_train=2, num_val=1, num_test=1, size=64)):
    """Write a search config for tests and return its path."""
    strat = dict(
        type=strategy,
        num_init=num_init,
        top_k=top_k,
        num_candidates=20,
        predictor=dict(epochs=30))
    text = f'''
default_scope = 'mmseg'
custom_imports = dict(imports=['seg101_mm'], allow_failed_imports=False)
train_cfg = dict(
    type='NPENASSearchLoop', strategy={strat!r}, budget={budget}, seed={seed},
    launcher={launcher!r},
    candidate=dict(template={str(repo_root / TEMPLATE)!r}, iters={iters},
                   data_root={data_root!r}, synthetic={synthetic!r}),
    export=dict(template={str(repo_root / EXPORT)!r}),
    max_failures={max_failures}, candidate_timeout={timeout!r}, poll_interval={poll},
    measure={measure!r}, fsync=False)
model = dict(type='SearchController')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.0))
train_dataloader = dict()
default_hooks = dict(runtime_info=None, timer=None, logger=None, param_scheduler=None,
                     checkpoint=None, sampler_seed=None)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
log_level = 'WARNING'
'''
    Path(path).write_text(text)
    return str(path)
