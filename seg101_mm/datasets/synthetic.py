"""Procedural road and building scenes in mmseg's folder layout, for tests and smoke runs.

The scenes are small stand-ins for the two datasets of docs/method.md section 9: a road scene is a
textured, mostly green-brown background crossed by a few thin, bright grey straight or curved
lines (the roads); a building scene is the same kind of background with a few axis-aligned
rectangles of roof colours, each with a dark shadow strip (the buildings). Target pixels are
much brighter or differently coloured than the background, so a small network learns them in a
few hundred iterations, while the texture keeps the task from being a plain threshold.

Files are written as::

    root/img_dir/{train,val,test}/<kind>_<split>_<index>.png   (RGB, uint8)
    root/ann_dir/{train,val,test}/<kind>_<split>_<index>.png   (single channel, values 0/1)

which is what :class:`MassachusettsRoadsDataset` and :class:`WHUBuildingDataset` read.
"""
from pathlib import Path
from typing import Union

import cv2
import numpy as np

SYNTHETIC_KINDS = ('roads', 'buildings')
SPLITS = ('train', 'val', 'test')


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth green-brown fields plus pixel noise, float RGB in [0, 255]."""
    coarse = rng.uniform(0.0, 1.0, size=(max(size // 16, 2), max(size // 16, 2), 1))
    coarse = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]
    field_a = np.array([70.0, 100.0, 55.0])  # green vegetation (RGB)
    field_b = np.array([120.0, 105.0, 80.0])  # brown soil (RGB)
    img = coarse * field_a + (1.0 - coarse) * field_b
    img = img + rng.normal(0.0, 12.0, size=(size, size, 3))
    return img


def _draw_roads(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
                num_roads: int) -> None:
    """Draw ``num_roads`` thin bright polylines; straight or gently curved."""
    size = img.shape[0]
    for _ in range(num_roads):
        # endpoints on two different borders so the road crosses the scene
        side_a, side_b = rng.choice(4, size=2, replace=False)
        pts = [_border_point(rng, size, side_a), _border_point(rng, size, side_b)]
        if rng.random() < 0.5:  # curved: bend through a displaced midpoint
            mid = (pts[0] + pts[1]) / 2 + rng.normal(0.0, size / 6, size=2)
            t = np.linspace(0.0, 1.0, 16)[:, None]
            curve = (1 - t)**2 * pts[0] + 2 * (1 - t) * t * mid + t**2 * pts[1]
        else:
            curve = np.stack(pts)
        width = int(rng.integers(max(size // 40, 2), max(size // 20, 3) + 1))
        curve = np.round(curve).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(mask, [curve], False, 1, thickness=width)
    grey = rng.uniform(175.0, 215.0)
    road = mask.astype(bool)
    img[road] = grey + rng.normal(0.0, 8.0, size=(int(road.sum()), 3))


def _border_point(rng: np.random.Generator, size: int, side: int) -> np.ndarray:
    pos = rng.uniform(0.1 * size, 0.9 * size)
    edge = (0.0, size - 1.0)
    return np.array({
        0: (pos, edge[0]),
        1: (edge[1], pos),
        2: (pos, edge[1]),
        3: (edge[0], pos)
    }[int(side)])


def _draw_buildings(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
                    num_buildings: int) -> None:
    """Draw ``num_buildings`` roof rectangles, each casting a shadow to its lower right."""
    size = img.shape[0]
    roofs = np.array([[200.0, 90.0, 70.0], [190.0, 190.0, 195.0], [150.0, 150.0, 160.0],
                      [210.0, 170.0, 120.0]])
    shadow = max(size // 32, 1)
    boxes = []
    for _ in range(num_buildings):
        w, h = (int(v) for v in rng.integers(size // 8, size // 3 + 1, size=2))
        boxes.append((int(rng.integers(0, size - w)), int(rng.integers(0, size - h)), w, h))
    # all shadows first, so that no shadow darkens a roof
    for x0, y0, w, h in boxes:
        img[y0 + shadow:y0 + h + shadow, x0 + shadow:x0 + w + shadow] *= 0.45
    for x0, y0, w, h in boxes:
        roof = roofs[rng.integers(len(roofs))]
        img[y0:y0 + h, x0:x0 + w] = roof + rng.normal(0.0, 6.0, size=(h, w, 3))
        mask[y0:y0 + h, x0:x0 + w] = 1


def make_synthetic_scene(rng: np.random.Generator, kind: str = 'roads', size: int = 64):
    """One scene: ``(image HxWx3 uint8 RGB, mask HxW uint8 in {0, 1})``.

    Every scene contains at least one road or building and some background.
    """
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f'kind must be one of {SYNTHETIC_KINDS}, got {kind!r}')
    if size < 16:
        raise ValueError(f'size must be >= 16 pixels, got {size}')
    img = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    if kind == 'roads':
        _draw_roads(rng, img, mask, num_roads=int(rng.integers(1, 4)))
    else:
        _draw_buildings(rng, img, mask, num_buildings=int(rng.integers(1, 5)))
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_synthetic_dataset(root: Union[str, Path],
                           kind: str = 'roads',
                           num_train: int = 8,
                           num_val: int = 2,
                           num_test: int = 2,
                           size: int = 64,
                           seed: int = 0) -> Path:
    """Write a procedural road or building dataset in mmseg's layout and return its root.

    Args:
        root (str | Path): Output folder (created if needed).
        kind (str): ``'roads'`` (thin bright lines) or ``'buildings'`` (rectangles).
        num_train (int): Number of training scenes.
        num_val (int): Number of validation scenes.
        num_test (int): Number of test scenes.
        size (int): Side of each square scene in pixels.
        seed (int): The same seed always writes identical files.

    Returns:
        Path: ``root``; images in ``root/img_dir/<split>``, 0/1 masks in ``root/ann_dir/<split>``.
    """
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f'kind must be one of {SYNTHETIC_KINDS}, got {kind!r}')
    counts = dict(train=num_train, val=num_val, test=num_test)
    for split, n in counts.items():
        if n < 0:
            raise ValueError(f'num_{split} must be >= 0, got {n}')
    root = Path(root)
    for split_index, split in enumerate(SPLITS):
        img_dir = root / 'img_dir' / split
        ann_dir = root / 'ann_dir' / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        # one independent stream per split: changing num_train does not change val/test
        rng = np.random.default_rng([seed, split_index])
        for i in range(counts[split]):
            img, mask = make_synthetic_scene(rng, kind=kind, size=size)
            name = f'{kind}_{split}_{i:04d}.png'
            cv2.imwrite(str(img_dir / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(ann_dir / name), mask)
    return root
