from .compat import (MissingCompiledOpError, Shim, compiled_ops_available,
                     install_mmcv_ext_standin, setup_compat, shim_status, stack_name)

__all__ = [
    'MissingCompiledOpError', 'Shim', 'compiled_ops_available', 'install_mmcv_ext_standin',
    'setup_compat', 'shim_status', 'stack_name'
]
