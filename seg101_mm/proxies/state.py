"""Give the model back exactly as it came: weights, buffers, grads, flags, modes, hooks."""
import contextlib

import torch
import torch.nn as nn

#: The hook registries of ``nn.Module`` (those present in the installed torch are saved).
HOOK_DICTS = ('_forward_hooks', '_forward_hooks_with_kwargs', '_forward_hooks_always_called',
              '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_backward_hooks',
              '_backward_pre_hooks', '_state_dict_hooks', '_state_dict_pre_hooks',
              '_load_state_dict_pre_hooks', '_load_state_dict_post_hooks')


class ModelState:
    """A snapshot of everything a proxy computation could change in ``model``.

    Holds a clone of every parameter's data and grad, ``requires_grad``, every buffer (by the
    owning module and name, so dtype changes are undone as well), every module's ``training``
    flag, and the content of each module's hook registries.

    Args:
        model (nn.Module): the model to snapshot.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.params = []
        self.buffers = []
        self.modes = []
        self.hooks = []
        for module in model.modules():
            self.modes.append((module, module.training))
            self.hooks.append((module, {
                name: dict(getattr(module, name))
                for name in HOOK_DICTS if hasattr(module, name)
            }))
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
        # hooks a failing third-party tracer (e.g. a FLOP counter) may have left behind go;
        # the dict objects are kept, only their content is put back
        for module, saved in self.hooks:
            for name, content in saved.items():
                current = getattr(module, name)
                if dict(current) != content:
                    current.clear()
                    current.update(content)


@contextlib.contextmanager
def preserved(model: nn.Module):
    """Run the body, then restore ``model`` (see :class:`ModelState`) even on error."""
    state = ModelState(model)
    try:
        yield state
    finally:
        state.restore()
