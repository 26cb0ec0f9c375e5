"""bfloat16 mixed-precision training on the CPU.

mmengine's ``AmpOptimWrapper`` refuses to start without a GPU, NPU or MLU, although PyTorch's
autocast runs on the CPU in bfloat16, where oneDNN hands convolutions and matrix products to the
processor's bfloat16 units (AVX512-BF16, AMX). :class:`CPUAmpOptimWrapper` is the CPU's
counterpart: the forward pass and the loss run under ``torch.autocast('cpu', torch.bfloat16)``,
parameters, gradients and optimiser state stay in float32. bfloat16 has float32's exponent
range, so no loss scaling is needed. Validation and testing are untouched (float32).

Use it in a config in place of ``OptimWrapper``::

    optim_wrapper = dict(type='CPUAmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

#: the dtypes CPU autocast supports, by the names a config may give
CPU_AUTOCAST_DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """An :class:`~mmengine.optim.OptimWrapper` whose ``optim_context`` autocasts on the CPU.

    Args:
        dtype (str): the autocast dtype; ``'bfloat16'`` (alias ``'bf16'``), the only one that
            PyTorch's CPU autocast supports for training. Defaults to ``'bfloat16'``.
        **kwargs: the arguments of :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype not in CPU_AUTOCAST_DTYPES:
            raise ValueError(f'CPUAmpOptimWrapper: dtype={dtype!r} is not supported; expected '
                             f'one of {sorted(CPU_AUTOCAST_DTYPES)} (CPU autocast trains in '
                             f'bfloat16 only)')
        super().__init__(**kwargs)
        self.cast_dtype = CPU_AUTOCAST_DTYPES[dtype]

    @contextmanager
    def optim_context(self, model):
        """Gradient accumulation's context of the parent, plus CPU autocast to ``dtype``."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
