"""Give the model back exactly as it came: weights, buffers, grads, flags, modes, hooks."""
import contextlib

import torch
import torch.nn as nn


class ModelState:
    """A snapshot of everything a proxy computation could change in ``model``.

    Holds a clone of every parameter's data and grad, ``requires_grad``, every buffer (by the
    owning module and name, so dtype changes are undone as well), every module's ``training``
    flag, and the number of registered hooks of each module.

    Args:
        model (nn.Module): the model to snapshot.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.params = []
        self.buffers = []
        self.modes = []
        self.hook_counts = []
        for module in model.modules():
            self.modes.append((module, module.training))
            self.hook_counts.append((module, _hook_count(module)))
            for name, p in module._parameters.items():
                if p is None:
                    continue
                grad = None if p.grad is None else p.grad.detach().clone()
                self.params.append((module, name, p, p.detach().clone(), p.requires_grad, grad))
            for name, b in module._buffers.items():
                if b is not None:
                    self.buffers.append((module, name, b, b.detach().clone()))

    @torch.no_grad()
    def restore(self):
        """Write the snapshot back in place (parameter and buffer objects are kept)."""
        for module, name, p, data, requires_grad, grad in self.params:
            if module._parameters.get(name) is not p:
                module._parameters[name] = p
            if p.dtype != data.dtype or p.device != data.device or p.shape != data.shape:
                p.data = data
            else:
                p.copy_(data)
            p.requires_grad_(requires_grad)
            p.grad = grad
        for module, name, b, data in self.buffers:
            if b.dtype != data.dtype or b.shape != data.shape or b.device != data.device:
                module._buffers[name] = data
            else:
                b.copy_(data)
                module._buffers[name] = b
        for module, training in self.modes:
            module.training = training

    def leftover_hooks(self):
        """Modules whose hook count differs from the snapshot (should be empty)."""
        return [m for m, n in self.hook_counts if _hook_count(m) != n]


def _hook_count(module):
    return (len(module._forward_hooks) + len(module._forward_pre_hooks) +
            len(module._backward_hooks) + len(getattr(module, '_backward_pre_hooks', {})))


@contextlib.contextmanager
def preserved(model: nn.Module):
    """Run the body, then restore ``model`` (see :class:`ModelState`) even on error."""
    state = ModelState(model)
    try:
        yield state
    finally:
        state.restore()
        leftover = state.leftover_hooks()
        if leftover:
            raise RuntimeError(f'hooks left on {len(leftover)} module(s) after the proxy '
                               f'computation, first: {type(leftover[0]).__name__}')
