"""The weight-scale probe (seg101_mm.proxies.probe): sum W * (H g) from a backward to one
scalar equals the full Hessian-gradient product, checked in float64 on layers of every kind
the probe takes over; and the engine falls back when a weight is used outside its layer."""
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from toy_models import tiny_encoder_decoder

import seg101_mm  # noqa: F401
from seg101_mm.proxies import ProxyEngine, random_batch, scored_layers
from seg101_mm.proxies.probe import probe_supported, weight_scale_probe
from seg101_mm.proxies.reference import reference_proxies


class Net(nn.Module):
    """Every layer kind the probe handles: grouped, dilated, strided, reflect- and 'same'-
    padded convolutions, convolutions without bias followed by an in-place ReLU, BN in train
    mode, and Linear layers on 2-D and 4-D inputs (an SE gate)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.group = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1, padding_mode='reflect')
        self.same = nn.Conv2d(12, 12, 4, padding='same', bias=False)
        self.fc1 = nn.Linear(12, 4)
        self.fc2 = nn.Linear(4, 12, bias=False)
        self.mix = nn.Linear(12, 12)
        self.head = nn.Conv2d(12, 3, 1)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)), inplace=True)
        x = torch.tanh(self.group(x))
        x = self.down(x)
        x = F.relu(self.same(x), inplace=True)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        x = x * gate[:, :, None, None]
        x = self.mix(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(x)


def loss_of(net, x, y):
    return F.cross_entropy(net(x), y)


def full_hessian_gradient(net, x, y, chunks):
    """sum W * (H g) by differentiating g . dL/dW with respect to every weight."""
    weights = [m.weight for _, m in scored_layers(net)]
    g = [torch.zeros_like(w) for w in weights]
    for sl in chunks:
        for acc, gi in zip(g, torch.autograd.grad(loss_of(net, x[sl], y[sl]), weights)):
            acc += gi
    total = 0.
    for sl in chunks:
        gg = torch.autograd.grad(loss_of(net, x[sl], y[sl]), weights, create_graph=True)
        hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, gg)), weights)
        total += sum(float((w.detach() * h).sum()) for w, h in zip(weights, hg))
    return total, g


def probed_hessian_gradient(net, x, y, chunks, g):
    layers = scored_layers(net)
    weights = [m.weight for _, m in layers]
    total = 0.
    for sl in chunks:
        with weight_scale_probe(layers, x) as probe:
            loss = loss_of(net, x[sl], y[sl])
        grads = torch.autograd.grad(loss, weights + [probe.tau], create_graph=True)
        # dL/dtau is sum W * dL/dW (the engine's consistency check)
        wg = sum(float((w.detach() * gi.detach()).sum()) for w, gi in zip(weights, grads[:-1]))
        assert float(grads[-1].detach()) == pytest.approx(wg, rel=1e-10, abs=1e-14)
        probe.phase = 'tau'
        z = sum((a * b).sum() for a, b in zip(g, grads[:-1]))
        total += float(torch.autograd.grad(z, probe.tau)[0])
    return total


@pytest.mark.parametrize('chunks', [[slice(0, 4)], [slice(0, 2), slice(2, 4)]])
def test_probe_equals_full_hessian_gradient_in_float64(chunks):
    torch.manual_seed(0)
    net = Net().double().train()
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    y = torch.randint(0, 3, (4, 6, 6))
    assert probe_supported(scored_layers(net)) == []
    want, g = full_hessian_gradient(net, x, y, chunks)
    got = probed_hessian_gradient(net, x, y, chunks, g)
    assert abs(want) > 1e-6  # a real second-order term, not a vanishing one
    assert got == pytest.approx(want, rel=1e-9)
    # the forward methods are given back
    assert not any('forward' in vars(m) for m in net.modules())


def test_probed_forward_and_first_gradient_are_the_layers_own():
    torch.manual_seed(0)
    net = Net().train()
    x = torch.randn(2, 3, 12, 12)
    y = torch.randint(0, 3, (2, 6, 6))
    weights = [m.weight for _, m in scored_layers(net)]
    torch.manual_seed(1)
    out = net(x)
    g = torch.autograd.grad(F.cross_entropy(out, y), weights)
    with weight_scale_probe(scored_layers(net), x):
        probed = net(x)
    assert torch.allclose(probed, out, rtol=1e-6, atol=1e-7)
    g_probed = torch.autograd.grad(F.cross_entropy(probed, y), weights)
    for a, b in zip(g_probed, g):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)


def test_unsupported_layers_are_named():

    class Padded(nn.Conv2d):

        def forward(self, x):
            return super().forward(F.pad(x, (1, 1, 1, 1)))

    layers = [('a', nn.Conv2d(1, 1, 1)), ('b', Padded(1, 1, 3))]
    assert probe_supported(layers) == ['b']
    with pytest.raises(ValueError, match=r"cannot probe \['b'\]"):
        with weight_scale_probe(layers, torch.zeros(1)):
            pass


def _cls_seg_reusing_its_weight(self, feat):
    # the classifier's weight also scales the features: a use the probe cannot see
    return type(self).cls_seg(self, feat * self.conv_seg.weight.norm())


def test_engine_falls_back_when_a_weight_is_used_outside_its_layer():
    torch.manual_seed(0)
    model = tiny_encoder_decoder().double()  # float64: the comparison is exact
    batch = random_batch(4, 16, seed=1)
    engine = ProxyEngine()
    plain = engine.compute(model, batch, ['grasp'])['grasp']
    assert engine.last_grasp_method == 'probe'
    head = model.decode_head
    head.cls_seg = types.MethodType(_cls_seg_reusing_its_weight, head)  # deep-copied along
    try:
        got = engine.compute(model, batch, ['grasp'])
        assert engine.last_grasp_method == 'hessian-gradient product'
        want = reference_proxies(model, batch, ['grasp'])
    finally:
        del head.cls_seg
    assert got['grasp'] == pytest.approx(want['grasp'], rel=1e-9)
    assert got['grasp'] != pytest.approx(plain, rel=1e-3)
