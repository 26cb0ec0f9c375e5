"""meco, swap, the AZ-NAS components and rank aggregation, against computations written out
in numpy or loops."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from toy_models import ToySegmentor

from seg101_mm.proxies import compute_proxies, random_batch
from seg101_mm.proxies.az_nas import az_nas_score, pair_moment, trainability_term
from seg101_mm.proxies.ensemble import rank_aggregate
from seg101_mm.proxies.meco import min_corr_eigenvalue
from seg101_mm.proxies.swap import distinct_patterns


class _Backbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.s1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.s2 = nn.Sequential(
            nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU())

    def forward(self, x):
        a = self.s1(x)
        return (a, self.s2(a))


class ToyBackboneSegmentor(ToySegmentor):
    """A toy segmentor with a two-stage ``backbone`` and a 1x1 conv head."""

    def __init__(self):
        super().__init__(nn.Conv2d(6, 2, 1))
        self.backbone = _Backbone()

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.decode_head(self.backbone(inputs)[1])
        return nn.functional.interpolate(logits, size=inputs.shape[2:])


def _model():
    torch.manual_seed(0)
    return ToyBackboneSegmentor()


def _state(model):
    return ({
        k: v.clone()
        for k, v in model.state_dict().items()
    }, [m.training for m in model.modules()], [p.grad for p in model.parameters()])


def _unchanged(model, before):
    sd, modes, grads = before
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == modes
    assert all(g is None for g in grads) and all(p.grad is None for p in model.parameters())
    assert all(not getattr(m, n) for m in model.modules()
               for n in ('_forward_hooks', '_forward_pre_hooks'))


def _outputs(model, x, types):
    m = copy.deepcopy(model).train()
    outs = []
    hooks = [
        mod.register_forward_hook(lambda mod, a, o: outs.append(o.detach().numpy().copy()))
        for mod in m.modules() if isinstance(mod, types)
    ]
    with torch.no_grad():
        m(x, mode='tensor')
    for h in hooks:
        h.remove()
    return outs


def test_meco_against_numpy():
    model = _model().eval()
    batch = random_batch(3, 16, seed=0)
    x = torch.stack(batch['inputs']).float()
    before = _state(model)
    got = compute_proxies(model, batch, ['meco'])['meco']
    _unchanged(model, before)
    want = 0.
    for out in _outputs(model, x, nn.Conv2d):
        for img in out:
            flat = img.reshape(img.shape[0], -1).astype(np.float64)
            corr = np.nan_to_num(np.corrcoef(flat))
            want += np.linalg.eigvalsh(corr).min()
    assert got == pytest.approx(want / 3, rel=1e-6, abs=1e-9)


def test_meco_identical_channels_give_zero():
    fmap = torch.randn(1, 5, 5).repeat(3, 1, 1)
    assert abs(min_corr_eigenvalue(fmap)) < 1e-10
    assert min_corr_eigenvalue(torch.randn(4, 6, 6)) > 0


def test_swap_against_sets_and_bounded():
    model = _model()
    batch = random_batch(3, 16, seed=1)
    x = torch.stack(batch['inputs']).float()
    before = _state(model)
    got = compute_proxies(model, batch, ['swap'])['swap']
    _unchanged(model, before)
    want = 0
    for out in _outputs(model, x, nn.ReLU):
        codes = out.reshape(3, -1) > 0
        distinct = {tuple(codes[:, u]) for u in range(codes.shape[1])}
        assert len(distinct) <= min(2**3, codes.shape[1])
        want += len(distinct)
    assert got == want


def test_distinct_patterns_beyond_one_word():
    codes = torch.rand(130, 50) > 0.5
    codes[:, 1] = codes[:, 0]
    want = len({tuple(codes[:, u].tolist()) for u in range(50)})
    assert distinct_patterns(codes) == want == 49


def test_az_components_against_numpy():
    model = _model()
    batch = random_batch(4, 16, seed=2)
    x = torch.stack(batch['inputs']).float()
    before = _state(model)
    got = compute_proxies(model, batch, ['az_expressivity', 'az_progressivity', 'az_trainability'])
    _unchanged(model, before)
    m = copy.deepcopy(model).train()
    with torch.no_grad():
        feats = [f.numpy().astype(np.float64) for f in m.backbone(x)]
    ent = []
    for f in feats:
        pix = f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1])
        pix = pix - pix.mean(0)
        eig = np.clip(np.linalg.eigvalsh(pix.T @ pix / len(pix)), 0, None)
        p = eig / eig.sum()
        ent.append(float(-(p * np.log(p + 1e-8)).sum()))
    assert got['az_expressivity'] == pytest.approx(sum(ent), rel=1e-6)
    assert got['az_progressivity'] == pytest.approx(ent[1] - ent[0], rel=1e-5, abs=1e-7)
    assert math.isfinite(got['az_trainability']) and got['az_trainability'] <= 0


def test_trainability_term_against_loops():
    g_in = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    g_out = torch.randn(2, 5, 2, 2, dtype=torch.float64)
    moment, n = pair_moment(g_in, g_out)
    mat = np.zeros((12, 5))
    for b in range(2):
        for i in range(2):
            for j in range(2):
                # pixel-unshuffle: channel c*4 + di*2 + dj holds g_in[c, 2i+di, 2j+dj]
                v = np.array([
                    g_in[b, c, 2 * i + di, 2 * j + dj].item() for c in range(3) for di in range(2)
                    for dj in range(2)
                ])
                mat += np.outer(v, g_out[b, :, i, j].numpy())
    assert n == 8 and np.allclose(moment.numpy(), mat)
    sigma = np.linalg.svd(mat / 8, compute_uv=False).max()
    assert trainability_term(moment, n) == pytest.approx(2 - sigma - 1 / (sigma + 1e-6))


def test_rank_aggregation_on_hand_made_tables():
    table = [dict(a=1., b=30., c=float('nan')), dict(a=3., b=10., c=2.), dict(a=2., b=20., c=1.)]
    # ranks a: 1 3 2, b: 3 1 2, c: nan lowest -> 1 3 2
    assert np.allclose(rank_aggregate(table, ['a', 'b'], 'mean'), [2, 2, 2])
    assert np.allclose(rank_aggregate(table, ['a', 'b'], 'mean', signs=dict(b=-1)), [1, 3, 2])
    want = [math.log(1 / 3) + math.log(1 / 3), 2 * math.log(1.), 2 * math.log(2 / 3)]
    assert np.allclose(rank_aggregate(table, ['a', 'c'], 'log'), want)
    cols = dict(
        az_expressivity=[1, 2], az_progressivity=[2, 1], az_trainability=[1, 2], flops=[1, 1])
    assert np.allclose(
        az_nas_score(cols), [2 * math.log(.5) + math.log(.75),
                             math.log(.5) + math.log(.75)])
    with pytest.raises(ValueError):
        rank_aggregate(table, ['a'], 'median')


def test_new_proxies_on_a_seg101_network():
    pytest.importorskip('seg101_mm.models', reason='SEG101 models not available')
    from seg101_mm.models import build_seg101
    from seg101_mm.space import sample
    torch.manual_seed(0)
    model = build_seg101(sample(0))
    names = ['meco', 'swap', 'az_expressivity', 'az_progressivity', 'az_trainability']
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = compute_proxies(model, random_batch(4, 64, seed=0), names)
    assert all(math.isfinite(v) for v in got.values()), got
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
