"""The weight-scale probe: GraSP's ``sum W * (H g)`` from one scalar second-order pass.

GraSP needs ``s = sum_l W_l . (H g)_l = W~^T H g`` (``W~``: the scored weights, zero elsewhere;
``H``: the Hessian of the loss restricted to them; ``g``: their gradient). ``H`` is symmetric,
so ``s = g^T H W~``: the derivative, along ``W~``, of ``g . grad L``. Moving along ``W~`` means
scaling every scored weight by ``1 + e``; since a Conv2d or Linear output is linear in its
weight, that network is the original one with every scored layer's weight term multiplied by a
single scalar ``tau = 1 + e``::

    y_l = tau * A_l(x_l, W_l) + b_l        (A_l: the convolution / matrix product)

and the gradient of the loss with respect to the scaled weight ``tau W_l`` is
``A_l^*(x_l, gy_l)``, the usual weight gradient (input ``x_l`` and output gradient ``gy_l`` of
the probed network). Hence, exactly::

    s = d/dtau [ sum_l g_l . A_l^*(x_l, gy_l) ]   at tau = 1

with ``g`` held constant. Reverse-mode differentiation of that scalar with respect to ``tau``
alone needs no weight gradients: per layer, two convolutions for ``d/d gy``, one input
gradient for ``d/dx`` and one input gradient through the forward graph, where the Hessian-
vector product with respect to all weights (what the reference code computes, then dots with
``W``) also computes two weight gradients and, in PyTorch, a weight gradient of the first
backward that is computed as a convolution with a kernel as large as the feature map.

:func:`weight_scale_probe` shadows the ``forward`` of the scored layers with two custom
autograd functions that implement this (values at ``tau = 1`` are those of the normal layer).
``dL/dtau`` of the first backward equals ``sum_l W_l . g_l`` by the same identity;
:meth:`ScaleProbe.consistent` compares the two, which catches a scored weight that is also
used outside its layer's own forward (the probe would then miss that use), and the engine
falls back to the full Hessian-gradient product.
"""
import contextlib
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

_aten = torch.ops.aten


class _ConvOps:
    """Linear-in-the-weight operator ``A(x, W)`` of a Conv2d with explicit zero padding."""

    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def apply(self, x, w):
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)

    def _backward(self, gy, x, w, mask):
        return _aten.convolution_backward(gy, x, w, None, self.stride, self.padding, self.dilation,
                                          False, [0, 0], self.groups, [mask[0], mask[1], False])

    def grads(self, gy, x, w, need_x):
        """``(dA*/dx, dA*/dW)`` for output gradient ``gy`` (the first one None unless asked)."""
        gx, gw, _ = self._backward(gy, x, w, (need_x, True))
        return gx, gw

    def input_grad(self, gy, x, w):
        return self._backward(gy, x, w, (True, False))[0]

    @staticmethod
    def bias_grad(gy):
        return gy.sum((0, 2, 3))


class _LinearOps:
    """``A(x, W) = x W^T`` of a Linear layer, for inputs of any leading shape."""

    @staticmethod
    def apply(x, w):
        return F.linear(x, w)

    @staticmethod
    def grads(gy, x, w, need_x):
        gw = gy.reshape(-1, gy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        return (gy @ w if need_x else None), gw

    @staticmethod
    def input_grad(gy, x, w):
        return gy @ w

    @staticmethod
    def bias_grad(gy):
        return gy.reshape(-1, gy.shape[-1]).sum(0)


class _ProbedLayer(torch.autograd.Function):
    """``y = tau * A(x, W) + b`` evaluated at ``tau = 1``.

    Its backward depends on the probe's phase (:class:`ScaleProbe`):

    * ``'first'``, the gradient that GraSP's second derivative is taken of (built with
      ``create_graph``): ``dL/dx``, ``dL/dW``, ``dL/db`` and ``dL/dtau`` through
      :class:`_ProbedLayerBackward`, differentiable in ``gy``, ``x`` and ``tau``;
    * ``'input'``, a gradient with respect to the network's input (jacob_cov): ``dL/dx`` only;
    * ``'tau'``, the backward to ``tau``: ``dL/dx`` (not for the network's input) and
      ``dL/dtau``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, tau, ops, probe):
        lin = ops.apply(x, weight)
        if bias is not None:
            out = lin + (bias.view(-1, 1, 1) if isinstance(ops, _ConvOps) else bias)
        else:
            out = lin.clone()  # a later in-place op (ReLU) must not change the saved lin
        ctx.save_for_backward(x, weight, lin, tau)
        ctx.ops, ctx.probe, ctx.has_bias = ops, probe, bias is not None
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    def backward(ctx, gy):
        if gy is None:
            return None, None, None, None, None, None
        x, weight, lin, tau = ctx.saved_tensors
        need_x, need_w, need_b, need_tau = ctx.needs_input_grad[:4]
        phase, ops = ctx.probe.phase, ctx.ops
        inner = x.grad_fn is not None  # False for the network's input
        if phase == 'first':
            gx, gw, gtau = _ProbedLayerBackward.apply(gy, x, tau, weight.detach(), lin, ops, need_x
                                                      and inner)
            gb = ops.bias_grad(gy) if ctx.has_bias and need_b else None
            return gx, (gw if need_w else None), gb, (gtau if need_tau else None), None, None
        if phase == 'input':
            return (ops.input_grad(gy, x, weight) if need_x else None), None, None, None, None, \
                None
        gx = ops.input_grad(gy, x, weight) if need_x and inner else None
        gtau = (gy * lin).sum() if need_tau else None
        return gx, None, None, gtau, None, None


class _ProbedLayerBackward(torch.autograd.Function):
    """``(dL/dx, dL/dW, dL/dtau)`` of a probed layer as a function of ``(gy, x, tau)``.

    ``dL/dx = tau * A_x^*(gy)`` (tau = 1 in value), ``dL/dW = A_W^*(x, gy)`` (the gradient with
    respect to the scaled weight ``tau W``, so no explicit tau), ``dL/dtau = <gy, A(x, W)>``.
    """

    @staticmethod
    def forward(ctx, gy, x, tau, weight, lin, ops, need_x):
        gx, gw = ops.grads(gy, x, weight, need_x)
        # <gy, A(x, W)> = <W, A_W^*(x, gy)>: a dot product over the weight, not the feature map
        gtau = (weight * gw).sum()
        ctx.save_for_backward(gy, x, weight, lin, gx)
        ctx.ops, ctx.need_x = ops, need_x
        ctx.set_materialize_grads(False)
        return gx, gw, gtau

    @staticmethod
    @once_differentiable
    def backward(ctx, ggx, ggw, ggtau):
        gy, x, weight, lin, gx = ctx.saved_tensors
        ops = ctx.ops
        need_gy, need_x, need_tau = ctx.needs_input_grad[:3]
        g_gy = g_x = g_tau = None
        if need_gy:
            terms = []
            if ggx is not None:
                terms.append(ops.apply(ggx, weight))
            if ggw is not None:
                terms.append(ops.apply(x, ggw))
            if ggtau is not None:
                terms.append(ggtau * lin)
            g_gy = sum(terms[1:], terms[0]) if terms else None
        if need_x:
            terms = []
            if ggw is not None:
                terms.append(ops.input_grad(gy, x, ggw))
            if ggtau is not None and gx is not None:
                terms.append(ggtau * gx)
            g_x = sum(terms[1:], terms[0]) if terms else None
        if need_tau and ggx is not None and gx is not None:
            g_tau = (ggx * gx).sum().reshape(())
        return g_gy, g_x, g_tau, None, None, None, None


def _ops_for(module):
    """The linear operator of ``module`` and a function that prepares its input, or None."""
    if isinstance(module, nn.Conv2d):
        if type(module).forward not in _PROBED_FORWARDS:
            return None
        if module.padding_mode != 'zeros' or isinstance(module.padding, str):
            # padded outside the operator, exactly as nn.Conv2d does for non-zero modes
            mode = 'constant' if module.padding_mode == 'zeros' else module.padding_mode
            pad = module._reversed_padding_repeated_twice
            ops = _ConvOps(module.stride, (0, 0), module.dilation, module.groups)
            return ops, lambda x: F.pad(x, pad, mode=mode)
        return _ConvOps(module.stride, module.padding, module.dilation, module.groups), None
    if isinstance(module, nn.Linear):
        if type(module).forward not in _PROBED_FORWARDS:
            return None
        return _LinearOps(), None
    return None


def _probed_forwards():
    forwards = {nn.Conv2d.forward, nn.Linear.forward}
    try:  # mmcv's wrappers only add an empty-input path in front of torch's forward
        from mmcv.cnn.bricks import wrappers
        forwards.update({wrappers.Conv2d.forward, wrappers.Linear.forward})
    except (ImportError, AttributeError):
        pass
    return forwards


_PROBED_FORWARDS = _probed_forwards()


def probe_supported(layers):
    """Names of the ``(name, module)`` layers the probe cannot take over (empty: all fine).

    Supported: ``nn.Conv2d`` (any padding mode, groups, dilation, stride) and ``nn.Linear``,
    and mmcv's thin wrappers of both, whose forward is torch's own.
    """
    return [name for name, module in layers if _ops_for(module) is None]


class ScaleProbe:
    """The state of one probe: ``tau`` (a scalar leaf) and the phase of the next backward.

    Attributes:
        tau (Tensor): the scale, 1.0, ``requires_grad``.
        phase (str): ``'first'`` while the gradient ``g`` is built with ``create_graph``,
            ``'input'`` for a gradient with respect to the network's input only (jacob_cov),
            ``'tau'`` for the backward to ``tau``. Set it before each backward through the
            probed graph.
    """
    PHASES = ('first', 'input', 'tau')

    def __init__(self, like):
        self.tau = torch.ones((), dtype=like.dtype, device=like.device, requires_grad=True)
        self._phase = 'first'

    @property
    def phase(self):
        return self._phase

    @phase.setter
    def phase(self, value):
        if value not in self.PHASES:
            raise ValueError(f'probe phase must be one of {self.PHASES}, got {value!r}')
        self._phase = value

    @staticmethod
    def consistent(dl_dtau, weight_dot_grad, weight_grad_abs, rtol=1e-4):
        """Whether ``dL/dtau`` equals ``sum W . g`` (both from the first backward).

        The tolerance is relative to ``sum |W * g|``: the two sums round differently, and a
        missed use of a weight shows up as a term of that order.
        """
        return abs(dl_dtau - weight_dot_grad) <= rtol * weight_grad_abs + 1e-30


@contextlib.contextmanager
def weight_scale_probe(layers, like):
    """Shadow the forward of every ``(name, module)`` in ``layers`` with the probed layer.

    Yields a :class:`ScaleProbe`; the forward methods are restored on exit (the autograd graph
    built inside stays usable). Raises ValueError naming the layers that cannot be probed.
    """
    unsupported = probe_supported(layers)
    if unsupported:
        raise ValueError(f'the weight-scale probe supports nn.Conv2d and nn.Linear forwards '
                         f'only; cannot probe {unsupported}')
    probe = ScaleProbe(like)
    patched = []

    def make_forward(ops, prepare):

        def forward(self, x):
            if prepare is not None:
                x = prepare(x)
            return _ProbedLayer.apply(x, self.weight, self.bias, probe.tau, ops, probe)

        return forward

    try:
        for _, module in layers:
            ops, prepare = _ops_for(module)
            module.forward = types.MethodType(make_forward(ops, prepare), module)
            patched.append(module)
        yield probe
    finally:
        for module in patched:
            del module.forward
