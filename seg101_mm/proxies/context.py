"""What the proxy passes capture, and the context that carries it to the proxies.

docs/method.md section 8. :data:`CAPTURES` is the one list of captures: which pass fills each
one, the :class:`ProxyContext` attributes it fills and what they hold.
"""
from typing import NamedTuple, Tuple

import torch
import torch.nn as nn

#: Module types whose weights count (docs/method.md section 8: Conv2d and Linear only).
SCORED_TYPES = (nn.Conv2d, nn.Linear)
#: Activations whose binary codes NASWOT reads.
RELU_TYPES = (nn.ReLU, nn.ReLU6)


class Capture(NamedTuple):
    """One capture: the pass that fills it, its context attributes and what they hold."""
    pass_name: str
    fields: Tuple[str, ...]
    doc: str


#: Every capture a proxy can ask for in ``requires``.
CAPTURES = {
    'grad':
    Capture('main', ('grad', ), 'dL/dW of every Conv2d/Linear weight, summed over chunks'),
    'grad_moments':
    Capture(
        'main', ('grad_moments', ), 'per-chunk gradient moments: dict of sum g, sum g^2, sum |g| '
        '(lists per layer, float64) and n chunks'),
    'fisher':
    Capture('main', ('fisher', ), 'per-layer per-output-channel fisher values'),
    'w_hessian_grad':
    Capture(
        'main', ('w_hessian_grad', ), 'sum over the scored layers of W * (H g), H g the '
        'Hessian-gradient product for the accumulated gradient g'),
    'hessian_grad':
    Capture('main', ('hessian_grad', ), 'H g per layer for the accumulated gradient g'),
    'jacobian':
    Capture('main', ('jacobian', ), '(N, C*H*W) rows d(sum of logits)/d(input image)'),
    'relu_codes':
    Capture('main', ('nwot_kernel', ), '(N, N) float64 NASWOT kernel of binary ReLU codes'),
    'synflow':
    Capture('synflow', ('synflow_weights', 'synflow_grad'),
            '|W| in float64 and dR/d|W| on an all-ones input'),
}
#: Captures filled by the gradient passes (the main pass and its follow-ups).
MAIN_PASS_CAPTURES = tuple(k for k, c in CAPTURES.items() if c.pass_name == 'main')


class ProxyError(RuntimeError):
    """A proxy could not be computed for this model/batch (the message says why)."""


class ProxyContext:
    """What the passes captured, for the proxies to score.

    Besides the attributes below it has the ``fields`` of every entry of :data:`CAPTURES`
    (None until a pass fills them).

    Attributes:
        model: the segmentor (in train mode during scoring).
        inputs (Tensor): the preprocessed batch, (N, C, H, W).
        data_samples (list): the matching ``SegDataSample`` list.
        layers (list[tuple[str, nn.Module]]): the scored Conv2d/Linear layers, in model order.
        weights (list[Tensor]): their weights.
        chunk_size (int): the chunk size the passes used.
        grasp_method (str): how ``w_hessian_grad`` was computed (``'probe'`` or
            ``'hessian-gradient product'``), None if it was not.
        probe_note (str): why the weight-scale probe cannot be used for this model, None if
            it can (kept across out-of-memory retries).
    """

    def __init__(self, model, inputs, data_samples, layers):
        self.model = model
        self.inputs = inputs
        self.data_samples = data_samples
        self.layers = layers
        self.weights = [m.weight for _, m in layers]
        self.chunk_size = None
        self.probe_note = None
        self.reset()

    def reset(self):
        """Forget every capture (before the passes run again with another chunk size)."""
        self.grasp_method = None
        for capture in CAPTURES.values():
            for name in capture.fields:
                setattr(self, name, None)


def scored_layers(model):
    """``(name, module)`` of every Conv2d/Linear with a weight, in ``named_modules`` order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, SCORED_TYPES) and getattr(m, 'weight', None) is not None]


def total_loss(losses):
    """Sum of every entry of an mmseg loss dict whose key contains ``'loss'``."""
    total = 0.
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            total = total + v
    if not torch.is_tensor(total):
        raise ProxyError(f'the model returned no loss (keys: {sorted(losses)}); expected at '
                         f'least one key containing "loss"')
    return total


def pads_in_training(preprocessor):
    """Whether ``preprocessor(batch, training=True)`` works.

    mmseg's ``SegDataPreProcessor`` asserts in training mode unless ``size`` or
    ``size_divisor`` is set (configs set ``size=crop_size``); without either, its test mode
    does the same normalisation and stacking for equally sized images.
    """
    if hasattr(preprocessor, 'size') and hasattr(preprocessor, 'size_divisor'):
        return preprocessor.size is not None or preprocessor.size_divisor is not None
    return True


def is_out_of_memory(err):
    """True for CUDA or host allocator out-of-memory errors."""
    if isinstance(err, getattr(torch.cuda, 'OutOfMemoryError', ())):
        return True
    msg = str(err)
    return isinstance(err, RuntimeError) and ('out of memory' in msg
                                              or "can't allocate memory" in msg)
