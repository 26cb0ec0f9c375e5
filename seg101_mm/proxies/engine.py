"""The zero-cost proxy engine: few shared passes, micro-batching, the model given back intact.

docs/method.md section 8. One call computes any set of registered proxies on one batch, in
three steps: the plan (:mod:`.plan`: which passes the proxies' captures need), the passes
(:mod:`.passes`: shared forwards and backwards that fill a :class:`~.context.ProxyContext`)
and the scoring (every proxy reads the context).

The model runs with BN (and dropout) in train mode; every chunk's forward is seeded with
``seed + chunk index`` so that dropout masks repeat across passes and runs. Everything the
computation changes (BN running statistics, ``requires_grad``, modes) is restored afterwards.
With BN in train mode the scores depend on the chunk size (batch statistics are per chunk);
:attr:`ProxyEngine.last_chunk_size` tells which one was used after an out-of-memory fallback.
"""
import copy
import math

import torch
from mmengine.logging import print_log

from . import passes
from .context import CAPTURES, ProxyContext, is_out_of_memory, pads_in_training, scored_layers
from .plan import plan_passes
from .registry import get_proxy
from .state import preserved


def _reason(err):
    return f'{type(err).__name__}: {err}'


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
            ctx = self._context(model, batch)
            plan = plan_passes({r for p in proxies for r in p.requires}, ctx.inputs.shape[0])
            failed = self._run(ctx, plan, errors)
            self.last_grasp_method = ctx.grasp_method
            return self._score(proxies, ctx, failed, errors)

    def _context(self, model, batch):
        """The preprocessed batch in a fresh context, the model in train mode."""
        torch.manual_seed(self.seed)
        model.train()
        with torch.no_grad():
            data = model.data_preprocessor(batch, pads_in_training(model.data_preprocessor))
        ctx = ProxyContext(model, data['inputs'], data['data_samples'], scored_layers(model))
        for w in ctx.weights:
            w.requires_grad_(True)
        return ctx

    def _run(self, ctx, plan, errors):
        """Run ``plan``; returns ``{capture: reason}`` of the captures that failed."""
        failed = dict(plan.refused)
        n = ctx.inputs.shape[0]
        chunk = min(self.chunk_size or n, n)
        try:
            chunk = self._gradient_passes(ctx, plan, chunk, failed, errors)
        except Exception as err:  # noqa: BLE001
            if errors == 'raise':
                raise
            failed.update({c: _reason(err) for c in plan.main if c not in failed})
        self.last_chunk_size = chunk
        if plan.synflow:
            try:
                passes.synflow_pass(ctx, self.seed)
            except Exception as err:  # noqa: BLE001
                if errors == 'raise':
                    raise
                failed['synflow'] = _reason(err)
        return failed

    def _gradient_passes(self, ctx, plan, chunk, failed, errors):
        """The main pass and its follow-ups, halving the chunk size on out-of-memory."""
        while True:
            ctx.reset()
            ctx.chunk_size = chunk
            try:
                self._fill(ctx, plan, chunk, failed, errors)
                return chunk
            except Exception as err:  # noqa: BLE001
                if not is_out_of_memory(err) or chunk <= self.min_chunk_size:
                    raise
                chunk = max(self.min_chunk_size, chunk // 2)
                print_log(
                    f'proxies: out of memory, retrying with chunk size {chunk}', logger='current')
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def _fill(self, ctx, plan, chunk, failed, errors):
        apart = plan.apart(chunk)
        if apart:
            shadow = copy.copy(ctx)
            try:
                passes.main_pass(shadow, apart, plan.apart_chunk(), self.seed)
                ctx.grad_moments = shadow.grad_moments
            except Exception as err:  # noqa: BLE001
                if errors == 'raise' or is_out_of_memory(err):
                    raise
                failed['grad_moments'] = _reason(err)
        shared = plan.shared(chunk)
        if shared:
            passes.main_pass(ctx, shared, chunk, self.seed)
        for capture in plan.follow_ups():
            if getattr(ctx, CAPTURES[capture].fields[0]) is None:
                passes.FOLLOW_UP_PASSES[capture](ctx, chunk, self.seed)

    def _score(self, proxies, ctx, failed, errors):
        """Every proxy's score from the filled context; NaN where its captures failed."""
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
                self.last_reasons[proxy.name] = _reason(err)
            if not math.isfinite(value) and proxy.name not in self.last_reasons:
                self.last_reasons[proxy.name] = f'non-finite score {value}'
            scores[proxy.name] = value
        return scores
