from .fusion_head import Merge, SEG101FusionHead, fusion_head_channels

__all__ = ['SEG101FusionHead', 'Merge', 'fusion_head_channels']
