"""grasp: -sum W * (H g) with g = dL/dW (SEG101.md section 8; Wang et al., ICLR 2020)."""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='grasp')
class Grasp(BaseProxy):
    """Gradient signal preservation; H g is a Hessian-gradient product (second backward)."""
    name = 'grasp'
    requires = ('grad', 'hessian_grad')

    def score(self, ctx):
        return -sum(float((w.detach() * hg).double().sum())
                    for w, hg in zip(ctx.weights, ctx.hessian_grad))
