"""Training-loop parts that mmengine leaves to the device: mixed precision on the CPU."""
from .optim_wrappers import CPUAmpOptimWrapper

__all__ = ['CPUAmpOptimWrapper']
