"""snip: sum |W * dL/dW| over Conv2d/Linear weights (docs/method.md section 8)."""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='snip')
class Snip(BaseProxy):
    """Connection sensitivity of SNIP (Lee et al., ICLR 2019), summed over all weights."""
    name = 'snip'
    requires = ('grad', )

    def score(self, ctx):
        return sum(
            float((w.detach() * g).double().abs().sum()) for w, g in zip(ctx.weights, ctx.grad))
