"""Batches for the proxies: random tensors, real tiles, or a config's training pipeline."""
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def make_batch(images, masks):
    """``dict(inputs, data_samples)`` from HxWx3 uint8 images and HxW integer masks.

    The format is what mmseg's ``SegDataPreProcessor`` takes (what the training pipeline's
    ``PackSegInputs`` yields): CHW uint8 tensors and ``SegDataSample`` with ``gt_sem_seg``.
    """
    if len(images) != len(masks) or not images:
        raise ValueError(f'need as many masks as images (at least one), got {len(images)} '
                         f'images and {len(masks)} masks')
    inputs, samples = [], []
    for img, mask in zip(images, masks):
        img = np.asarray(img)
        mask = np.asarray(mask)
        if img.ndim != 3 or mask.shape != img.shape[:2]:
            raise ValueError(f'expected an HxWxC image and an HxW mask, got {img.shape} and '
                             f'{mask.shape}')
        inputs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        hw = tuple(mask.shape)
        sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw, pad_shape=hw))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(mask.astype(np.int64))[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def random_batch(batch_size=2, size=(64, 64), num_classes=2, in_channels=3, seed=0):
    """A batch of uniform random uint8 images and random label maps, reproducible by ``seed``.

    Args:
        batch_size (int): images. Default: 2.
        size (int | tuple[int, int]): (H, W). Default: (64, 64).
        num_classes (int): labels are drawn from ``range(num_classes)``. Default: 2.
        in_channels (int): image channels. Default: 3.
        seed (int): seed of a private generator. Default: 0.
    """
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, in_channels), dtype=np.uint8) for _ in range(batch_size)]
    masks = [rng.integers(0, num_classes, (h, w)) for _ in range(batch_size)]
    return make_batch(images, masks)


def batch_from_config(cfg, batch_size=4, seed=0, split='train'):
    """Take ``batch_size`` samples of a config's ``<split>_dataloader`` dataset and pipeline.

    Samples are drawn without replacement by ``seed``; random transforms of the pipeline are
    seeded too, so the batch is reproducible.
    """
    import random

    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
    key = f'{split}_dataloader'
    if key not in cfg:
        raise KeyError(f'config has no {key!r}; expected an mmseg config with a dataset')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        dataset = DATASETS.build(cfg[key]['dataset'])
    if len(dataset) == 0:
        raise ValueError(f'the {split} dataset of the config is empty')
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(dataset), size=min(batch_size, len(dataset)), replace=False)
    state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        items = [dataset[int(i)] for i in idx]
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
    return pseudo_collate(items)
