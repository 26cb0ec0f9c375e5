import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seg101_mm  # noqa: F401
from seg101_mm.models import TopKPixelCrossEntropyLoss


def test_topk_keeps_the_hardest_fifth_of_valid_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 10, 10)
    label = torch.randint(0, 2, (2, 10, 10))
    label[0, :5] = 255  # 50 ignored pixels, 150 valid
    loss = TopKPixelCrossEntropyLoss(top_k_percent=0.2)(logits, label)
    pixel = F.cross_entropy(logits, label, reduction='none', ignore_index=255)[label != 255]
    assert pixel.numel() == 150
    expected = pixel.sort(descending=True).values[:30].mean()
    assert torch.allclose(loss, expected)
    assert loss > F.cross_entropy(logits, label, ignore_index=255)


def test_full_fraction_is_plain_cross_entropy_and_gradients_flow():
    logits = torch.randn(1, 3, 6, 6, requires_grad=True)
    label = torch.randint(0, 3, (1, 6, 6))
    loss = TopKPixelCrossEntropyLoss(top_k_percent=1.0)(logits, label)
    assert torch.allclose(loss, F.cross_entropy(logits, label))
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_all_ignored_gives_zero_loss_with_graph():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    loss = TopKPixelCrossEntropyLoss()(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='top_k_percent.*1.5'):
        TopKPixelCrossEntropyLoss(top_k_percent=1.5)
    with pytest.raises(ValueError, match="loss_name.*'topk'"):
        TopKPixelCrossEntropyLoss(loss_name='topk')
    with pytest.raises(ValueError, match='same spatial size'):
        TopKPixelCrossEntropyLoss()(torch.randn(1, 2, 4, 4), torch.zeros(1, 5, 5))


def test_class_weight_with_ignored_pixels_matches_torch_weighted_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 12, 12)
    label = torch.randint(0, 2, (2, 12, 12))
    label[1, :4] = 255  # ignored pixels, which mmseg's weighted CrossEntropyLoss cannot take
    weight = [1.0, 8.0]
    loss = TopKPixelCrossEntropyLoss(top_k_percent=1.0, class_weight=weight)(logits, label)
    expected = F.cross_entropy(logits, label, weight=torch.tensor(weight), ignore_index=255)
    assert torch.allclose(loss, expected)
    # with top-k, the kept pixels are the largest weighted losses, averaged by their weights
    loss = TopKPixelCrossEntropyLoss(top_k_percent=0.25, class_weight=weight)(logits, label)
    valid = label != 255
    pixel = F.cross_entropy(logits, label, reduction='none', ignore_index=255)[valid]
    w = torch.tensor(weight)[label[valid]]
    top = (pixel * w).topk(int(np.ceil(0.25 * pixel.numel()))).indices
    assert torch.allclose(loss, (pixel * w)[top].sum() / w[top].sum())
    with pytest.raises(ValueError, match='class_weight has 3 entries for 2 classes'):
        TopKPixelCrossEntropyLoss(class_weight=[1, 1, 1])(logits, label)
    with pytest.raises(ValueError, match='class_weight must be a list of non-negative'):
        TopKPixelCrossEntropyLoss(class_weight=[1, -2])
