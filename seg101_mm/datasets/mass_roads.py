"""Massachusetts Roads (Mnih, 2013) as converted by ``tools/dataset_converters/mass_roads.py``."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class MassachusettsRoadsDataset(BaseSegDataset):
    """Massachusetts Roads tiles in mmseg's layout (docs/method.md section 9).

    The converter cuts every 1500x1500 aerial image into 512x512 tiles and turns the 0/255
    road masks into 0/1, because 255 is mmseg's ignore index. Both images and masks are PNG.

    Args:
        img_suffix (str): Suffix of the image tiles. Defaults to ``'.png'``.
        seg_map_suffix (str): Suffix of the mask tiles. Defaults to ``'.png'``.
        reduce_zero_label (bool): Must stay False: 0 is the background class, not "ignore".
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset` (``data_root``,
            ``data_prefix``, ``pipeline``, ...).
    """
    METAINFO = dict(classes=('background', 'road'), palette=[[0, 0, 0], [255, 255, 255]])

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
