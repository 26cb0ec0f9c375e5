"""Zero-cost proxies for mmseg segmentors (docs/method.md section 8).

``compute_proxies(model, batch, names)`` returns ``{name: float}``; every proxy is a small
registered class (see :mod:`.registry`), and :class:`ProxyEngine` plans (:mod:`.plan`) and runs
(:mod:`.passes`) the passes they need, sharing forwards and backwards between proxies, into a
:class:`ProxyContext` (:mod:`.context`) that the proxies score.
"""
from . import (az_nas, ensemble, fisher, flops, grad_norm, grasp, jacob_cov, meco, nwot, params,
               plain, snip, swap, synflow, zico)
from .batch import batch_from_config, make_batch, random_batch
from .context import ProxyContext, ProxyError, scored_layers, total_loss
from .engine import ProxyEngine
from .registry import PROXIES, BaseProxy, available_proxies, get_proxy

#: The six proxies of the paper's Table 2, in its order.
PAPER_PROXIES = ('grad_norm', 'snip', 'grasp', 'fisher', 'synflow', 'jacob_cov')


def compute_proxies(model, batch, names=PAPER_PROXIES, chunk_size=None, seed=0, errors='raise'):
    """Zero-cost proxy scores of ``model`` on ``batch``.

    Args:
        model: an mmseg segmentor (e.g. ``EncoderDecoder``), given back unchanged.
        batch (dict): ``dict(inputs=[...], data_samples=[...])`` as the model's data
            preprocessor accepts; :func:`random_batch` makes one from random tensors.
        names (str | list[str]): registered proxy names. Default: the paper's six.
        chunk_size (int, optional): micro-batch size (halved on out-of-memory). Default: the
            whole batch.
        seed (int): seed of the chunks' forwards (dropout) and the preprocessing. Default: 0.
        errors (str): ``'raise'`` or ``'nan'`` (a failing proxy scores NaN). Default: 'raise'.

    Returns:
        dict[str, float]: one score per name, in the order given.
    """
    engine = ProxyEngine(chunk_size=chunk_size, seed=seed)
    return engine.compute(model, batch, names, errors=errors)


#: The modules whose import registers the proxies (one file per proxy).
PROXY_MODULES = (az_nas, ensemble, fisher, flops, grad_norm, grasp, jacob_cov, meco, nwot, params,
                 plain, snip, swap, synflow, zico)

__all__ = [
    'compute_proxies', 'ProxyEngine', 'ProxyContext', 'ProxyError', 'PROXIES', 'BaseProxy',
    'get_proxy', 'available_proxies', 'random_batch', 'make_batch', 'batch_from_config',
    'scored_layers', 'total_loss', 'PAPER_PROXIES'
]
