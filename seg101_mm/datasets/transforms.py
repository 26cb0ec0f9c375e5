"""Data transforms of the package (registered in mmseg's TRANSFORMS)."""
from mmcv.transforms import CenterCrop
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CenterCropTile(CenterCrop):
    """mmcv's ``CenterCrop`` for evaluation on the centre of each tile.

    The crop becomes the sample's original shape (``ori_shape``), so that predictions are
    scored against the cropped label map: mmseg resizes a prediction to ``ori_shape`` before
    its metric compares it with ``gt_sem_seg``, and mmcv's crop leaves ``ori_shape`` at the
    tile's size. Used by SEG101-Bench's cheap, fixed validation (docs/study.md).
    """

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        results['ori_shape'] = results['img'].shape[:2]
        return results
