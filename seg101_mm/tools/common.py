"""What the analysis tools share: loading a config, building its model for inference."""
import os.path as osp
import sys
from typing import Optional, Sequence, Tuple


class ToolError(ValueError):
    """Bad input to an analysis tool; the scripts print it as one ``error:`` line."""


def run_tool(run, args, script: str):
    """``run(args)``; a :class:`ToolError` ends the process with one line,
    ``<script name>: error: <what was wrong>`` (exit status 1)."""
    try:
        return run(args)
    except ToolError as e:
        sys.exit(f'{osp.basename(script)}: error: {e}')


def load_config(path: str, cfg_options: Optional[dict] = None):
    """``Config.fromfile(path)`` with ``--cfg-options`` merged, after checking the file."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise ToolError(f'config {path!r} does not exist (expected an mmseg config .py file)')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def parse_shape(shape: Sequence[int]) -> Tuple[int, int]:
    """``--shape H [W]`` -> ``(H, W)``; one value means a square."""
    shape = list(shape)
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2 or min(shape) < 1:
        raise ToolError(f'--shape takes H [W], positive integers, got {shape}')
    return int(shape[0]), int(shape[1])


def build_inference_model(cfg, checkpoint: Optional[str] = None, device: str = 'cpu'):
    """The config's segmentor in eval mode on ``device``, SyncBN replaced by BN.

    Weights come from ``checkpoint`` when given (mmengine's loader: on the upstream stack a
    local file is trusted, see :mod:`seg101_mm.utils.compat`); otherwise they are the
    untouched constructor values (``init_weights`` is not run: no pretrained download, and
    speed and FLOPs do not depend on the values).
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise ToolError(f'checkpoint {checkpoint!r} does not exist (expected a .pth file)')
    model_cfg = cfg.model.copy()
    model_cfg['train_cfg'] = None
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model = revert_sync_batchnorm(model)
    return model.to(device).eval()


def check_device(device: str) -> str:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'``, checked against this machine."""
    import torch
    if device == 'cpu':
        return device
    if device == 'cuda' or (device.startswith('cuda:') and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ToolError(f'--device {device}: no CUDA device is available here '
                            f'(torch.cuda.is_available() is False); use --device cpu')
        index = int(device[5:]) if ':' in device else 0
        if index >= torch.cuda.device_count():
            raise ToolError(f'--device {device}: only {torch.cuda.device_count()} CUDA '
                            f'device(s) here')
        return device
    raise ToolError(f"--device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
