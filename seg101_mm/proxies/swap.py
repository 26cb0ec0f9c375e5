"""swap: sample-wise activation patterns (Peng et al., ICLR 2024, "SWAP-NAS: sample-wise
activation patterns for ultra-fast NAS").

Every ReLU unit has, over the ``N`` images of the batch, a binary pattern
``(a_1 > 0, ..., a_N > 0)``; SWAP is the number of distinct such patterns (a set of
per-unit patterns over the samples, not NASWOT's per-sample patterns over the units). It is
bounded by ``min(2^N, number of units)``.

Dense outputs: scored per layer, no pooling. A unit is one (channel, position) of a ReLU's
output map, every position counting as a unit of its own; the distinct patterns are counted
within each ReLU call and the counts are summed over the ReLU calls of
``model(inputs, mode='tensor')`` (backbone, neck, decode head). Per layer, each term is at
most ``min(2^N, C*H*W)``. Spatial pooling was not used: after a ReLU almost every channel's
spatial mean is positive, which makes nearly every pooled pattern all-ones.

``nn.ReLU`` and ``nn.ReLU6`` modules are read (functional ``relu`` calls are not seen).
Random init, BN in train mode, no gradients, the engine's chunks (BN statistics per chunk;
the patterns run over the whole batch), dropout seeded with :attr:`SWAP.seed` + chunk index.
The paper's optional parameter-count regulariser is not applied.
"""
from collections import defaultdict

import torch
import torch.nn as nn

from .context import ProxyError
from .own_pass import chunks, forward_hooks, own_pass
from .registry import PROXIES, BaseProxy

#: Images packed into one int64 word per unit when patterns are compared.
_BITS = 62


def distinct_patterns(codes):
    """Number of distinct columns of the boolean ``(N, U)`` matrix ``codes``."""
    n = codes.shape[0]
    words = []
    for start in range(0, n, _BITS):
        block = codes[start:start + _BITS].long()
        weights = 2**torch.arange(block.shape[0], dtype=torch.long, device=block.device)
        words.append((block * weights[:, None]).sum(0))
    if len(words) == 1:
        return int(torch.unique(words[0]).numel())
    return int(torch.unique(torch.stack(words, 1), dim=0).shape[0])


@PROXIES.register_module(name='swap')
class SWAP(BaseProxy):
    name = 'swap'
    requires = ()
    seed = 0

    def score(self, ctx):
        return float(sum(layer_swap(ctx.model, ctx.inputs, ctx.chunk_size, self.seed)))


def layer_swap(model, x, chunk_size=None, seed=0):
    """The distinct-pattern count of every ReLU call, in forward order."""
    codes = defaultdict(list)
    calls = defaultdict(int)

    def hook(module, out):
        key = (id(module), calls[id(module)])
        calls[id(module)] += 1
        codes[key].append((out.detach() > 0).flatten(1))

    relus = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if not relus:
        raise ProxyError('the model has no nn.ReLU/nn.ReLU6 module, SWAP needs ReLU patterns')
    with own_pass(model, seed), forward_hooks(relus, hook), torch.no_grad():
        for index, sl in enumerate(chunks(x.shape[0], chunk_size)):
            calls.clear()
            torch.manual_seed(seed + index)
            model(x[sl], mode='tensor')
    return [distinct_patterns(torch.cat(c, 0)) for c in codes.values()]
