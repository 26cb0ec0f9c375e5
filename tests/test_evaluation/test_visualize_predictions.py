"""tools/analysis_tools/visualize_predictions.py: tile pick, colours, grid size, model column."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg101_mm.datasets import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    'visualize_predictions', REPO / 'tools/analysis_tools/visualize_predictions.py')
vis = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vis)


def test_mask_colours():
    gt = np.array([[0, 1, 1, 255]])
    pred = np.array([[1, 1, 0, 0]])
    plain = vis.mask_to_rgb(gt)
    assert plain[0].tolist() == [[0, 0, 0], [255, 255, 255], [255, 255, 255], [128, 128, 128]]
    err = vis.mask_to_rgb(pred, gt)
    assert err[0].tolist() == [
        list(vis.FALSE_POSITIVE), [255, 255, 255],
        list(vis.FALSE_NEGATIVE), [128, 128, 128]
    ]


def test_grid_from_prediction_folders(tmp_path, capsys):
    root = make_synthetic_dataset(
        tmp_path / 'd', kind='buildings', num_train=0, num_val=0, num_test=5, size=32)
    pred_dir = tmp_path / 'pred'
    pred_dir.mkdir()
    for p in (root / 'ann_dir/test').iterdir():
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(pred_dir / p.name)
    out = vis.main([
        str(root), '--pred-dir', 'all-background',
        str(pred_dir), '--pred-dir', 'again',
        str(pred_dir), '--num', '3', '--errors', '--out',
        str(tmp_path / 'fig.png')
    ])
    assert out == tmp_path / 'fig.png'
    w, h = Image.open(out).size
    assert (w, h) == (round(2.2 * 4 * 100), round(2.2 * 3 * 100))  # 4 columns, 3 rows
    assert f'wrote {out} (3 tiles x 4 columns)' in capsys.readouterr().out


def test_tile_selection_is_seeded_and_checked(tmp_path):
    root = make_synthetic_dataset(tmp_path, num_train=0, num_val=0, num_test=6, size=16)
    a = vis.select_tiles(root / 'img_dir/test', num=3, seed=1)
    assert a == vis.select_tiles(root / 'img_dir/test', num=3, seed=1) and len(set(a)) == 3
    with pytest.raises(FileNotFoundError, match='tiles not found in .*: nope.png'):
        vis.select_tiles(root / 'img_dir/test', tiles=['nope.png'])
    with pytest.raises(SystemExit):
        vis.parse_args([str(root)])  # no model column


def test_model_column_runs_an_mmseg_config(tmp_path):
    root = make_synthetic_dataset(tmp_path / 'd', num_train=0, num_val=0, num_test=1, size=32)
    cfg = REPO / 'configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py'
    name = next((root / 'img_dir/test').iterdir())
    preds = vis.predict_with_model(str(cfg), None, [name])
    assert preds[0].shape == (32, 32) and set(np.unique(preds[0])) <= {0, 1}
