"""CenterCropTile: the centre crop of image and labels becomes the sample's original shape."""
import numpy as np

from seg101_mm.datasets import CenterCropTile


def test_center_crop_tile_sets_the_original_shape():
    img = np.arange(8 * 10 * 3, dtype=np.uint8).reshape(8, 10, 3)
    seg = np.arange(8 * 10, dtype=np.uint8).reshape(8, 10)
    out = CenterCropTile(crop_size=4)(
        dict(img=img, gt_seg_map=seg, img_shape=(8, 10), ori_shape=(8, 10)))
    assert out['img'].shape == (4, 4, 3) and out['ori_shape'] == (4, 4)
    # the central 4x4: rows 2..5, columns 3..6
    np.testing.assert_array_equal(out['gt_seg_map'], seg[2:6, 3:7])
    np.testing.assert_array_equal(out['img'], img[2:6, 3:7])
