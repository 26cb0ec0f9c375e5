"""Scores of a trivial prediction, to read trained results against.

On Massachusetts Roads about 95 % of the pixels are background, so a model that predicts
"background" everywhere already reaches a PA near 95 % and an mIoU near 47 %, with road IoU 0.
Reporting a small-scale result beside these numbers shows how far training actually got.
"""
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np
from PIL import Image

from .seg_paper_metric import confusion_matrix, metrics_from_confusion


def constant_prediction_metrics(ann_dir: Union[str, Path],
                                classes: Sequence[str] = ('background', 'road'),
                                label: int = 0,
                                target_class: int = 1,
                                ignore_index: int = 255,
                                suffix: str = '.png') -> Dict[str, float]:
    """The :class:`SegPaperMetric` scores (percent) of predicting ``label`` on every pixel.

    Args:
        ann_dir (str | Path): Folder of converted 0/1 masks (e.g.
            ``data/mass_roads/ann_dir/test``).
        classes (Sequence[str]): Class names, index order.
        label (int): The class predicted everywhere. Defaults to 0 (background).
        target_class (int): Class whose precision/recall/F1 are reported. Defaults to 1.
        ignore_index (int): Mask value left out. Defaults to 255.
        suffix (str): Mask file suffix. Defaults to '.png'.
    """
    paths = sorted(Path(ann_dir).glob(f'*{suffix}'))
    if not paths:
        raise FileNotFoundError(f'no *{suffix} masks in {ann_dir}')
    if not 0 <= label < len(classes):
        raise ValueError(f'label must be a class index in [0, {len(classes)}), got {label}')
    cm = np.zeros((len(classes), len(classes)), np.int64)
    for path in paths:
        gt = np.array(Image.open(path))
        cm += confusion_matrix(np.full_like(gt, label), gt, len(classes), ignore_index)
    return {k: v * 100 for k, v in metrics_from_confusion(cm, classes, target_class).items()}
