"""SEG101 networks for mmseg: enhancement neck, fusion decode head, top-k pixel CE loss."""
from .builder import build_seg101, seg101_model_cfg
from .decode_heads import Merge, SEG101FusionHead, fusion_head_channels
from .losses import TopKPixelCrossEntropyLoss
from .necks import SEG101EnhanceNeck
from .ops import build_op

__all__ = [
    'SEG101EnhanceNeck', 'SEG101FusionHead', 'TopKPixelCrossEntropyLoss', 'Merge', 'build_op',
    'build_seg101', 'seg101_model_cfg', 'fusion_head_channels'
]
