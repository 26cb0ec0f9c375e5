"""Training-loop parts mmengine leaves open: mixed precision on the CPU, and the validation
of a resumed checkpoint."""
from .optim_wrappers import CPUAmpOptimWrapper
from .resumed_validation import (ResumedValidationHook, is_validation_step, logged_validation,
                                 validation_schedule)

__all__ = [
    'CPUAmpOptimWrapper', 'ResumedValidationHook', 'is_validation_step', 'logged_validation',
    'validation_schedule'
]
