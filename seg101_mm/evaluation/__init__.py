"""seg101_mm.evaluation: the paper's split-level segmentation metrics."""
from .baselines import constant_prediction_metrics
from .seg_paper_metric import (THRESHOLD_FREE_KEYS, SegPaperMetric, confusion_matrix, metric_names,
                               metrics_from_confusion, probability_histogram,
                               threshold_free_scores)

__all__ = [
    'SegPaperMetric', 'confusion_matrix', 'metric_names', 'metrics_from_confusion',
    'constant_prediction_metrics', 'probability_histogram', 'threshold_free_scores',
    'THRESHOLD_FREE_KEYS'
]
