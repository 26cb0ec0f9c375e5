"""The candidate operations of SEG101 (docs/method.md section 3).

Every op maps ``C`` channels to ``C`` channels and keeps the spatial size. Convolutions have no
bias; normalisation layers come from ``norm_cfg`` (BN with affine parameters by default).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from seg101_mm.space.ops import GROUP_OPS_A, GROUP_OPS_B, STAGE_OPS

#: Output widths of the four stages of RegNetX-400MF, SEG101's backbone (docs/method.md s. 1).
REGNETX_400MF_CHANNELS = (32, 64, 160, 384)
DEFAULT_NORM_CFG = dict(type='BN', requires_grad=True)
DEFAULT_ACT_CFG = dict(type='ReLU')


def resize_to(x, size, align_corners=False):
    """Bilinear resize of ``x`` to ``size`` (H, W); a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=align_corners)


class ConvBNReLU(nn.Sequential):
    """``conv3x3``: 3x3 conv (pad 1) -> BN -> ReLU."""

    def __init__(self, channels, norm_cfg=DEFAULT_NORM_CFG, act_cfg=DEFAULT_ACT_CFG):
        super().__init__(
            ConvModule(
                channels, channels, 3, padding=1, bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg))


class DilatedConv(nn.Sequential):
    """``dilD_conv3x3``: 3x3 conv with dilation D (pad D) -> BN -> ReLU -> 1x1 conv -> BN -> ReLU.

    Args:
        channels (int): input = output channels.
        dilation (int): 3 or 5 in SEG101.
    """

    def __init__(self, channels, dilation, norm_cfg=DEFAULT_NORM_CFG, act_cfg=DEFAULT_ACT_CFG):
        super().__init__(
            ConvModule(
                channels,
                channels,
                3,
                padding=dilation,
                dilation=dilation,
                bias=False,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg),
            ConvModule(channels, channels, 1, bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg))


class PoolConv(nn.Module):
    """``avgpool_r``: adaptive average pool to floor(r*H) x floor(r*W) -> 3x3 conv -> BN -> ReLU
    -> bilinear resize back to H x W.

    The pooled size is computed from the actual input (at least 1x1), so any input size works.

    Args:
        channels (int): input = output channels.
        ratio (float): pooled size as a fraction of the input size (0.25 or 0.75 in SEG101).
    """

    def __init__(self,
                 channels,
                 ratio,
                 norm_cfg=DEFAULT_NORM_CFG,
                 act_cfg=DEFAULT_ACT_CFG,
                 align_corners=False):
        super().__init__()
        if not 0 < ratio <= 1:
            raise ValueError(f'avgpool ratio must be in (0, 1], got {ratio!r}')
        self.ratio = ratio
        self.align_corners = align_corners
        self.conv = ConvModule(
            channels, channels, 3, padding=1, bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x):
        h, w = x.shape[-2:]
        pooled = F.adaptive_avg_pool2d(
            x, (max(1, math.floor(self.ratio * h)), max(1, math.floor(self.ratio * w))))
        return resize_to(self.conv(pooled), (h, w), self.align_corners)


class SelfAttention(nn.Module):
    """``self_attention`` group op: Q = K = V = x as (B, HW, C); A = softmax(Q K^T / sqrt(C));
    out = A V back to (B, C, H, W) -> 1x1 conv. No residual, no normalisation."""

    def __init__(self, channels):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        attn = torch.softmax(tokens @ tokens.transpose(1, 2) / math.sqrt(c), dim=-1)
        out = (attn @ tokens).transpose(1, 2).reshape(b, c, h, w)
        return self.proj(out)


class SqueezeExcite(nn.Module):
    """Channel gate s(x) = sigmoid(FC2(ReLU(FC1(GAP(x))))) with hidden width C // ratio.

    ``forward(x, source=None)`` returns ``x * s(source) + x``: with ``source`` omitted this is
    the ``se`` group op; the enhancement SE passes the original stage map as ``source``.
    """

    def __init__(self, channels, ratio=8):
        super().__init__()
        if ratio < 1:
            raise ValueError(f'SE ratio must be >= 1, got {ratio!r}')
        hidden = max(1, channels // ratio)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, source):
        s = F.adaptive_avg_pool2d(source, 1).flatten(1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return s[:, :, None, None]

    def forward(self, x, source=None):
        return x * self.gate(x if source is None else source) + x


def build_op(name,
             channels,
             norm_cfg=DEFAULT_NORM_CFG,
             act_cfg=DEFAULT_ACT_CFG,
             se_ratio=8,
             align_corners=False):
    """Build the op called ``name`` on ``channels`` channels."""
    if name == 'conv3x3':
        return ConvBNReLU(channels, norm_cfg, act_cfg)
    if name in ('dil3_conv3x3', 'dil5_conv3x3'):
        return DilatedConv(channels, int(name[3]), norm_cfg, act_cfg)
    if name in ('avgpool_0.25', 'avgpool_0.75'):
        return PoolConv(channels, float(name.split('_')[1]), norm_cfg, act_cfg, align_corners)
    if name == 'self_attention':
        return SelfAttention(channels)
    if name == 'se':
        return SqueezeExcite(channels, se_ratio)
    known = sorted(set(GROUP_OPS_A) | set(GROUP_OPS_B) | set(STAGE_OPS))
    raise ValueError(f'unknown SEG101 op {name!r}; expected one of {known}')
