"""az_expressivity, az_progressivity, az_trainability: the per-architecture components of
AZ-NAS (Lee & Ham, CVPR 2024, "AZ-NAS: assembling zero-cost proxies for network architecture
search"), and :func:`az_nas_score`, their rank aggregation over a population.

The stages are the feature maps ``f_1 .. f_S`` that ``model.backbone(inputs)`` returns (its
``out_indices``; SEG101's RegNet gives its four stages). Random init, BN in train mode, the
engine's chunks, seeded with :attr:`seed` + chunk index.

* Expressivity of a stage: the ``B*H*W`` pixel vectors of ``f_s`` (``C`` channels, pooled over
  the batch and the positions), centred, give the covariance ``Sigma`` (``C x C``, float64);
  with its eigenvalues ``l`` (clamped at 0) and ``p = l / sum l``, the stage's score is the
  entropy ``-sum p log(p + 1e-8)``. ``az_expressivity`` is the sum over the stages.
* ``az_progressivity``: the smallest increase of that entropy from one stage to the next,
  ``min_s (E_{s+1} - E_s)`` (needs two stages).
* ``az_trainability``: for each pair of consecutive stages, a random +-1 gradient ``g_out`` of
  ``f_{s+1}`` is pulled back to ``g_in = (d f_{s+1} / d f_s)^T g_out``; where the stage halves
  the resolution ``r`` times, ``g_in`` is pixel-unshuffled by ``r`` so the two align position by
  position. ``M = sum_pixels g_in g_out^T / (B*H*W)`` (``C_in r^2 x C_out``) and its largest
  singular value ``sigma`` give ``2 - sigma - 1/(sigma + 1e-6)`` (0 at ``sigma = 1``, the
  best). The mean over the pairs; a pair whose pull-back is the identity scores ``-inf``.
* Complexity is the FLOP count: the registered ``flops`` column.

AZ-NAS ranks each component over the population and sums ``log(rank / m)``
(:func:`az_nas_score`, :func:`~.ensemble.rank_aggregate` with ``how='log'``).
"""
import math

import torch
import torch.nn.functional as F

from .context import ProxyError
from .ensemble import rank_aggregate
from .own_pass import chunks, own_pass
from .registry import PROXIES, BaseProxy

#: The per-architecture components, in the paper's order (complexity: ``'flops'``).
AZ_COMPONENTS = ('az_expressivity', 'az_progressivity', 'az_trainability')


def az_nas_score(table, complexity='flops'):
    """AZ-NAS of every row of ``table``: ``sum_k log(rank_k / m)`` over the components and
    the ``complexity`` column (larger FLOPs rank higher, as in the paper)."""
    return rank_aggregate(table, AZ_COMPONENTS + (complexity, ), how='log')


def stage_entropy(feat):
    """Entropy of the normalised covariance spectrum of the channels of ``(B, C, H, W)``."""
    x = feat.detach().double().permute(0, 2, 3, 1).reshape(-1, feat.shape[1])
    x = x - x.mean(0, keepdim=True)
    eig = torch.linalg.eigvalsh(x.T @ x / x.shape[0]).clamp_min(0)
    p = eig / eig.sum()
    return float(-(p * torch.log(p + 1e-8)).sum())


def aligned(g_in, g_out):
    """``g_in`` pixel-unshuffled to ``g_out``'s resolution."""
    if g_in.shape[2:] == g_out.shape[2:]:
        return g_in
    r = g_in.shape[2] // g_out.shape[2]
    if r < 1 or g_in.shape[2] != r * g_out.shape[2] or g_in.shape[3] != r * g_out.shape[3]:
        raise ProxyError(f'stage resolutions {tuple(g_in.shape[2:])} -> '
                         f'{tuple(g_out.shape[2:])} are not an integer downsampling')
    return F.pixel_unshuffle(g_in, r)


def pair_moment(g_in, g_out):
    """``sum over pixels of g_in g_out^T`` (``C_in' x C_out``, float64) and the pixel count."""
    g_in = aligned(g_in, g_out)
    a = g_in.double().permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
    b = g_out.double().permute(0, 2, 3, 1).reshape(-1, g_out.shape[1])
    return a.T @ b, b.shape[0]


def trainability_term(moment, count):
    sigma = float(torch.linalg.svdvals(moment / count).max())
    return 2. - sigma - 1. / (sigma + 1e-6)


def _stages(model, x):
    feats = model.backbone(x)
    feats = [feats] if torch.is_tensor(feats) else list(feats)
    return [f for f in feats if torch.is_tensor(f) and f.dim() == 4]


class _AZProxy(BaseProxy):
    requires = ()
    seed = 0

    def entropies(self, ctx):
        model, x = ctx.model, ctx.inputs
        with own_pass(model, self.seed), torch.no_grad():
            parts = []
            for index, sl in enumerate(chunks(x.shape[0], ctx.chunk_size)):
                torch.manual_seed(self.seed + index)
                parts.append(_stages(model, x[sl]))
        return [stage_entropy(torch.cat(fs, 0)) for fs in zip(*parts)]


@PROXIES.register_module(name='az_expressivity')
class AZExpressivity(_AZProxy):
    name = 'az_expressivity'

    def score(self, ctx):
        return float(sum(self.entropies(ctx)))


@PROXIES.register_module(name='az_progressivity')
class AZProgressivity(_AZProxy):
    name = 'az_progressivity'

    def score(self, ctx):
        e = self.entropies(ctx)
        if len(e) < 2:
            raise ProxyError(f'progressivity needs two backbone stages, the backbone gives '
                             f'{len(e)}')
        return min(b - a for a, b in zip(e[:-1], e[1:]))


@PROXIES.register_module(name='az_trainability')
class AZTrainability(_AZProxy):
    name = 'az_trainability'

    def score(self, ctx):
        model, x = ctx.model, ctx.inputs
        moments = {}
        identity = set()
        with own_pass(model, self.seed):
            for p in model.parameters():
                p.requires_grad_(True)
            for index, sl in enumerate(chunks(x.shape[0], ctx.chunk_size)):
                torch.manual_seed(self.seed + index)
                feats = _stages(model, x[sl])
                for s in reversed(range(1, len(feats))):
                    f_in, f_out = feats[s - 1], feats[s]
                    g_out = torch.randint(
                        0, 2, f_out.shape, device=f_out.device, dtype=f_out.dtype) * 2 - 1
                    g_in = torch.autograd.grad(
                        f_out, f_in, g_out, retain_graph=True, allow_unused=True)[0]
                    if g_in is None:
                        raise ProxyError(f'backbone stage {s} does not depend on stage {s - 1}')
                    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
                        identity.add(s)
                        continue
                    m, n = pair_moment(g_in, g_out)
                    old = moments.get(s, (0., 0))
                    moments[s] = (old[0] + m, old[1] + n)
                del feats
        if not moments and not identity:
            raise ProxyError('trainability needs two backbone stages')
        terms = [
            -math.inf if s in identity else trainability_term(*moments[s])
            for s in sorted(set(moments) | identity)
        ]
        return sum(terms) / len(terms)
