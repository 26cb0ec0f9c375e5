"""The proxy registry and the base class every zero-cost proxy derives from (docs/method.md s. 8).

A proxy declares which *captures* it needs from the engine's shared passes (``requires``) and
turns a filled :class:`~seg101_mm.proxies.context.ProxyContext` into one float. Adding a proxy
is one small file::

    @PROXIES.register_module()
    class MyProxy(BaseProxy):
        name = 'my_proxy'
        requires = ('grad',)

        def score(self, ctx):
            return sum(float((g * w).sum()) for w, g in zip(ctx.weights, ctx.grad))
"""
from abc import ABC, abstractmethod

from mmengine.registry import Registry

from .context import CAPTURES  # noqa: F401  (the keys a proxy's ``requires`` names)

#: Registry of zero-cost proxies, keyed by the proxy's short name (``'snip'``, ...).
PROXIES = Registry('zero-cost proxy', locations=['seg101_mm.proxies'])


class BaseProxy(ABC):
    """A zero-cost proxy: a name, the captures it needs, and a score.

    Subclasses set ``name`` (the registry key, also the output column) and ``requires`` (a
    tuple of keys of :data:`~.context.CAPTURES`), and implement :meth:`score`. A proxy that
    needs no shared pass (``params``, ``flops``) leaves ``requires`` empty and reads
    ``ctx.model`` and ``ctx.inputs`` directly; it must leave the model as it found it.
    """
    name = None
    requires = ()

    @abstractmethod
    def score(self, ctx) -> float:
        """The proxy's value from the filled :class:`~.context.ProxyContext`."""

    def __repr__(self):
        return f'{type(self).__name__}(name={self.name!r}, requires={self.requires!r})'


def get_proxy(name):
    """Instantiate the registered proxy called ``name``."""
    cls = PROXIES.get(name)
    if cls is None:
        raise KeyError(
            f'unknown proxy {name!r}; registered proxies: {sorted(PROXIES.module_dict)}')
    return cls()


def available_proxies():
    """Names of all registered proxies, sorted."""
    return sorted(PROXIES.module_dict)
