"""Seamless tiling of large aerial images into overlapping fixed-size tiles.

docs/method.md section 9: the paper cuts every 1500x1500 Massachusetts image "seamlessly" into
512x512 tiles, 16 per image (224 val and 784 test tiles for 14 and 49 images). Sixteen 512
tiles per 1500 pixels fit a 4x4 grid of evenly spaced, overlapping tiles: starts 0, 329, 659,
988 on each axis, so the last tile ends exactly at the border and every pixel is covered.
"""
import math
from typing import List, Optional, Tuple

import numpy as np


def tile_starts(length: int, tile_size: int = 512, num_tiles: Optional[int] = None) -> List[int]:
    """Start offsets of ``num_tiles`` evenly spaced tiles covering ``[0, length)``.

    The first tile starts at 0 and the last ends at ``length``; the ones between are spread
    evenly (rounded to whole pixels), so neighbouring tiles overlap by the same amount up to one
    pixel.

    Args:
        length (int): Image side in pixels; at least ``tile_size``.
        tile_size (int): Tile side in pixels.
        num_tiles (int, optional): Tiles along this side. None picks the fewest that cover it,
            ``ceil(length / tile_size)``.

    Returns:
        list[int]: ``num_tiles`` increasing start offsets.
    """
    if tile_size <= 0:
        raise ValueError(f'tile_size must be positive, got {tile_size}')
    if length < tile_size:
        raise ValueError(f'cannot cut tiles of {tile_size} pixels from a side of {length} '
                         'pixels (the side must be at least the tile size)')
    minimal = math.ceil(length / tile_size)
    if num_tiles is None:
        num_tiles = minimal
    if num_tiles < minimal:
        raise ValueError(f'{num_tiles} tiles of {tile_size} pixels cannot cover a side of '
                         f'{length} pixels; at least {minimal} are needed')
    if num_tiles > length - tile_size + 1:
        raise ValueError(f'{num_tiles} tiles of {tile_size} pixels on a side of {length} pixels '
                         f'would repeat tiles; at most {length - tile_size + 1} are distinct')
    if num_tiles == 1:
        return [0]
    step = (length - tile_size) / (num_tiles - 1)
    return [int(round(i * step)) for i in range(num_tiles)]


def tile_grid(height: int,
              width: int,
              tile_size: int = 512,
              grid: Optional[Tuple[int, int]] = (4, 4)) -> List[Tuple[int, int]]:
    """Top-left corners ``(y0, x0)`` of a ``rows x cols`` grid of tiles, row by row.

    Args:
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        tile_size (int): Tile side in pixels. Defaults to 512 (the paper's crop).
        grid (tuple[int, int], optional): ``(rows, cols)``. Defaults to the paper's 4x4 per
            1500x1500 image. None picks the fewest tiles that cover each side.
    """
    rows, cols = (None, None) if grid is None else grid
    ys = tile_starts(height, tile_size, rows)
    xs = tile_starts(width, tile_size, cols)
    return [(y, x) for y in ys for x in xs]


def pad_to(array: np.ndarray, height: int, width: int, value: int) -> np.ndarray:
    """Pad ``array`` (HxW or HxWxC) at the bottom and right to ``height x width`` with
    ``value``."""
    h, w = array.shape[:2]
    if h > height or w > width:
        raise ValueError(f'cannot pad an array of {h}x{w} down to {height}x{width}')
    pad = [(0, height - h), (0, width - w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, mode='constant', constant_values=value)
