"""grad_norm: sum over Conv2d/Linear layers of ||dL/dW||_2 (docs/method.md section 8)."""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='grad_norm')
class GradNorm(BaseProxy):
    """Sum of the per-layer L2 norms of the loss gradient (Abdelfattah et al., ICLR 2021)."""
    name = 'grad_norm'
    requires = ('grad', )

    def score(self, ctx):
        return sum(float(g.double().norm()) for g in ctx.grad)
