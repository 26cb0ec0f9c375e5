"""The paper's segmentation metrics, from one confusion matrix over the whole split.

docs/method.md s. 9: IoU_c = TP/(TP+FP+FN); mIoU over all classes; FWIoU = sum_c freq_c * IoU_c
with freq_c the share of ground-truth pixels of class c; PA = sum TP / total; MPA = mean_c
TP_c / GT_c. Precision, recall and F1 are reported for the target class (road or building).
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from mmseg.registry import METRICS
from PIL import Image


def confusion_matrix(pred: Union[np.ndarray, torch.Tensor],
                     gt: Union[np.ndarray, torch.Tensor],
                     num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """Confusion matrix ``cm[gt_class, pred_class]`` (int64) of one prediction.

    Pixels whose ground truth is ``ignore_index`` are left out. A ground-truth or predicted
    value outside ``[0, num_classes)`` (other than the ignore index) is an error, because it
    means the masks were not converted (for example a 0/255 mask read as labels).
    """
    pred = pred.cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    gt = gt.cpu().numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction shape {pred.shape} does not match ground truth shape '
                         f'{gt.shape}')
    keep = gt != ignore_index
    gt = gt[keep].astype(np.int64)
    pred = pred[keep].astype(np.int64)
    for name, values in (('ground truth', gt), ('prediction', pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = np.unique(values[(values < 0) | (values >= num_classes)])
            raise ValueError(f'{name} holds values {bad[:10].tolist()} outside the classes '
                             f'[0, {num_classes}) and not the ignore index {ignore_index}')
    return np.bincount(
        gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def metrics_from_confusion(cm: np.ndarray,
                           class_names: Sequence[str],
                           target_class: int = 1) -> Dict[str, float]:
    """The paper's metrics, as fractions in [0, 1], from a confusion matrix ``cm[gt, pred]``.

    Returns ``mIoU``, ``IoU.<class>`` for every class, ``FWIoU``, ``PA``, ``MPA`` and
    ``Precision.<target>``, ``Recall.<target>``, ``F1.<target>``.

    Conventions for empty denominators: the IoU (and accuracy) of a class that appears in
    neither the ground truth nor the prediction is NaN and is left out of mIoU (and MPA), as in
    mmseg. Precision of a target class that is never predicted is 0, recall of a target class
    absent from the ground truth is NaN, and F1 = 2TP / (2TP + FP + FN) (0 when TP = 0 and
    FP + FN > 0).
    """
    cm = np.asarray(cm, dtype=np.float64)
    num_classes = cm.shape[0]
    if cm.shape != (num_classes, num_classes) or len(class_names) != num_classes:
        raise ValueError(f'confusion matrix of shape {cm.shape} does not fit '
                         f'{len(class_names)} classes {tuple(class_names)}')
    if not 0 <= target_class < num_classes:
        raise ValueError(f'target_class must be in [0, {num_classes}), got {target_class}')
    total = cm.sum()
    if total == 0:
        raise ValueError('the confusion matrix is empty: no pixel was evaluated '
                         '(every ground-truth pixel is the ignore index?)')
    tp = np.diag(cm)
    gt_count = cm.sum(axis=1)
    pred_count = cm.sum(axis=0)
    union = gt_count + pred_count - tp
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt_count > 0, tp / gt_count, np.nan)
    freq = gt_count / total
    t = target_class
    fp = pred_count[t] - tp[t]
    fn = gt_count[t] - tp[t]
    precision = tp[t] / pred_count[t] if pred_count[t] > 0 else 0.0
    recall = tp[t] / gt_count[t] if gt_count[t] > 0 else float('nan')
    f1 = 2 * tp[t] / (2 * tp[t] + fp + fn) if (2 * tp[t] + fp + fn) > 0 else float('nan')

    out = OrderedDict()
    out['mIoU'] = float(np.nanmean(iou))
    for name, value in zip(class_names, iou):
        out[f'IoU.{name}'] = float(value)
    out['FWIoU'] = float(np.nansum(freq * iou))
    out['PA'] = float(tp.sum() / total)
    out['MPA'] = float(np.nanmean(acc))
    name = class_names[t]
    out[f'Precision.{name}'] = float(precision)
    out[f'Recall.{name}'] = float(recall)
    out[f'F1.{name}'] = float(f1)
    return out


def metric_names(class_names: Sequence[str], target_class: Union[int, str] = 1) -> list:
    """The names :class:`SegPaperMetric` reports for a dataset of ``class_names``, in order.

    ``target_class`` is the metric's (index or name); an unknown name raises ``ValueError``.
    """
    names = list(class_names)
    if isinstance(target_class, str):
        if target_class not in names:
            raise ValueError(f'target_class {target_class!r} is not one of the dataset '
                             f'classes {tuple(names)}')
        target_class = names.index(target_class)
    return list(metrics_from_confusion(np.eye(len(names)), names, int(target_class)))


def _label_map(data: torch.Tensor) -> torch.Tensor:
    """``(1, H, W)`` -> ``(H, W)``; unlike ``squeeze`` this keeps a 1-pixel-high map 2-D."""
    return data[0] if data.dim() == 3 else data


@METRICS.register_module()
class SegPaperMetric(BaseMetric):
    """mIoU, per-class IoU, FWIoU, PA, MPA and target-class precision/recall/F1.

    One confusion matrix is accumulated over the whole split (docs/method.md section 9), so the
    numbers are split-level, not averages of per-image scores. Values are returned in percent,
    like mmseg's ``IoUMetric``; per-class keys (``IoU.road``, ``F1.building``, ...) can be used
    by ``save_best``.

    Args:
        target_class (int | str): Index or name of the class whose precision, recall and F1 are
            reported. Defaults to 1 (road / building).
        ignore_index (int): Ground-truth value left out of the evaluation. Defaults to 255.
        digits (int, optional): Round the percentages to this many decimals (mmseg rounds to
            2). None keeps full precision. Defaults to 2.
        output_dir (str, optional): If given, every prediction is also written there as a
            single-channel PNG of class indices named after the input image.
        collect_device (str): Device used to collect results across ranks. Defaults to 'cpu'.
        prefix (str, optional): Prefix added to the metric names.
    """

    def __init__(self,
                 target_class: Union[int, str] = 1,
                 ignore_index: int = 255,
                 digits: Optional[int] = 2,
                 output_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.target_class = target_class
        self.ignore_index = ignore_index
        self.digits = digits
        self.output_dir = output_dir
        if self.output_dir and is_main_process():
            mkdir_or_exist(self.output_dir)

    def _target_index(self, class_names: Sequence[str]) -> int:
        if isinstance(self.target_class, str):
            if self.target_class not in class_names:
                raise ValueError(f'target_class {self.target_class!r} is not one of the '
                                 f'dataset classes {tuple(class_names)}')
            return list(class_names).index(self.target_class)
        return int(self.target_class)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Add the confusion matrix of every sample of the batch to ``self.results``."""
        num_classes = len(self.dataset_meta['classes'])
        for data_sample in data_samples:
            pred = _label_map(data_sample['pred_sem_seg']['data'])
            gt = _label_map(data_sample['gt_sem_seg']['data']).to(pred)
            self.results.append(confusion_matrix(pred, gt, num_classes, self.ignore_index))
            if self.output_dir is not None:
                name = osp.splitext(osp.basename(data_sample['img_path']))[0]
                Image.fromarray(pred.cpu().numpy().astype(np.uint8)).save(
                    osp.join(self.output_dir, f'{name}.png'))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum the per-sample confusion matrices and compute the metrics in percent."""
        class_names = self.dataset_meta['classes']
        cm = np.sum(results, axis=0)
        metrics = metrics_from_confusion(cm, class_names, self._target_index(class_names))
        metrics = OrderedDict((k, v * 100 if self.digits is None else round(v * 100, self.digits))
                              for k, v in metrics.items())
        logger = MMLogger.get_current_instance()
        print_log(
            'confusion matrix [gt, pred] over the split: '
            f'{cm.astype(np.int64).tolist()} (classes {tuple(class_names)})', logger)
        return metrics
