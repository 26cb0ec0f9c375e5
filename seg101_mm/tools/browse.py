"""Draw what a config's training pipeline feeds the model (``browse_dataset.py``'s work).

Every sample of ``train_dataloader.dataset``, after its pipeline (crops, flips, resizes), is
painted with its ground-truth mask by the config's visualizer (``SegLocalVisualizer``: each
class in its palette colour over the image) and written to ``output_dir`` under the image's
file name, so a wrong label mapping (0/255 masks, ``reduce_zero_label``) or a crop that misses
the objects can be seen before a long run.
"""
import os
import os.path as osp
import time
from typing import List, Optional

import numpy as np

from .common import ToolError


def build_dataset(cfg, split: str = 'train'):
    """``<split>_dataloader.dataset`` of the config, built with its pipeline."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    key = f'{split}_dataloader'
    if key not in cfg:
        raise ToolError(f'the config has no {key} (expected one of train, val, test)')
    return DATASETS.build(cfg[key].dataset)


def browse_dataset(cfg,
                   output_dir: Optional[str] = None,
                   show: bool = False,
                   show_interval: float = 2.0,
                   max_images: Optional[int] = None,
                   split: str = 'train') -> List[str]:
    """Paint ground truth over each pipeline output; return the files written.

    Args:
        cfg: The loaded config.
        output_dir (str, optional): Where the painted images go (one per sample).
        show (bool): Also show each in a window (needs a display).
        show_interval (float): Seconds each window stays.
        max_images (int, optional): Stop after this many samples.
        split (str): Which dataloader's dataset: ``'train'`` (as in mmseg), ``'val'`` or
            ``'test'``.
    """
    from mmseg.registry import VISUALIZERS
    if output_dir is None and not show:
        raise ToolError('nothing to do: give --output-dir, or drop --not-show to show images')
    if max_images is not None and max_images < 1:
        raise ToolError(f'--max-images must be >= 1, got {max_images}')
    dataset = build_dataset(cfg, split)
    if len(dataset) == 0:
        raise ToolError(f'the {split} dataset of the config is empty (data_root '
                        f'{cfg[split + "_dataloader"].dataset.get("data_root")!r})')
    vis_cfg = cfg.visualizer.copy()
    # a name of its own: mmengine keeps one visualizer per name in the process
    vis_cfg['name'] = f'browse_dataset_{time.time_ns()}'
    # the files are written here directly; the config's backends (which would need a
    # save_dir) are not used
    vis_cfg.pop('save_dir', None)
    vis_cfg.pop('vis_backends', None)
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    written = []
    for i in range(len(dataset) if max_images is None else min(max_images, len(dataset))):
        item = dataset[i]
        sample = item['data_samples']
        # BGR -> RGB, in a contiguous copy (OpenCV draws the labels into it)
        img = np.ascontiguousarray(item['inputs'].permute(1, 2, 0).numpy()[..., ::-1])
        name = osp.basename(sample.img_path)
        out_file = osp.join(output_dir, name) if output_dir is not None else None
        visualizer.add_datasample(
            name,
            img,
            sample.numpy(),
            draw_pred=False,
            show=show,
            wait_time=show_interval,
            out_file=out_file)
        if out_file is not None:
            written.append(out_file)
    return written
