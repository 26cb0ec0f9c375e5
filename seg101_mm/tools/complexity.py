"""FLOPs and parameters of a config's model (the work of ``tools/analysis_tools/get_flops.py``).

FLOPs come from :func:`seg101_mm.proxies.flops.count_flops`, the counter that the ``flops``
proxy and the search's FLOPs budget use (``mmengine.analysis.FlopAnalyzer`` on
``model(x, mode='tensor')`` in eval mode: one multiply-add is one FLOP; normalisation,
pooling, resizing and softmax are not counted). mmseg 1.2.2's own ``get_flops.py`` does not run
with mmengine >= 0.7.3.
"""
from typing import Optional, Tuple

from .common import ToolError


def default_shape(cfg) -> Tuple[int, int]:
    """The input size a config's model trains on: ``model.data_preprocessor.size``, else
    ``crop_size``, else 512x512."""
    size = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('crop_size')
    if size:
        return int(size[0]), int(size[1])
    return 512, 512


def model_complexity(model, shape: Tuple[int, int]) -> dict:
    """``flops`` of one ``1 x 3 x H x W`` forward and ``params`` (all parameters)."""
    import torch

    from seg101_mm.proxies.flops import count_flops
    if len(shape) != 2 or min(shape) < 1:
        raise ToolError(f'shape must be (H, W) with positive sizes, got {tuple(shape)}')
    device = next(model.parameters()).device
    flops = count_flops(model, torch.zeros(1, 3, *shape, device=device))
    return dict(
        flops=int(flops),
        params=int(sum(p.numel() for p in model.parameters())),
        input_shape=(3, int(shape[0]), int(shape[1])))


def human(n: Optional[float]) -> str:
    """``176_512_000_000`` -> ``'176.51G'``: two decimals of the largest unit that fits."""
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= scale:
            return f'{n / scale:.2f}{unit}'
    return f'{n:g}'
