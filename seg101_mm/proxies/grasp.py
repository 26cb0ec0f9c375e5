"""grasp: -sum W * (H g) with g = dL/dW (docs/method.md section 8; Wang et al., ICLR 2020)."""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='grasp')
class Grasp(BaseProxy):
    """Gradient signal preservation. The engine supplies ``sum W * (H g)`` as one scalar
    (the weight-scale probe of :mod:`.probe`, or the full Hessian-gradient product)."""
    name = 'grasp'
    requires = ('grad', 'w_hessian_grad')

    def score(self, ctx):
        return -ctx.w_hessian_grad
