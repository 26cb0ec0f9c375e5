"""GIN performance predictors of NPENAS-NP and NPENAS-BO on dense graphs (docs/method.md s. 6).

Every genotype becomes a 41-node graph (:func:`seg101_mm.space.to_graph`). All graphs of a fit
are stacked into two dense tensors, ``adjacency (N, 41, 41)`` and ``labels (N, 41, 12)``, so
that one GIN layer over a minibatch is a single batched matrix product: no graph library.

Plain PyTorch, no mmengine: the strategies that use these predictors stay importable and
testable without the OpenMMLab stack.
"""
import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seg101_mm.space import NUM_LABELS, Genotype, to_graph


def encode_graphs(genotypes: Sequence[Genotype]):
    """Stack the graphs of ``genotypes`` into ``(adjacency, labels)`` float32 tensors.

    Returns:
        tuple[Tensor, Tensor]: ``(N, 41, 41)`` adjacency (``a[i, j] = 1`` for an edge i -> j)
        and ``(N, 41, 12)`` one-hot node labels.
    """
    if len(genotypes) == 0:
        raise ValueError('encode_graphs needs at least one genotype, got an empty sequence')
    adjs, labels = zip(*(to_graph(g) for g in genotypes))
    return torch.from_numpy(np.stack(adjs)), torch.from_numpy(np.stack(labels))


class DenseGINLayer(nn.Module):
    """One GIN layer: ``BN(ReLU(MLP(x_i + sum_{j -> i} x_j)))`` (docs/method.md section 6).

    :meth:`forward` takes the aggregated features ``x_i + sum_{j -> i} x_j``, i.e.
    ``self_loops(adj) @ x`` (see :func:`self_loops`), so that the aggregation is one batched
    matrix product and, for the constant one-hot inputs of the first layer, can be computed
    once per fit instead of once per step.

    Args:
        in_channels (int): Node feature width in.
        out_channels (int): Node feature width out. Paper: 32.
    """

    def __init__(self, in_channels: int, out_channels: int = 32):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, out_channels), nn.ReLU(inplace=True),
            nn.Linear(out_channels, out_channels), nn.ReLU(inplace=True))
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, aggregated):
        b, n, _ = aggregated.shape
        return self.bn(self.mlp(aggregated.reshape(b * n, -1))).reshape(b, n, -1)


def self_loops(adj):
    """``I + adj^T`` for ``(N, 41, 41)`` adjacency: row i sums node i and its predecessors."""
    return adj.transpose(1, 2) + torch.eye(adj.shape[-1], dtype=adj.dtype)


class GINPredictor(nn.Module):
    """GIN regressor of val mIoU (in %) from a graph (docs/method.md section 6).

    Args:
        num_layers (int): GIN layers. Paper: 3.
        hidden (int): Width of every layer. Paper: 32.
        num_labels (int): Node label count (one-hot width). SEG101: 12.
        num_extra (int): Extra per-graph features (e.g. zero-cost proxy scores, already
            normalised) concatenated to the pooled embedding before the output layer. The
            paper uses none.
        uncertainty (bool): Add a standard-deviation head (NPENAS-BO). The paper's NPENAS-NP
            predictor has only the mean head.
        scale (float): Output range: ``sigmoid * scale``. 100 for mIoU in percent.
    """

    def __init__(self,
                 num_layers: int = 3,
                 hidden: int = 32,
                 num_labels: int = NUM_LABELS,
                 num_extra: int = 0,
                 uncertainty: bool = False,
                 scale: float = 100.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers!r}')
        widths = [num_labels] + [hidden] * num_layers
        self.layers = nn.ModuleList(DenseGINLayer(i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.num_extra = num_extra
        self.scale = scale
        self.mean_head = nn.Linear(hidden + num_extra, 1)
        self.std_head = nn.Linear(hidden + num_extra, 1) if uncertainty else None

    def embed(self, adj, labels, extra=None, first=None):
        """Pooled graph embeddings ``(N, hidden [+ num_extra])``.

        ``adj`` here is :func:`self_loops` of the adjacency; ``first`` optionally holds the
        first layer's aggregated input ``adj @ labels``, precomputed.
        """
        x = labels
        for i, layer in enumerate(self.layers):
            x = layer(first if i == 0 and first is not None else torch.bmm(adj, x))
        x = x.mean(dim=1)
        if self.num_extra:
            if extra is None or extra.shape != (x.shape[0], self.num_extra):
                raise ValueError(f'expected extra features of shape ({x.shape[0]}, '
                                 f'{self.num_extra}), got '
                                 f'{None if extra is None else tuple(extra.shape)}')
            x = torch.cat([x, extra], dim=1)
        return x

    def head(self, z):
        mean = torch.sigmoid(self.mean_head(z)).squeeze(1) * self.scale
        if self.std_head is None:
            return mean
        std = F.softplus(self.std_head(z)).squeeze(1) * (self.scale / 10) + 1e-3
        return mean, std

    def forward(self, adj, labels, extra=None):
        """Predicted mIoU ``(N,)`` (or ``(mean, std)``) from adjacency ``(N, 41, 41)``
        (``adj[b, i, j] = 1`` for an edge i -> j) and one-hot labels ``(N, 41, 12)``."""
        return self.head(self.embed(self_loops(adj), labels, extra))


def fit_predictor(genotypes: Sequence[Genotype],
                  targets: Sequence[float],
                  extra: Optional[np.ndarray] = None,
                  uncertainty: bool = False,
                  num_layers: int = 3,
                  hidden: int = 32,
                  epochs: int = 600,
                  batch_size: int = 16,
                  lr: float = 0.005,
                  betas=(0.0, 0.9),
                  weight_decay: float = 1e-4,
                  seed: int = 0,
                  num_threads: Optional[int] = 1,
                  dtype: torch.dtype = torch.float32) -> GINPredictor:
    """Train a fresh predictor from scratch (docs/method.md section 6).

    MSE (or Gaussian NLL with ``uncertainty``), Adam with ``lr``/``betas``, weight decay
    ``weight_decay`` on the Linear weights only, cosine decay stepped per minibatch over all
    ``epochs``, minibatches of ``batch_size`` graphs.

    Args:
        genotypes: Evaluated architectures.
        targets: Their val mIoU in percent.
        extra: Optional ``(N, E)`` extra features (already normalised).
        seed: Seeds the initialisation and the minibatch order (reproducible fits).
        num_threads: Torch CPU threads during the fit (restored afterwards). The tensors are
            tiny, so one thread is the fastest; None keeps the current setting.
        dtype (torch.dtype): Float type of the training computation; the returned model is
            float32 either way. float64 is for checking the fit against a reference: Adam
            with ``beta1 = 0`` scales the rounding noise of gradients that are zero in exact
            arithmetic up to full steps, so two fits that differ only in rounding diverge
            (see docs/search.md); float64 starts that from 1e-16 instead of 1e-7.

    Returns:
        GINPredictor: The trained predictor, float32, in eval mode.
    """
    args = (genotypes, targets, extra, uncertainty, num_layers, hidden, epochs, batch_size, lr,
            betas, weight_decay, seed, dtype)
    if num_threads is None:
        return _fit(*args)
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _fit(*args)
    finally:
        torch.set_num_threads(before)


def _fit(genotypes, targets, extra, uncertainty, num_layers, hidden, epochs, batch_size, lr, betas,
         weight_decay, seed, dtype):
    if len(genotypes) != len(targets):
        raise ValueError(f'got {len(genotypes)} genotypes but {len(targets)} targets')
    if len(genotypes) < 2:
        raise ValueError(f'fitting a predictor needs at least 2 evaluated architectures, '
                         f'got {len(genotypes)}')
    if extra is not None and np.asarray(extra).shape[0] != len(genotypes):
        raise ValueError(f'extra features have {np.asarray(extra).shape[0]} rows, expected '
                         f'one per genotype ({len(genotypes)})')
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GINPredictor(
            num_layers,
            hidden,
            num_extra=0 if extra is None else np.asarray(extra).shape[1],
            uncertainty=uncertainty)
    model.to(dtype)
    adj, labels = encode_graphs(genotypes)
    agg = self_loops(adj).to(dtype)
    first = torch.bmm(agg, labels.to(dtype))  # the first layer's input never changes
    y = torch.as_tensor(np.asarray(targets, dtype=np.float64)).to(dtype)
    ex = None if extra is None else torch.as_tensor(np.asarray(extra, dtype=np.float64)).to(dtype)
    params = list(model.parameters())
    decayed = [p for n, p in model.named_parameters() if n.endswith('weight') and p.dim() > 1]
    # fused: one kernel for the whole update; the graphs are so small that per-op overhead,
    # not arithmetic, is what a fit costs.
    opt = torch.optim.Adam(params, lr=lr, betas=(float(betas[0]), float(betas[1])), fused=True)
    n = len(y)
    total = epochs * math.ceil(n / batch_size)
    step = 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one graph's statistics
                idx = order[start - 1:start + batch_size]
            out = model.head(
                model.embed(agg[idx], None, None if ex is None else ex[idx], first=first[idx]))
            if uncertainty:
                loss = F.gaussian_nll_loss(out[0], y[idx], out[1]**2)
            else:
                loss = F.mse_loss(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                # L2 weight decay on the Linear weights only (not biases, not BN).
                torch._foreach_add_([p.grad for p in decayed], decayed, alpha=weight_decay)
            opt.param_groups[0]['lr'] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.step()
            step += 1
    for p in params:
        p.grad = None
    return model.eval().float()


@torch.no_grad()
def predict(model: GINPredictor,
            genotypes: Sequence[Genotype],
            extra: Optional[np.ndarray] = None,
            chunk: int = 1024):
    """Predicted mIoU for every genotype: an ``(N,)`` array, or ``(mean, std)`` arrays."""
    model.eval()
    adj, labels = encode_graphs(genotypes)
    ex = None if extra is None else torch.as_tensor(np.asarray(extra, dtype=np.float32))
    outs = []
    for s in range(0, len(genotypes), chunk):
        outs.append(
            model(adj[s:s + chunk], labels[s:s + chunk], None if ex is None else ex[s:s + chunk]))
    if model.std_head is None:
        return torch.cat(outs).numpy()
    return (torch.cat([o[0] for o in outs]).numpy(), torch.cat([o[1] for o in outs]).numpy())
