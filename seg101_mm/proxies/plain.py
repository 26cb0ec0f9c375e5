"""plain: sum W * dL/dW over Conv2d/Linear weights (signed; Abdelfattah et al., ICLR 2021)."""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='plain')
class Plain(BaseProxy):
    """First-order Taylor saliency without the absolute value."""
    name = 'plain'
    requires = ('grad', )

    def score(self, ctx):
        return sum(float((w.detach() * g).double().sum()) for w, g in zip(ctx.weights, ctx.grad))
