"""Convert the real sample tiles of ../shared/data (skipped with a reason when absent)."""
import os
import sys

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

sys.path.insert(0, os.path.dirname(__file__))
from converter_cli import load_converter  # noqa: E402

from seg101_mm.datasets.conversion import ConversionError, read_image  # noqa: E402
from seg101_mm.datasets.tiling import tile_grid  # noqa: E402

mass = load_converter('mass_roads')
whu = load_converter('whu_building')

MASS_IMAGES = dict(train=33, val=5, test=5)  # PROVENANCE.md
WHU_IMAGES = dict(train=8, val=3, test=3)


def _read_mask(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


NODATA_THRESHOLD = 0.5


@pytest.fixture(scope='module')
def mass_out(shared_data, tmp_path_factory):
    """All splits converted once; no-data tiles (>= 50 % pure white) dropped in train only."""
    out = tmp_path_factory.mktemp('mass_roads')
    reports = mass.convert(
        mass.parse_args([
            str(shared_data / 'mass_roads'), '-o',
            str(out), '--nproc', '2', '--nodata-threshold',
            str(NODATA_THRESHOLD)
        ]))
    return out, reports


def _white_share(path):
    return np.all(read_image(path) == 255, axis=2).mean()


def test_mass_roads_16_tiles_per_image_paired_with_0_1_masks(mass_out):
    out, reports = mass_out
    for split, n_img in MASS_IMAGES.items():
        r = reports[split]
        assert r.sources == n_img
        assert r.written + r.dropped == 16 * n_img  # the paper's 4x4 grid per image
        assert r.dropped == 0 if split != 'train' else 0 < r.dropped < 16 * n_img
        imgs = sorted(p.name for p in (out / 'img_dir' / split).iterdir())
        anns = sorted(p.name for p in (out / 'ann_dir' / split).iterdir())
        assert len(imgs) == r.written and imgs == anns
    # masks of a whole split: 0/1 where the image has data, 255 (ignored) exactly on its
    # pure-white no-data pixels, 512x512, and roads present
    road = ignored = 0
    for p in (out / 'ann_dir' / 'test').iterdir():
        m = _read_mask(p)
        assert m.shape == (512, 512) and m.dtype == np.uint8
        assert set(np.unique(m)) <= {0, 1, 255}
        white = np.all(read_image(out / 'img_dir' / 'test' / p.name) == 255, axis=2)
        np.testing.assert_array_equal(m == 255, white)
        road += int((m == 1).sum())
        ignored += int(white.sum())
    assert road > 0 and ignored > 0
    # kept train tiles are below the no-data threshold
    kept = sorted((out / 'img_dir' / 'train').iterdir())[::10]
    assert max(_white_share(p) for p in kept) < NODATA_THRESHOLD


def test_mass_roads_tiles_stitch_back_to_the_source(mass_out, shared_data):
    out, _ = mass_out
    stem = '17278960_15'
    src_img = read_image(shared_data / 'mass_roads/test/sat' / f'{stem}.png')
    src_mask = _read_mask(shared_data / 'mass_roads/test/map' / f'{stem}.png')
    assert src_img.shape[:2] == (1500, 1500) and set(np.unique(src_mask)) == {0, 255}
    img, mask = np.zeros_like(src_img), np.full_like(src_mask, 9)
    for y, x in tile_grid(1500, 1500, 512, (4, 4)):
        name = f'{stem}_{y:04d}_{x:04d}.png'
        img[y:y + 512, x:x + 512] = read_image(out / 'img_dir/test' / name)
        mask[y:y + 512, x:x + 512] = _read_mask(out / 'ann_dir/test' / name)
    np.testing.assert_array_equal(img, src_img)
    white = np.all(src_img == 255, axis=2)
    np.testing.assert_array_equal(mask, np.where(white, 255, src_mask // 255))
    # the source labels roads inside the no-data area; the converted tiles ignore them there
    assert (src_mask[white] == 255).any()


def test_mass_roads_keep_nodata_labels_keeps_the_source_labels(shared_data, tmp_path, capsys):
    reports = mass.convert(
        mass.parse_args([
            str(shared_data / 'mass_roads'), '-o',
            str(tmp_path), '--splits', 'test', '--keep-nodata-labels'
        ]))
    stem = '17278960_15'
    src_img = read_image(shared_data / 'mass_roads/test/sat' / f'{stem}.png')
    src_mask = _read_mask(shared_data / 'mass_roads/test/map' / f'{stem}.png')
    mask = np.full_like(src_mask, 9)
    for y, x in tile_grid(1500, 1500, 512, (4, 4)):
        mask[y:y + 512,
             x:x + 512] = _read_mask(tmp_path / 'ann_dir/test' / f'{stem}_{y:04d}_{x:04d}.png')
    np.testing.assert_array_equal(mask, src_mask // 255)
    # the report's no-data share is the share of pure-white pixels of the five source images
    white = [
        np.all(read_image(p) == 255, axis=2)
        for p in sorted((shared_data / 'mass_roads/test/sat').iterdir())
    ]
    expected = sum(int(w.sum()) for w in white) / sum(w.size for w in white)
    assert reports['test'].nodata_fraction == pytest.approx(expected)
    assert 0.2 < expected < 0.9  # PROVENANCE.md: 23-87 % per tile
    out = capsys.readouterr().out
    assert f'no-data {100 * expected:.1f} % of source pixels, labels there kept' in out
    assert np.all(src_img[white[0]] == 255)


def test_mass_roads_rerun_with_other_nodata_rule_refuses(shared_data, tmp_path):
    args = [str(shared_data / 'mass_roads'), '-o', str(tmp_path), '--splits', 'val']
    mass.convert(mass.parse_args(args))
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / 'ann_dir/val').iterdir())
    with pytest.raises(
            ConversionError, match=r"nodata_labels: 'ignore' -> 'keep'.*"
            r"--overwrite"):
        mass.convert(mass.parse_args(args + ['--keep-nodata-labels']))
    after = sorted(p.stat().st_mtime_ns for p in (tmp_path / 'ann_dir/val').iterdir())
    assert before == after  # nothing rewritten
    reports = mass.convert(mass.parse_args(args + ['--keep-nodata-labels', '--overwrite']))
    assert reports['val'].written == 80


def test_mass_roads_rerun_skips_everything(mass_out, shared_data):
    out, _ = mass_out
    reports = mass.convert(
        mass.parse_args(
            [str(shared_data / 'mass_roads'), '-o',
             str(out), '--splits', 'val', 'test']))
    assert {
        s: (r.written, r.skipped)
        for s, r in reports.items()
    } == {
        'val': (0, 80),
        'test': (0, 80)
    }


def test_mass_roads_nodata_dropping_matches_a_direct_count(mass_out, shared_data, tmp_path,
                                                           capsys):
    out, _ = mass_out
    # count from the tiles kept in val (no dropping there), then drop in val for real
    expected = sum(
        _white_share(p) >= NODATA_THRESHOLD for p in (out / 'img_dir' / 'val').iterdir())
    assert 0 < expected < 80  # the sample has no-data areas, but not everywhere
    reports = mass.convert(
        mass.parse_args([
            str(shared_data / 'mass_roads'), '-o',
            str(tmp_path), '--splits', 'val', '--drop-splits', 'val', '--nodata-threshold',
            str(NODATA_THRESHOLD)
        ]))
    r = reports['val']
    assert (r.dropped, r.written) == (expected, 80 - expected)
    assert len(list((tmp_path / 'img_dir/val').iterdir())) == 80 - expected
    assert f'{expected} dropped (pure-white no-data share >= 0.5)' in capsys.readouterr().out


def test_whu_layout_ignore_nodata_marks_blank_areas(shared_data, tmp_path, capsys):
    reports = whu.convert(
        whu.parse_args([
            str(shared_data / 'spacenet_rio_whu_layout'), '-o',
            str(tmp_path), '--splits', 'train', '--ignore-nodata'
        ]))
    blank_images = 0
    for src in sorted((shared_data / 'spacenet_rio_whu_layout/train/image').iterdir()):
        src_img = read_image(src)
        src_mask = _read_mask(src.parent.parent / 'label' / src.name) // 255
        h, w = src_mask.shape
        blank = np.all(src_img == 0, axis=2) | np.all(src_img == 255, axis=2)
        mask = _read_mask(tmp_path / 'ann_dir/train' / (src.stem + '.png'))
        np.testing.assert_array_equal(mask[:h, :w], np.where(blank, 255, src_mask))
        assert (mask[h:] == 255).all() and (mask[:, w:] == 255).all()
        blank_images += int(blank.mean() > 0.3)
    assert blank_images == 2  # rio_img59 and rio_img60 are largely black
    assert 0 < reports['train'].nodata_fraction < 0.5
    assert 'labels there ignored (255)' in capsys.readouterr().out


def test_whu_nodata_color_is_checked():
    with pytest.raises(SystemExit):
        whu.parse_args(['src', '--nodata-color', '0,0'])


def test_whu_layout_sample_padded_to_512_with_ignore(shared_data, tmp_path):
    reports = whu.convert(
        whu.parse_args([str(shared_data / 'spacenet_rio_whu_layout'), '-o',
                        str(tmp_path)]))
    empty = 0
    for split, n in WHU_IMAGES.items():
        assert (reports[split].written, reports[split].padded) == (n, n)
        for src in sorted((shared_data / 'spacenet_rio_whu_layout' / split / 'image').iterdir()):
            name = src.stem + '.png'
            img = read_image(tmp_path / 'img_dir' / split / name)
            mask = _read_mask(tmp_path / 'ann_dir' / split / name)
            src_img = read_image(src)
            src_mask = _read_mask(src.parent.parent / 'label' / src.name)
            h, w = src_mask.shape
            assert (h, w) in ((406, 438), (406, 439))
            assert img.shape == (512, 512, 3) and mask.shape == (512, 512)
            np.testing.assert_array_equal(img[:h, :w], src_img)
            np.testing.assert_array_equal(mask[:h, :w], src_mask // 255)
            assert (mask[h:] == 255).all() and (mask[:, w:] == 255).all()
            assert img[h:].max() == 0 and img[:, w:].max() == 0
            empty += int(mask[:h, :w].max() == 0)
    assert empty == 4  # PROVENANCE.md: 2 + 1 + 1 tiles without buildings


def test_converted_real_tiles_load_as_datasets(mass_out):
    from mmseg.registry import DATASETS

    import seg101_mm  # noqa: F401
    init_default_scope('mmseg')
    out, _ = mass_out
    ds = DATASETS.build(
        dict(
            type='MassachusettsRoadsDataset',
            data_root=str(out),
            data_prefix=dict(img_path='img_dir/test', seg_map_path='ann_dir/test'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations')]))
    assert len(ds) == 80
    sample = ds[5]
    assert sample['img'].shape == (512, 512, 3)
    assert set(np.unique(sample['gt_seg_map'])) <= {0, 1, 255}
    assert os.path.basename(sample['img_path']) == os.path.basename(sample['seg_map_path'])
