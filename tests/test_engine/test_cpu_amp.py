"""CPUAmpOptimWrapper: bfloat16 autocast on the CPU, float32 parameters and updates."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

import seg101_mm  # noqa: F401
from seg101_mm.engine import CPUAmpOptimWrapper


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')  # as a Runner of an mmseg config builds its optim wrapper


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 2, 1))


def _wrapper(model, **extra):
    cfg = dict(type='CPUAmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-2), **extra)
    return build_optim_wrapper(model, cfg)


def test_built_from_a_config_by_its_registered_name():
    wrapper = _wrapper(_net())
    assert type(wrapper) is CPUAmpOptimWrapper
    assert wrapper.cast_dtype is torch.bfloat16
    assert _wrapper(_net(), dtype='bf16').cast_dtype is torch.bfloat16
    assert _wrapper(_net(), dtype=torch.bfloat16).cast_dtype is torch.bfloat16


def test_forward_runs_in_bfloat16_and_the_update_stays_float32():
    model = _net()
    wrapper = _wrapper(model)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(2, 3, 16, 16)
    target = torch.randint(0, 2, (2, 16, 16))
    with wrapper.optim_context(model):
        out = model(x)
        loss = nn.functional.cross_entropy(out, target)
    assert out.dtype is torch.bfloat16  # the convolutions ran in bfloat16
    assert loss.dtype is torch.float32  # CPU autocast keeps the loss in float32
    wrapper.update_params(loss)
    for p, p0 in zip(model.parameters(), before):
        assert p.dtype is torch.float32
        assert not torch.equal(p, p0)  # every parameter moved
    # outside the context the model computes in float32 again
    assert model(x).dtype is torch.float32


def test_bfloat16_training_follows_float32_training():
    """A few steps in bfloat16 reduce the loss like float32 does, to bfloat16's precision."""
    losses = {}
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    target = (x[:, 0] > 0).long()
    for kind in ('OptimWrapper', 'CPUAmpOptimWrapper'):
        model = _net()
        wrapper = build_optim_wrapper(model, dict(type=kind, optimizer=dict(type='AdamW',
                                                                            lr=1e-2)))
        curve = []
        for _ in range(20):
            with wrapper.optim_context(model):
                loss = nn.functional.cross_entropy(model(x), target)
            wrapper.update_params(loss)
            curve.append(float(loss.detach()))
        losses[kind] = curve
    fp32, bf16 = losses['OptimWrapper'], losses['CPUAmpOptimWrapper']
    assert fp32[-1] < 0.5 * fp32[0] and bf16[-1] < 0.5 * bf16[0]
    assert bf16[0] == pytest.approx(fp32[0], rel=2e-2)  # same start up to bfloat16 rounding
    assert bf16[-1] == pytest.approx(fp32[-1], rel=0.25, abs=0.02)


def test_an_unsupported_dtype_is_one_clear_error():
    with pytest.raises(ValueError, match=r"dtype='float16' is not supported; expected one of "
                       r"\['bf16', 'bfloat16'\]"):
        _wrapper(_net(), dtype='float16')
