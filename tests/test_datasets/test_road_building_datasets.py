"""The two registered datasets and their base configs (paper augmentation, test at 512)."""
import random
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS

import seg101_mm  # noqa: F401
from seg101_mm.datasets import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
BASES = {
    'MassachusettsRoadsDataset': ('mass_roads.py', 'roads', ('background', 'road')),
    'WHUBuildingDataset': ('whu_building.py', 'buildings', ('background', 'building')),
}


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


@pytest.mark.parametrize('dataset_type', sorted(BASES))
def test_dataset_from_base_config_loads_0_1_masks(tmp_path, dataset_type):
    base, kind, classes = BASES[dataset_type]
    root = make_synthetic_dataset(tmp_path, kind=kind, num_train=3, num_val=1, num_test=2)
    cfg = Config.fromfile(REPO / 'configs/_base_/datasets' / base)
    assert cfg.dataset_type == dataset_type
    for loader, split, n in (('train_dataloader', 'train', 3), ('val_dataloader', 'val', 1),
                             ('test_dataloader', 'test', 2)):
        ds_cfg = cfg[loader].dataset.copy()
        assert ds_cfg.data_prefix.img_path == f'img_dir/{split}'
        ds_cfg.data_root = str(root)
        ds = DATASETS.build(ds_cfg)
        assert len(ds) == n
        assert ds.metainfo['classes'] == classes
        if split == 'train':
            # the random 512 crop may miss every target pixel: seeded draws, one must hit
            draws = []
            for seed in range(6):
                random.seed(seed)
                np.random.seed(seed)
                draws.append(ds[0])
            segs = [d['data_samples'].gt_sem_seg.data for d in draws]
            assert all(set(s.unique().tolist()) <= {0, 1} for s in segs)
            assert max(int(s.max()) for s in segs) == 1
            sample = draws[0]
        else:
            sample = ds[0]
            seg = sample['data_samples'].gt_sem_seg.data
            assert set(seg.unique().tolist()) <= {0, 1} and seg.max() == 1
        seg = sample['data_samples'].gt_sem_seg.data
        if split == 'train':
            assert tuple(sample['inputs'].shape) == (3, 512, 512)  # random 512 crop
        else:
            # test at 512: the 64x64 synthetic tile is resized to 512, its mask is not
            assert tuple(sample['inputs'].shape) == (3, 512, 512)
            assert tuple(seg.shape) == (1, 64, 64)
    assert cfg.val_evaluator.type == 'SegPaperMetric'
    assert cfg.val_evaluator.target_class == classes[1]


@pytest.mark.parametrize('base', ['mass_roads.py', 'whu_building.py'])
def test_train_resize_draws_exactly_factors_1_15_2(base):
    cfg = Config.fromfile(REPO / 'configs/_base_/datasets' / base)
    steps = {t['type']: t for t in cfg.train_pipeline}
    resize = TRANSFORMS.build(steps['RandomChoiceResize'])
    crop = TRANSFORMS.build(steps['RandomCrop'])
    assert steps['RandomFlip']['prob'] == 0.5
    np.random.seed(0)
    sizes = set()
    for _ in range(60):
        results = dict(
            img=np.zeros((512, 512, 3), np.uint8),
            gt_seg_map=np.zeros((512, 512), np.uint8),
            seg_fields=['gt_seg_map'],
            img_shape=(512, 512),
            ori_shape=(512, 512))
        results = resize(results)
        sizes.add(results['img'].shape[:2])
        assert results['gt_seg_map'].shape == results['img'].shape[:2]
        assert crop(results)['img'].shape[:2] == (512, 512)
    assert sizes == {(512, 512), (768, 768), (1024, 1024)}


def test_datasets_keep_zero_label_and_png_suffix():
    for name, (_, _, classes) in BASES.items():
        cls = DATASETS.get(name)
        assert cls.METAINFO['classes'] == classes
        assert len(cls.METAINFO['palette']) == 2
