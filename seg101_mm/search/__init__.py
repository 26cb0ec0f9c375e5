"""NPENAS-NP architecture search over real mmseg training jobs (docs/method.md section 6).

Pure parts (no mmengine): :mod:`.strategy` (ask/tell NPENAS-NP, NPENAS-BO, random search),
:mod:`.predictor` (GIN on dense graphs, plain PyTorch), :mod:`.ledger` (crash-consistent JSONL
record), :mod:`.config_writer` (literal-only candidate configs). mmengine glue:
:mod:`.result_hook` (``SearchResultHook``), :mod:`.launchers` (local / Slurm / in-process),
:mod:`.loop` (``NPENASSearchLoop``, ``SearchController``), :mod:`.reports`.
"""
from .config_writer import candidate_config, render_config, write_config
from .ledger import Ledger
from .strategy import (NPENASBO, NPENASNP, STRATEGIES, RandomSearch, SearchStrategy,
                       build_strategy)

__all__ = [
    'SearchStrategy', 'NPENASNP', 'NPENASBO', 'RandomSearch', 'STRATEGIES', 'build_strategy',
    'Ledger', 'candidate_config', 'render_config', 'write_config'
]

try:
    import mmseg  # noqa: F401
except ImportError:  # the pure parts stay usable without the OpenMMLab stack
    pass
else:
    from .launchers import (LAUNCHERS, InProcessLauncher, LocalLauncher, SlurmLauncher,
                            build_launcher)
    from .loop import ModelMeasure, NPENASSearchLoop, SearchController
    from .result_hook import SearchResultHook
    __all__ += [
        'LAUNCHERS', 'LocalLauncher', 'SlurmLauncher', 'InProcessLauncher', 'build_launcher',
        'NPENASSearchLoop', 'SearchController', 'ModelMeasure', 'SearchResultHook'
    ]
