"""flops: multiply-accumulates of one forward on one image of the batch's size.

Counted by ``mmengine.analysis.FlopAnalyzer`` (mmseg's own get_flops tool is broken with this
mmengine, see STACK.md trap 5), on ``model(x, mode='tensor')`` in eval mode without gradients.
"""
import torch
from mmengine.analysis import FlopAnalyzer

from .registry import PROXIES, BaseProxy


@PROXIES.register_module(name='flops')
class Flops(BaseProxy):
    name = 'flops'
    requires = ()

    def score(self, ctx):
        return count_flops(ctx.model, ctx.inputs[:1].detach())


def count_flops(model, x):
    """Multiply-accumulates of ``model(x, mode='tensor')``, counted in eval mode.

    Eval mode gives the same count and lets BN accept one image with 1x1 pooled maps; the
    model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(_TensorForward(model), inputs=(x, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return float(analyzer.total())
    finally:
        model.train(was_training)


class _TensorForward(torch.nn.Module):
    """``model(x, mode='tensor')`` as a one-argument module, for tracing."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')
