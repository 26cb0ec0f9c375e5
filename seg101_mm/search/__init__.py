"""NPENAS-NP architecture search over real mmseg training jobs (docs/method.md section 6).

Pure parts (no mmengine): :mod:`.strategy` (ask/tell NPENAS-NP, NPENAS-BO, random search),
:mod:`.predictor` (GIN on dense graphs, plain PyTorch), :mod:`.ledger` (crash-consistent JSONL
record), :mod:`.config_writer` (literal-only candidate configs), :mod:`.lock` (one search per
work dir), :mod:`.errors`. mmengine glue:
:mod:`.result_hook` (``SearchResultHook``), :mod:`.launchers` (local / Slurm / in-process),
:mod:`.templates` (candidate templates), :mod:`.measure` (``ModelMeasure``),
:mod:`.controller` (``SearchController``, the placeholder model), :mod:`.loop`
(``NPENASSearchLoop``), :mod:`.reports`.
"""
from .config_writer import candidate_config, render_config, write_config
from .errors import (SearchConfigError, SearchError, SearchExists, SearchStopped,
                     WorkDirBusy)
from .ledger import Ledger, LedgerError
from .strategy import (NPENASBO, NPENASNP, STRATEGIES, RandomSearch, SearchStrategy,
                       build_strategy)

__all__ = [
    'SearchStrategy', 'NPENASNP', 'NPENASBO', 'RandomSearch', 'STRATEGIES', 'build_strategy',
    'Ledger', 'LedgerError', 'candidate_config', 'render_config', 'write_config',
    'SearchError', 'SearchConfigError', 'SearchExists', 'SearchStopped', 'WorkDirBusy'
]

try:
    import mmseg  # noqa: F401
except ImportError:  # the pure parts stay usable without the OpenMMLab stack
    pass
else:
    from .launchers import (LAUNCHERS, InProcessLauncher, LocalLauncher, SlurmLauncher,
                            build_launcher)
    from .controller import SearchController
    from .loop import NPENASSearchLoop
    from .measure import ModelMeasure
    from .result_hook import SearchResultHook
    __all__ += [
        'LAUNCHERS', 'LocalLauncher', 'SlurmLauncher', 'InProcessLauncher', 'build_launcher',
        'NPENASSearchLoop', 'SearchController', 'ModelMeasure', 'SearchResultHook'
    ]
