"""browse_dataset.py, confusion_matrix.py and analyze_logs.py on the repository's configs."""
import json

import cv2
import numpy as np
import pytest
from analysis_helpers import data_options, run_script, script_error


def test_browse_dataset_paints_every_training_sample(seg101_config, roads, tmp_path, capsys):
    written = run_script('browse_dataset', [seg101_config, '--not-show', '--output-dir', tmp_path],
                         data_options(roads))
    assert sorted(p.rsplit('/', 1)[-1]
                  for p in written) == ['roads_train_0000.png', 'roads_train_0001.png']
    for path in written:
        assert cv2.imread(path).shape == (64, 64, 3)  # the pipeline's 64x64 crop
    assert f'2 images written to {tmp_path}' in capsys.readouterr().out


def test_browse_dataset_colours_follow_the_mask(seg101_config, roads, tmp_path):
    # the test pipeline is deterministic: the painted file can be checked against its mask
    (path, *_) = run_script('browse_dataset', [
        seg101_config, '--not-show', '--split', 'test', '--max-images', 1, '--output-dir', tmp_path
    ], data_options(roads))
    drawn = cv2.imread(path).astype(int).sum(axis=2) / 3
    mask = cv2.imread(
        str(roads / 'ann_dir' / 'test' / 'roads_test_0000.png'), cv2.IMREAD_UNCHANGED)
    # palette: background black, road white, blended at alpha 0.8
    assert np.median(drawn[mask == 1]) >= 0.8 * 255
    assert np.median(drawn[mask == 0]) <= 0.2 * 255


def test_browse_dataset_needs_an_output(seg101_config, capsys):
    line = script_error('browse_dataset', [seg101_config, '--not-show'], capsys)
    assert line.endswith('error: nothing to do: give --output-dir, or drop --not-show to show '
                         'images')


def _predictions(roads, out_dir):
    """Test predictions: image 0 exact, image 1 all background, image 2 all road."""
    out_dir.mkdir()
    gts = []
    for i in range(3):
        gt = cv2.imread(
            str(roads / 'ann_dir' / 'test' / f'roads_test_{i:04d}.png'), cv2.IMREAD_UNCHANGED)
        pred = [gt, np.zeros_like(gt), np.ones_like(gt)][i]
        cv2.imwrite(str(out_dir / f'roads_test_{i:04d}.png'), pred)
        gts.append(gt)
    return gts


def test_confusion_matrix_counts_pixels(seg101_config, roads, tmp_path, capsys):
    gts = _predictions(roads, tmp_path / 'preds')
    matrix = run_script('confusion_matrix', [seg101_config, tmp_path / 'preds', tmp_path / 'cm'],
                        data_options(roads))
    road = [int((g == 1).sum()) for g in gts]
    back = [int((g == 0).sum()) for g in gts]
    expected = np.array([[back[0] + back[1], back[2]], [road[1], road[0] + road[2]]])
    assert matrix.tolist() == expected.tolist()
    saved = json.loads((tmp_path / 'cm' / 'confusion_matrix.json').read_text())
    assert saved['classes'] == ['background', 'road'] and saved['matrix'] == expected.tolist()
    tp = expected[1, 1]
    assert saved['iou'][1] == pytest.approx(
        100 * tp / (expected[1].sum() + expected[:, 1].sum() - tp), abs=1e-3)
    assert (tmp_path / 'cm' / 'confusion_matrix.png').stat().st_size > 1000
    printed = capsys.readouterr().out
    recall = 100 * tp / expected[1].sum()
    assert f'{recall:.2f}' in printed.splitlines()[2]


def test_confusion_matrix_errors_name_the_file(seg101_config, roads, tmp_path, capsys):
    _predictions(roads, tmp_path / 'preds')
    opts = ['--cfg-options'] + [f'{k}={v}' for k, v in data_options(roads, small=False).items()]
    (tmp_path / 'preds' / 'roads_test_0002.png').unlink()
    line = script_error('confusion_matrix',
                        [seg101_config, tmp_path / 'preds', tmp_path / 'cm', *opts], capsys)
    assert '1 of 3 test images have no prediction' in line and 'roads_test_0002.png' in line
    cv2.imwrite(str(tmp_path / 'preds' / 'roads_test_0002.png'), np.full((64, 64), 7, np.uint8))
    line = script_error('confusion_matrix',
                        [seg101_config, tmp_path / 'preds', tmp_path / 'cm', *opts], capsys)
    assert 'roads_test_0002.png' in line and 'holds class 7, expected 0..1' in line
    line = script_error('confusion_matrix',
                        [seg101_config, tmp_path / 'none', tmp_path / 'cm', *opts], capsys)
    assert 'is not a folder' in line


def _write_log(path):
    lines = [
        dict(lr=0.01, loss=1.5, iter=1, step=1),
        dict(lr=0.009, loss=0.75, iter=2, step=2),
        dict(mIoU=40.0, **{'IoU.road': 5.0}, step=2),
        dict(lr=0.008, loss=1.0, iter=3, step=3),
        dict(mIoU=45.5, **{'IoU.road': 9.0}, step=3),
        dict(mIoU=44.0, step=0),  # the final test metrics: belongs to the step before
    ]
    path.write_text('\n'.join(json.dumps(entry) for entry in lines) + '\n')
    return path


def test_analyze_logs_summary_and_plot(tmp_path, capsys):
    log = _write_log(tmp_path / 'scalars.json')
    run_script('analyze_logs',
               [log, '--keys', 'loss', 'mIoU', '--out', tmp_path / 'c.png', '--title', 'run'])
    printed = capsys.readouterr().out.splitlines()
    assert f'{log}: loss: 3 points, last 1.0000 at step 3, best 0.7500 at step 2' in printed
    # the step-0 line joins step 3, whose last value it becomes
    assert f'{log}: mIoU: 2 points, last 44.0000 at step 3, best 44.0000 at step 3' in printed
    assert (tmp_path / 'c.png').stat().st_size > 1000


def test_analyze_logs_errors(tmp_path, capsys):
    log = _write_log(tmp_path / 'scalars.json')
    line = script_error('analyze_logs', [log, '--keys', 'aAcc', '--out', tmp_path / 'x.png'],
                        capsys)
    assert "key 'aAcc' is not in" in line and 'IoU.road, iter, loss, lr, mIoU' in line
    line = script_error('analyze_logs',
                        [log, log, '--keys', 'loss', '--legend', 'a', '--out', tmp_path / 'x.png'],
                        capsys)
    assert line.endswith('error: --legend needs 2 names (logs x keys), got 1')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"loss": 1, "step": 1}\n{"loss": \n')
    line = script_error('analyze_logs', [bad], capsys)
    assert f'{bad}:2: not a JSON line' in line
