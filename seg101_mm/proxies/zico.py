"""zico: sum over layers of log(sum_w E|g_w| / std(g_w)) across chunks (Li et al., ICLR 2023).

The expectation and standard deviation are taken over the gradients of the batch's chunks
(at least two; the engine splits a one-chunk batch in two halves). Weights whose gradient
does not vary are left out, as are layers whose sum is zero.
"""
import math

from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='zico')
class ZiCo(BaseProxy):
    name = 'zico'
    requires = ('grad_moments', )

    def score(self, ctx):
        m = ctx.grad_moments
        n = m['n']
        total = 0.
        for s, q, a in zip(m['sum'], m['sq'], m['abs']):
            mean = s.double() / n
            std = (q.double() / n - mean * mean).clamp_min(0).sqrt()
            keep = std > 0
            ratio = float(((a.double() / n)[keep] / std[keep]).sum())
            if ratio > 0:
                total += math.log(ratio)
        return total
