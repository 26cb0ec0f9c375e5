import math

import pytest
import torch
import torch.nn.functional as F

import seg101_mm  # noqa: F401
from seg101_mm.models.ops import PoolConv, SelfAttention, SqueezeExcite, build_op
from seg101_mm.space import GROUP_OPS_A, GROUP_OPS_B, STAGE_OPS


@pytest.mark.parametrize('name', sorted(set(GROUP_OPS_A) | set(GROUP_OPS_B) | set(STAGE_OPS)))
def test_every_op_keeps_channels_and_size(name):
    op = build_op(name, 16)
    for h, w in ((13, 17), (8, 8)):  # odd sizes too: pooled size follows the input
        assert op(torch.randn(2, 16, h, w)).shape == (2, 16, h, w)
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is None for c in convs), f'{name}: convs must have no bias'


def test_dilated_conv_structure():
    op = build_op('dil5_conv3x3', 8)
    conv = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in conv] == [(3, 3), (1, 1)]
    assert conv[0].dilation == (5, 5) and conv[0].padding == (5, 5)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in op.modules()) == 2


def test_avgpool_pools_to_floor_of_ratio_times_input():
    op = PoolConv(4, 0.75)
    seen = []
    op.conv.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    op(torch.randn(1, 4, 13, 21))
    assert seen == [(math.floor(0.75 * 13), math.floor(0.75 * 21))]
    op = PoolConv(4, 0.25)
    op.conv.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    op(torch.randn(2, 4, 2, 3))  # never below 1x1
    assert seen[-1] == (1, 1)
    with pytest.raises(ValueError, match='ratio'):
        PoolConv(4, 1.5)


def test_self_attention_matches_the_definition():
    torch.manual_seed(0)
    op = SelfAttention(6)
    x = torch.randn(2, 6, 3, 4)
    q = x.flatten(2).transpose(1, 2)
    expected = torch.zeros(2, 6, 3, 4)
    for b in range(2):
        a = torch.softmax(q[b] @ q[b].T / math.sqrt(6), dim=-1)
        expected[b] = (a @ q[b]).T.reshape(6, 3, 4)
    expected = F.conv2d(expected, op.proj.weight)
    assert torch.allclose(op(x), expected, atol=1e-5)


def test_squeeze_excite_residual_and_external_source():
    torch.manual_seed(0)
    se = SqueezeExcite(16, ratio=8)
    assert se.fc1.out_features == 2
    x, src = torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)
    s = torch.sigmoid(se.fc2(torch.relu(se.fc1(src.mean((2, 3))))))[:, :, None, None]
    assert torch.allclose(se(x, source=src), x * s + x, atol=1e-6)
    s_self = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3))))))[:, :, None, None]
    assert torch.allclose(se(x), x * s_self + x, atol=1e-6)


def test_unknown_op_is_named():
    with pytest.raises(ValueError, match="'conv7x7'.*expected one of"):
        build_op('conv7x7', 8)
