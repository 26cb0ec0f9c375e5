"""The engine on a tiny mmseg EncoderDecoder: agreement with the per-proxy references,
determinism, the model given back unchanged, out-of-memory fallback, errors, the registry."""
import copy

import pytest
import torch
from toy_models import ToySegmentor, tiny_encoder_decoder

import seg101_mm  # noqa: F401
from seg101_mm.proxies import (PROXIES, BaseProxy, ProxyEngine, available_proxies, compute_proxies,
                               random_batch)
from seg101_mm.proxies.reference import REFERENCES, reference_proxies

ALL_WITH_REFERENCE = sorted(REFERENCES)


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return tiny_encoder_decoder(dropout_ratio=0.1), random_batch(4, 16, seed=1)


@pytest.mark.parametrize('chunk', [None, 2])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_engine_agrees_with_per_proxy_references(tiny, chunk, dtype):
    model, batch = tiny
    model = copy.deepcopy(model).to(dtype)
    got = compute_proxies(model, batch, ALL_WITH_REFERENCE, chunk_size=chunk)
    want = reference_proxies(model, batch, ALL_WITH_REFERENCE, chunk=chunk)
    for name in ALL_WITH_REFERENCE:
        if dtype == torch.float64:
            # same mathematics, other order of operations: rounding level only
            rel = 1e-9
        else:
            # grasp is a signed sum of second-order terms that largely cancel; float32 leaves
            # both computations ~1e-4 off the float64 value, in different directions
            rel = 1e-3 if name == 'grasp' else 2e-5
        assert got[name] == pytest.approx(want[name], rel=rel, abs=1e-12), name
    assert got['grad_norm'] > 0 and got['snip'] > 0 and got['synflow'] > 0


def test_chunking_changes_bn_statistics_but_not_synflow(tiny):
    model, batch = tiny
    whole = compute_proxies(model, batch, ['grad_norm', 'synflow'])
    halves = compute_proxies(model, batch, ['grad_norm', 'synflow'], chunk_size=2)
    # BN in train mode normalises per chunk, and the chunk losses add up: a different number
    assert halves['grad_norm'] != pytest.approx(whole['grad_norm'], rel=1e-3)
    assert halves['synflow'] == whole['synflow']


def test_deterministic_for_a_seed_and_independent_of_other_proxies(tiny):
    model, batch = tiny
    names = available_proxies()
    first = compute_proxies(model, batch, names, seed=7)
    assert compute_proxies(model, batch, names, seed=7) == first
    # dropout is seeded: another seed changes the gradient proxies
    assert compute_proxies(model, batch, ['snip'], seed=8)['snip'] != first['snip']
    # asking for a proxy alone gives the value it has in company
    for name in ('grasp', 'nwot'):
        assert compute_proxies(
            model, batch, [name], seed=7)[name] == pytest.approx(
                first[name], rel=1e-6), name


def _snapshot(model):
    return dict(
        state={
            k: v.clone()
            for k, v in model.state_dict(keep_vars=False).items()
        },
        dtypes={
            k: v.dtype
            for k, v in model.state_dict().items()
        },
        requires_grad={
            n: p.requires_grad
            for n, p in model.named_parameters()
        },
        grads={
            n: None if p.grad is None else p.grad.clone()
            for n, p in model.named_parameters()
        },
        modes={
            n: m.training
            for n, m in model.named_modules()
        },
        hooks={
            n: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for n, m in model.named_modules()
        },
        forward_attr={
            n: 'forward' in vars(m)
            for n, m in model.named_modules()
        },
        ids={
            n: id(p)
            for n, p in model.named_parameters()
        })


def test_model_comes_back_exactly(tiny):
    model, batch = tiny
    model.eval()
    model.backbone.stem[0].weight.requires_grad_(False)  # a frozen conv
    model.decode_head.conv_seg.weight.grad = torch.full_like(model.decode_head.conv_seg.weight, 3.)
    user_hook = model.backbone.register_forward_hook(lambda *a: None)
    before = _snapshot(model)
    rng_before = torch.get_rng_state()
    try:
        compute_proxies(model, batch, available_proxies())
        after = _snapshot(model)
    finally:
        user_hook.remove()
        model.backbone.stem[0].weight.requires_grad_(True)
        model.decode_head.conv_seg.weight.grad = None
        model.train()
    assert set(after['state']) == set(before['state'])
    for k, v in before['state'].items():
        assert torch.equal(after['state'][k], v), k  # BN running stats included
    assert after['dtypes'] == before['dtypes']
    for key in ('requires_grad', 'modes', 'hooks', 'forward_attr', 'ids'):
        assert after[key] == before[key], key
    assert after['modes'][''] is False
    for n, g in before['grads'].items():
        assert (g is None and after['grads'][n] is None) or torch.equal(g, after['grads'][n]), n
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_model_restored_after_a_failure(tiny):
    model, batch = tiny
    before = _snapshot(model)

    class Boom(BaseProxy):
        name = 'boom_test'
        requires = ('grad', )

        def score(self, ctx):
            # like a tracer that fails half-way: hooks registered, never removed
            ctx.model.backbone.register_forward_hook(lambda *a: None)
            ctx.model.decode_head.register_forward_pre_hook(lambda *a: None)
            raise ZeroDivisionError('boom')

    PROXIES.register_module(name='boom_test', module=Boom)
    try:
        with pytest.raises(ZeroDivisionError):
            compute_proxies(model, batch, ['snip', 'boom_test'])
        got = compute_proxies(model, batch, ['snip', 'boom_test'], errors='nan')
        engine = ProxyEngine()
        engine.compute(model, batch, ['snip', 'boom_test'], errors='nan')
    finally:
        PROXIES._module_dict.pop('boom_test')
    assert got['snip'] > 0 and got['boom_test'] != got['boom_test']  # NaN
    assert engine.last_reasons == {'boom_test': 'ZeroDivisionError: boom'}
    after = _snapshot(model)
    for k, v in before['state'].items():
        assert torch.equal(after['state'][k], v), k
    assert after['hooks'] == before['hooks']  # the failed proxy's hooks are gone too


def test_a_new_proxy_is_one_small_class(tiny):
    model, batch = tiny

    @PROXIES.register_module(name='grad_sq_test')
    class GradSquared(BaseProxy):
        name = 'grad_sq_test'
        requires = ('grad', )

        def score(self, ctx):
            return sum(float((g * g).sum()) for g in ctx.grad)

    try:
        got = compute_proxies(model, batch, ['grad_norm', 'grad_sq_test'])
    finally:
        PROXIES._module_dict.pop('grad_sq_test')
    ref = reference_proxies(model, batch, ['grad_norm'])['grad_norm']
    assert got['grad_norm'] == pytest.approx(ref, rel=2e-5)
    assert got['grad_sq_test'] > 0


def test_out_of_memory_falls_back_to_smaller_chunks(tiny):
    model, batch = tiny
    calls = []
    original = model.loss

    def loss(inputs, data_samples):
        calls.append(inputs.shape[0])
        if inputs.shape[0] > 1:
            raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return original(inputs, data_samples)

    model.loss = loss
    try:
        engine = ProxyEngine()
        got = engine.compute(model, batch, ['grad_norm', 'fisher'])
    finally:
        del model.loss
    assert engine.last_chunk_size == 1
    assert calls[:2] == [4, 2] and calls[2:] == [1, 1, 1, 1]
    want = compute_proxies(model, batch, ['grad_norm', 'fisher'], chunk_size=1)
    assert got == want


def test_errors_name_the_bad_value(tiny):
    model, batch = tiny
    with pytest.raises(KeyError, match="unknown proxy 'snipp'.*grad_norm"):
        compute_proxies(model, batch, ['snipp'])
    with pytest.raises(ValueError, match="chunk_size must be a positive int or None, got 0"):
        ProxyEngine(chunk_size=0)
    with pytest.raises(ValueError, match="errors must be 'raise' or 'nan', got 'skip'"):
        compute_proxies(model, batch, ['snip'], errors='skip')


def test_unavailable_proxies_are_nan_with_a_reason():
    torch.manual_seed(0)
    model = ToySegmentor(torch.nn.Conv2d(3, 2, 1, bias=False))  # no ReLU
    engine = ProxyEngine()
    got = engine.compute(model, random_batch(1, 8, seed=0), ['snip', 'nwot', 'zico'], errors='nan')
    assert got['snip'] > 0
    assert got['nwot'] != got['nwot'] and got['zico'] != got['zico']
    assert 'no nn.ReLU' in engine.last_reasons['nwot']
    assert engine.last_reasons['zico'] == ('zico needs gradients of at least 2 chunks, the '
                                           'batch has 1 image(s)')
