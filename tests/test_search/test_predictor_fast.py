"""The GIN predictor's layer and fit against independent references (docs/method.md s. 6)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F

from seg101_mm.search.predictor import (DenseGINLayer, GINPredictor, encode_graphs, fit_predictor,
                                        predict, self_loops)
from seg101_mm.space import Genotype, sample


def synthetic_miou(g: Genotype) -> float:
    """A known function of the graph (op counts and the head merge)."""
    return (40 + 6 * sum(op == 'conv3x3'
                         for op in g.stage_ops) + 4 * sum(op == 'se' for op in g.group_b) + 5 *
            (g.head_merge == 'concat_head') - 3 * sum(op == 'avgpool_0.25' for op in g.group_a))


def _batch_inputs(n, num_extra, dtype):
    gs = [sample(i) for i in range(n)]
    adj, labels = encode_graphs(gs)
    agg = self_loops(adj).to(dtype)
    first = torch.bmm(agg, labels.to(dtype))
    y = torch.tensor([synthetic_miou(g) for g in gs], dtype=dtype)
    extra = torch.randn(
        n, num_extra, generator=torch.Generator().manual_seed(1),
        dtype=dtype) if num_extra else None
    return first, agg, y, extra


def test_gin_layer_is_bn_relu_mlp_relu_and_runs_its_modules():
    torch.manual_seed(0)
    layer = DenseGINLayer(12, 32).double().train()
    x = torch.randn(3, 41, 12, dtype=torch.float64)
    out = layer(x)
    w1, b1 = layer.mlp[0].weight, layer.mlp[0].bias
    w2, b2 = layer.mlp[2].weight, layer.mlp[2].bias
    h = torch.clamp(torch.clamp(x.reshape(-1, 12) @ w1.T + b1, min=0) @ w2.T + b2, min=0)
    ref = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + layer.bn.eps)
    torch.testing.assert_close(out, ref.reshape(3, 41, 32), rtol=1e-10, atol=1e-10)
    # The stored activations are the ones that run: replacing them changes the output.
    layer.mlp[3] = torch.nn.Identity()
    assert not torch.allclose(layer(x), out)
    assert [type(m).__name__ for m in DenseGINLayer(4).mlp] == ['Linear', 'ReLU'] * 2


@pytest.mark.parametrize('num_extra', [0, 2])
def test_one_minibatch_trains_every_parameter_and_bn_statistics(num_extra):
    first, agg, y, extra = _batch_inputs(24, num_extra, torch.float64)
    torch.manual_seed(0)
    model = GINPredictor(num_extra=num_extra).double().train()
    idx = torch.arange(5, 21)  # one minibatch of 16 graphs
    ex = None if extra is None else extra[idx]
    F.mse_loss(model.head(model.embed(agg[idx], None, ex, first=first[idx])), y[idx]).backward()
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == 3 * 6 + 2
    for name, param in model.named_parameters():
        assert param.grad.abs().max().item() > 0, name  # every parameter gets a gradient
    # BatchNorm running statistics after one training-mode forward: momentum 0.1 from
    # (0, 1) towards the minibatch's mean and unbiased variance of the layer's node rows.
    with torch.no_grad():
        h = model.layers[0].mlp(first[idx].reshape(16 * 41, -1))
    torch.testing.assert_close(model.layers[0].bn.running_mean, 0.1 * h.mean(0))
    torch.testing.assert_close(model.layers[0].bn.running_var, 0.9 + 0.1 * h.var(0))
    for layer in model.layers:
        assert layer.bn.running_var.min() < 0.99  # the update really moved them from 1
    # The precomputed first-layer input gives the full forward's result.
    adj, labels = encode_graphs([sample(int(i)) for i in idx])
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(
            model.head(model.embed(agg[idx], None, ex, first[idx])),
            model(adj.double(), labels.double(), ex))


def _reference_fit(gs,
                   ys,
                   extra,
                   epochs,
                   seed,
                   lr=0.005,
                   betas=(0.0, 0.9),
                   wd=1e-4,
                   batch_size=16,
                   eps=1e-8):
    """The fit of docs/method.md s. 6 in float64, written out: Adam with bias correction by
    hand, L2 on the Linear weight matrices, cosine per minibatch, the last-batch rule."""
    torch.manual_seed(seed)
    model = GINPredictor(num_extra=0 if extra is None else extra.shape[1]).double().train()
    adj, labels = encode_graphs(gs)
    adj, labels = adj.double(), labels.double()
    y = torch.tensor(ys, dtype=torch.float64)
    ex = None if extra is None else torch.as_tensor(extra, dtype=torch.float64)
    named = list(model.named_parameters())
    m = {n: torch.zeros_like(p) for n, p in named}
    v = {n: torch.zeros_like(p) for n, p in named}
    gen = torch.Generator().manual_seed(seed)
    n = len(gs)
    total, step = epochs * math.ceil(n / batch_size), 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) == 1:
                idx = order[start - 1:]
            model.zero_grad()
            F.mse_loss(model(adj[idx], labels[idx], None if ex is None else ex[idx]),
                       y[idx]).backward()
            rate = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            step += 1
            with torch.no_grad():
                for name, p in named:
                    g = p.grad + (wd * p if name.endswith('weight') and p.dim() > 1 else 0)
                    m[name] = betas[0] * m[name] + (1 - betas[0]) * g
                    v[name] = betas[1] * v[name] + (1 - betas[1]) * g * g
                    denom = (v[name] / (1 - betas[1]**step)).sqrt() + eps
                    p -= rate / (1 - betas[0]**step) * m[name] / denom
    return model.eval().float()


@pytest.mark.parametrize('num_extra', [0, 2])
def test_fit_equals_a_written_out_reference_and_learns(num_extra):
    # 97 training graphs: the last minibatch of every epoch would hold one graph and borrows
    # the previous one (7 minibatches an epoch).
    gs = [sample(i) for i in range(137)]
    ys = [synthetic_miou(g) for g in gs]
    extra = (
        np.random.default_rng(0).normal(
            size=(len(gs), num_extra)).astype(np.float32) if num_extra else None)
    tr = slice(0, 97)
    held = None if extra is None else extra[97:]
    ex_tr = None if extra is None else extra[tr]

    def fit(epochs, **more):
        model = fit_predictor(gs[tr], ys[tr], epochs=epochs, seed=5, extra=ex_tr, **more)
        assert not model.training and model.mean_head.weight.dtype == torch.float32
        assert model.layers[0].bn.num_batches_tracked.item() == 7 * epochs
        return model, predict(model, gs[97:], held)

    # float64, 56 steps: the same fit to rounding (initialisation, minibatch order, last-batch
    # rule, cosine schedule, weight decay, Adam and BatchNorm statistics all agree).
    fitted, a = fit(8, dtype=torch.float64)
    ref = _reference_fit(gs[tr], ys[tr], ex_tr, epochs=8, seed=5)
    b = predict(ref, gs[97:], held)
    assert np.abs(a - b).max() < 1e-3, np.abs(a - b).max()
    for la, lb in zip(fitted.layers, ref.layers):
        torch.testing.assert_close(la.bn.running_mean, lb.bn.running_mean)
        torch.testing.assert_close(la.bn.running_var, lb.bn.running_var)
    init = GINPredictor(num_extra=num_extra)
    decayed = [n for n, p in init.named_parameters() if n.endswith('weight') and p.dim() > 1]
    assert len(decayed) == 3 * 2 + 1  # two Linear per GIN layer and the output layer
    torch.manual_seed(5)
    init = dict(GINPredictor(num_extra=num_extra).named_parameters())
    for name, param in fitted.named_parameters():
        # Adam with beta1 = 0 moves every weight by about lr per step
        assert (param.detach() - init[name].detach()).abs().max() > 1e-3, name

    # Longer float32 fits learn: the held-out ranking follows the known function.
    _, c = fit(40)
    assert spearmanr(c, ys[97:]).statistic > 0.6


def test_uncertainty_fit_and_errors():
    gs = [sample(i) for i in range(6)]
    ys = [synthetic_miou(g) for g in gs]
    mean, std = predict(fit_predictor(gs, ys, epochs=3, uncertainty=True), gs)
    assert mean.shape == std.shape == (6, ) and std.min() > 0
    with pytest.raises(ValueError, match='got 6 genotypes but 5 targets'):
        fit_predictor(gs, ys[:5])
    with pytest.raises(
            ValueError, match=r'extra features have 2 rows, expected one per '
            r'genotype \(6\)'):
        fit_predictor(gs, ys, extra=np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r'extra features of shape \(4, 2\), got None'):
        GINPredictor(num_extra=2)(*encode_graphs(gs[:4]))
