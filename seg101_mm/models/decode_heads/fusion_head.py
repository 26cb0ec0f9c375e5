"""The SEG101 multi-head feature-fusion decode head (docs/method.md sections 1 and 3)."""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

from seg101_mm.space import Genotype
from seg101_mm.space.ops import NUM_STAGES
from ..necks.enhance_neck import SEG101_INIT_CFG
from ..ops import (DEFAULT_ACT_CFG, DEFAULT_NORM_CFG, REGNETX_400MF_CHANNELS, SqueezeExcite,
                   resize_to)

#: The authors' initialisation, except the classifier, which keeps mmseg's N(0, 0.01): with a
#: fan-out init its logits start with a std of about sqrt(channels) and the loss near 30.
FUSION_HEAD_INIT_CFG = SEG101_INIT_CFG + [
    dict(type='Normal', std=0.01, bias=0, override=dict(name='conv_seg'))
]


def _match_and_concat(feats, align_corners):
    """Resize every map to the largest spatial size among them and concatenate channels."""
    size = max((f.shape[-2:] for f in feats), key=lambda s: s[0] * s[1])
    return torch.cat([resize_to(f, size, align_corners) for f in feats], dim=1)


def merge_channels(c1, c2):
    """Output width of a layer-1 or layer-2 :class:`Merge` of inputs of ``c1`` and ``c2``
    channels: ``floor(c1 / 2) + floor(c2 / 2)`` (docs/method.md section 3)."""
    return c1 // 2 + c2 // 2


def tree_channels(head, stage_channels):
    """Widths ``(layer 1, layer 2)`` of the merges of one head over ``stage_channels``."""
    l1 = [merge_channels(stage_channels[a], stage_channels[b]) for a, b in head.l1]
    return l1, [merge_channels(l1[p], l1[q]) for p, q in head.l2]


class Merge(nn.Module):
    """Fusion node: resize the smaller map to the larger, concat, 1x1 conv -> BN -> ReLU.

    Args:
        in_channels (tuple[int, int]): channels of the two inputs.
        out_channels (int): :func:`merge_channels` in layers 1 and 2, C1 + C2 in layer 3.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 norm_cfg=DEFAULT_NORM_CFG,
                 act_cfg=DEFAULT_ACT_CFG,
                 align_corners=False):
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.align_corners = align_corners
        self.conv = ConvModule(
            sum(in_channels), out_channels, 1, bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, a, b):
        return self.conv(_match_and_concat((a, b), self.align_corners))


class FusionTree(nn.Module):
    """One head: 3 layer-1 merges of stage pairs, 2 layer-2 merges of layer-1 pairs, 1 layer-3."""

    def __init__(self, head, stage_channels, norm_cfg, act_cfg, align_corners):
        super().__init__()
        self.head = head
        cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg, align_corners=align_corners)
        l1_channels, l2_channels = tree_channels(head, stage_channels)
        self.l1 = nn.ModuleList(
            Merge((stage_channels[a], stage_channels[b]), c, **cfg)
            for (a, b), c in zip(head.l1, l1_channels))
        self.l2 = nn.ModuleList(
            Merge((l1_channels[p], l1_channels[q]), c, **cfg)
            for (p, q), c in zip(head.l2, l2_channels))
        self.out_channels = sum(l2_channels)
        self.l3 = Merge(tuple(l2_channels), self.out_channels, **cfg)

    def forward(self, stage_feats):
        l1 = [m(stage_feats[a], stage_feats[b]) for m, (a, b) in zip(self.l1, self.head.l1)]
        l2 = [m(l1[p], l1[q]) for m, (p, q) in zip(self.l2, self.head.l2)]
        return self.l3(*l2)


class GlobalSEHeadMerge(nn.Module):
    """``global_se_head``: concat (C) -> 3x3 conv -> BN -> ReLU -> 1x1 conv -> BN -> ReLU ->
    SE with residual (hidden C // se_ratio) -> 3x3 conv -> BN -> ReLU. The classifier 1x1 conv
    is the decode head's ``conv_seg``."""

    def __init__(self, channels, se_ratio, norm_cfg, act_cfg):
        super().__init__()
        cfg = dict(bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv1 = ConvModule(channels, channels, 3, padding=1, **cfg)
        self.conv2 = ConvModule(channels, channels, 1, **cfg)
        self.se = SqueezeExcite(channels, se_ratio)
        self.conv3 = ConvModule(channels, channels, 3, padding=1, **cfg)
        self.out_channels = self.output_channels(channels)

    @staticmethod
    def output_channels(channels):
        return channels

    def forward(self, x):
        return self.conv3(self.se(self.conv2(self.conv1(x))))


class ConcatHeadMerge(nn.Sequential):
    """``concat_head``: concat (C) -> 1x1 conv C -> BN -> ReLU -> 1x1 conv C/2 -> BN -> ReLU.
    The classifier 1x1 conv is the decode head's ``conv_seg``."""

    def __init__(self, channels, norm_cfg, act_cfg):
        cfg = dict(bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg)
        out_channels = self.output_channels(channels)
        super().__init__(
            ConvModule(channels, channels, 1, **cfg), ConvModule(channels, out_channels, 1, **cfg))
        self.out_channels = out_channels

    @staticmethod
    def output_channels(channels):
        return channels // 2


#: The head merges of the genotype's ``hm`` choice.
HEAD_MERGES = dict(global_se_head=GlobalSEHeadMerge, concat_head=ConcatHeadMerge)


def fusion_head_channels(genotype, in_channels=REGNETX_400MF_CHANNELS):
    """Width of the features fed to the classifier for ``genotype``."""
    g = Genotype.parse(genotype)
    merged = sum(sum(tree_channels(head, in_channels)[1]) for head in g.heads)
    return HEAD_MERGES[g.head_merge].output_channels(merged)


@MODELS.register_module()
class SEG101FusionHead(BaseDecodeHead):
    """Multi-head feature-fusion decode head of SEG101.

    From "A Study of Zero-Cost Proxies for Remote Sensing Image Segmentation" (Wei et al.,
    AutoML-Conf 2022 workshop). Two heads of the same structure with separate weights each fuse
    the four enhanced stage maps in three layers of :class:`Merge` nodes chosen by the genotype;
    the head merge combines them and ``conv_seg`` maps to ``num_classes``. ``channels`` (the
    classifier's input width) follows from the genotype and is not an argument.

    Args:
        genotype (str | Genotype): the architecture, in the canonical text form.
        in_channels (Sequence[int]): widths of the four neck outputs.
            Default: RegNetX-400MF's (32, 64, 160, 384).
        in_index (Sequence[int]): which inputs are the four stages. Default: (0, 1, 2, 3).
        se_ratio (int): SE reduction ratio of ``global_se_head``. Default: 8.
        dropout_ratio (float): dropout before ``conv_seg``. Default: 0 (none in the paper).
        loss_decode (dict): the top-20 %-pixel cross-entropy by default (docs/method.md section 3).
        **kwargs: the other arguments of ``BaseDecodeHead`` (num_classes, norm_cfg, ...).
    """

    def __init__(self,
                 genotype,
                 in_channels=REGNETX_400MF_CHANNELS,
                 in_index=(0, 1, 2, 3),
                 se_ratio=8,
                 dropout_ratio=0.0,
                 loss_decode=dict(
                     type='TopKPixelCrossEntropyLoss', top_k_percent=0.2, loss_weight=1.0),
                 norm_cfg=DEFAULT_NORM_CFG,
                 act_cfg=DEFAULT_ACT_CFG,
                 init_cfg=FUSION_HEAD_INIT_CFG,
                 **kwargs):
        genotype = Genotype.parse(genotype)
        if len(in_channels) != NUM_STAGES:
            raise ValueError(f'in_channels must list {NUM_STAGES} stages, got {in_channels!r}')
        kwargs.pop('channels', None)  # derived from the genotype
        super().__init__(
            in_channels=list(in_channels),
            channels=fusion_head_channels(genotype, in_channels),
            in_index=list(in_index),
            input_transform='multiple_select',
            dropout_ratio=dropout_ratio,
            loss_decode=loss_decode,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg,
            **kwargs)
        self.genotype = genotype
        self.trees = nn.ModuleList(
            FusionTree(h, tuple(in_channels), norm_cfg, act_cfg, self.align_corners)
            for h in genotype.heads)
        merged = sum(t.out_channels for t in self.trees)
        if genotype.head_merge == 'global_se_head':
            self.head_merge = GlobalSEHeadMerge(merged, se_ratio, norm_cfg, act_cfg)
        else:
            self.head_merge = ConcatHeadMerge(merged, norm_cfg, act_cfg)

    def forward(self, inputs):
        feats = self._transform_inputs(inputs)
        heads = [tree(feats) for tree in self.trees]
        return self.cls_seg(self.head_merge(_match_and_concat(heads, self.align_corners)))
