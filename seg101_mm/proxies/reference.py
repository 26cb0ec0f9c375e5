"""Per-proxy reference implementations: one proxy per pass, a fresh model copy for each.

This is what the public reference code does (SamsungLabs' zero-cost-nas, the authors'
detectron2 fork): ``copy.deepcopy`` the network, run the proxy's own forward/backward with
``loss.backward()`` and read ``.grad`` layer by layer. It is written independently of
:mod:`.engine` and serves two purposes: the tests check the engine against it, and
``bench/bench_proxies.py`` times the engine against it. Same seeding convention as the
engine (``seed`` for the preprocessing, ``seed + chunk index`` for each chunk's forward), so
the two agree up to floating-point rounding.
"""
import copy

import torch
import torch.nn as nn

from .context import pads_in_training

_SCORED = (nn.Conv2d, nn.Linear)


def _layers(model):
    return [m for m in model.modules() if isinstance(m, _SCORED) and m.weight is not None]


def _prepare(model, batch, seed):
    """A fresh train-mode copy of ``model`` and the preprocessed batch."""
    m = copy.deepcopy(model)
    m.train()
    for layer in _layers(m):
        layer.weight.requires_grad_(True)
    torch.manual_seed(seed)
    with torch.no_grad():
        data = m.data_preprocessor(batch, pads_in_training(m.data_preprocessor))
    return m, data['inputs'], data['data_samples']


def _loss(m, x, samples):
    losses = m.loss(x, samples)
    return sum(v for k, v in losses.items() if 'loss' in k)


def _chunks(n, chunk):
    chunk = min(chunk or n, n)
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def _accumulated_grads(m, x, samples, chunk, seed):
    m.zero_grad(set_to_none=True)
    for i, sl in enumerate(_chunks(x.shape[0], chunk)):
        torch.manual_seed(seed + i)
        _loss(m, x[sl], samples[sl]).backward()
    return [(layer.weight.detach(), _grad(layer.weight)) for layer in _layers(m)]


def _grad(p):
    return torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()


def ref_grad_norm(model, batch, chunk=None, seed=0):
    m, x, s = _prepare(model, batch, seed)
    return sum(float(g.norm()) for _, g in _accumulated_grads(m, x, s, chunk, seed))


def ref_snip(model, batch, chunk=None, seed=0):
    m, x, s = _prepare(model, batch, seed)
    return sum(float((w * g).abs().sum()) for w, g in _accumulated_grads(m, x, s, chunk, seed))


def ref_plain(model, batch, chunk=None, seed=0):
    m, x, s = _prepare(model, batch, seed)
    return sum(float((w * g).sum()) for w, g in _accumulated_grads(m, x, s, chunk, seed))


def ref_grasp(model, batch, chunk=None, seed=0):
    """GraSP as in the reference code: a gradient pass, then a Hessian-gradient pass."""
    m, x, s = _prepare(model, batch, seed)
    layers = _layers(m)
    weights = [layer.weight for layer in layers]
    g = [gr for _, gr in _accumulated_grads(m, x, s, chunk, seed)]
    m.zero_grad(set_to_none=True)
    for i, sl in enumerate(_chunks(x.shape[0], chunk)):
        torch.manual_seed(seed + i)
        grads = torch.autograd.grad(
            _loss(m, x[sl], s[sl]), weights, create_graph=True, allow_unused=True)
        z = sum((gi * gr).sum() for gi, gr in zip(g, grads) if gr is not None)
        z.backward()
    return -sum(float((layer.weight.detach() * _grad(layer.weight)).sum()) for layer in layers)


def ref_fisher(model, batch, chunk=None, seed=0):
    """Fisher as the reference code does it: ``loss.backward()`` with the gradient of every
    layer output captured on the way (in-place ReLUs disabled so that outputs stay intact)."""
    m, x, s = _prepare(model, batch, seed)
    for mod in m.modules():
        if hasattr(mod, 'inplace'):
            mod.inplace = False
    layers = _layers(m)
    per_layer = [torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype) for layer in layers]

    def keep(j, outs, grads):

        def hook(mod, args, out):
            outs[j] = out
            if out.requires_grad:
                out.register_hook(lambda g: grads.__setitem__(j, g))

        return hook

    for i, sl in enumerate(_chunks(x.shape[0], chunk)):
        outs, grads = {}, {}
        hooks = [
            layer.register_forward_hook(keep(j, outs, grads)) for j, layer in enumerate(layers)
        ]
        torch.manual_seed(seed + i)
        loss = _loss(m, x[sl], s[sl])
        for h in hooks:
            h.remove()
        m.zero_grad(set_to_none=True)
        loss.backward()
        for j, g in grads.items():
            a = outs[j].detach()
            if a.dim() == 4:
                per_image = (a * g).sum(dim=(2, 3))
            else:
                per_image = (a * g).reshape(a.shape[0], -1, a.shape[-1]).sum(1)
            per_layer[j] += 0.5 * (per_image**2).mean(0)
    return sum(float(f.sum()) * layer.weight[0].numel() for f, layer in zip(per_layer, layers))


def ref_synflow(model, batch, chunk=None, seed=0):
    """SynFlow on a float64 copy with absolute parameters and buffers, BN in train mode."""
    m, x, _ = _prepare(model, batch, seed)
    m.double()
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point():
                t.abs_()
    m.zero_grad(set_to_none=True)
    try:
        out, copies = m(torch.ones((1, ) + x.shape[1:], dtype=torch.float64), mode='tensor'), 1
    except ValueError:  # a BN layer over one value per channel: two identical images
        out, copies = m(torch.ones((2, ) + x.shape[1:], dtype=torch.float64), mode='tensor'), 2
    (out.sum() / copies).backward()
    return sum(
        float((layer.weight.detach() * _grad(layer.weight)).abs().sum()) for layer in _layers(m))


def ref_jacob_cov(model, batch, chunk=None, seed=0, k=1e-5):
    """jacob_cov with numpy's corrcoef and symmetric eigen-solver."""
    import numpy as np
    m, x, _ = _prepare(model, batch, seed)
    rows = []
    for i, sl in enumerate(_chunks(x.shape[0], chunk)):
        xi = x[sl].detach().clone().requires_grad_(True)
        torch.manual_seed(seed + i)
        m(xi, mode='tensor').sum().backward()
        rows.append(xi.grad.reshape(xi.shape[0], -1).double().numpy())
    jac = np.concatenate(rows)
    eig = np.linalg.eigh(np.corrcoef(jac))[0]
    return float(-np.sum(np.log(eig + k) + 1. / (eig + k)))


def ref_nwot(model, batch, chunk=None, seed=0):
    """NASWOT from the explicit code matrix of every ReLU, over the whole batch."""
    m, x, s = _prepare(model, batch, seed)
    codes = []
    hooks = [
        mod.register_forward_hook(lambda mod, a, o: codes.append((o > 0).flatten(1)))
        for mod in m.modules() if isinstance(mod, (nn.ReLU, nn.ReLU6))
    ]
    torch.manual_seed(seed)
    with torch.no_grad():
        m.loss(x, s)
    for h in hooks:
        h.remove()
    c = torch.cat(codes, 1).double()
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(kernel)[1])


def ref_zico(model, batch, chunk=None, seed=0):
    """ZiCo from the stacked per-chunk gradients (at least two chunks)."""
    import math
    m, x, s = _prepare(model, batch, seed)
    n = x.shape[0]
    chunk = min(chunk or n, math.ceil(n / 2))
    per_chunk = []
    for i, sl in enumerate(_chunks(n, chunk)):
        m.zero_grad(set_to_none=True)
        torch.manual_seed(seed + i)
        _loss(m, x[sl], s[sl]).backward()
        per_chunk.append([_grad(layer.weight) for layer in _layers(m)])
    total = 0.
    for layer_grads in zip(*per_chunk):
        g = torch.stack(layer_grads).double()
        std = g.std(0, unbiased=False)
        mean_abs = g.abs().mean(0)
        val = (mean_abs[std != 0] / std[std != 0]).sum()
        if val > 0:
            total += math.log(float(val))
    return total


#: name -> reference function(model, batch, chunk=None, seed=0).
REFERENCES = dict(
    grad_norm=ref_grad_norm,
    snip=ref_snip,
    plain=ref_plain,
    grasp=ref_grasp,
    fisher=ref_fisher,
    synflow=ref_synflow,
    jacob_cov=ref_jacob_cov,
    nwot=ref_nwot,
    zico=ref_zico)


def reference_proxies(model, batch, names, chunk=None, seed=0):
    """``{name: value}`` by the per-proxy references (one deep copy and pass(es) each)."""
    out = {}
    for name in names:
        if name not in REFERENCES:
            raise KeyError(f'no reference implementation for {name!r}; have {sorted(REFERENCES)}')
        with torch.random.fork_rng(devices=[]):
            out[name] = REFERENCES[name](model, batch, chunk=chunk, seed=seed)
    return out
