from .enhance_neck import SEG101_INIT_CFG, EnhanceStage, SEG101EnhanceNeck

__all__ = ['SEG101EnhanceNeck', 'EnhanceStage', 'SEG101_INIT_CFG']
