"""The SEG101 feature-maps enhancement neck (docs/method.md sections 1 and 3)."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from seg101_mm.space import Genotype
from seg101_mm.space.ops import NUM_GROUPS, NUM_STAGES
from ..ops import (DEFAULT_ACT_CFG, DEFAULT_NORM_CFG, REGNETX_400MF_CHANNELS, SqueezeExcite,
                   build_op)

#: Authors' initialisation: conv ~ N(0, sqrt(2 / (k*k*C_out))), BN 1/0, linear N(0, 0.01), 0.
SEG101_INIT_CFG = [
    dict(
        type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu',
        distribution='normal'),
    dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1, bias=0),
    dict(type='Normal', layer='Linear', std=0.01, bias=0),
]


class EnhanceStage(nn.Module):
    """One stage of the neck: group ops, enhancement SE, stage op.

    ``G = concat_g op_g(X[:, group g])``; ``E = G * s(X) + G`` (the squeeze reads the original
    map X, the excitation scales G); ``F = stage_op(E)``.
    """

    def __init__(self,
                 channels,
                 group_ops,
                 stage_op,
                 se_ratio=8,
                 norm_cfg=DEFAULT_NORM_CFG,
                 act_cfg=DEFAULT_ACT_CFG,
                 align_corners=False):
        super().__init__()
        if channels % len(group_ops):
            raise ValueError(f'stage channels {channels} must be divisible by the number of '
                             f'channel groups {len(group_ops)}')
        self.group_channels = channels // len(group_ops)
        self.group_ops = nn.ModuleList(
            build_op(op, self.group_channels, norm_cfg, act_cfg, se_ratio, align_corners)
            for op in group_ops)
        self.enhance = SqueezeExcite(channels, se_ratio)
        self.stage_op = build_op(stage_op, channels, norm_cfg, act_cfg, se_ratio, align_corners)

    def forward(self, x):
        groups = torch.split(x, self.group_channels, dim=1)
        g = torch.cat([op(part) for op, part in zip(self.group_ops, groups)], dim=1)
        return self.stage_op(self.enhance(g, source=x))


@MODELS.register_module()
class SEG101EnhanceNeck(BaseModule):
    """Feature-maps enhancement neck of SEG101.

    From "A Study of Zero-Cost Proxies for Remote Sensing Image Segmentation" (Wei et al.,
    AutoML-Conf 2022 workshop). All four stages are always built and run; S1/S2 use the
    category-A group ops and S3/S4 the category-B ones, each stage with its own weights.

    Args:
        genotype (str | Genotype): the architecture, in the canonical text form.
        in_channels (Sequence[int]): channels of the four backbone stages.
            Default: RegNetX-400MF's (32, 64, 160, 384).
        se_ratio (int): reduction ratio of every SE block. Default: 8.
        norm_cfg (dict): normalisation layers. Default: BN.
        act_cfg (dict): activation. Default: ReLU.
        align_corners (bool): for the bilinear resizes. Default: False.
        init_cfg (dict | list[dict]): the authors' initialisation by default.
    """

    def __init__(self,
                 genotype,
                 in_channels=REGNETX_400MF_CHANNELS,
                 se_ratio=8,
                 norm_cfg=DEFAULT_NORM_CFG,
                 act_cfg=DEFAULT_ACT_CFG,
                 align_corners=False,
                 init_cfg=SEG101_INIT_CFG):
        super().__init__(init_cfg)
        self.genotype = Genotype.parse(genotype)
        if len(in_channels) != NUM_STAGES:
            raise ValueError(f'in_channels must list {NUM_STAGES} stages, got {in_channels!r}')
        for c in in_channels:
            if c % NUM_GROUPS:
                raise ValueError(f'every stage width must be divisible by {NUM_GROUPS}, got '
                                 f'in_channels={tuple(in_channels)!r}')
        self.in_channels = tuple(in_channels)
        self.stages = nn.ModuleList(
            EnhanceStage(c, self.genotype.group_ops(s), self.genotype.stage_ops[s], se_ratio,
                         norm_cfg, act_cfg, align_corners) for s, c in enumerate(self.in_channels))

    def forward(self, inputs):
        if len(inputs) != NUM_STAGES:
            raise ValueError(f'SEG101EnhanceNeck expects {NUM_STAGES} feature maps, got '
                             f'{len(inputs)}')
        return tuple(stage(x) for stage, x in zip(self.stages, inputs))
