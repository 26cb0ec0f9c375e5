"""Register every module of the package (the module that configs name in ``custom_imports``).

``custom_imports = dict(imports=['seg101_mm.registration'], allow_failed_imports=False)``
registers the SEG101 modules in mmseg's and mmengine's registries and applies the compatibility
fixes of :mod:`seg101_mm.utils.compat`, whatever part of the package the process imported
before (``import seg101_mm.space`` alone registers nothing). Writes no file.
"""
from . import register_all_modules

register_all_modules()
