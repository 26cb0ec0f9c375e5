"""jacob_cov: eigenvalues of the correlation of input Jacobians (docs/method.md section 8).

J has one row per image, d(sum of logits)/d(input); C = corrcoef(J); the score is
-sum(log(lambda + k) + 1 / (lambda + k)) over the eigenvalues of C (Mellor et al., 2020),
with a symmetric eigen-solver (``torch.linalg.eigvalsh``) in float64.
"""
import torch

from .registry import PROXIES, BaseProxy


def jacob_cov_score(jacobian, k=1e-5):
    """The jacob_cov score of a (N, D) Jacobian matrix."""
    j = jacobian.detach().to(torch.float64)
    corr = torch.corrcoef(j) if j.shape[0] > 1 else torch.ones(1, 1, dtype=torch.float64)
    if not torch.isfinite(corr).all():
        raise ValueError('the Jacobian correlation matrix is not finite (an image has a '
                         'constant Jacobian row)')
    eig = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eig + k) + 1. / (eig + k)).sum())


@PROXIES.register_module(name='jacob_cov')
class JacobCov(BaseProxy):
    name = 'jacob_cov'
    requires = ('jacobian', )
    k = 1e-5

    def score(self, ctx):
        return jacob_cov_score(ctx.jacobian, self.k)
