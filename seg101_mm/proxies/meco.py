"""meco: minimum eigenvalues of the channel correlation of every conv output (Jiang et al.,
NeurIPS 2023, "MeCo: zero-shot NAS with one data and single forward pass via minimum
eigenvalue of correlation").

For one image, the output of a conv layer is a ``(C, H, W)`` map; its ``C`` channels, each
flattened to ``H*W`` values, give the ``C x C`` Pearson correlation matrix ``P``. MeCo is
``sum over layers of lambda_min(P)``.

Choices, as the authors' code makes them where the paper leaves them open:

* Layers: every ``nn.Conv2d`` output of ``model(inputs, mode='tensor')`` (backbone, neck and
  decode head; auxiliary heads only train and are not run), one term per call.
* Per image: the correlation is over the channels of one image's map. The authors use one
  image; here the per-image scores are averaged over the batch (one image gives theirs).
* A channel that is constant over the map has no correlation; its row and column are set to
  0 (so ``lambda_min <= 0``), as the authors do with NaNs. A map with fewer than two channels
  has no correlation matrix and is left out; so is a 1x1 map (every entry would be 0).
* Random init, BN in train mode, a forward without gradients in the engine's chunks (BN
  statistics per chunk), dropout seeded with :attr:`MeCo.seed` + chunk index. Eigenvalues
  by ``eigvalsh`` in float64.
"""
import torch
import torch.nn as nn

from .own_pass import chunks, forward_hooks, own_pass
from .registry import PROXIES, BaseProxy


def min_corr_eigenvalue(fmap):
    """``lambda_min`` of the channel correlation of one ``(C, H, W)`` map; None for C < 2 or
    a 1x1 map."""
    f = fmap.detach().reshape(fmap.shape[0], -1).double()
    if f.shape[0] < 2 or f.shape[1] < 2:
        return None
    corr = torch.nan_to_num(torch.corrcoef(f), nan=0., posinf=0., neginf=0.)
    return float(torch.linalg.eigvalsh(corr)[0])


@PROXIES.register_module(name='meco')
class MeCo(BaseProxy):
    name = 'meco'
    requires = ()
    seed = 0

    def score(self, ctx):
        model, x = ctx.model, ctx.inputs
        total = [0.]

        def hook(module, out):
            for fmap in out:
                value = min_corr_eigenvalue(fmap)
                if value is not None:
                    total[0] += value

        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        with own_pass(model, self.seed), forward_hooks(convs, hook), torch.no_grad():
            for index, sl in enumerate(chunks(x.shape[0], ctx.chunk_size)):
                torch.manual_seed(self.seed + index)
                model(x[sl], mode='tensor')
        return total[0] / x.shape[0]
