"""Seamless overlapping tiles: the paper's 4x4 grid of 512 tiles per 1500x1500 image."""
import numpy as np
import pytest

from seg101_mm.datasets.tiling import pad_to, tile_grid, tile_starts


def test_paper_grid_starts_and_ends_at_the_border():
    assert tile_starts(1500, 512, 4) == [0, 329, 659, 988]
    assert 988 + 512 == 1500
    # fewest covering tiles
    assert tile_starts(1500, 512) == [0, 494, 988]
    assert tile_starts(512, 512) == [0]
    assert tile_starts(1024, 512) == [0, 512]


@pytest.mark.parametrize('length,tile,n', [(1500, 512, 4), (1500, 512, 3), (1000, 256, 5),
                                           (777, 100, 9), (512, 512, 1)])
def test_tiles_cover_every_pixel_with_even_overlap(length, tile, n):
    starts = tile_starts(length, tile, n)
    covered = np.zeros(length, int)
    for s in starts:
        assert 0 <= s and s + tile <= length
        covered[s:s + tile] += 1
    assert covered.min() >= 1
    steps = np.diff(starts)
    if len(steps):
        assert steps.max() - steps.min() <= 1


def test_grid_stitches_back_to_the_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(300, 410, 3), dtype=np.uint8)
    corners = tile_grid(300, 410, tile_size=128, grid=(3, 4))
    assert len(corners) == 12 and corners[0] == (0, 0) and corners[-1] == (300 - 128, 410 - 128)
    out = np.zeros_like(img)
    for y, x in corners:
        out[y:y + 128, x:x + 128] = img[y:y + 128, x:x + 128]
    np.testing.assert_array_equal(out, img)
    assert len(tile_grid(1500, 1500)) == 16


def test_errors():
    with pytest.raises(ValueError, match='3 tiles of 512 pixels cannot cover a side of 1600'):
        tile_starts(1600, 512, 3)
    with pytest.raises(ValueError, match='side of 400 pixels'):
        tile_starts(400, 512)
    with pytest.raises(ValueError, match='would repeat tiles'):
        tile_starts(514, 512, 4)
    with pytest.raises(ValueError, match='tile_size must be positive, got 0'):
        tile_starts(10, 0)


def test_pad_to_bottom_right():
    a = np.ones((3, 2), np.uint8)
    p = pad_to(a, 4, 5, 255)
    assert p.shape == (4, 5)
    assert (p[:3, :2] == 1).all() and (p[3] == 255).all() and (p[:, 2:] == 255).all()
    rgb = pad_to(np.ones((2, 2, 3), np.uint8), 3, 3, 0)
    assert rgb.shape == (3, 3, 3) and rgb[2].sum() == 0
    with pytest.raises(ValueError, match='cannot pad an array of 3x2 down to 2x2'):
        pad_to(a, 2, 2, 0)
