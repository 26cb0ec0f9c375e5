"""synflow: sum |W * dR/dW| for the all-positive float64 network (docs/method.md section 8).

All parameters and floating buffers are replaced by their absolute values (BN kept, in train
mode, as in the segmentation variant), the input is one all-ones image, R is the sum of the
logits (Tanaka et al., NeurIPS 2020). The model's own tensors are not modified.
"""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='synflow')
class Synflow(BaseProxy):
    name = 'synflow'
    requires = ('synflow', )

    def score(self, ctx):
        return sum(
            float((w * g).abs().sum()) for w, g in zip(ctx.synflow_weights, ctx.synflow_grad))
