"""nwot (NASWOT): log-determinant of the kernel of binary ReLU codes (Mellor et al., ICML 2021).

K[i, j] = sum over ReLU units of [c_i == c_j] with c the 0/1 activation pattern of image i
(``K = c c^T + (1 - c)(1 - c)^T`` summed over the ReLU modules); score = log|det K|.
"""
import torch

from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='nwot')
class NWOT(BaseProxy):
    name = 'nwot'
    requires = ('relu_codes', )

    def score(self, ctx):
        kernel = ctx.nwot_kernel
        if not bool(kernel.any()):
            raise ValueError('the model has no nn.ReLU/nn.ReLU6 module, NASWOT needs ReLU codes')
        sign, logdet = torch.linalg.slogdet(kernel)
        if float(sign) <= 0:
            raise ValueError(f'the NASWOT kernel is singular (sign {float(sign):g}): two images '
                             f'share all ReLU codes')
        return float(logdet)
