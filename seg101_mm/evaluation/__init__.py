"""seg101_mm.evaluation: the paper's split-level segmentation metrics."""
from .baselines import constant_prediction_metrics
from .seg_paper_metric import (SegPaperMetric, confusion_matrix, metric_names,
                               metrics_from_confusion)

__all__ = [
    'SegPaperMetric', 'confusion_matrix', 'metric_names', 'metrics_from_confusion',
    'constant_prediction_metrics'
]
