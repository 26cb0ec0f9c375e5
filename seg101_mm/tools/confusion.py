"""Confusion matrix of saved predictions against a config's test split
(``confusion_matrix.py``'s work).

Predictions are the PNG masks (one class index per pixel) that ``tools/test.py --out DIR``
writes, named after each test image. Each is matched to its test sample by file name, and its
ground truth comes from the test pipeline, so ``reduce_zero_label`` and the ignore index are
applied exactly as in evaluation. Rows are ground truth, columns prediction.
"""
import json
import os
import os.path as osp
from typing import Optional

import numpy as np

from .common import ToolError


def confusion_matrix(dataset, prediction_dir: str) -> np.ndarray:
    """``matrix[gt, pred]`` pixel counts over the dataset, ignore-index pixels left out."""
    import cv2
    if not osp.isdir(prediction_dir):
        raise ToolError(f'prediction path {prediction_dir!r} is not a folder (expected the '
                        f'--out folder of tools/test.py)')
    classes = dataset.metainfo['classes']
    n = len(classes)
    ignore_index = dataset.ignore_index
    preds = {
        osp.splitext(f)[0]: osp.join(prediction_dir, f)
        for f in os.listdir(prediction_dir) if f.endswith('.png')
    }
    matrix = np.zeros((n, n), dtype=np.int64)
    missing = []
    for i in range(len(dataset)):
        stem = osp.splitext(osp.basename(dataset.get_data_info(i)['img_path']))[0]
        if stem not in preds:
            missing.append(stem)
            continue
        gt = dataset[i]['data_samples'].gt_sem_seg.data.squeeze(0).numpy()
        pred = cv2.imread(preds[stem], cv2.IMREAD_UNCHANGED)
        if pred is None or pred.ndim != 2:
            raise ToolError(f'prediction {preds[stem]!r} is not a single-channel mask')
        if pred.shape != gt.shape:
            raise ToolError(f'prediction {preds[stem]!r} is {pred.shape[1]}x{pred.shape[0]}, '
                            f'its ground truth {gt.shape[1]}x{gt.shape[0]}')
        keep = gt != ignore_index
        gt, pred = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
        if pred.size and pred.max() >= n:
            raise ToolError(f'prediction {preds[stem]!r} holds class {int(pred.max())}, '
                            f'expected 0..{n - 1} ({", ".join(classes)})')
        matrix += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)
    if missing:
        raise ToolError(f'{len(missing)} of {len(dataset)} test images have no prediction in '
                        f'{prediction_dir!r}, e.g. {missing[0]}.png')
    return matrix


def normalized(matrix: np.ndarray) -> np.ndarray:
    """Each row (ground-truth class) as percentages; a class absent from the ground truth
    gives a row of zeros."""
    rows = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix * 100.0, rows, out=np.zeros(matrix.shape), where=rows > 0)


def plot_confusion_matrix(matrix: np.ndarray,
                          classes,
                          save_dir: Optional[str] = None,
                          show: bool = False,
                          title: str = 'Normalized Confusion Matrix',
                          color_theme: str = 'winter') -> Optional[str]:
    """Row-normalised matrix as a coloured table with the percentage in each cell; saved as
    ``save_dir/confusion_matrix.png``. Returns that path."""
    import matplotlib
    if not show:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if color_theme not in plt.colormaps():
        raise ToolError(f'--color-theme {color_theme!r} is not a matplotlib colormap '
                        f'(e.g. winter, viridis, Blues)')
    pct = normalized(matrix)
    n = len(classes)
    size = max(3.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size * 1.15, size))
    im = ax.imshow(pct, cmap=color_theme, vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    ax.set_xticks(range(n), classes, rotation=45, ha='right')
    ax.set_yticks(range(n), classes)
    ax.set_xlabel('Prediction')
    ax.set_ylabel('Ground truth')
    for r in range(n):
        for c in range(n):
            ax.text(
                c,
                r,
                f'{pct[r, c]:.1f}' if matrix[r].sum() else '-',
                ha='center',
                va='center',
                color='w' if pct[r, c] < 50 else 'k',
                fontsize=8)
    fig.tight_layout()
    path = None
    if save_dir is not None:
        os.makedirs(save_dir, exist_ok=True)
        path = osp.join(save_dir, 'confusion_matrix.png')
        fig.savefig(path, dpi=120)
    if show:
        plt.show()
    plt.close(fig)
    return path


def save_matrix_json(matrix: np.ndarray, classes, save_dir: str) -> str:
    """Counts and per-class IoU / precision / recall (percent) as ``confusion_matrix.json``."""
    tp = np.diag(matrix).astype(float)
    gt, pred = matrix.sum(axis=1), matrix.sum(axis=0)

    def pct(num, den):
        return [round(float(a) * 100 / d, 4) if d else None for a, d in zip(num, den)]

    out = dict(
        classes=list(classes),
        matrix=matrix.tolist(),
        iou=pct(tp, gt + pred - tp),
        precision=pct(tp, pred),
        recall=pct(tp, gt))
    os.makedirs(save_dir, exist_ok=True)
    path = osp.join(save_dir, 'confusion_matrix.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=2)
    return path
