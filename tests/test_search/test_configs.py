"""The search configs shipped in configs/search build a valid loop and strategy."""
from pathlib import Path

import pytest
from mmengine.config import Config

from seg101_mm.search.errors import SearchConfigError
from seg101_mm.search.loop import check_search_config
from seg101_mm.search.strategy import build_strategy
from seg101_mm.search.templates import load_template

CONFIGS = [
    'npenas-np_seg101-regnetx400mf_cpu-40it_synthetic-roads-64x64.py',
    'npenas-np-zc_seg101-regnetx400mf_cpu-40it_synthetic-roads-64x64.py'
]


@pytest.mark.parametrize('name', CONFIGS)
def test_search_configs(repo_root, name, monkeypatch):
    cfg = Config.fromfile(str(repo_root / 'configs' / 'search' / name)).train_cfg
    assert cfg.type == 'NPENASSearchLoop' and cfg.launcher.type == 'LocalLauncher'
    assert cfg.budget == 16 and cfg.candidate.iters == 40
    template = load_template(str(repo_root / cfg.candidate.template), iters=40)
    assert template['train_cfg']['max_iters'] == template['train_cfg']['val_interval'] == 40
    # warmup keeps its length, the poly decay spans the (shortened) run
    assert [s['end'] for s in template['param_scheduler']] == [5, 40]
    strategy = build_strategy(
        cfg.strategy.to_dict(),
        budget=cfg.budget,
        seed=cfg.seed,
        measure=lambda g: dict(params=1e6, flops=1e9))
    assert strategy.top_k == 4 and strategy.num_init == 8
    full = Config.fromfile(str(repo_root / cfg.export.template))
    assert full.train_cfg.max_iters == 201900 and full.train_dataloader.batch_size == 2
    monkeypatch.chdir(repo_root)  # template paths are relative to the repository root
    check_search_config(cfg.to_dict())  # the whole search config passes the pre-start check


def test_real_tile_search_config(repo_root, monkeypatch, tmp_path):
    name = 'npenas-np_seg101-regnetx400mf_cpu-160it_mass-roads-128x128.py'
    cfg = Config.fromfile(str(repo_root / 'configs' / 'search' / name)).train_cfg
    assert cfg.budget == 16 and cfg.launcher.max_concurrent == 2
    assert cfg.launcher.threads_per_process == 1
    # ten random candidates first, then predictor-guided rounds of three
    assert (cfg.strategy.num_init, cfg.strategy.top_k) == (10, 3)
    # ranked by the target class's IoU, a metric the candidates report
    assert cfg.score == 'IoU.road'
    # the candidates train with SEG101-Bench's recipe, so their scores lie on its scale
    bench = Config.fromfile(
        str(repo_root / 'configs' / 'nasbench' /
            'seg101-bench_seg101-regnetx400mf_cpu-160it_mass-roads-128x128.py')).train_cfg
    assert Path(cfg.candidate.template).resolve() == Path(bench.candidate.template).resolve()
    template = load_template(str(repo_root / cfg.candidate.template))
    assert template['train_cfg']['max_iters'] == 160
    assert template['train_cfg']['val_interval'] == 40
    assert [s['end'] for s in template['param_scheduler']] == [16, 160]
    assert template['model']['data_preprocessor']['size'] == (128, 128)
    # every candidate starts from the in-house backbone; only neck and head differ
    init = template['model']['backbone']['init_cfg']
    assert init['type'] == 'Pretrained' and init['prefix'] == 'backbone.'
    assert init['checkpoint'].startswith('~/.cache/seg101_mm/')
    # cheap, fixed validation: four tiles of each of the five val images
    assert template['val_dataloader']['dataset']['indices'] == list(range(0, 80, 4))
    assert template['default_hooks']['checkpoint'] is None
    # the given data_root must exist: check it against a stand-in folder
    data = tmp_path / 'data' / 'mass_roads'
    data.mkdir(parents=True)
    monkeypatch.chdir(repo_root)
    conf = cfg.to_dict()
    conf['candidate']['data_root'] = str(data)
    check_search_config(conf)
    conf['score'] = 'IoU.building'  # not a class of the template's dataset
    with pytest.raises(SearchConfigError, match=r"train_cfg.score='IoU.building' is not allowed"):
        check_search_config(conf)


def test_template_overrides_with_delete_load_twice(repo_root):
    """The search loads its template twice (pre-start check, then the loop); mmengine pops
    ``_delete_`` out of merged dicts, which must not change the second load."""
    path = str(repo_root / 'configs/search/candidates/'
               'seg101_regnetx400mf_1xb2-cpu-tiny_roads-64x64.py')
    init = dict(_delete_=True, type='Pretrained', checkpoint='/x/bb.pth', prefix='backbone.')
    overrides = {'model.backbone.init_cfg': init}
    for _ in range(2):
        got = load_template(path, overrides)['model']['backbone']['init_cfg']
        assert got == dict(type='Pretrained', checkpoint='/x/bb.pth', prefix='backbone.')
    assert overrides['model.backbone.init_cfg']['_delete_'] is True
