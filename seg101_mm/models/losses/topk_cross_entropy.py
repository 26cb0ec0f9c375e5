"""Cross-entropy on the hardest pixels ("DeepLab CE", docs/method.md section 3)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class TopKPixelCrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy averaged over the hardest ``top_k_percent`` of valid pixels.

    The per-pixel losses of the whole batch are ranked together (ignored pixels excluded) and
    only the largest ``ceil(top_k_percent * num_valid)`` are averaged, as in the DeepLab
    cross-entropy SEG101 trains with (top 20 %). ``top_k_percent=1`` is plain cross-entropy.

    Args:
        top_k_percent (float): fraction of valid pixels kept, in (0, 1]. Default: 0.2.
        class_weight (list[float], optional): weight of each class in the per-pixel
            cross-entropy (as ``torch.nn.functional.cross_entropy``'s ``weight``); the kept
            pixels' losses are averaged by the sum of their weights. Ignored pixels are left
            out before the weights apply, which mmseg's ``CrossEntropyLoss`` with
            ``class_weight`` cannot do (it indexes the weights by the ignore label). Default:
            None (all 1).
        loss_weight (float): weight of the loss. Default: 1.0.
        loss_name (str): key of the loss in the loss dict; must start with ``loss_`` so that
            mmseg sums it into the total loss. Default: 'loss_topk_ce'.
    """

    def __init__(self,
                 top_k_percent=0.2,
                 loss_weight=1.0,
                 loss_name='loss_topk_ce',
                 class_weight=None):
        super().__init__()
        if not 0 < top_k_percent <= 1:
            raise ValueError(f'top_k_percent must be in (0, 1], got {top_k_percent!r}')
        if class_weight is not None and (not len(class_weight) or any(not w >= 0
                                                                      for w in class_weight)):
            raise ValueError(f'class_weight must be a list of non-negative numbers, one per '
                             f'class, got {class_weight!r}')
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]
        if not loss_name.startswith('loss_'):
            raise ValueError(f'loss_name must start with "loss_" to be part of the total loss, '
                             f'got {loss_name!r}')
        self.top_k_percent = top_k_percent
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, cls_score, label, weight=None, ignore_index=255, **kwargs):
        """Args: cls_score (N, C, H, W) logits; label (N, H, W) class indices."""
        if cls_score.shape[-2:] != label.shape[-2:]:
            raise ValueError(f'logits {tuple(cls_score.shape)} and labels {tuple(label.shape)} '
                             f'must have the same spatial size')
        label = label.long()
        pixel = F.cross_entropy(cls_score, label, reduction='none', ignore_index=ignore_index)
        if weight is not None:
            pixel = pixel * weight
        valid = label != ignore_index
        pixel = pixel[valid]
        if pixel.numel() == 0:  # every pixel ignored: zero loss that keeps the graph
            return cls_score.sum() * 0.0
        if self.class_weight is None:
            pixel_weight = None
        else:
            if len(self.class_weight) != cls_score.shape[1]:
                raise ValueError(f'class_weight has {len(self.class_weight)} entries for '
                                 f'{cls_score.shape[1]} classes')
            table = cls_score.new_tensor(self.class_weight)
            pixel_weight = table[label[valid]]
            pixel = pixel * pixel_weight
        k = max(1, math.ceil(self.top_k_percent * pixel.numel()))
        if k < pixel.numel():
            pixel, index = torch.topk(pixel, k, sorted=False)
            if pixel_weight is not None:
                pixel_weight = pixel_weight[index]
        if pixel_weight is None:
            return self.loss_weight * pixel.mean()
        return self.loss_weight * pixel.sum() / pixel_weight.sum().clamp_min(1e-12)

    @property
    def loss_name(self):
        return self._loss_name
