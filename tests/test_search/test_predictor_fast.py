"""The hand-written MSE fit of the GIN predictor against autograd (docs/method.md section 6)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F

from seg101_mm.search.predictor import (GINPredictor, ManualMSETrainer, encode_graphs,
                                        fit_predictor, predict, self_loops)
from seg101_mm.space import Genotype, sample


def synthetic_miou(g: Genotype) -> float:
    """A known function of the graph (op counts and the head merge)."""
    return (40 + 6 * sum(op == 'conv3x3' for op in g.stage_ops)
            + 4 * sum(op == 'se' for op in g.group_b) + 5 * (g.head_merge == 'concat_head')
            - 3 * sum(op == 'avgpool_0.25' for op in g.group_a))


def _batch_inputs(n, num_extra, dtype):
    gs = [sample(i) for i in range(n)]
    adj, labels = encode_graphs(gs)
    agg = self_loops(adj).to(dtype)
    first = torch.bmm(agg, labels.to(dtype))
    y = torch.tensor([synthetic_miou(g) for g in gs], dtype=dtype)
    extra = torch.randn(n, num_extra, generator=torch.Generator().manual_seed(1),
                        dtype=dtype) if num_extra else None
    return first, agg, y, extra


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize('num_extra', [0, 2])
def test_one_step_gradients_equal_autograd(dtype, tol, num_extra):
    first, agg, y, extra = _batch_inputs(24, num_extra, dtype)
    torch.manual_seed(0)
    model = GINPredictor(num_extra=num_extra).to(dtype).train()
    trainer = ManualMSETrainer(model, first, agg, y, extra, dtype=dtype)
    idx = torch.arange(5, 21)  # one minibatch of 16 graphs
    ex = None if extra is None else extra[idx]
    loss = trainer.loss_and_grad(first[idx], agg[idx], y[idx], ex)

    ref = F.mse_loss(model.head(model.embed(agg[idx], None, ex, first=first[idx])), y[idx])
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=tol)
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == 3 * 6 + 2
    for name, param in model.named_parameters():
        scale = param.grad.abs().max().item()
        assert scale > 0, name  # every parameter gets a gradient on this batch
        err = (trainer.g[name] - param.grad).abs().max().item() / scale
        assert err < tol, (name, err)
    # BatchNorm running statistics after one training-mode forward, as torch updates them.
    for i, layer in enumerate(model.layers):
        torch.testing.assert_close(trainer.running_mean[i], layer.bn.running_mean,
                                   rtol=tol, atol=tol)
        torch.testing.assert_close(trainer.running_var[i], layer.bn.running_var,
                                   rtol=tol, atol=tol)
        assert layer.bn.running_var.min() < 0.99  # the update really moved them from 1


def test_adam_step_with_weight_decay_equals_torch_adam():
    first, agg, y, _ = _batch_inputs(16, 0, torch.float64)
    torch.manual_seed(0)
    model = GINPredictor().double().train()
    trainer = ManualMSETrainer(model, first, agg, y, lr=0.005, betas=(0.0, 0.9),
                               weight_decay=1e-4, dtype=torch.float64)
    decayed = [p for n, p in model.named_parameters() if n.endswith('weight') and p.dim() > 1]
    assert len(decayed) == 3 * 2 + 1  # two Linear per GIN layer and the output layer
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=0.005, betas=(0.0, 0.9))
    for step in range(3):
        lr = 0.005 * (0.5 + 0.1 * step)
        trainer.loss_and_grad(first, agg, y)
        trainer.adam_step(lr)
        opt.zero_grad()
        F.mse_loss(model.head(model.embed(agg, None, first=first)), y).backward()
        with torch.no_grad():
            for p in decayed:
                p.grad.add_(p, alpha=1e-4)
        opt.param_groups[0]['lr'] = lr
        opt.step()
    for name, param in model.named_parameters():
        # atol: some bias gradients are zero in exact arithmetic (a bias ahead of a BatchNorm
        # whose ReLU is inactive); Adam scales their 1e-13 rounding noise up to ~lr * 1e-5.
        torch.testing.assert_close(trainer.p[name], param.detach(), rtol=1e-9, atol=1e-6)
        # Adam with beta1 = 0 moves every weight by about lr per step
        assert (param.detach() - init[name]).abs().max() > 1e-3, name
    loaded = trainer.load_into(GINPredictor().double())
    for (name, a), b in zip(model.named_parameters(), loaded.parameters()):
        assert torch.equal(trainer.p[name], b.detach()), name
    for la, lb in zip(model.layers, loaded.layers):
        torch.testing.assert_close(lb.bn.running_var, la.bn.running_var)
        assert lb.bn.num_batches_tracked.item() == la.bn.num_batches_tracked.item() == 3


@pytest.mark.parametrize('num_extra', [0, 2])
def test_manual_fit_tracks_autograd_fit(num_extra):
    # 97 training graphs: the last minibatch of every epoch would hold one graph and borrows
    # the previous one, in both backends (7 minibatches an epoch).
    gs = [sample(i) for i in range(137)]
    ys = [synthetic_miou(g) for g in gs]
    extra = (np.random.default_rng(0).normal(size=(len(gs), num_extra)).astype(np.float32)
             if num_extra else None)
    tr = slice(0, 97)
    held = None if extra is None else extra[97:]

    def fit(epochs, **more):
        model = fit_predictor(gs[tr], ys[tr], epochs=epochs, seed=5,
                              extra=None if extra is None else extra[tr], **more)
        assert not model.training and model.mean_head.weight.dtype == torch.float32
        assert model.layers[0].bn.num_batches_tracked.item() == 7 * epochs
        return model, predict(model, gs[97:], held)

    # float64, 56 steps: the same fit to rounding (initialisation, minibatch order, last-batch
    # rule, cosine schedule, weight decay, Adam and BatchNorm statistics all agree).
    manual, a = fit(8, backend='manual', dtype=torch.float64)
    autograd, b = fit(8, backend='autograd', dtype=torch.float64)
    assert np.abs(a - b).max() < 1e-3, np.abs(a - b).max()
    for la, lb in zip(manual.layers, autograd.layers):
        torch.testing.assert_close(la.bn.running_mean, lb.bn.running_mean)
        torch.testing.assert_close(la.bn.running_var, lb.bn.running_var)

    # Longer fits are chaotic: Adam with beta1 = 0 scales the rounding noise of gradients that
    # are zero in exact arithmetic up to full steps, and differences then grow about tenfold
    # every ten steps until they saturate (measured in float64 with 2 extra features: 1e-13
    # at step 20, 2e-4 at step 80, 0.08 from step 100 on). So the 280-step float32 fits of
    # the two backends (the defaults) agree as two fits that differ in rounding do.
    _, c = fit(40)
    _, d = fit(40, backend='autograd')
    assert spearmanr(c, d).statistic > 0.97
    assert np.abs(c - d).mean() < 1.0, np.abs(c - d).mean()
    # and both learned: the held-out ranking follows the known function
    assert min(spearmanr(c, ys[97:]).statistic, spearmanr(d, ys[97:]).statistic) > 0.6


def test_backend_choice_and_errors():
    gs = [sample(i) for i in range(6)]
    ys = [synthetic_miou(g) for g in gs]
    # 'auto' (the default) is the manual fit for the MSE predictor: bit-identical to asking
    # for it.
    a = predict(fit_predictor(gs, ys, epochs=3, seed=2, backend='auto'), gs)
    b = predict(fit_predictor(gs, ys, epochs=3, seed=2, backend='manual'), gs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, predict(fit_predictor(gs, ys, epochs=3, seed=2), gs))
    c = predict(fit_predictor(gs, ys, epochs=3, seed=2, backend='autograd'), gs)
    assert not np.array_equal(a, c)  # float32 rounding differs between the two backends
    mean, std = predict(fit_predictor(gs, ys, epochs=3, uncertainty=True, backend='auto'), gs)
    assert mean.shape == std.shape == (6, ) and std.min() > 0
    with pytest.raises(ValueError, match="backend must be 'auto', 'manual' or 'autograd', "
                                         "got 'numpy'"):
        fit_predictor(gs, ys, backend='numpy')
    with pytest.raises(ValueError, match='MSE predictor only'):
        fit_predictor(gs, ys, uncertainty=True, backend='manual')
    first, agg, y, _ = _batch_inputs(4, 0, torch.float32)
    with pytest.raises(ValueError, match=r'expects 2 extra features, got None'):
        ManualMSETrainer(GINPredictor(num_extra=2), first, agg, y)
    assert math.isfinite(ManualMSETrainer(GINPredictor(), first, agg, y).loss_and_grad(
        first, agg, y))
