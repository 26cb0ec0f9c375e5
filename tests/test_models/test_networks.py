"""SEG101 networks built from genotypes: shapes, gradients, equivalence, configs, weights."""
import json
import random

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

import seg101_mm  # noqa: F401
from seg101_mm.models import (SEG101EnhanceNeck, SEG101FusionHead, build_seg101,
                              fusion_head_channels)
from seg101_mm.models.builder import quiet_init_weights, seg101_model_cfg
from seg101_mm.models.ops import REGNETX_400MF_CHANNELS as CHANNELS
from seg101_mm.space import Genotype, HeadGenotype, sample


@pytest.fixture(scope='module')
def backbone_feats():
    """RegNetX-400MF features of two 128x128 images (BN needs > 1 value per channel after a
    0.25 pool of the 4x4 stride-32 map), shared by the genotype sweeps."""
    torch.manual_seed(0)
    model = build_seg101(sample(0))
    with torch.no_grad():
        feats = model.backbone(torch.randn(2, 3, 128, 128))
    assert [f.shape[1:] for f in feats] == [(32, 32, 32), (64, 16, 16), (160, 8, 8), (384, 4, 4)]
    assert tuple(f.shape[1] for f in feats) == CHANNELS
    return feats


def test_100_random_genotypes_forward_backward(backbone_feats):
    label = torch.randint(0, 2, (2, 128, 128))
    merges = set()
    for seed in range(100):
        g = sample(seed)
        merges.add(g.head_merge)
        neck = SEG101EnhanceNeck(str(g), CHANNELS)
        head = SEG101FusionHead(str(g), CHANNELS, num_classes=2)
        assert head.conv_seg.in_channels == fusion_head_channels(g)
        feats = [f.clone().requires_grad_(True) for f in backbone_feats]
        logits = head(neck(feats))
        # the largest map any head reads sets the output resolution
        stride = 4 * 2**min(g.stages_used())
        assert logits.shape == (2, 2, 128 // stride, 128 // stride), str(g)
        up = F.interpolate(logits, size=(128, 128), mode='bilinear', align_corners=False)
        loss = head.loss_decode(up, label)
        loss.backward()
        assert torch.isfinite(loss)
        for s in range(4):
            grad = feats[s].grad
            used = s in g.stages_used()
            reached = grad is not None and grad.abs().sum().item() > 0
            assert reached == used, f'stage {s} used={used} but gradient reached={reached}: {g}'
        # every neck parameter of a used stage gets a gradient
        for s in g.stages_used():
            for name, p in neck.stages[s].named_parameters():
                assert p.grad is not None, f'{g}: no gradient for neck.stages.{s}.{name}'
    assert merges == {'global_se_head', 'concat_head'}


def _seg_sample(size):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    d = SegDataSample()
    d.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, ) + size))
    d.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
    return d


@pytest.mark.parametrize('seed, size, train', [(2, 128, True), (3, 128, True), (2, 512, True),
                                               (0, 512, False)])
def test_full_segmentor_loss_and_predict(seed, size, train):
    g = sample(seed)
    model = build_seg101(g, num_classes=2)
    inputs = torch.randn(2, 3, size, size)
    if train:  # (a global_se_head genotype trains at 512 too, but slowly on a CPU)
        losses = model.loss(inputs, [_seg_sample((size, size)) for _ in range(2)])
        assert set(losses) == {'decode.loss_topk_ce', 'decode.acc_seg'}
        losses['decode.loss_topk_ce'].backward()
        assert model.backbone.conv1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        pred = model.predict(inputs[:1], [_seg_sample((size, size))])[0]
    assert pred.seg_logits.data.shape == (2, size, size)
    assert pred.pred_sem_seg.data.shape == (1, size, size)


# ---------------------------------------------------------------- canonical equivalence
def _variant(g, head_swap, perms, l2_swaps):
    heads = []
    for h, perm, swap in zip(g.heads, perms, l2_swaps):
        new_of_old = {old: new for new, old in enumerate(perm)}
        l1 = tuple(h.l1[i] for i in perm)
        l2 = [tuple(sorted((new_of_old[a], new_of_old[b]))) for a, b in h.l2]
        heads.append(HeadGenotype(l1, tuple(l2[::-1] if swap else l2)))
    return Genotype(g.group_a, g.group_b, g.stage_ops, tuple(heads[::-1] if head_swap else heads),
                    g.head_merge)


def _copy_conv_input_swapped(dst_conv, src_conv, first_in, swapped):
    w = src_conv.weight.detach()
    if swapped:
        w = torch.cat([w[:, first_in:], w[:, :first_in]], dim=1)
    dst_conv.weight.data.copy_(w)


def _copy_merge(dst, src, swapped):
    dst.load_state_dict(src.state_dict())
    _copy_conv_input_swapped(dst.conv.conv, src.conv.conv, src.in_channels[0], swapped)


def _map_head_weights(head_b, head_a, g_b, g_a, head_swap):
    """Copy head_a's weights into head_b (a relabelled genotype) so both compute one function."""
    for hb in range(2):
        ha = 1 - hb if head_swap else hb
        tree_a, tree_b = head_a.trees[ha], head_b.trees[hb]
        spec_a, spec_b = g_a.heads[ha], g_b.heads[hb]
        l1_map = {i: spec_a.l1.index(pair) for i, pair in enumerate(spec_b.l1)}
        for i in range(3):
            _copy_merge(tree_b.l1[i], tree_a.l1[l1_map[i]], swapped=False)
        l2_map = []
        for j, (p, q) in enumerate(spec_b.l2):
            a_pair = (l1_map[p], l1_map[q])
            swapped = a_pair[0] > a_pair[1]
            k = spec_a.l2.index(tuple(sorted(a_pair)))
            l2_map.append(k)
            _copy_merge(tree_b.l2[j], tree_a.l2[k], swapped)
        _copy_merge(tree_b.l3, tree_a.l3, swapped=l2_map == [1, 0])
    head_b.head_merge.load_state_dict(head_a.head_merge.state_dict())
    head_b.conv_seg.load_state_dict(head_a.conv_seg.state_dict())
    first_a = head_a.head_merge.conv1 if g_a.head_merge == 'global_se_head' else \
        head_a.head_merge[0]
    first_b = head_b.head_merge.conv1 if g_b.head_merge == 'global_se_head' else \
        head_b.head_merge[0]
    _copy_conv_input_swapped(first_b.conv, first_a.conv, head_a.trees[0].out_channels, head_swap)


@pytest.mark.parametrize('seed', [0, 2, 5, 11])
def test_same_key_gives_the_same_function(seed, backbone_feats):
    rng = random.Random(seed)
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    g_a = sample(seed)
    head_swap = True
    g_b = _variant(g_a, head_swap,
                   [rng.choice(perms[1:]), rng.choice(perms[1:])], [rng.random() < 0.5, True])
    assert g_b != g_a and g_b.key == g_a.key
    torch.manual_seed(seed)
    neck = SEG101EnhanceNeck(str(g_a), CHANNELS).eval()
    head_a = SEG101FusionHead(str(g_a), CHANNELS, num_classes=2).eval()
    head_b = SEG101FusionHead(str(g_b), CHANNELS, num_classes=2).eval()
    quiet_init_weights(head_a)
    for m in head_a.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    _map_head_weights(head_b, head_a, g_b, g_a, head_swap)
    with torch.no_grad():
        feats = neck(backbone_feats)
        out_a, out_b = head_a(feats), head_b(feats)
    assert out_a.abs().max() > 1e-3
    assert torch.allclose(out_a, out_b, atol=1e-5, rtol=1e-4)
    # and the mapping is not trivially satisfied: unmapped weights differ
    head_c = SEG101FusionHead(str(g_b), CHANNELS, num_classes=2).eval()
    with torch.no_grad():
        assert not torch.allclose(head_c(feats), out_a, atol=1e-3)


# ---------------------------------------------------------------- configs and weights
def test_base_config_builds_the_same_model_as_the_builder(repo_root):
    cfg = Config.fromfile(str(repo_root / 'configs/_base_/models/seg101_regnetx400mf.py'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        from_cfg = MODELS.build(cfg.model)
    from_code = build_seg101(cfg.genotype, init_weights=False)
    shapes = {k: tuple(v.shape) for k, v in from_cfg.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in from_code.state_dict().items()}
    assert from_cfg.neck.genotype == Genotype.parse(cfg.genotype)
    # the builder's config is the base config's, key for key (tuples and lists alike)
    assert json.loads(json.dumps(seg101_model_cfg(cfg.genotype))) == \
        json.loads(json.dumps(cfg.model.to_dict()))
    assert seg101_model_cfg(
        cfg.genotype, crop_size=(64, 64))['data_preprocessor']['size'] == (64, 64)


def test_invalid_genotype_in_a_config_is_reported():
    with pytest.raises(ValueError, match="'st'.*'dil7_conv3x3'"):
        build_seg101(
            str(sample(0)).replace('st=', 'st=dil7_conv3x3,').replace('conv3x3;h0', 'x;h0'))


def test_imagenet_weights_load_from_a_local_checkpoint(tmp_path):
    from mmpretrain.models import RegNet
    torch.manual_seed(123)
    source = RegNet(arch='regnetx_400mf')
    ckpt = tmp_path / 'regnetx-400mf_in1k.pth'
    # mmpretrain classifier checkpoint layout: backbone.* plus head.* keys
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['head.fc.weight'] = torch.randn(1000, 384)
    torch.save({'state_dict': state, 'meta': {'note': 'test'}}, ckpt)
    model = build_seg101(sample(1), backbone_checkpoint=str(ckpt))
    for k, v in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_seg101(sample(1), backbone_checkpoint=str(tmp_path / 'missing.pth'))


def test_mmengine_checkpoint_with_history_buffer_loads_on_new_torch(tmp_path):
    """torch >= 2.6 defaults to weights_only=True; mmengine's checkpoints hold a HistoryBuffer."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import load_checkpoint
    model = build_seg101(sample(4), init_weights=False)
    path = tmp_path / 'iter_10.pth'
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save(
        {
            'state_dict': model.state_dict(),
            'message_hub': {
                'log_scalars': {
                    'train/loss': buffer
                }
            }
        }, path)
    other = build_seg101(sample(4))
    ckpt = load_checkpoint(other, str(path), map_location='cpu')
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
