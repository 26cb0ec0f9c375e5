from .topk_cross_entropy import TopKPixelCrossEntropyLoss

__all__ = ['TopKPixelCrossEntropyLoss']
