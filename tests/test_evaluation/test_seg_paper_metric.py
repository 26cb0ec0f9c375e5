"""SegPaperMetric against a hand computation and against mmseg's own IoUMetric."""
import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from PIL import Image

import seg101_mm  # noqa: F401
from seg101_mm.evaluation import (SegPaperMetric, confusion_matrix, metric_names,
                                  metrics_from_confusion)

CLASSES = ('background', 'road')


def _samples(preds, gts):
    return [
        dict(
            pred_sem_seg=dict(data=torch.as_tensor(p)[None]),
            gt_sem_seg=dict(data=torch.as_tensor(g)[None]),
            img_path=f'tile_{i}.png') for i, (p, g) in enumerate(zip(preds, gts))
    ]


def _evaluate(metric, preds, gts, batch=2, classes=CLASSES):
    metric.dataset_meta = dict(classes=classes)
    samples = _samples(preds, gts)
    for i in range(0, len(samples), batch):
        metric.process({}, samples[i:i + batch])
    return metric.evaluate(len(samples))


def test_hand_computed_example():
    # 10 pixels over two images: gt/pred pairs give TP_bg=5, FP_road=1 (bg->road),
    # FN_road=2 (road->bg), TP_road=2; one ignored pixel.
    gt = [np.array([[0, 0, 0, 1, 1, 255]]), np.array([[0, 0, 0, 1, 1]])]
    pred = [np.array([[0, 0, 1, 1, 0, 1]]), np.array([[0, 0, 0, 1, 0]])]
    metric = SegPaperMetric(digits=None)
    res = _evaluate(metric, pred, gt)
    tp_bg, fp_road, fn_road, tp_road = 5, 1, 2, 2
    iou_bg = tp_bg / (tp_bg + fn_road + fp_road)  # 5/8
    iou_road = tp_road / (tp_road + fp_road + fn_road)  # 2/5
    assert res['IoU.background'] == pytest.approx(100 * iou_bg)
    assert res['IoU.road'] == pytest.approx(100 * iou_road)
    assert res['mIoU'] == pytest.approx(100 * (iou_bg + iou_road) / 2)
    freq_bg, freq_road = 6 / 10, 4 / 10
    assert res['FWIoU'] == pytest.approx(100 * (freq_bg * iou_bg + freq_road * iou_road))
    assert res['PA'] == pytest.approx(100 * 7 / 10)
    assert res['MPA'] == pytest.approx(100 * (5 / 6 + 2 / 4) / 2)
    assert res['Precision.road'] == pytest.approx(100 * 2 / 3)
    assert res['Recall.road'] == pytest.approx(100 * 2 / 4)
    assert res['F1.road'] == pytest.approx(100 * 2 * 2 / (2 * 2 + 1 + 2))
    assert list(res) == [
        'mIoU', 'IoU.background', 'IoU.road', 'FWIoU', 'PA', 'MPA', 'Precision.road',
        'Recall.road', 'F1.road'
    ]


def test_one_matrix_over_the_split_not_a_mean_of_images():
    # image 1: perfect on a big road; image 2: misses a 1-pixel road entirely.
    gt = [np.ones((4, 4), int), np.eye(4, dtype=int)[:1]]
    pred = [np.ones((4, 4), int), np.zeros((1, 4), int)]
    res = _evaluate(SegPaperMetric(digits=None), pred, gt)
    assert res['IoU.road'] == pytest.approx(100 * 16 / 17)  # pooled, not (1 + 0) / 2


@pytest.mark.parametrize('seed', [0, 1])
def test_agrees_with_mmseg_iou_metric(seed):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for _ in range(5):
        gt = (rng.random((32, 40)) < 0.15).astype(np.int64)
        gt[rng.random((32, 40)) < 0.05] = 255
        pred = np.where(rng.random((32, 40)) < 0.8, gt, 1 - np.clip(gt, 0, 1))
        pred[pred == 255] = 0
        gts.append(gt)
        preds.append(pred)
    ours = _evaluate(SegPaperMetric(digits=None), preds, gts)
    theirs = _evaluate(IoUMetric(iou_metrics=['mIoU', 'mFscore']), preds, gts)
    # mmseg rounds to 2 decimals
    assert ours['mIoU'] == pytest.approx(theirs['mIoU'], abs=0.006)
    assert ours['PA'] == pytest.approx(theirs['aAcc'], abs=0.006)
    assert ours['MPA'] == pytest.approx(theirs['mAcc'], abs=0.006)
    # per class: mmseg computes them but only prints them; use its static helpers
    areas = [
        IoUMetric.intersect_and_union(torch.as_tensor(p), torch.as_tensor(g), 2, 255)
        for p, g in zip(preds, gts)
    ]
    totals = [sum(a[i] for a in areas) for i in range(4)]
    per_class = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU', 'mFscore'])
    assert ours['IoU.background'] == pytest.approx(100 * per_class['IoU'][0])
    assert ours['IoU.road'] == pytest.approx(100 * per_class['IoU'][1])
    assert ours['Precision.road'] == pytest.approx(100 * per_class['Precision'][1])
    assert ours['Recall.road'] == pytest.approx(100 * per_class['Recall'][1])
    assert ours['F1.road'] == pytest.approx(100 * per_class['Fscore'][1])


def test_all_background_prediction():
    gt = [np.array([[0, 0, 1, 1], [0, 0, 0, 1]])]
    res = _evaluate(SegPaperMetric(digits=None), [np.zeros((2, 4), int)], gt)
    assert res['IoU.road'] == 0.0
    assert res['IoU.background'] == pytest.approx(100 * 5 / 8)
    assert res['mIoU'] == pytest.approx(100 * 5 / 16)
    assert res['PA'] == pytest.approx(100 * 5 / 8)
    assert res['MPA'] == pytest.approx(50.0)
    assert res['Precision.road'] == 0.0 and res['Recall.road'] == 0.0 and res['F1.road'] == 0.0


def test_registered_rounding_target_by_name_and_prediction_pngs(tmp_path):
    metric = METRICS.build(
        dict(type='SegPaperMetric', target_class='road', output_dir=str(tmp_path / 'pred')))
    res = _evaluate(metric, [np.array([[0, 1, 1]])], [np.array([[0, 1, 0]])])
    assert res['IoU.road'] == 50.0 and res['PA'] == 66.67  # rounded to 2 decimals like mmseg
    from PIL import Image
    saved = np.array(Image.open(tmp_path / 'pred' / 'tile_0.png'))
    np.testing.assert_array_equal(saved, [[0, 1, 1]])


def test_confusion_matrix_and_errors():
    cm = confusion_matrix(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 255]), 2)
    np.testing.assert_array_equal(cm, [[1, 1], [0, 1]])
    with pytest.raises(ValueError, match=r'ground truth holds values \[3\] outside'):
        confusion_matrix(np.zeros(3), np.array([0, 3, 1]), 2)
    with pytest.raises(ValueError, match=r'prediction shape \(2,\) does not match'):
        confusion_matrix(np.zeros(2), np.zeros(3), 2)
    with pytest.raises(ValueError, match='no pixel was evaluated'):
        metrics_from_confusion(np.zeros((2, 2)), CLASSES)
    with pytest.raises(ValueError, match='target_class must be in'):
        metrics_from_confusion(np.ones((2, 2)), CLASSES, target_class=2)
    metric = SegPaperMetric(target_class='lake')
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, _samples([np.zeros((1, 2), int)], [np.zeros((1, 2), int)]))
    with pytest.raises(ValueError, match="target_class 'lake' is not one of"):
        metric.evaluate(1)


def test_absent_target_class_is_nan_and_left_out_of_miou():
    res = metrics_from_confusion(np.array([[4, 0], [0, 0]]), CLASSES)
    assert np.isnan(res['IoU.road']) and np.isnan(res['Recall.road'])
    assert res['mIoU'] == 1.0 and res['MPA'] == 1.0 and res['Precision.road'] == 0.0


def test_constant_prediction_baseline(tmp_path):
    from seg101_mm.evaluation import constant_prediction_metrics
    masks = [np.array([[0, 0, 1, 255]], np.uint8), np.array([[0, 1, 1, 0]], np.uint8)]
    for i, m in enumerate(masks):
        Image.fromarray(m).save(tmp_path / f'{i}.png')
    res = constant_prediction_metrics(tmp_path)
    # 7 valid pixels, 4 background: all-background gets PA 4/7, IoU.road 0
    assert res['PA'] == pytest.approx(100 * 4 / 7)
    assert res['IoU.background'] == pytest.approx(100 * 4 / 7)
    assert res['IoU.road'] == 0.0 and res['F1.road'] == 0.0
    assert res['mIoU'] == pytest.approx(100 * 2 / 7)
    everything_road = constant_prediction_metrics(tmp_path, label=1)
    assert everything_road['Recall.road'] == 100.0
    assert everything_road['Precision.road'] == pytest.approx(100 * 3 / 7)
    with pytest.raises(FileNotFoundError, match='no \\*.png masks in'):
        constant_prediction_metrics(tmp_path / 'missing')


def test_metric_names_are_the_keys_the_metric_reports():
    gt = [np.array([[0, 1, 2, 2]])]
    pred = [np.array([[0, 2, 2, 1]])]
    res = _evaluate(SegPaperMetric(target_class='b'), pred, gt, classes=('a', 'b', 'c'))
    assert metric_names(('a', 'b', 'c'), 'b') == list(res) == [
        'mIoU', 'IoU.a', 'IoU.b', 'IoU.c', 'FWIoU', 'PA', 'MPA', 'Precision.b', 'Recall.b', 'F1.b'
    ]
    assert metric_names(('a', 'b', 'c'), 2)[-1] == 'F1.c'
    with pytest.raises(ValueError, match=r"target_class 'road' is not one of the dataset classes"):
        metric_names(('a', 'b'), 'road')


def _logit_samples(probs, gts):
    """Samples whose two-class seg_logits give road probability ``probs`` exactly."""
    out = []
    for p, g in zip(probs, gts):
        p = torch.as_tensor(p, dtype=torch.float64)
        logits = torch.stack([torch.zeros_like(p), torch.logit(p.clamp(1e-12, 1 - 1e-12))])
        out.append(
            dict(
                pred_sem_seg=dict(data=(p > 0.5).long()[None]),
                gt_sem_seg=dict(data=torch.as_tensor(g)[None]),
                seg_logits=dict(data=logits),
                img_path='x.png'))
    return out


def _evaluate_probs(probs, gts, **kwargs):
    metric = SegPaperMetric(digits=None, threshold_free=True, **kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, _logit_samples(probs, gts))
    return metric.evaluate(len(probs))


def test_threshold_free_scores_against_a_hand_computation():
    # 6 scored pixels (one ignored) over two images; by descending probability:
    # 0.9 road, 0.8 bg, 0.7 road, 0.4 bg, 0.3 road, 0.1 bg  (P = 3 roads)
    gt = [np.array([[1, 0, 1, 255]]), np.array([[0, 1, 0]])]
    prob = [np.array([[0.905, 0.805, 0.705, 0.995]]), np.array([[0.405, 0.305, 0.105]])]
    res = _evaluate_probs(prob, gt)
    # thresholds: (tp, fp) = (1,0) (1,1) (2,1) (2,2) (3,2) (3,3)
    # AP = sum dR * P = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5
    assert res['AP.road'] == pytest.approx(100 * (1 + 2 / 3 + 3 / 5) / 3)
    # IoU = tp / (fp + P): 1/3, 1/4, 2/4, 2/5, 3/5, 3/6 -> best 3/5 at threshold 0.305
    assert res['bestIoU.road'] == pytest.approx(100 * 3 / 5)
    assert res['bestThreshold.road'] == pytest.approx(100 * 0.305, abs=0.2)
    # F1 = 2 tp / (tp + fp + P): 2/4, 2/5, 4/6, 4/7, 6/8, 6/9 -> 3/4
    assert res['bestF1.road'] == pytest.approx(100 * 3 / 4)
    # the thresholded scores are those of argmax (> 0.5): tp 2, fp 1, fn 1
    assert res['IoU.road'] == pytest.approx(100 * 2 / 4)
    assert list(res)[-4:] == ['AP.road', 'bestIoU.road', 'bestF1.road', 'bestThreshold.road']
    assert metric_names(CLASSES, 'road', threshold_free=True) == list(res)


def test_threshold_free_known_values_all_background_and_perfect():
    gt = [np.array([[0, 0, 1, 1], [0, 0, 0, 1]])]  # 3 roads of 8
    flat = _evaluate_probs([np.full((2, 4), 0.01)], gt)
    assert flat['AP.road'] == pytest.approx(100 * 3 / 8)
    assert flat['bestIoU.road'] == pytest.approx(100 * 3 / 8)  # call everything road
    assert flat['bestF1.road'] == pytest.approx(100 * 2 * 3 / (2 * 3 + 5))
    perfect = _evaluate_probs([gt[0].astype(float)], gt)
    for k in ('AP.road', 'bestIoU.road', 'bestF1.road'):
        assert perfect[k] == pytest.approx(100.0)
    # a confident but wrongly calibrated network: perfect ranking, all below 0.5
    shy = _evaluate_probs([0.1 + 0.3 * gt[0]], gt)
    assert shy['IoU.road'] == 0.0 and shy['AP.road'] == pytest.approx(100.0)


def test_threshold_free_matches_the_constant_baseline(tmp_path):
    from seg101_mm.evaluation import constant_prediction_metrics
    masks = [np.array([[0, 0, 1, 255]], np.uint8), np.array([[0, 1, 1, 0]], np.uint8)]
    for i, m in enumerate(masks):
        Image.fromarray(m).save(tmp_path / f'{i}.png')
    base = constant_prediction_metrics(tmp_path, threshold_free=True)
    assert base['AP.road'] == pytest.approx(100 * 3 / 7)
    assert base['bestIoU.road'] == pytest.approx(100 * 3 / 7)
    assert base['bestF1.road'] == pytest.approx(100 * 6 / 10)
    res = _evaluate_probs([np.zeros((1, 4)), np.zeros((1, 4))], masks)
    for k in ('AP.road', 'bestIoU.road', 'bestF1.road', 'mIoU', 'IoU.road'):
        assert res[k] == pytest.approx(base[k])
    one = constant_prediction_metrics(tmp_path, indices=[1])
    assert one['PA'] == pytest.approx(50.0)
    with pytest.raises(ValueError, match=r'indices \[2\] outside the 2 masks'):
        constant_prediction_metrics(tmp_path, indices=[2])


def test_threshold_free_errors():
    metric = SegPaperMetric(threshold_free=True)
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match='needs the segmentor.s seg_logits'):
        metric.process({}, _samples([np.zeros((1, 2), int)], [np.zeros((1, 2), int)]))
    from seg101_mm.evaluation import probability_histogram
    with pytest.raises(ValueError, match=r'probabilities must lie in \[0, 1\], got values in'):
        probability_histogram(np.array([0.5, 3.0]), np.array([0, 1]), 1)
    with pytest.raises(ValueError, match='num_bins must be an int >= 2, got 1'):
        SegPaperMetric(num_bins=1)


def test_threshold_free_sigmoid_head_and_absent_target():
    from seg101_mm.evaluation import threshold_free_scores
    sample = dict(
        pred_sem_seg=dict(data=torch.tensor([[[0, 1]]])),
        gt_sem_seg=dict(data=torch.tensor([[[0, 1]]])),
        seg_logits=dict(data=torch.tensor([[[-2.0, 2.0]]])))
    metric = SegPaperMetric(digits=None, threshold_free=True)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [sample])
    assert metric.evaluate(1)['AP.road'] == pytest.approx(100.0)
    nan = threshold_free_scores(np.array([[3, 1], [0, 0]]))
    assert all(np.isnan(v) for v in nan.values())
