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
            nn.Linear(out_channels, out_channels))
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, aggregated):
        b, n, _ = aggregated.shape
        lin1, lin2 = self.mlp[0], self.mlp[2]
        h = F.linear(aggregated.reshape(b * n, -1), lin1.weight, lin1.bias).relu_()
        h = F.linear(h, lin2.weight, lin2.bias).relu_()
        return self.bn(h).reshape(b, n, -1)


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

    def __init__(self, num_layers: int = 3, hidden: int = 32, num_labels: int = NUM_LABELS,
                 num_extra: int = 0, uncertainty: bool = False, scale: float = 100.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers!r}')
        widths = [num_labels] + [hidden] * num_layers
        self.layers = nn.ModuleList(
            DenseGINLayer(i, o) for i, o in zip(widths[:-1], widths[1:]))
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


def fit_predictor(genotypes: Sequence[Genotype], targets: Sequence[float],
                  extra: Optional[np.ndarray] = None, uncertainty: bool = False,
                  num_layers: int = 3, hidden: int = 32, epochs: int = 600,
                  batch_size: int = 16, lr: float = 0.005, betas=(0.0, 0.9),
                  weight_decay: float = 1e-4, seed: int = 0,
                  num_threads: Optional[int] = 1, backend: str = 'auto',
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
        backend (str): ``'manual'`` trains the MSE predictor with the hand-written forward
            and backward of :class:`ManualMSETrainer` (same initialisation, minibatch order,
            loss and optimiser as ``'autograd'``, a fraction of its per-step overhead);
            ``'autograd'`` uses ``loss.backward()`` and ``torch.optim.Adam``. ``'auto'``:
            manual for the MSE predictor (NPENAS-NP), autograd with ``uncertainty``
            (NPENAS-BO), the default. Either way the result is a :class:`GINPredictor` in eval
            mode. Seeded search outcomes differ between the backends (see ``dtype``): same
            quality over seeds, different single runs.
        dtype (torch.dtype): Float type of the training computation; the returned model is
            float32 either way. float64 is for comparing the backends: Adam with
            ``beta1 = 0`` scales the rounding noise of gradients that are zero in exact
            arithmetic (a bias ahead of a BatchNorm whose ReLU is inactive) up to full steps,
            so two fits that differ only in rounding diverge, about tenfold every ten steps,
            until their held-out predictions differ by tenths of a point up to a few points;
            float64 starts that from 1e-16 instead of 1e-7.
    """
    if backend not in ('auto', 'manual', 'autograd'):
        raise ValueError(f"backend must be 'auto', 'manual' or 'autograd', got {backend!r}")
    if backend == 'manual' and uncertainty:
        raise ValueError("backend='manual' implements the MSE predictor only; use "
                         "backend='autograd' (or 'auto') with uncertainty=True")
    manual = backend == 'manual' or (backend == 'auto' and not uncertainty)
    args = (genotypes, targets, extra, uncertainty, num_layers, hidden, epochs, batch_size,
            lr, betas, weight_decay, seed, manual, dtype)
    if num_threads is None:
        return _fit(*args)
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _fit(*args)
    finally:
        torch.set_num_threads(before)


def _fit(genotypes, targets, extra, uncertainty, num_layers, hidden, epochs, batch_size, lr,
         betas, weight_decay, seed, manual=False, dtype=torch.float32):
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
        model = GINPredictor(num_layers, hidden, num_extra=0 if extra is None else
                             np.asarray(extra).shape[1], uncertainty=uncertainty)
    model.to(dtype)
    adj, labels = encode_graphs(genotypes)
    agg = self_loops(adj).to(dtype)
    first = torch.bmm(agg, labels.to(dtype))  # the first layer's input never changes
    y = torch.as_tensor(np.asarray(targets, dtype=np.float64)).to(dtype)
    ex = None if extra is None else torch.as_tensor(np.asarray(extra, dtype=np.float64)).to(
        dtype)
    if manual:
        trainer = ManualMSETrainer(model, first, agg, y, ex, lr=lr, betas=betas,
                                   weight_decay=weight_decay, dtype=dtype)
        trainer.fit(epochs, batch_size, gen)
        trainer.load_into(model)
        return model.eval().float()
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
            out = model.head(model.embed(agg[idx], None, None if ex is None else ex[idx],
                                         first=first[idx]))
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


class ManualMSETrainer:
    """The MSE fit of :class:`GINPredictor` (NPENAS-NP) with a hand-written backward pass.

    The graphs are tiny (a minibatch is 16 graphs x 41 nodes x 32 channels), so about half of
    an autograd step is per-op bookkeeping: recording the graph, saving tensors, dispatching
    about a hundred small kernels, and an optimiser that loops over 20 parameter tensors; the
    rest is some twenty small matrix products, which no implementation avoids. This class
    computes the same forward as ``GINPredictor.head(GINPredictor.embed(...))`` in train
    mode and its gradient with plain tensor operations under ``torch.no_grad`` (no graph is
    recorded), and runs Adam on one flat parameter vector of which every weight is a view, so
    an update is five vector operations.

    Same maths as the autograd path of :func:`fit_predictor` (docs/method.md section 6): each GIN
    layer ``BN(ReLU(W2 ReLU(W1 a + b1) + b2))`` on the aggregated input
    ``a = self_loops(adj) @ x``; BatchNorm in training mode (statistics over the minibatch's
    node rows, biased variance to normalise, unbiased variance in the running estimate, the
    layer's momentum and eps); mean pooling over nodes; extra features concatenated;
    ``sigmoid(w z + b) * scale``; MSE; L2 weight decay added to the gradients of the Linear
    weights only; Adam with bias correction.

    Args:
        model (GINPredictor): Supplies the architecture and the initial weights (copied);
            must have no std head.
        first (Tensor): ``(N, 41, C)`` first-layer aggregated input ``self_loops(adj) @ labels``.
        agg (Tensor): ``(N, 41, 41)`` ``self_loops(adj)``.
        targets (Tensor): ``(N,)`` targets (mIoU in percent).
        extra (Tensor, optional): ``(N, E)`` extra features, ``E == model.num_extra``.
        lr (float): Peak learning rate of the cosine schedule (see :meth:`fit`).
        betas (tuple[float, float]): Adam betas. Paper: (0, 0.9).
        weight_decay (float): L2 coefficient on the Linear weights. Paper: 1e-4.
        eps (float): Adam eps. torch's default: 1e-8.
        dtype (torch.dtype): Float type of the computation; float32 like the model.
    """

    def __init__(self, model: GINPredictor, first, agg, targets, extra=None, lr: float = 0.005,
                 betas=(0.0, 0.9), weight_decay: float = 1e-4, eps: float = 1e-8,
                 dtype: torch.dtype = torch.float32):
        if model.std_head is not None:
            raise ValueError('ManualMSETrainer trains the MSE predictor only, got a model with '
                             'a std head (uncertainty=True)')
        if (extra is None) != (model.num_extra == 0):
            raise ValueError(f'model expects {model.num_extra} extra features, got '
                             f'{None if extra is None else tuple(extra.shape)}')
        self.scale = float(model.scale)
        self.num_layers = len(model.layers)
        self.lr, self.betas = float(lr), (float(betas[0]), float(betas[1]))
        self.weight_decay, self.eps = float(weight_decay), float(eps)
        named = list(model.named_parameters())
        # Decayed tensors (Linear weights) first: weight decay is then one slice operation.
        decayed = [n for n, p in named if n.endswith('weight') and p.dim() > 1]
        order = decayed + [n for n, _ in named if n not in decayed]
        params = dict(named)
        sizes = [params[n].numel() for n in order]
        self.num_decayed = sum(sizes[:len(decayed)])
        self.flat = torch.cat([params[n].detach().reshape(-1) for n in order]).to(dtype)
        self.grad = torch.zeros_like(self.flat)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.p, self.g = {}, {}
        offset = 0
        for n, size in zip(order, sizes):
            self.p[n] = self.flat[offset:offset + size].view(params[n].shape)
            self.g[n] = self.grad[offset:offset + size].view(params[n].shape)
            offset += size
        self.layer_names = [
            tuple(f'layers.{i}.{s}' for s in ('mlp.0.weight', 'mlp.0.bias', 'mlp.2.weight',
                                              'mlp.2.bias', 'bn.weight', 'bn.bias'))
            for i in range(self.num_layers)
        ]
        self.bn_eps = [float(layer.bn.eps) for layer in model.layers]
        self.bn_momentum = [float(layer.bn.momentum) for layer in model.layers]
        self.running_mean = [layer.bn.running_mean.detach().to(dtype, copy=True)
                             for layer in model.layers]
        self.running_var = [layer.bn.running_var.detach().to(dtype, copy=True)
                            for layer in model.layers]
        self.num_batches_tracked = int(model.layers[0].bn.num_batches_tracked)
        self.first = first.to(dtype).contiguous()
        self.agg = agg.to(dtype).contiguous()
        self.targets = targets.to(dtype)
        self.extra = None if extra is None else extra.to(dtype)
        self.steps = 0

    @torch.no_grad()
    def loss_and_grad(self, first, agg, targets, extra=None):
        """Forward and backward on one minibatch: fills :attr:`grad` (without weight decay),
        updates the BatchNorm running statistics and returns the MSE loss (a float).

        Args:
            first, agg, targets, extra: The minibatch's rows of the constructor's tensors.
        """
        p, g = self.p, self.g
        b, nodes, _ = first.shape
        rows = b * nodes
        saved = []
        x = first
        for i, names in enumerate(self.layer_names):
            w1, b1, w2, b2, gamma, beta = (p[n] for n in names)
            a = (x if i == 0 else torch.bmm(agg, x)).reshape(rows, -1)
            h1 = torch.addmm(b1, a, w1.t()).relu_()
            h2 = torch.addmm(b2, h1, w2.t()).relu_()
            # (torch.var_mean over dim 0 is several times slower than these four ops.)
            mean = h2.sum(dim=0).div_(rows)
            xhat = h2 - mean
            var = xhat.square().sum(dim=0).div_(rows)
            inv_std = (var + self.bn_eps[i]).rsqrt_()
            xhat.mul_(inv_std)
            m = self.bn_momentum[i]
            self.running_mean[i].lerp_(mean, m)
            self.running_var[i].mul_(1 - m).add_(var, alpha=m * rows / (rows - 1))
            saved.append((a, h1, h2, xhat, inv_std))
            x = torch.addcmul(beta, xhat, gamma).view(b, nodes, -1)
        self.num_batches_tracked += 1
        hidden = x.shape[2]
        z = x.mean(dim=1)
        if extra is not None:
            z = torch.cat([z, extra], dim=1)
        w = p['mean_head.weight']
        s = torch.addmv(p['mean_head.bias'], z, w[0]).sigmoid_()
        err = s * self.scale - targets
        loss = float(err.dot(err)) / b
        # d loss / d logit of the output layer
        dlogit = err.mul_(s * (1 - s)).mul_(2 * self.scale / b)
        torch.mv(z.t(), dlogit, out=g['mean_head.weight'][0])
        g['mean_head.bias'][0] = dlogit.sum()
        dpool = torch.outer(dlogit, w[0, :hidden] / nodes)
        dout = dpool[:, None, :].expand(b, nodes, hidden).reshape(rows, hidden)
        for i in reversed(range(self.num_layers)):
            gw1, gb1, gw2, gb2, dgamma, dbeta = (g[n] for n in self.layer_names[i])
            w1, _, w2, _, gamma, _ = (p[n] for n in self.layer_names[i])
            a, h1, h2, xhat, inv_std = saved[i]
            torch.sum(dout * xhat, dim=0, out=dgamma)
            torch.sum(dout, dim=0, out=dbeta)
            # BatchNorm backward with batch statistics:
            # gamma / std * (dout - mean(dout) - xhat * mean(dout * xhat)), where
            # sum(dout) = dbeta and sum(dout * xhat) = dgamma.
            coef = (gamma * inv_std).div_(rows)
            dh = dout * (coef * rows)
            dh.sub_(coef * dbeta).addcmul_(xhat, coef * dgamma, value=-1)
            # h2 and h1 are ReLU outputs (>= 0), so their sign is the ReLU's 0/1 derivative
            # (a float multiply; a bool mask would cost a dtype conversion).
            dh.mul_(h2.sign())
            torch.mm(dh.t(), h1, out=gw2)
            torch.sum(dh, dim=0, out=gb2)
            dh = torch.mm(dh, w2).mul_(h1.sign())
            torch.mm(dh.t(), a, out=gw1)
            torch.sum(dh, dim=0, out=gb1)
            if i > 0:
                da = torch.mm(dh, w1).view(b, nodes, -1)
                dout = torch.bmm(agg.transpose(1, 2), da).view(rows, -1)
        return loss

    @torch.no_grad()
    def adam_step(self, lr: float):
        """One Adam update of :attr:`flat` from :attr:`grad` plus the L2 weight decay."""
        g = self.grad
        if self.weight_decay:
            g[:self.num_decayed].add_(self.flat[:self.num_decayed], alpha=self.weight_decay)
        self.steps += 1
        beta1, beta2 = self.betas
        self.exp_avg.lerp_(g, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - beta2**self.steps)).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-lr / (1 - beta1**self.steps))

    def fit(self, epochs: int, batch_size: int, generator: torch.Generator):
        """``epochs`` passes in the order of ``torch.randperm(N, generator=generator)``, the
        learning rate on a cosine from ``lr`` to 0 stepped per minibatch, minibatches as the
        autograd path of :func:`fit_predictor` cuts them."""
        n = len(self.targets)
        total = epochs * math.ceil(n / batch_size)
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            # Gather once per epoch: every minibatch is then a view.
            first, agg, targets = self.first[order], self.agg[order], self.targets[order]
            extra = None if self.extra is None else self.extra[order]
            for start in range(0, n, batch_size):
                end = start + batch_size
                if n - start < 2:  # BatchNorm needs more than one graph's statistics
                    start -= 1
                self.loss_and_grad(first[start:end], agg[start:end], targets[start:end],
                                   None if extra is None else extra[start:end])
                self.adam_step(self.lr * 0.5 * (1 + math.cos(math.pi * self.steps / total)))

    @torch.no_grad()
    def load_into(self, model: GINPredictor) -> GINPredictor:
        """Copy the trained weights and BatchNorm running statistics into ``model``."""
        for n, param in model.named_parameters():
            param.copy_(self.p[n])
        for i, layer in enumerate(model.layers):
            layer.bn.running_mean.copy_(self.running_mean[i])
            layer.bn.running_var.copy_(self.running_var[i])
            layer.bn.num_batches_tracked.fill_(self.num_batches_tracked)
        return model


@torch.no_grad()
def predict(model: GINPredictor, genotypes: Sequence[Genotype],
            extra: Optional[np.ndarray] = None, chunk: int = 1024):
    """Predicted mIoU for every genotype: an ``(N,)`` array, or ``(mean, std)`` arrays."""
    model.eval()
    adj, labels = encode_graphs(genotypes)
    ex = None if extra is None else torch.as_tensor(np.asarray(extra, dtype=np.float32))
    outs = []
    for s in range(0, len(genotypes), chunk):
        outs.append(model(adj[s:s + chunk], labels[s:s + chunk],
                          None if ex is None else ex[s:s + chunk]))
    if model.std_head is None:
        return torch.cat(outs).numpy()
    return (torch.cat([o[0] for o in outs]).numpy(), torch.cat([o[1] for o in outs]).numpy())
