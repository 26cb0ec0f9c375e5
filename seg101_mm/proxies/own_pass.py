"""The forward (and backward) passes that ``meco``, ``swap`` and the ``az_*`` proxies run
themselves on ``ctx.model`` and ``ctx.inputs``, without any capture of the engine.

:func:`own_pass` puts the model in train mode (BN on batch statistics, as in the engine's
passes), seeds the random number generator (dropout, random probes) inside a forked RNG
state, and afterwards gives back every buffer (BN running statistics), gradient,
``requires_grad`` flag and train/eval flag as they were.
"""
import contextlib

import torch


@contextlib.contextmanager
def own_pass(model, seed=0):
    """Run the body with ``model`` in train mode and the RNG seeded; restore the model after."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    params = [(p, p.requires_grad, None if p.grad is None else p.grad.detach().clone())
              for p in model.parameters()]
    device = next(model.parameters()).device
    devices = [device.index or 0] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.train()
        try:
            yield model
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for p, requires_grad, grad in params:
                p.requires_grad_(requires_grad)
                p.grad = grad
            for m, training in modes:
                m.training = training


def chunks(n, chunk_size):
    """Slices of ``chunk_size`` images (the whole batch for None) covering ``n`` images."""
    size = min(chunk_size or n, n)
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@contextlib.contextmanager
def forward_hooks(modules, hook):
    """``hook(module, output)`` on every module's forward while inside; removed after."""
    handles = [m.register_forward_hook(lambda mod, args, out: hook(mod, out)) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
