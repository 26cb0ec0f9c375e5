"""The passes that fill a :class:`~.context.ProxyContext` (docs/method.md section 8).

* :func:`main_pass`: one forward and one backward of the segmentor's own training loss per
  chunk, shared by ``grad_norm``, ``snip``, ``fisher``, ``plain``, ``zico``, ``jacob_cov`` and
  ``nwot``: weight gradients are accumulated over chunks, fisher terms come from hooks on the
  Conv2d/Linear outputs, the input Jacobian of the summed logits is a second, input-only
  gradient of the same graph, NASWOT codes come from forward hooks on the ReLUs.
* grasp needs only the scalar ``sum W * (H g)``; it is the derivative of ``g . dL/dW`` along a
  common scale ``tau`` of all scored weights (:mod:`.probe`). When the batch is one chunk, the
  main pass's forward runs with that probe and its first backward is built with
  ``create_graph``; one more backward, to ``tau`` alone, gives the scalar. With several chunks
  it needs the gradient of the whole batch first, so :func:`w_hessian_grad_pass` runs one more
  forward and double backward per chunk. Models the probe cannot take over fall back to the
  full Hessian-gradient product with respect to every weight (:func:`hessian_grad_pass`, what
  the reference code computes).
* :func:`nwot_pass`: the NASWOT kernel of a chunked batch, in one forward without gradients.
* :func:`synflow_pass`: one float64 forward/backward on an all-ones input, through
  ``torch.func.functional_call`` with absolute copies of the parameters and buffers, so the
  model's own tensors are never touched.

Every chunk's forward is seeded with ``seed + chunk index``, so that dropout masks repeat
across passes and runs.
"""
import contextlib
import functools
import types

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .context import RELU_TYPES, ProxyError, total_loss
from .probe import ScaleProbe, probe_supported, weight_scale_probe


def chunk_slices(n, chunk):
    """Slices of ``chunk`` images (the last one shorter) that cover ``n`` images."""
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def chunk_loss(model, x, data_samples, seed):
    """The training loss of one chunk, its forward seeded so that dropout repeats."""
    torch.manual_seed(seed)
    return total_loss(model.loss(x, data_samples))


def zeros_for_none(grads, like):
    """``grads`` with zeros of the matching ``like`` tensor for unused (None) entries."""
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, like)]


def grad_dot_grad_derivative(g_whole, g_graph, inputs):
    """Gradient with respect to ``inputs`` of ``sum_l g_whole_l . g_graph_l``.

    ``g_graph`` are weight gradients with their graph (``create_graph``) and ``g_whole`` is held
    constant, so this is the Hessian-gradient product ``H g`` for ``inputs`` = the weights, and
    ``sum W * (H g)`` for the probe's ``tau``. None when no gradient has a graph.
    """
    pairs = [(g, gg) for g, gg in zip(g_whole, g_graph) if gg is not None and gg.requires_grad]
    if not pairs:
        return None
    z = sum((g * gg).sum() for g, gg in pairs)
    return torch.autograd.grad(z, inputs, allow_unused=True)


@contextlib.contextmanager
def captured_output(module, store):
    """Record the outputs of ``module.forward`` (also when called as ``self.forward(...)``).

    mmseg's ``BaseDecodeHead.loss`` calls ``self.forward`` directly, which module hooks do not
    see, so the bound method is shadowed by an instance attribute for the duration.
    """
    original = module.forward

    def forward(self, *args, **kwargs):
        out = original(*args, **kwargs)
        store.append(out)
        return out

    module.forward = types.MethodType(forward, module)
    try:
        yield store
    finally:
        del module.forward


@contextlib.contextmanager
def relu_code_kernel(model, kernel):
    """While inside, every forward adds its NASWOT term to the ``(N, N)`` float64 ``kernel``:
    ``c c^T + (1 - c)(1 - c)^T`` of the binary codes ``c`` of every ReLU module."""

    def hook(module, args, out):
        codes = (out.detach().flatten(1) > 0).to(torch.float64)
        ones = codes.sum(1)
        # c c^T + (1 - c)(1 - c)^T without materialising 1 - c
        kernel.add_(2 * codes @ codes.T + codes.shape[1] - ones[:, None] - ones[None, :])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, RELU_TYPES)]
    try:
        yield kernel
    finally:
        for h in handles:
            h.remove()


class FisherCapture:
    """Per-output-channel fisher values of the scored layers, summed over chunks.

    Forward hooks keep a copy of every layer output ``a`` and a gradient hook on it adds up
    ``sum over positions of a * dL/da`` per image and channel, only inside :meth:`collect`
    (the other backwards of the main pass go through the same outputs); :meth:`end_chunk`
    adds ``0.5 * mean over images of its square`` to :attr:`values`.
    """

    def __init__(self, layers):
        self.layers = layers
        self.values = [
            torch.zeros(m.weight.shape[0], dtype=m.weight.dtype, device=m.weight.device)
            for _, m in layers
        ]
        self.deltas = {}
        self.collecting = False

    @contextlib.contextmanager
    def hooks(self):
        handles = [
            m.register_forward_hook(functools.partial(self._on_output, i))
            for i, (_, m) in enumerate(self.layers)
        ]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def collect(self):
        self.deltas.clear()
        self.collecting = True
        try:
            yield
        finally:
            self.collecting = False

    def end_chunk(self):
        for idx, d in self.deltas.items():
            self.values[idx].add_(0.5 * d.pow(2).mean(0))
        self.deltas.clear()

    def _on_output(self, idx, module, args, out):
        if out.requires_grad:
            act = out.detach().clone()  # a later in-place op (ReLU) must not change it
            out.register_hook(functools.partial(self._on_grad, idx, module, act))

    def _on_grad(self, idx, module, act, grad):
        if not self.collecting:
            return
        prod = act * grad.detach()
        # channels are dim 1 for conv, the last dim for linear
        if isinstance(module, nn.Conv2d):
            d = prod.flatten(2).sum(-1)
        else:
            d = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)
        self.deltas[idx] = self.deltas[idx] + d if idx in self.deltas else d


class GradMoments:
    """Sums of ``g``, ``g^2`` and ``|g|`` of the chunks' weight gradients, in float64: the
    variance is a difference of moments and cancels badly in float32."""

    def __init__(self, weights):
        self.moments = {
            k: [torch.zeros_like(w, dtype=torch.float64) for w in weights]
            for k in ('sum', 'sq', 'abs')
        }
        self.moments['n'] = 0

    def add(self, grads):
        m = self.moments
        for s, q, a, g in zip(m['sum'], m['sq'], m['abs'], grads):
            g = g.double()
            s.add_(g)
            q.add_(g * g)
            a.add_(g.abs())
        m['n'] += 1


def probe_usable(ctx):
    """Whether the weight-scale probe can take over every scored layer of this model."""
    if ctx.probe_note is not None:
        return False
    unsupported = probe_supported(ctx.layers)
    if unsupported:
        ctx.probe_note = (f'layers the weight-scale probe does not support: '
                          f'{unsupported[:3]}{" ..." if len(unsupported) > 3 else ""}')
    return not unsupported


def probe_term(ctx, probe, g_graph, g_chunk, dl_dtau, g_whole):
    """``d/dtau <g_whole, dL/dW>`` of one chunk's probed graph.

    ``g_graph``: its weight gradients with their graph, ``g_chunk``: the same detached, zeros
    for unused weights. None, with ``ctx.probe_note`` set, when ``dL/dtau`` and
    ``sum W * g_chunk`` disagree (a scored weight is also used outside its layer).
    """
    dot = mag = 0.
    for w, g in zip(ctx.weights, g_chunk):
        wg = (w.detach() * g).double()
        dot += float(wg.sum())
        mag += float(wg.abs().sum())
    dtau = 0. if dl_dtau is None else float(dl_dtau.detach())
    if not ScaleProbe.consistent(dtau, dot, mag):
        ctx.probe_note = (f'dL/dtau = {dtau:.6g} but sum W * dL/dW = {dot:.6g}: a scored '
                          f'weight is used outside its own layer')
        return None
    probe.phase = 'tau'
    d = grad_dot_grad_derivative(g_whole, g_graph, probe.tau)
    return 0. if d is None or d[0] is None else float(d[0])


def main_pass(ctx, captures, chunk, seed):
    """Fill ``captures`` (and always ``ctx.grad``) from one forward and backward per chunk.

    With one chunk the pass also gives ``relu_codes`` and, through the weight-scale probe,
    ``w_hessian_grad``; with more, those are left to their follow-up passes.
    """
    weights = ctx.weights
    n = ctx.inputs.shape[0]
    chunks = chunk_slices(n, chunk)
    fused_grasp = 'w_hessian_grad' in captures and len(chunks) == 1 and probe_usable(ctx)
    want_nwot = 'relu_codes' in captures and len(chunks) == 1
    want_jacobian = 'jacobian' in captures
    grad = [torch.zeros_like(w) for w in weights]
    moments = GradMoments(weights) if 'grad_moments' in captures else None
    fisher = FisherCapture(ctx.layers)
    kernel = torch.zeros(n, n, dtype=torch.float64, device=ctx.inputs.device)
    jac_rows = []
    with contextlib.ExitStack() as hooks:
        if 'fisher' in captures:
            hooks.enter_context(fisher.hooks())
        if want_nwot:
            hooks.enter_context(relu_code_kernel(ctx.model, kernel))
        for index, sl in enumerate(chunks):
            g_chunk = _main_chunk(ctx, sl, seed + index, fisher, fused_grasp, want_jacobian,
                                  jac_rows)
            for acc, g in zip(grad, g_chunk):
                acc.add_(g)
            if moments is not None:
                moments.add(g_chunk)
            fisher.end_chunk()
    ctx.grad = grad
    if moments is not None:
        ctx.grad_moments = moments.moments
    if 'fisher' in captures:
        ctx.fisher = fisher.values
    if want_jacobian:
        ctx.jacobian = torch.cat(jac_rows, 0)
    if want_nwot:
        ctx.nwot_kernel = kernel


def _main_chunk(ctx, sl, seed, fisher, fused_grasp, want_jacobian, jac_rows):
    """One chunk of :func:`main_pass`: its detached weight gradients (zeros where unused)."""
    weights = ctx.weights
    x = ctx.inputs[sl].detach()
    if want_jacobian:
        x.requires_grad_(True)
    logits = []
    cm = captured_output(ctx.model.decode_head, logits) if want_jacobian else \
        contextlib.nullcontext()
    probe_cm = weight_scale_probe(ctx.layers, x) if fused_grasp else contextlib.nullcontext()
    with cm, probe_cm as probe:
        loss = chunk_loss(ctx.model, x, ctx.data_samples[sl], seed)
    with fisher.collect():
        grads = torch.autograd.grad(
            loss,
            weights + ([probe.tau] if fused_grasp else []),
            allow_unused=True,
            create_graph=fused_grasp,
            retain_graph=fused_grasp or want_jacobian)
    g_graph = grads[:len(weights)]
    if want_jacobian:
        if not logits:
            raise ProxyError('decode_head.forward was not called by model.loss')
        if fused_grasp:
            probe.phase = 'input'
        (jx, ) = torch.autograd.grad(logits[0].sum(), x, retain_graph=fused_grasp)
        jac_rows.append(jx.detach().flatten(1))
    g_chunk = [g.detach() for g in zeros_for_none(g_graph, weights)]
    if fused_grasp:
        ctx.w_hessian_grad = probe_term(ctx, probe, g_graph, g_chunk, grads[-1], g_chunk)
        if ctx.w_hessian_grad is not None:
            ctx.grasp_method = 'probe'
    return g_chunk


def w_hessian_grad_pass(ctx, chunk, seed):
    """``sum W * (H g)`` with the whole batch's ``g``, one probed forward and double backward
    per chunk; the full Hessian-gradient product where the probe cannot be used."""
    weights = ctx.weights
    if probe_usable(ctx):
        total = 0.
        for index, sl in enumerate(chunk_slices(ctx.inputs.shape[0], chunk)):
            x = ctx.inputs[sl].detach()
            with weight_scale_probe(ctx.layers, x) as probe:
                loss = chunk_loss(ctx.model, x, ctx.data_samples[sl], seed + index)
            grads = torch.autograd.grad(
                loss, weights + [probe.tau], allow_unused=True, create_graph=True)
            g_graph = grads[:-1]
            term = probe_term(ctx, probe, g_graph,
                              [g.detach() for g in zeros_for_none(g_graph, weights)], grads[-1],
                              ctx.grad)
            del loss, grads, g_graph
            if term is None:
                break
            total += term
        else:
            ctx.w_hessian_grad = total
            ctx.grasp_method = 'probe'
            return
    print_log(
        f'proxies: grasp via the full Hessian-gradient product ({ctx.probe_note})',
        logger='current')
    if ctx.hessian_grad is None:
        hessian_grad_pass(ctx, chunk, seed)
    ctx.w_hessian_grad = sum(
        float((w.detach() * h).double().sum()) for w, h in zip(weights, ctx.hessian_grad))
    ctx.grasp_method = 'hessian-gradient product'


def hessian_grad_pass(ctx, chunk, seed):
    """H g per chunk with the whole batch's g, differentiating with respect to every scored
    weight (the reference code's way; used where the probe cannot be)."""
    weights = ctx.weights
    hg_total = [torch.zeros_like(w) for w in weights]
    for index, sl in enumerate(chunk_slices(ctx.inputs.shape[0], chunk)):
        loss = chunk_loss(ctx.model, ctx.inputs[sl].detach(), ctx.data_samples[sl], seed + index)
        g_graph = torch.autograd.grad(loss, weights, allow_unused=True, create_graph=True)
        hg = grad_dot_grad_derivative(ctx.grad, g_graph, weights)
        if hg is None:
            continue
        for acc, h in zip(hg_total, zeros_for_none(hg, weights)):
            acc.add_(h.detach())
    ctx.hessian_grad = hg_total


def nwot_pass(ctx, chunk, seed):
    """NASWOT kernel over the whole batch at once (no gradients), for chunked batches."""
    n = ctx.inputs.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=ctx.inputs.device)
    with relu_code_kernel(ctx.model, kernel), torch.no_grad():
        torch.manual_seed(seed)
        ctx.model.loss(ctx.inputs, ctx.data_samples)
    ctx.nwot_kernel = kernel


#: The pass of each follow-up capture (:data:`.plan.FOLLOW_UPS`).
FOLLOW_UP_PASSES = dict(
    w_hessian_grad=w_hessian_grad_pass, hessian_grad=hessian_grad_pass, relu_codes=nwot_pass)


def synflow_pass(ctx, seed, dtype=torch.float64):
    """dR/d|W| for R = sum of logits of |model| in ``dtype`` on an all-ones image.

    One image is used; if a BN layer sees a single value per channel (image-level pooling
    branches), two identical images are used and R is halved, which gives the same
    statistics and gradients as one image would without BN's refusal.
    """
    model = ctx.model
    scored = {id(w) for w in ctx.weights}
    tensors, weights = {}, []
    name_of = {id(p): n for n, p in model.named_parameters()}
    for name, p in model.named_parameters():
        tensors[name] = p.detach().abs().to(dtype).requires_grad_(id(p) in scored)
    for name, b in model.named_buffers():
        tensors[name] = b.detach().abs().to(dtype) if b.is_floating_point() else b.clone()
    for w in ctx.weights:
        weights.append(tensors[name_of[id(w)]])
    shape = (1, ) + tuple(ctx.inputs.shape[1:])
    for copies in (1, 2):
        torch.manual_seed(seed)  # dropout, if any, repeats from run to run
        ones = torch.ones((copies, ) + shape[1:], dtype=dtype, device=ctx.inputs.device)
        try:
            out = torch.func.functional_call(model, tensors, (ones, ), dict(mode='tensor'))
            break
        except ValueError as err:
            if copies == 2 or 'Expected more than 1 value per channel' not in str(err):
                raise
    r = out.sum() / copies
    grads = torch.autograd.grad(r, weights, allow_unused=True)
    ctx.synflow_weights = [w.detach() for w in weights]
    ctx.synflow_grad = [g.detach() for g in zeros_for_none(grads, weights)]
