"""Scores of a trivial prediction, to read trained results against.

On Massachusetts Roads about 95 % of the pixels are background, so a model that predicts
"background" everywhere already reaches a PA near 95 % and an mIoU near 47 %, with road IoU 0.
Reporting a small-scale result beside these numbers shows how far training actually got.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
from PIL import Image

from .seg_paper_metric import (confusion_matrix, metrics_from_confusion, probability_histogram,
                               threshold_free_scores)


def constant_prediction_metrics(ann_dir: Union[str, Path],
                                classes: Sequence[str] = ('background', 'road'),
                                label: int = 0,
                                target_class: int = 1,
                                ignore_index: int = 255,
                                suffix: str = '.png',
                                indices: Optional[Sequence[int]] = None,
                                threshold_free: bool = False) -> Dict[str, float]:
    """The :class:`SegPaperMetric` scores (percent) of predicting ``label`` on every pixel.

    Args:
        ann_dir (str | Path): Folder of converted 0/1 masks (e.g.
            ``data/mass_roads/ann_dir/test``).
        classes (Sequence[str]): Class names, index order.
        label (int): The class predicted everywhere. Defaults to 0 (background).
        target_class (int): Class whose precision/recall/F1 are reported. Defaults to 1.
        ignore_index (int): Mask value left out. Defaults to 255.
        suffix (str): Mask file suffix. Defaults to '.png'.
        indices (Sequence[int], optional): Score only these masks (positions in the sorted
            file list, as a dataset's ``indices``). Defaults to every mask.
        threshold_free (bool): Also give the threshold-free scores of a constant probability
            (``AP`` = the target share, ``bestIoU`` the IoU of calling every pixel target), as
            ``SegPaperMetric(threshold_free=True)`` names them.
    """
    paths = sorted(Path(ann_dir).glob(f'*{suffix}'))
    if not paths:
        raise FileNotFoundError(f'no *{suffix} masks in {ann_dir}')
    if indices is not None:
        bad = [i for i in indices if not 0 <= i < len(paths)]
        if bad:
            raise ValueError(f'indices {bad[:5]} outside the {len(paths)} masks of {ann_dir}')
        paths = [paths[i] for i in indices]
    if not 0 <= label < len(classes):
        raise ValueError(f'label must be a class index in [0, {len(classes)}), got {label}')
    cm = np.zeros((len(classes), len(classes)), np.int64)
    hist = 0
    for path in paths:
        gt = np.array(Image.open(path))
        cm += confusion_matrix(np.full_like(gt, label), gt, len(classes), ignore_index)
        if threshold_free:
            hist = hist + probability_histogram(
                np.full(gt.shape, float(label == target_class)), gt, target_class, ignore_index)
    out = metrics_from_confusion(cm, classes, target_class)
    if threshold_free:
        out.update((f'{k}.{classes[target_class]}', v)
                   for k, v in threshold_free_scores(hist).items() if k != 'bestThreshold')
    return {k: v * 100 for k, v in out.items()}
