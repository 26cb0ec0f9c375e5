"""fisher: channel-wise Fisher information of the layer outputs (docs/method.md section 8).

Per Conv2d/Linear layer and output channel c: F_c = 0.5 * mean over the chunk's images of
(sum over positions of a * dL/da)^2, with a the layer output; chunks add up (like gradients).
Each channel counts once per weight it owns (its fan-in), as when the per-channel value is
broadcast over the weight tensor and summed (Theis et al. 2018; Turner et al., ICLR 2020).
"""
from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='fisher')
class Fisher(BaseProxy):
    name = 'fisher'
    requires = ('fisher', )

    def score(self, ctx):
        total = 0.
        for w, f in zip(ctx.weights, ctx.fisher):
            fan_in = w[0].numel()
            total += float(f.double().sum()) * fan_in
        return total
