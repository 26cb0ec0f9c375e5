"""params: the number of parameters, the baseline any proxy must beat."""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='params')
class Params(BaseProxy):
    name = 'params'
    requires = ()

    def score(self, ctx):
        return float(sum(p.numel() for p in ctx.model.parameters()))
