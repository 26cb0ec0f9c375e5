"""WHU aerial building dataset as converted by ``tools/dataset_converters/whu_building.py``."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class WHUBuildingDataset(BaseSegDataset):
    """WHU building tiles (512x512) in mmseg's layout (docs/method.md section 9).

    The converter turns the 0/255 building masks into 0/1 (255 is mmseg's ignore index) and
    writes images and masks as PNG.

    Args:
        img_suffix (str): Suffix of the image tiles. Defaults to ``'.png'``.
        seg_map_suffix (str): Suffix of the mask tiles. Defaults to ``'.png'``.
        reduce_zero_label (bool): Must stay False: 0 is the background class, not "ignore".
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(classes=('background', 'building'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
