"""Each proxy against a closed form (linear 1x1-conv segmentor) or a direct computation."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from toy_models import ToySegmentor

import seg101_mm  # noqa: F401
from seg101_mm.proxies import compute_proxies, random_batch
from seg101_mm.proxies.jacob_cov import jacob_cov_score

N, C, K, H, W = 4, 3, 2, 5, 6


@pytest.fixture(scope='module')
def linear_case():
    torch.manual_seed(0)
    model = ToySegmentor(nn.Conv2d(C, K, 1, bias=False), num_classes=K)
    batch = random_batch(N, (H, W), num_classes=K, in_channels=C, seed=3)
    # scale the images down so the numbers stay O(1)
    batch['inputs'] = [(x // 64).to(torch.uint8) for x in batch['inputs']]
    x = np.stack([t.numpy() for t in batch['inputs']]).astype(np.float64).reshape(N, C, -1)
    y = np.stack([s.gt_sem_seg.data[0].numpy() for s in batch['data_samples']]).reshape(N, -1)
    onehot = np.stack([(y == k) for k in range(K)], 1).astype(np.float64)  # N, K, P
    wt = model.decode_head.body.weight.detach().double().numpy().reshape(K, C)
    return model, batch, x, onehot, wt


def closed_forms(x, onehot, wt, chunk):
    """Gradient, H g and fisher of L = sum over chunks of 0.5 * ||W X - Y||^2 / N_chunk."""
    g = np.zeros_like(wt)
    parts = [slice(i, i + chunk) for i in range(0, len(x), chunk)]
    fisher = np.zeros(K)
    for sl in parts:
        xs, ys = x[sl], onehot[sl]
        a = np.einsum('kc,ncp->nkp', wt, xs)
        e = (a - ys) / len(xs)
        g += np.einsum('nkp,ncp->kc', e, xs)
        d = (a * e).sum(-1)  # N, K
        fisher += 0.5 * (d**2).mean(0)
    hg = np.zeros_like(wt)
    for sl in parts:
        xs = x[sl]
        hg += np.einsum('kc,ncp,ndp->kd', g, xs, xs) / len(xs)
    return g, hg, fisher


@pytest.mark.parametrize('chunk', [None, 2])
def test_gradient_proxies_match_closed_forms(linear_case, chunk):
    model, batch, x, onehot, wt = linear_case
    got = compute_proxies(
        model, batch, ['grad_norm', 'snip', 'plain', 'grasp', 'fisher'], chunk_size=chunk)
    g, hg, fisher = closed_forms(x, onehot, wt, chunk or N)
    assert got['grad_norm'] == pytest.approx(np.linalg.norm(g), rel=1e-5)
    assert got['snip'] == pytest.approx(np.abs(wt * g).sum(), rel=1e-5)
    assert got['plain'] == pytest.approx((wt * g).sum(), rel=1e-4)
    assert got['grasp'] == pytest.approx(-(wt * hg).sum(), rel=1e-4)
    assert got['fisher'] == pytest.approx(fisher.sum() * C, rel=1e-4)  # fan-in of a 1x1 conv
    assert got['grad_norm'] > 0 and got['fisher'] > 0


def test_synflow_closed_form(linear_case):
    model, batch, _, _, wt = linear_case
    # R = sum_{k,p} sum_c |W_kc| * 1, so dR/d|W| = H*W everywhere
    got = compute_proxies(model, batch, 'synflow')['synflow']
    assert got == pytest.approx(H * W * np.abs(wt).sum(), rel=1e-12)


def test_jacob_cov_closed_form(linear_case):
    model, batch, _, _, _ = linear_case
    # every image has the same Jacobian row, so C is all ones: eigenvalues N, 0, ..., 0
    k = 1e-5
    want = -(math.log(N + k) + 1 / (N + k)) - (N - 1) * (math.log(k) + 1 / k)
    assert compute_proxies(model, batch, 'jacob_cov')['jacob_cov'] == pytest.approx(want, rel=1e-6)


def test_jacob_cov_score_matches_numpy_eigh():
    rng = np.random.default_rng(0)
    jac = rng.normal(size=(6, 50))
    eig = np.linalg.eigh(np.corrcoef(jac))[0]
    want = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    assert jacob_cov_score(torch.from_numpy(jac)) == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match='constant Jacobian row'):
        jacob_cov_score(torch.ones(3, 4))


def test_nwot_matches_direct_code_kernel():
    torch.manual_seed(1)
    body = nn.Sequential(nn.Conv2d(C, 6, 1), nn.ReLU(inplace=True), nn.Conv2d(6, K, 1))
    model = ToySegmentor(body, num_classes=K)
    batch = random_batch(N, (H, W), num_classes=K, in_channels=C, seed=5)
    got = compute_proxies(model, batch, 'nwot')['nwot']
    x = torch.stack(batch['inputs']).float()
    codes = (body[0](x) > 0).flatten(1).double().numpy()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert got == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-10)
    # chunked: NASWOT still sees the whole batch at once
    assert compute_proxies(model, batch, 'nwot', chunk_size=1)['nwot'] == pytest.approx(got)


def test_zico_two_halves_closed_form(linear_case):
    model, batch, x, onehot, wt = linear_case
    got = compute_proxies(model, batch, 'zico')['zico']
    g1, _, _ = closed_forms(x[:2], onehot[:2], wt, 2)
    g2, _, _ = closed_forms(x[2:], onehot[2:], wt, 2)
    std = np.abs(g1 - g2) / 2
    keep = std > 0
    want = math.log((((np.abs(g1) + np.abs(g2)) / 2)[keep] / std[keep]).sum())
    assert got == pytest.approx(want, rel=1e-6)


def test_params_and_flops_of_linear_model(linear_case):
    model = linear_case[0]
    got = compute_proxies(model, linear_case[1], ['params', 'flops'])
    assert got['params'] == K * C
    assert got['flops'] == K * C * H * W  # one multiply-add per weight and position
