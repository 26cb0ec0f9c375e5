"""The proxy registry and the base class every zero-cost proxy derives from (docs/method.md s. 8).

A proxy declares which *captures* it needs from the engine's shared passes (``requires``) and
turns a filled :class:`~seg101_mm.proxies.engine.ProxyContext` into one float. Adding a proxy
is one small file::

    @PROXIES.register_module()
    class MyProxy(BaseProxy):
        name = 'my_proxy'
        requires = ('grad',)

        def score(self, ctx):
            return sum(float((g * w).sum()) for w, g in zip(ctx.weights, ctx.grad))
"""
from mmengine.registry import Registry

#: Registry of zero-cost proxies, keyed by the proxy's short name (``'snip'``, ...).
PROXIES = Registry('zero-cost proxy', locations=['seg101_mm.proxies'])

#: Captures the engine knows how to fill, and what each one holds in the context.
CAPTURES = {
    'grad': 'dL/dW of every Conv2d/Linear weight, summed over chunks (ctx.grad)',
    'grad_moments': 'per-chunk gradient moments: sum g, sum g^2, sum |g| (ctx.grad_moments)',
    'fisher': 'per-layer per-channel fisher values (ctx.fisher)',
    'w_hessian_grad': ('sum over the scored layers of W * (H g), H g the Hessian-gradient '
                       'product for the accumulated gradient g (ctx.w_hessian_grad)'),
    'hessian_grad': 'H g per layer for the accumulated gradient g (ctx.hessian_grad)',
    'jacobian': 'd(sum of logits)/d(input), one row per image (ctx.jacobian)',
    'relu_codes': 'NASWOT kernel of binary ReLU codes (ctx.nwot_kernel)',
    'synflow': ('dR/dW of |W| in float64 on an all-ones input (ctx.synflow_grad, '
                'ctx.synflow_weights)'),
}


class BaseProxy:
    """A zero-cost proxy: a name, the captures it needs, and a score.

    Subclasses set ``name`` (the registry key, also the output column) and ``requires`` (a
    tuple of keys of :data:`CAPTURES`), and implement :meth:`score`. A proxy that needs no
    shared pass (``params``, ``flops``) leaves ``requires`` empty and reads ``ctx.model`` and
    ``ctx.inputs`` directly; it must leave the model as it found it.
    """
    name = None
    requires = ()

    def score(self, ctx) -> float:
        raise NotImplementedError(f'{type(self).__name__} must implement score(ctx)')

    def __repr__(self):
        return f'{type(self).__name__}(name={self.name!r}, requires={self.requires!r})'


def get_proxy(name):
    """Instantiate the registered proxy called ``name``."""
    cls = PROXIES.get(name)
    if cls is None:
        raise KeyError(f'unknown proxy {name!r}; registered proxies: {sorted(PROXIES.module_dict)}')
    return cls()


def available_proxies():
    """Names of all registered proxies, sorted."""
    return sorted(PROXIES.module_dict)
