"""The zero-cost proxy engine: few shared passes, micro-batching, the model given back intact.

docs/method.md section 8. One call computes any set of registered proxies on one batch:

* **main pass** (one forward and one backward of the segmentor's own training loss per chunk,
  shared by ``grad_norm``, ``snip``, ``fisher``, ``plain``, ``zico``, ``jacob_cov`` and
  ``nwot``): weight gradients are accumulated over chunks, fisher terms come from hooks on the
  Conv2d/Linear outputs, the input Jacobian of the summed logits is a second, input-only
  gradient of the same graph, NASWOT codes come from forward hooks on the ReLUs.
* **grasp** needs only the scalar ``sum W * (H g)``; it is the derivative of ``g . dL/dW``
  along a common scale ``tau`` of all scored weights (:mod:`.probe`). When the batch is one
  chunk, the main pass's forward runs with that probe and its first backward is built with
  ``create_graph``; one more backward, to ``tau`` alone, gives the scalar. With several chunks
  it needs the gradient of the whole batch first, so it runs one more forward and double
  backward per chunk. Models the probe cannot take over fall back to the full Hessian-gradient
  product with respect to every weight (what the reference code computes).
* **synflow**: one float64 forward/backward on an all-ones input, through
  ``torch.func.functional_call`` with absolute copies of the parameters and buffers, so the
  model's own tensors are never touched.

The model runs with BN (and dropout) in train mode; every chunk's forward is seeded with
``seed + chunk index`` so that dropout masks repeat across passes and runs. Everything the
computation changes (BN running statistics, ``requires_grad``, modes) is restored afterwards.
With BN in train mode the scores depend on the chunk size (batch statistics are per chunk);
:attr:`ProxyEngine.last_chunk_size` tells which one was used after an out-of-memory fallback.
"""
import contextlib
import copy
import math
import types

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .probe import ScaleProbe, probe_supported, weight_scale_probe
from .registry import get_proxy
from .state import preserved

#: Captures filled by the main (shared forward/backward) pass.
MAIN_PASS_CAPTURES = ('grad', 'grad_moments', 'fisher', 'jacobian', 'relu_codes',
                      'w_hessian_grad', 'hessian_grad')
#: Module types whose weights count (docs/method.md section 8: Conv2d and Linear only).
SCORED_TYPES = (nn.Conv2d, nn.Linear)
#: Activations whose binary codes NASWOT reads.
RELU_TYPES = (nn.ReLU, nn.ReLU6)


class ProxyError(RuntimeError):
    """A proxy could not be computed for this model/batch (the message says why)."""


class ProxyContext:
    """What the passes captured, for the proxies to score.

    Attributes:
        model: the segmentor (in train mode during scoring).
        inputs (Tensor): the preprocessed batch, (N, C, H, W).
        data_samples (list): the matching ``SegDataSample`` list.
        layers (list[tuple[str, nn.Module]]): the scored Conv2d/Linear layers, in model order.
        weights (list[Tensor]): their weights.
        grad (list[Tensor]): dL/dW summed over chunks.
        grad_moments (dict): ``sum``, ``sq``, ``abs`` (lists per layer) and ``n`` chunks.
        fisher (list[Tensor]): per-layer per-output-channel fisher values.
        w_hessian_grad (float): sum over the scored layers of W * (H g).
        hessian_grad (list[Tensor]): H g per layer (only when a proxy asks for the vector).
        jacobian (Tensor): (N, C*H*W) rows d(sum logits)/d(input image).
        nwot_kernel (Tensor): (N, N) float64 NASWOT kernel.
        synflow_weights, synflow_grad (list[Tensor]): |W| in float64 and dR/d|W|.
        chunk_size (int): the chunk size the passes used.
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
        for name in ('grad', 'grad_moments', 'fisher', 'w_hessian_grad', 'hessian_grad',
                     'jacobian', 'nwot_kernel', 'synflow_weights', 'synflow_grad'):
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


def is_out_of_memory(err):
    """True for CUDA or host allocator out-of-memory errors."""
    if isinstance(err, getattr(torch.cuda, 'OutOfMemoryError', ())):
        return True
    msg = str(err)
    return isinstance(err, RuntimeError) and ('out of memory' in msg or
                                              "can't allocate memory" in msg)


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


def _pads_in_training(preprocessor):
    """Whether ``preprocessor(batch, training=True)`` works.

    mmseg's ``SegDataPreProcessor`` asserts in training mode unless ``size`` or
    ``size_divisor`` is set (configs set ``size=crop_size``); without either, its test mode
    does the same normalisation and stacking for equally sized images.
    """
    if hasattr(preprocessor, 'size') and hasattr(preprocessor, 'size_divisor'):
        return preprocessor.size is not None or preprocessor.size_divisor is not None
    return True


def _zeros_for_none(grads, like):
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, like)]


class ProxyEngine:
    """Compute registered zero-cost proxies on one batch with shared passes.

    Args:
        chunk_size (int, optional): images per forward/backward (micro-batch). Default: None,
            the whole batch in one chunk.
        seed (int): seeds every chunk's forward (``seed + chunk index``) and the
            preprocessing. Default: 0.
        min_chunk_size (int): do not halve below this on out-of-memory. Default: 1.
        eps (float): jacob_cov's eigenvalue offset k (docs/method.md s. 8). Default: 1e-5.
    """

    def __init__(self, chunk_size=None, seed=0, min_chunk_size=1, eps=1e-5):
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f'chunk_size must be a positive int or None, got {chunk_size!r}')
        self.chunk_size = chunk_size
        self.seed = seed
        self.min_chunk_size = min_chunk_size
        self.eps = eps
        self.last_chunk_size = None
        self.last_reasons = {}
        self.last_grasp_method = None

    # -- public API -------------------------------------------------------------------------
    def compute(self, model, batch, names, errors='raise'):
        """Scores ``{name: float}`` of the proxies ``names`` for ``model`` on ``batch``.

        Args:
            model: an mmseg segmentor (``EncoderDecoder`` or anything with ``loss``,
                ``data_preprocessor`` and a ``decode_head``).
            batch (dict): ``dict(inputs=[...], data_samples=[...])`` as the model's data
                preprocessor accepts (see :func:`~seg101_mm.proxies.random_batch`).
            names (str | list[str]): registered proxy names.
            errors (str): ``'raise'`` re-raises a failing proxy; ``'nan'`` records NaN and the
                reason in :attr:`last_reasons` and goes on.
        """
        if errors not in ('raise', 'nan'):
            raise ValueError(f"errors must be 'raise' or 'nan', got {errors!r}")
        names = [names] if isinstance(names, str) else list(names)
        proxies = [get_proxy(n) for n in names]
        self.last_reasons = {}
        self.last_grasp_method = None
        device = next(model.parameters()).device
        devices = [device.index or 0] if device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices), preserved(model):
            torch.manual_seed(self.seed)
            model.train()
            with torch.no_grad():
                data = model.data_preprocessor(batch, _pads_in_training(model.data_preprocessor))
            ctx = ProxyContext(model, data['inputs'], data['data_samples'], scored_layers(model))
            for w in ctx.weights:
                w.requires_grad_(True)
            requires = {r for p in proxies for r in p.requires}
            failed = self._run_passes(ctx, requires, errors)
            scores = {}
            for proxy in proxies:
                missing = [r for r in proxy.requires if r in failed]
                if missing:
                    scores[proxy.name] = float('nan')
                    self.last_reasons[proxy.name] = failed[missing[0]]
                    continue
                try:
                    value = float(proxy.score(ctx))
                except Exception as err:  # noqa: BLE001  recorded, not swallowed silently
                    if errors == 'raise':
                        raise
                    value = float('nan')
                    self.last_reasons[proxy.name] = f'{type(err).__name__}: {err}'
                if not math.isfinite(value) and proxy.name not in self.last_reasons:
                    self.last_reasons[proxy.name] = f'non-finite score {value}'
                scores[proxy.name] = value
        return scores

    # -- passes ---------------------------------------------------------------------------
    def _run_passes(self, ctx, requires, errors):
        """Run the passes ``requires`` needs; returns ``{capture: reason}`` of failed ones."""
        failed = {}
        n = ctx.inputs.shape[0]
        chunk = min(self.chunk_size or n, n)
        if 'grad_moments' in requires and n < 2:
            failed['grad_moments'] = (f'zico needs gradients of at least 2 chunks, the batch '
                                      f'has {n} image(s)')
            requires = requires - {'grad_moments'}
        main = requires & set(MAIN_PASS_CAPTURES)
        try:
            chunk = self._run_gradient_passes(ctx, main, chunk, n, failed, errors)
        except Exception as err:  # noqa: BLE001
            if errors == 'raise':
                raise
            failed.update({c: f'{type(err).__name__}: {err}' for c in main if c not in failed})
        self.last_chunk_size = chunk
        if 'synflow' in requires:
            try:
                self._synflow_pass(ctx)
            except Exception as err:  # noqa: BLE001
                if errors == 'raise':
                    raise
                failed['synflow'] = f'{type(err).__name__}: {err}'
        return failed

    def _run_gradient_passes(self, ctx, main, chunk, n, failed, errors):
        """The main, grasp and NASWOT passes, halving the chunk size on out-of-memory."""
        while True:
            ctx.reset()
            ctx.chunk_size = chunk
            try:
                # zico needs >= 2 chunks; a one-chunk batch gets its own pass over two halves,
                # so that asking for zico never changes the other proxies' values
                zico_apart = 'grad_moments' in main and chunk >= n
                shared = main - {'grad_moments'} if zico_apart else main
                if zico_apart:
                    shadow = copy.copy(ctx)
                    try:
                        self._main_pass(shadow, {'grad_moments'}, math.ceil(n / 2))
                        ctx.grad_moments = shadow.grad_moments
                    except Exception as err:  # noqa: BLE001
                        if errors == 'raise' or is_out_of_memory(err):
                            raise
                        failed['grad_moments'] = f'{type(err).__name__}: {err}'
                if shared:
                    self._main_pass(ctx, shared, chunk)
                if 'w_hessian_grad' in main and ctx.w_hessian_grad is None:
                    self._w_hessian_grad_pass(ctx, chunk)
                if 'hessian_grad' in main and ctx.hessian_grad is None:
                    self._grasp_pass(ctx, chunk)
                if 'relu_codes' in main and ctx.nwot_kernel is None:
                    self._nwot_pass(ctx)
                return chunk
            except Exception as err:  # noqa: BLE001
                if not is_out_of_memory(err) or chunk <= self.min_chunk_size:
                    raise
                chunk = max(self.min_chunk_size, chunk // 2)
                print_log(f'proxies: out of memory, retrying with chunk size {chunk}',
                          logger='current')
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def _chunks(self, n, chunk):
        return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]

    def _main_pass(self, ctx, main, chunk):
        model, weights = ctx.model, ctx.weights
        n = ctx.inputs.shape[0]
        chunks = self._chunks(n, chunk)
        fused_grasp = ('w_hessian_grad' in main and len(chunks) == 1
                       and self._probe_usable(ctx))
        want_nwot = 'relu_codes' in main and len(chunks) == 1
        want_fisher = 'fisher' in main
        want_jacobian = 'jacobian' in main
        grad = [torch.zeros_like(w) for w in weights]
        if 'grad_moments' in main:
            # float64: the variance is a difference of moments and cancels badly in float32
            moments = {k: [torch.zeros_like(w, dtype=torch.float64) for w in weights]
                       for k in ('sum', 'sq', 'abs')}
            moments['n'] = 0
        fisher = [torch.zeros(w.shape[0], dtype=w.dtype, device=w.device) for w in weights]
        jac_rows = []
        kernel = torch.zeros(n, n, dtype=torch.float64, device=ctx.inputs.device)
        collecting = [False]
        deltas = {}

        def fisher_hook(idx):
            def hook(module, args, out):
                if not out.requires_grad:
                    return
                act = out.detach().clone()  # a later in-place op (ReLU) must not change it

                def on_grad(g):
                    if collecting[0]:
                        prod = (act * g.detach())
                        # channels are dim 1 for conv, the last dim for linear
                        if isinstance(module, nn.Conv2d):
                            d = prod.flatten(2).sum(-1)
                        else:
                            d = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)
                        deltas[idx] = deltas[idx] + d if idx in deltas else d
                out.register_hook(on_grad)
            return hook

        def relu_hook(module, args, out):
            codes = (out.detach().flatten(1) > 0).to(torch.float64)
            units = codes.shape[1]
            ones = codes.sum(1)
            # c c^T + (1 - c)(1 - c)^T without materialising 1 - c
            kernel.add_(2 * codes @ codes.T + units - ones[:, None] - ones[None, :])

        handles = []
        try:
            if want_fisher:
                handles += [m.register_forward_hook(fisher_hook(i))
                            for i, (_, m) in enumerate(ctx.layers)]
            if want_nwot:
                handles += [m.register_forward_hook(relu_hook) for m in model.modules()
                            if isinstance(m, RELU_TYPES)]
            for index, sl in enumerate(chunks):
                x = ctx.inputs[sl].detach()
                if want_jacobian:
                    x.requires_grad_(True)
                logits = []
                torch.manual_seed(self.seed + index)
                cm = (captured_output(model.decode_head, logits) if want_jacobian else
                      contextlib.nullcontext())
                probe_cm = (weight_scale_probe(ctx.layers, x) if fused_grasp else
                            contextlib.nullcontext())
                with cm, probe_cm as probe:
                    loss = total_loss(model.loss(x, ctx.data_samples[sl]))
                deltas.clear()
                collecting[0] = True
                grads = torch.autograd.grad(loss, weights + ([probe.tau] if fused_grasp else []),
                                            allow_unused=True, create_graph=fused_grasp,
                                            retain_graph=fused_grasp or want_jacobian)
                collecting[0] = False
                g_chunk = grads[:len(weights)]
                if want_jacobian:
                    if not logits:
                        raise ProxyError('decode_head.forward was not called by model.loss')
                    if fused_grasp:
                        probe.phase = 'input'
                    (jx, ) = torch.autograd.grad(logits[0].sum(), x, retain_graph=fused_grasp)
                    jac_rows.append(jx.detach().flatten(1))
                g_graph = g_chunk
                g_chunk = [g.detach() for g in _zeros_for_none(g_graph, weights)]
                if fused_grasp:
                    ctx.w_hessian_grad = self._probe_term(ctx, probe, g_graph, g_chunk,
                                                          grads[-1], g_chunk)
                    if ctx.w_hessian_grad is not None:
                        self.last_grasp_method = 'probe'
                del loss, logits, grads, g_graph
                for acc, g in zip(grad, g_chunk):
                    acc.add_(g)
                if 'grad_moments' in main:
                    for s, q, a, g in zip(moments['sum'], moments['sq'], moments['abs'], g_chunk):
                        g = g.double()
                        s.add_(g)
                        q.add_(g * g)
                        a.add_(g.abs())
                    moments['n'] += 1
                for idx, d in deltas.items():
                    fisher[idx].add_(0.5 * d.pow(2).mean(0))
                deltas.clear()
        finally:
            for h in handles:
                h.remove()
        ctx.grad = grad
        if 'grad_moments' in main:
            ctx.grad_moments = moments
        if want_fisher:
            ctx.fisher = fisher
        if want_jacobian:
            ctx.jacobian = torch.cat(jac_rows, 0)
        if want_nwot:
            ctx.nwot_kernel = kernel

    def _probe_usable(self, ctx):
        """Whether the weight-scale probe can take over every scored layer of this model."""
        if ctx.probe_note is not None:
            return False
        unsupported = probe_supported(ctx.layers)
        if unsupported:
            ctx.probe_note = (f'layers the weight-scale probe does not support: '
                              f'{unsupported[:3]}{" ..." if len(unsupported) > 3 else ""}')
        return not unsupported

    def _probe_term(self, ctx, probe, g_graph, g_chunk, dl_dtau, g_whole):
        """``d/dtau <g_whole, dL/dW>`` of one chunk's probed graph (``g_graph``: its weight
        gradients with their graph, ``g_chunk``: the same detached, zeros for unused weights);
        None, with ``ctx.probe_note`` set, when ``dL/dtau`` and ``sum W * g_chunk`` disagree
        (a scored weight is also used outside its layer)."""
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
        pairs = [(g, gg) for g, gg in zip(g_whole, g_graph)
                 if gg is not None and gg.requires_grad]
        if not pairs:
            return 0.
        z = sum((g * gg).sum() for g, gg in pairs)
        (d, ) = torch.autograd.grad(z, probe.tau, allow_unused=True)
        return 0. if d is None else float(d)

    def _w_hessian_grad_pass(self, ctx, chunk):
        """``sum W * (H g)`` with the whole batch's ``g``, one probed forward and double
        backward per chunk; the full Hessian-gradient product where the probe cannot be used."""
        model, weights = ctx.model, ctx.weights
        if self._probe_usable(ctx):
            total = 0.
            for index, sl in enumerate(self._chunks(ctx.inputs.shape[0], chunk)):
                x = ctx.inputs[sl].detach()
                with weight_scale_probe(ctx.layers, x) as probe:
                    torch.manual_seed(self.seed + index)
                    loss = total_loss(model.loss(x, ctx.data_samples[sl]))
                grads = torch.autograd.grad(loss, weights + [probe.tau], allow_unused=True,
                                            create_graph=True)
                g_graph = grads[:-1]
                term = self._probe_term(ctx, probe, g_graph,
                                        [g.detach() for g in _zeros_for_none(g_graph, weights)],
                                        grads[-1], ctx.grad)
                del loss, grads, g_graph
                if term is None:
                    break
                total += term
            else:
                ctx.w_hessian_grad = total
                self.last_grasp_method = 'probe'
                return
        print_log(f'proxies: grasp via the full Hessian-gradient product ({ctx.probe_note})',
                  logger='current')
        if ctx.hessian_grad is None:
            self._grasp_pass(ctx, chunk)
        ctx.w_hessian_grad = sum(float((w.detach() * h).double().sum())
                                 for w, h in zip(weights, ctx.hessian_grad))
        self.last_grasp_method = 'hessian-gradient product'

    def _grasp_pass(self, ctx, chunk):
        """H g per chunk with the whole batch's g, differentiating with respect to every
        scored weight (the reference code's way; used where the probe cannot be)."""
        model, weights = ctx.model, ctx.weights
        hg_total = [torch.zeros_like(w) for w in weights]
        for index, sl in enumerate(self._chunks(ctx.inputs.shape[0], chunk)):
            torch.manual_seed(self.seed + index)
            loss = total_loss(model.loss(ctx.inputs[sl].detach(), ctx.data_samples[sl]))
            g_graph = torch.autograd.grad(loss, weights, allow_unused=True, create_graph=True)
            pairs = [(g, gg) for g, gg in zip(ctx.grad, g_graph)
                     if gg is not None and gg.requires_grad]
            if not pairs:
                continue
            z = sum((g * gg).sum() for g, gg in pairs)
            hg = torch.autograd.grad(z, weights, allow_unused=True)
            for acc, h in zip(hg_total, _zeros_for_none(hg, weights)):
                acc.add_(h.detach())
        ctx.hessian_grad = hg_total

    def _nwot_pass(self, ctx):
        """NASWOT kernel over the whole batch at once (no gradients), for chunked batches."""
        n = ctx.inputs.shape[0]
        kernel = torch.zeros(n, n, dtype=torch.float64, device=ctx.inputs.device)

        def relu_hook(module, args, out):
            codes = (out.detach().flatten(1) > 0).to(torch.float64)
            ones = codes.sum(1)
            kernel.add_(2 * codes @ codes.T + codes.shape[1] - ones[:, None] - ones[None, :])

        handles = [m.register_forward_hook(relu_hook) for m in ctx.model.modules()
                   if isinstance(m, RELU_TYPES)]
        try:
            torch.manual_seed(self.seed)
            with torch.no_grad():
                ctx.model.loss(ctx.inputs, ctx.data_samples)
        finally:
            for h in handles:
                h.remove()
        ctx.nwot_kernel = kernel

    def _synflow_pass(self, ctx, dtype=torch.float64):
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
            torch.manual_seed(self.seed)  # dropout, if any, repeats from run to run
            ones = torch.ones((copies, ) + shape[1:], dtype=dtype, device=ctx.inputs.device)
            try:
                out = torch.func.functional_call(model, tensors, (ones, ),
                                                 dict(mode='tensor'))
                break
            except ValueError as err:
                if copies == 2 or 'Expected more than 1 value per channel' not in str(err):
                    raise
        r = out.sum() / copies
        grads = torch.autograd.grad(r, weights, allow_unused=True)
        ctx.synflow_weights = [w.detach() for w in weights]
        ctx.synflow_grad = [g.detach() for g in _zeros_for_none(grads, weights)]
