"""The engine on real mmseg segmentors: DeepLabV3+ and PSPNet from mmseg's own configs
(thin ResNet-18-shaped backbones, BN instead of SyncBN, small inputs) and SEG101."""
import math
import os

import pytest
import torch

import seg101_mm  # noqa: F401
from seg101_mm.proxies import PAPER_PROXIES, ProxyEngine, compute_proxies, random_batch
from seg101_mm.proxies.reference import reference_proxies

BN = dict(type='BN', requires_grad=True)


def mmseg_model(config_name, **head_overrides):
    """Build mmseg's ``_base_/models/<config_name>`` thin: depth 18, 8 base channels, 2 classes."""
    import mmseg
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    path = os.path.join(
        os.path.dirname(mmseg.__file__), '.mim', 'configs', '_base_', 'models', config_name)
    cfg = Config.fromfile(path).model
    cfg.pretrained = None
    cfg.backbone.update(depth=18, stem_channels=8, base_channels=8, norm_cfg=BN)
    cfg.decode_head.update(
        in_channels=64, channels=16, num_classes=2, norm_cfg=BN, **head_overrides)
    cfg.auxiliary_head.update(in_channels=32, channels=8, num_classes=2, norm_cfg=BN)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def tolerance(name, dtype):
    """Float64: rounding only. Float32: grasp's second-order terms cancel, and the engine's
    weight-scale probe and the reference's full Hessian-gradient product round differently."""
    if dtype == torch.float64:
        return 1e-8
    return 1e-3 if name == 'grasp' else 5e-5


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('config_name,head', [
    ('deeplabv3plus_r50-d8.py', dict(c1_in_channels=8, c1_channels=8)),
    ('pspnet_r50-d8.py', dict()),
])
def test_mmseg_segmentors_agree_with_references(config_name, head, dtype):
    torch.manual_seed(0)
    model = mmseg_model(config_name, **head).to(dtype)
    assert model.with_auxiliary_head  # the auxiliary FCN loss is part of the training loss
    batch = random_batch(2, 32, seed=0)
    engine = ProxyEngine()
    got = engine.compute(model, batch, PAPER_PROXIES)
    assert engine.last_grasp_method == 'probe'
    assert all(math.isfinite(v) for v in got.values()), got
    want = reference_proxies(model, batch, PAPER_PROXIES)
    for name in PAPER_PROXIES:
        assert got[name] == pytest.approx(want[name], rel=tolerance(name, dtype)), name


def test_seg101_network():
    pytest.importorskip('seg101_mm.models', reason='SEG101 models not available')
    from seg101_mm.models import build_seg101
    from seg101_mm.space import sample
    torch.manual_seed(0)
    model = build_seg101(sample(0))
    batch = random_batch(4, 64, seed=0)
    names = PAPER_PROXIES + ('nwot', 'zico', 'params', 'flops')  # flops: one image, 1x1 maps
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = compute_proxies(model, batch, names)
    assert all(math.isfinite(v) for v in got.values()), got
    assert got['params'] == sum(p.numel() for p in model.parameters())
    want = reference_proxies(model, batch, PAPER_PROXIES + ('nwot', 'zico'))
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=tolerance(name, torch.float32)), name
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_a_failing_pass_is_nan_with_its_reason_not_a_crash():
    pytest.importorskip('seg101_mm.models', reason='SEG101 models not available')
    from seg101_mm.models import build_seg101
    from seg101_mm.proxies import ProxyEngine
    from seg101_mm.space import sample
    torch.manual_seed(0)
    model = build_seg101(sample(0))
    # zico's halves hold one image each; SEG101's 1x1 pooled maps then give BN one value per
    # channel, which BN refuses in train mode
    engine = ProxyEngine()
    got = engine.compute(model, random_batch(2, 64, seed=0), ['snip', 'zico'], errors='nan')
    assert got['snip'] > 0 and math.isnan(got['zico'])
    assert 'Expected more than 1 value per channel' in engine.last_reasons['zico']
    with pytest.raises(ValueError, match='Expected more than 1 value per channel'):
        engine.compute(model, random_batch(2, 64, seed=0), ['zico'])


@pytest.mark.parametrize('chunk', [None, 2])
def test_seg101_grasp_in_float64_matches_the_full_hessian_gradient_product(chunk):
    """SEG101's attention, SE (Linear) and grouped/dilated layers under the weight-scale probe:
    the same grasp as the reference's Hessian-gradient product, to rounding."""
    pytest.importorskip('seg101_mm.models', reason='SEG101 models not available')
    from seg101_mm.models import build_seg101
    from seg101_mm.space import Genotype
    torch.manual_seed(0)
    genotype = Genotype.parse(
        'ga=dil3_conv3x3,avgpool_0.25,conv3x3,dil3_conv3x3;gb=se,self_attention,'
        'dil3_conv3x3,se;st=dil5_conv3x3,avgpool_0.75,conv3x3,avgpool_0.25;'
        'h0=01+02+12/01+02;h1=01+03+13/02+12;hm=global_se_head')
    model = build_seg101(genotype).double()
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())
    batch = random_batch(4, 64, seed=0)
    engine = ProxyEngine(chunk_size=chunk)
    got = engine.compute(model, batch, ['grasp'])['grasp']
    assert engine.last_grasp_method == 'probe'
    want = reference_proxies(model, batch, ['grasp'], chunk=chunk)['grasp']
    assert got == pytest.approx(want, rel=1e-8)
