"""The model, dataset and schedule configs for Massachusetts Roads and WHU Building."""
import re
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import seg101_mm  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
MODEL_CONFIGS = sorted(
    str(p.relative_to(REPO)) for d in ('seg101', 'deeplabv3plus', 'pspnet')
    for p in (REPO / 'configs' / d).glob('*.py'))
PAPER_TILES = {'mass-roads': 8076, 'whu-building': 4736}  # docs/method.md section 9


def _dataset_key(path):
    return 'mass-roads' if 'mass-roads' in path else 'whu-building'


def test_every_algorithm_has_cpu_and_full_configs_for_both_datasets():
    names = {Path(p).name for p in MODEL_CONFIGS}
    for stem in ('seg101_regnetx400mf', 'deeplabv3plus_r50-d8', 'pspnet_r50-d8'):
        for ds in PAPER_TILES:
            assert f'{stem}_2xb2-100e_{ds}-512x512.py' in names
            assert f'{stem}_1xb4-cpu-2k_{ds}-256x256.py' in names
    # every other config is a variant of these, named in mmseg's scheme
    # (algorithm_backbone[-variant]_NxB-schedule_dataset-crop.py)
    pattern = re.compile(r'(seg101_regnetx400mf|deeplabv3plus_r50-d8|pspnet_r50-d8)(-[a-z0-9]+)?'
                         r'_\d+xb\d+-[a-z0-9-]+_(mass-roads|whu-building)-(\d+)x\4\.py')
    strays = sorted(n for n in names if not pattern.fullmatch(n))
    assert not strays, f'configs outside the naming scheme: {strays}'


@pytest.mark.parametrize('path', MODEL_CONFIGS)
def test_config_recipe(path):
    cfg = Config.fromfile(REPO / path)
    key = _dataset_key(path)
    target = 'road' if key == 'mass-roads' else 'building'
    assert cfg.train_dataloader.dataset.type == ('MassachusettsRoadsDataset'
                                                 if key == 'mass-roads' else 'WHUBuildingDataset')
    assert cfg.test_dataloader.dataset.data_prefix.img_path == 'img_dir/test'
    assert cfg.test_evaluator.type == 'SegPaperMetric'
    assert cfg.test_evaluator.target_class == target
    assert cfg.model.decode_head.num_classes == 2
    if 'auxiliary_head' in cfg.model:
        assert cfg.model.auxiliary_head.num_classes == 2
    opt = cfg.optim_wrapper
    if 'cpu-2k' in path:  # the CPU protocol
        assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.weight_decay) == ('AdamW',
                                                                                      1e-3, 0.01)
    else:  # the paper's recipe
        assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.momentum,
                opt.optimizer.weight_decay) == ('SGD', 0.01, 0.9, 1e-4)
    assert opt.paramwise_cfg.norm_decay_mult == 0.0
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.begin) == ('LinearLR', 0.001, 0)
    assert (poly.type, poly.power, poly.eta_min, poly.begin) == ('PolyLR', 0.9, 0.0, 0)
    assert poly.end == cfg.train_cfg.max_iters
    batch = cfg.train_dataloader.batch_size
    crop = [t for t in cfg.train_pipeline if t.type == 'RandomCrop'][0].crop_size
    resize = [t for t in cfg.train_pipeline if t.type == 'RandomChoiceResize'][0]
    assert resize.scales == [(512, 512), (768, 768), (1024, 1024)] and resize.keep_ratio
    if 'cpu-2k' in path:
        assert (batch, tuple(crop), cfg.train_cfg.max_iters, warmup.end) == (4, (256, 256), 2000,
                                                                             100)
        assert cfg.train_cfg.val_interval == 500  # learning curves at 1/4, 1/2, 3/4 and the end
    else:
        epochs = 20 if '-20e_' in path else 100
        # 2 GPUs x 2 images = the paper's batch 4
        assert (batch, tuple(crop), warmup.end) == (2, (512, 512), 1000)
        assert cfg.train_cfg.max_iters == PAPER_TILES[key] * epochs // 4
        if epochs == 20:
            assert cfg.train_cfg.val_interval == cfg.train_cfg.max_iters
        else:
            assert cfg.default_hooks.checkpoint.save_best == f'IoU.{target}'
    if 'cpu' in path:  # no SyncBN and no download on a CPU
        assert cfg.model.backbone.get('norm_cfg', dict(type='BN'))['type'] == 'BN'
        assert cfg.model.get('pretrained') is None
    if 'seg101' in path:
        assert cfg.model.neck.genotype == cfg.model.decode_head.genotype == cfg.genotype


@pytest.mark.parametrize('path', [p for p in MODEL_CONFIGS if 'cpu' in p and 'mass' in p])
def test_cpu_models_build(path):
    init_default_scope('mmseg')
    cfg = Config.fromfile(REPO / path)
    model = MODELS.build(cfg.model)
    assert model.decode_head.conv_seg.out_channels == 2
    assert not any('SyncBatchNorm' in type(m).__name__ for m in model.modules())
