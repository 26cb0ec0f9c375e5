"""NPENAS-NP architecture search over real mmseg training jobs (docs/method.md section 6).

Parts without torch or mmseg: :mod:`.registry` (mmengine registries of strategies and
launchers), :mod:`.strategy` (ask/tell NPENAS-NP, NPENAS-BO, random search), :mod:`.ledger`
(crash-consistent JSONL record), :mod:`.config_writer` (literal-only candidate configs),
:mod:`.lock` (one search per work dir), :mod:`.errors`; :mod:`.predictor` (GIN on dense graphs,
plain PyTorch). mmengine glue:
:mod:`.result_hook` (``SearchResultHook``), :mod:`.launchers` (local / Slurm / in-process),
:mod:`.templates` (candidate templates), :mod:`.measure` (``ModelMeasure``),
:mod:`.controller` (``SearchController``, the placeholder model), :mod:`.loop`
(``NPENASSearchLoop``), :mod:`.reports`.
"""
from .config_writer import candidate_config, render_config, write_config
from .errors import SearchConfigError, SearchError, SearchExists, SearchStopped, WorkDirBusy
from .ledger import Ledger, LedgerError
from .registry import LAUNCHERS, STRATEGIES
from .strategy import NPENASBO, NPENASNP, RandomSearch, SearchStrategy, build_strategy

__all__ = [
    'SearchStrategy', 'NPENASNP', 'NPENASBO', 'RandomSearch', 'STRATEGIES', 'LAUNCHERS',
    'build_strategy', 'Ledger', 'LedgerError', 'candidate_config', 'render_config', 'write_config',
    'SearchError', 'SearchConfigError', 'SearchExists', 'SearchStopped', 'WorkDirBusy'
]

try:
    import mmseg  # noqa: F401
except ImportError:  # the parts above stay usable without torch and mmseg
    pass
else:
    from .controller import SearchController
    from .launchers import InProcessLauncher, LocalLauncher, SlurmLauncher, build_launcher
    from .loop import NPENASSearchLoop
    from .measure import ModelMeasure
    from .result_hook import SearchResultHook
    __all__ += [
        'LocalLauncher', 'SlurmLauncher', 'InProcessLauncher', 'build_launcher',
        'NPENASSearchLoop', 'SearchController', 'ModelMeasure', 'SearchResultHook'
    ]
