from .compat import (MissingCompiledOpError, compiled_ops_available, install_mmcv_ext_standin,
                     setup_compat)

__all__ = ['MissingCompiledOpError', 'compiled_ops_available', 'install_mmcv_ext_standin',
           'setup_compat']
