"""Converter rules on small hand-made sources: pairing, checks, skip/overwrite, no-data and
padding."""
import os
import sys

import cv2
import numpy as np
import pytest

from seg101_mm.datasets.conversion import (ConversionError, TileJob, convert_pair, pair_files,
                                           read_image, read_mask)

sys.path.insert(0, os.path.dirname(__file__))
from converter_cli import load_converter  # noqa: E402

mass = load_converter('mass_roads')
whu = load_converter('whu_building')


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    assert cv2.imwrite(str(path), data)


def _mass_source(root, size=96, splits=('train', 'valid', 'test'), n=1, seed=0):
    rng = np.random.default_rng(seed)
    for split in splits:
        for i in range(n):
            img = rng.integers(0, 200, size=(size, size, 3), dtype=np.uint8)
            mask = np.where(rng.random((size, size)) < 0.2, 255, 0).astype(np.uint8)
            _write(root / split / 'sat' / f'{split}{i}.tiff', img)
            _write(root / split / 'map' / f'{split}{i}.tif', mask)
    return root


def _run_mass(src, out, *extra):
    return mass.convert(
        mass.parse_args(
            [str(src), '-o',
             str(out), '--tile-size', '32', '--grid', '4', '4', *extra]))


def test_mass_tiles_cover_the_image_and_masks_become_0_1(tmp_path):
    src = _mass_source(tmp_path / 'src', size=96)
    reports = _run_mass(src, tmp_path / 'out')
    assert {k: len(r.tiles) for k, r in reports.items()} == dict(train=16, val=16, test=16)
    # starts 0, 21, 43, 64 for 4 tiles of 32 on 96 pixels; stitch the test tiles back
    img = read_image(src / 'test/sat/test0.tiff')
    mask = cv2.imread(str(src / 'test/map/test0.tif'), cv2.IMREAD_UNCHANGED)
    out_img, out_mask = np.zeros_like(img), np.full_like(mask, 7)
    names = sorted(p.name for p in (tmp_path / 'out/img_dir/test').iterdir())
    assert names == sorted(p.name for p in (tmp_path / 'out/ann_dir/test').iterdir())
    assert names[0] == 'test0_0000_0000.png' and names[-1] == 'test0_0064_0064.png'
    for name in names:
        y, x = (int(v) for v in name[:-4].split('_')[1:])
        out_img[y:y + 32, x:x + 32] = read_image(tmp_path / 'out/img_dir/test' / name)
        tile = cv2.imread(str(tmp_path / 'out/ann_dir/test' / name), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(tile)) <= {0, 1}
        out_mask[y:y + 32, x:x + 32] = tile
    np.testing.assert_array_equal(out_img, img)
    np.testing.assert_array_equal(out_mask, mask // 255)
    assert not any(p.name.endswith('.tmp.png') for p in (tmp_path / 'out').rglob('*'))


def test_rerun_skips_and_overwrite_redoes(tmp_path, capsys):
    src = _mass_source(tmp_path / 'src', size=64, splits=('train', 'valid', 'test'))
    _run_mass(src, tmp_path / 'out')
    tile = tmp_path / 'out/ann_dir/val/valid0_0000_0000.png'
    tile.write_bytes(b'sentinel')
    reports = _run_mass(src, tmp_path / 'out')
    assert reports['val'].written == 0 and reports['val'].skipped == 16
    assert tile.read_bytes() == b'sentinel'
    assert 'val: 16 tiles from 1 images: 0 written, 16 already present' in capsys.readouterr().out
    reports = _run_mass(src, tmp_path / 'out', '--overwrite')
    assert reports['val'].written == 16
    assert set(np.unique(cv2.imread(str(tile), cv2.IMREAD_UNCHANGED))) <= {0, 1}


def test_nodata_tiles_dropped_in_train_only(tmp_path, capsys):
    src = _mass_source(tmp_path / 'src', size=64)
    for split, stem in (('train', 'train0'), ('test', 'test0')):
        img = read_image(src / split / 'sat' / f'{stem}.tiff')
        img[:32, :32] = 255  # top-left tile pure white: 100 % no-data
        img[32:, 32:40] = 255  # bottom-right tile: 25 % no-data
        _write(src / split / 'sat' / f'{stem}.tiff', img)
    reports = _run_mass(src, tmp_path / 'out', '--grid', '2', '2', '--nodata-threshold', '0.5')
    assert (reports['train'].dropped, len(reports['train'].tiles)) == (1, 3)
    assert (reports['test'].dropped, len(reports['test'].tiles)) == (0, 4)
    assert not (tmp_path / 'out/img_dir/train/train0_0000_0000.png').exists()
    out = capsys.readouterr().out
    assert 'train: 3 tiles from 1 images: 3 written' in out
    assert '1 dropped (pure-white no-data share >= 0.5)' in out
    # a lower threshold also drops the 25 % tile, and removes it from an earlier run
    reports = _run_mass(src, tmp_path / 'out', '--grid', '2', '2', '--nodata-threshold', '0.2')
    assert reports['train'].dropped == 2
    assert not (tmp_path / 'out/ann_dir/train/train0_0032_0032.png').exists()


@pytest.mark.parametrize('problem,message', [
    ('no_mask', r'1 image\(s\) without a mask in .*map: valid0.tiff'),
    ('no_image', r'1 mask\(s\) without an image in .*sat: extra.png'),
    ('size', r'size mismatch: image .*valid0.tiff is 64x64 but mask .*valid0.tif is 64x48'),
    ('unreadable', r'cannot read image .*valid0.tiff'),
    ('values', r'mask .*valid0.tif has values \[0, 128, 255\]; expected only'),
    ('colour', r'mask .*valid0.tif is colour with differing channels'),
])
def test_errors_name_the_file(tmp_path, problem, message):
    src = _mass_source(tmp_path / 'src', size=64)
    sat, gt = src / 'valid/sat/valid0.tiff', src / 'valid/map/valid0.tif'
    if problem == 'no_mask':
        gt.unlink()
    elif problem == 'no_image':
        _write(src / 'valid/map/extra.png', np.zeros((64, 64), np.uint8))
    elif problem == 'size':
        _write(gt, np.zeros((48, 64), np.uint8))
    elif problem == 'unreadable':
        sat.write_bytes(b'not a tiff')
    elif problem == 'values':
        m = np.zeros((64, 64), np.uint8)
        m[0, :2] = (128, 255)
        _write(gt, m)
    elif problem == 'colour':
        m = np.zeros((64, 64, 3), np.uint8)
        m[0, 0] = (255, 0, 0)
        _write(gt, m)
    with pytest.raises(ConversionError, match=message):
        _run_mass(src, tmp_path / 'out', '--splits', 'val')
    with pytest.raises(SystemExit, match='error: '):
        mass.main([str(src), '-o', str(tmp_path / 'out'), '--tile-size', '32', '--splits', 'val'])


def test_mask_reading_rules(tmp_path):
    _write(tmp_path / 'a.png', np.array([[0, 1], [1, 0]], np.uint8))
    np.testing.assert_array_equal(read_mask(tmp_path / 'a.png'), [[0, 1], [1, 0]])
    _write(tmp_path / 'b.png', np.full((2, 2, 3), 255, np.uint8))  # grey RGB 0/255
    np.testing.assert_array_equal(read_mask(tmp_path / 'b.png'), np.ones((2, 2)))
    _write(tmp_path / 'c.png', np.array([[0, 1], [255, 0]], np.uint8))
    with pytest.raises(ConversionError, match=r'values \[0, 1, 255\]'):
        read_mask(tmp_path / 'c.png')


def test_pairing_rejects_duplicate_stems(tmp_path):
    for name in ('a.tif', 'a.png'):
        _write(tmp_path / 'img' / name, np.zeros((4, 4, 3), np.uint8))
    _write(tmp_path / 'lbl' / 'a.tif', np.zeros((4, 4), np.uint8))
    with pytest.raises(ConversionError, match="two files with the stem 'a'"):
        pair_files(tmp_path / 'img', tmp_path / 'lbl')


def test_image_smaller_than_tile_is_an_error_without_padding(tmp_path):
    _write(tmp_path / 'i.png', np.zeros((20, 30, 3), np.uint8))
    _write(tmp_path / 'm.png', np.zeros((20, 30), np.uint8))
    job = TileJob('i', tmp_path / 'i.png', tmp_path / 'm.png', tmp_path, tmp_path, tile_size=32)
    with pytest.raises(ConversionError, match=r'i.png is 30x20, smaller than the tile size 32'):
        convert_pair(job)


def test_whu_pads_small_tiles_and_cuts_large_ones(tmp_path):
    rng = np.random.default_rng(1)
    small = rng.integers(1, 255, size=(20, 27, 3), dtype=np.uint8)
    large = rng.integers(1, 255, size=(40, 32, 3), dtype=np.uint8)
    for split in ('train', 'val', 'test'):
        _write(tmp_path / 'src' / split / 'image' / 'small.tif', small)
        _write(tmp_path / 'src' / split / 'label' / 'small.tif', np.full(
            (20, 27, 3), 255, np.uint8))  # RGB label, all building
        _write(tmp_path / 'src' / split / 'image' / 'large.tif', large)
        _write(tmp_path / 'src' / split / 'label' / 'large.tif', np.zeros((40, 32), np.uint8))
    reports = whu.convert(
        whu.parse_args([
            str(tmp_path / 'src'), '-o',
            str(tmp_path / 'out'), '--tile-size', '32', '--splits', 'test'
        ]))
    assert list(reports) == ['test'] and reports['test'].padded == 1
    names = sorted(p.name for p in (tmp_path / 'out/img_dir/test').iterdir())
    assert names == ['large_0000_0000.png', 'large_0008_0000.png', 'small.png']
    img = read_image(tmp_path / 'out/img_dir/test/small.png')
    mask = cv2.imread(str(tmp_path / 'out/ann_dir/test/small.png'), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32, 3) and mask.shape == (32, 32)
    np.testing.assert_array_equal(img[:20, :27], small)
    assert img[20:].max() == 0 and img[:, 27:].max() == 0
    assert (mask[:20, :27] == 1).all()
    assert (mask[20:] == 255).all() and (mask[:, 27:] == 255).all()
    np.testing.assert_array_equal(
        read_image(tmp_path / 'out/img_dir/test/large_0008_0000.png'), large[8:])
