"""Registries of the search's swappable parts: strategies and launchers.

``train_cfg.strategy`` and ``train_cfg.launcher`` are built like every other config key: their
``type`` is a registered name (``'NPENASNP'``, or a launcher's short name ``'local'``), a scoped
one (``'mmseg.RandomSearch'``) or a registered class. A new strategy is one class::

    @STRATEGIES.register_module()
    class MyStrategy(SearchStrategy):
        def propose_batch(self, round_index, room):
            ...

Both are root registries in the ``mmseg`` scope, the default scope of search configs. They
have no parent: neither mmseg nor mmengine has a registry of search strategies or job
launchers, and ``mmseg.registry`` imports torch, which the strategies' bookkeeping does
without (mmengine's ``Registry`` does not need it).
"""
import inspect

from mmengine.registry import Registry

#: Search strategies (:mod:`.strategy`): ask/tell objects built with ``budget``, ``seed`` and
#: ``measure`` from the search loop.
STRATEGIES = Registry('search strategy', scope='mmseg', locations=['seg101_mm.search.strategy'])
#: Launchers (:mod:`.launchers`): how a candidate gets trained.
LAUNCHERS = Registry('launcher', scope='mmseg', locations=['seg101_mm.search.launchers'])


def registered_names(registry: Registry):
    """``(class names, aliases)`` of ``registry``, each sorted; an alias is a name a class is
    registered under besides its own (``'local'`` for ``LocalLauncher``)."""
    registry.import_from_location()
    items = registry.module_dict.items()
    return (sorted(k for k, v in items
                   if k == v.__name__), sorted(k for k, v in items if k != v.__name__))


def expected_types(registry: Registry) -> str:
    """``"one of [names]"`` (``" or [aliases]"``), for error messages."""
    names, aliases = registered_names(registry)
    return f'one of {names}' + (f' or {aliases}' if aliases else '')


def registered_type(registry: Registry, type_):
    """The class registered in ``registry`` as ``type_`` (a name, a scoped name or a class);
    None if there is none.

    mmengine's ``Registry.get`` also imports any dotted path (``'os.getcwd'``); only classes
    of this registry are accepted.
    """
    registry.import_from_location()
    if inspect.isclass(type_):
        cls = type_
    elif isinstance(type_, str):
        try:
            cls = registry.get(type_)
        except RuntimeError:  # a dotted path that is not importable
            return None
    else:
        return None
    return cls if any(cls is v for v in registry.module_dict.values()) else None


def build_registered(registry: Registry, what: str, cfg, default_args=None):
    """Build ``cfg`` (a dict with a ``type``) from ``registry``; a ``ValueError`` that names
    the bad type and the registered ones otherwise. ``what`` names the kind in messages."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'a {what} config must be a dict with a "type" key, got {cfg!r}')
    cls = registered_type(registry, cfg['type'])
    if cls is None:
        raise ValueError(f'unknown {what} {cfg["type"]!r}; expected '
                         f'{expected_types(registry)}')
    return registry.build(dict(cfg, type=cls), default_args=default_args)
