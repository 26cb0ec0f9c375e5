"""The paper's segmentation metrics, from one confusion matrix over the whole split.

docs/method.md s. 9: IoU_c = TP/(TP+FP+FN); mIoU over all classes; FWIoU = sum_c freq_c * IoU_c
with freq_c the share of ground-truth pixels of class c; PA = sum TP / total; MPA = mean_c
TP_c / GT_c. Precision, recall and F1 are reported for the target class (road or building).

With ``threshold_free=True`` the metric also scores the target class's softmax probability
without a decision threshold (docs/method.md s. 9): the average precision over every threshold
and the IoU and F1 at the best threshold of the split. Probabilities are accumulated in a
histogram of ``num_bins`` equal bins per split (bounded memory whatever the split's size);
pixels in one bin share one threshold.
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


def metric_names(class_names: Sequence[str],
                 target_class: Union[int, str] = 1,
                 threshold_free: bool = False) -> list:
    """The names :class:`SegPaperMetric` reports for a dataset of ``class_names``, in order.

    ``target_class`` is the metric's (index or name); an unknown name raises ``ValueError``.
    ``threshold_free`` adds the names of the threshold-free scores.
    """
    names = list(class_names)
    if isinstance(target_class, str):
        if target_class not in names:
            raise ValueError(f'target_class {target_class!r} is not one of the dataset '
                             f'classes {tuple(names)}')
        target_class = names.index(target_class)
    out = list(metrics_from_confusion(np.eye(len(names)), names, int(target_class)))
    if threshold_free:
        out += [f'{k}.{names[int(target_class)]}' for k in THRESHOLD_FREE_KEYS]
    return out


#: The threshold-free scores, in the order the metric reports them (``<key>.<target>``).
THRESHOLD_FREE_KEYS = ('AP', 'bestIoU', 'bestF1', 'bestThreshold')


#: Histogram bins of the target-class probability for the threshold-free scores.
NUM_BINS = 1000


def probability_histogram(prob: Union[np.ndarray, torch.Tensor],
                          gt: Union[np.ndarray, torch.Tensor],
                          target_class: int,
                          ignore_index: int = 255,
                          num_bins: int = NUM_BINS) -> np.ndarray:
    """Counts ``hist[0, b]`` of non-target and ``hist[1, b]`` of target pixels whose
    target-class probability falls in bin ``b`` of ``num_bins`` equal bins of [0, 1].

    Pixels whose ground truth is ``ignore_index`` are left out. A probability outside [0, 1]
    (logits passed in place of probabilities) is an error.
    """
    prob = prob.float().cpu().numpy() if isinstance(prob, torch.Tensor) else np.asarray(prob)
    gt = gt.cpu().numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt)
    if prob.shape != gt.shape:
        raise ValueError(f'probability shape {prob.shape} does not match ground truth shape '
                         f'{gt.shape}')
    keep = gt != ignore_index
    prob, pos = prob[keep], gt[keep] == target_class
    if prob.size and (np.nanmin(prob) < 0 or np.nanmax(prob) > 1 or np.isnan(prob).any()):
        raise ValueError(f'target-class probabilities must lie in [0, 1], got values in '
                         f'[{np.nanmin(prob):.4g}, {np.nanmax(prob):.4g}]'
                         f'{" and NaN" if np.isnan(prob).any() else ""}')
    bins = np.minimum((prob * num_bins).astype(np.int64), num_bins - 1)
    return np.stack([
        np.bincount(bins[~pos], minlength=num_bins),
        np.bincount(bins[pos], minlength=num_bins)
    ]).astype(np.int64)


def threshold_free_scores(hist: np.ndarray) -> Dict[str, float]:
    """``AP``, ``bestIoU``, ``bestF1`` and ``bestThreshold`` (fractions) of the target class
    from :func:`probability_histogram` counts.

    Thresholds run from the top bin down: at bin ``b`` every pixel in bins ``>= b`` is called
    target. AP is the step-wise area under the precision-recall curve,
    ``sum_b (R_b - R_{b+1}) P_b``, as scikit-learn's ``average_precision_score`` computes it on
    the binned scores. IoU at a threshold is ``TP / (FP + P)`` and F1 ``2 TP / (TP + FP + P)``
    (P: target pixels); ``bestThreshold`` is the lower edge of the bin that gives the best IoU.
    A constant probability gives AP equal to the target share; a perfect separation gives 1.
    With no target pixel the three scores are NaN.
    """
    hist = np.asarray(hist, dtype=np.float64)
    neg, pos = hist[0, ::-1], hist[1, ::-1]  # from the highest probability down
    total_pos = pos.sum()
    out = OrderedDict()
    if total_pos == 0:
        for k in ('AP', 'bestIoU', 'bestF1', 'bestThreshold'):
            out[k] = float('nan')
        return out
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    called = tp + fp
    with np.errstate(divide='ignore', invalid='ignore'):
        precision = np.where(called > 0, tp / called, 0.0)
    recall = tp / total_pos
    out['AP'] = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    iou = tp / (fp + total_pos)
    f1 = 2 * tp / (tp + fp + total_pos)
    best = int(np.argmax(iou))
    out['bestIoU'] = float(iou[best])
    out['bestF1'] = float(f1.max())
    out['bestThreshold'] = float((hist.shape[1] - 1 - best) / hist.shape[1])
    return out


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
        threshold_free (bool): Also report ``AP.<target>``, ``bestIoU.<target>``,
            ``bestF1.<target>`` and ``bestThreshold.<target>`` from the softmax of the
            segmentor's ``seg_logits`` (a single-channel logit map is read through a sigmoid):
            scores of how well the network ranks pixels, whatever its calibration. Defaults to
            False.
        num_bins (int): Probability bins of the threshold-free scores. Defaults to 1000.
        collect_device (str): Device used to collect results across ranks. Defaults to 'cpu'.
        prefix (str, optional): Prefix added to the metric names.
    """

    def __init__(self,
                 target_class: Union[int, str] = 1,
                 ignore_index: int = 255,
                 digits: Optional[int] = 2,
                 output_dir: Optional[str] = None,
                 threshold_free: bool = False,
                 num_bins: int = NUM_BINS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 2:
            raise ValueError(f'num_bins must be an int >= 2, got {num_bins!r}')
        self.threshold_free = bool(threshold_free)
        self.num_bins = num_bins
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
        target = self._target_index(self.dataset_meta['classes']) if self.threshold_free else 0
        for data_sample in data_samples:
            pred = _label_map(data_sample['pred_sem_seg']['data'])
            gt = _label_map(data_sample['gt_sem_seg']['data']).to(pred)
            cm = confusion_matrix(pred, gt, num_classes, self.ignore_index)
            if self.threshold_free:
                prob = self._target_probability(data_sample, target)
                cm = (cm, probability_histogram(prob, gt, target, self.ignore_index,
                                                self.num_bins))
            self.results.append(cm)
            if self.output_dir is not None:
                name = osp.splitext(osp.basename(data_sample['img_path']))[0]
                Image.fromarray(pred.cpu().numpy().astype(np.uint8)).save(
                    osp.join(self.output_dir, f'{name}.png'))

    @staticmethod
    def _target_probability(data_sample: dict, target: int) -> torch.Tensor:
        """The ``(H, W)`` probability of class ``target`` from the sample's ``seg_logits``."""
        logits = (data_sample.get('seg_logits') or {}).get('data')
        if logits is None:
            raise ValueError('threshold_free=True needs the segmentor\'s seg_logits in the '
                             'data samples; this segmentor gave only pred_sem_seg')
        logits = logits.float()
        if logits.shape[0] == 1:  # one logit map: a sigmoid output, the target is class 1
            prob = logits[0].sigmoid()
            return prob if target == 1 else 1 - prob
        return logits.softmax(dim=0)[target]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum the per-sample confusion matrices and compute the metrics in percent."""
        class_names = self.dataset_meta['classes']
        hist = None
        if results and isinstance(results[0], tuple):
            hist = np.sum([r[1] for r in results], axis=0)
            results = [r[0] for r in results]
        cm = np.sum(results, axis=0)
        target = self._target_index(class_names)
        metrics = metrics_from_confusion(cm, class_names, target)
        if hist is not None:
            metrics.update((f'{k}.{class_names[target]}', v)
                           for k, v in threshold_free_scores(hist).items())
        metrics = OrderedDict((k, v * 100 if self.digits is None else round(v * 100, self.digits))
                              for k, v in metrics.items())
        logger = MMLogger.get_current_instance()
        print_log(
            'confusion matrix [gt, pred] over the split: '
            f'{cm.astype(np.int64).tolist()} (classes {tuple(class_names)})', logger)
        return metrics
