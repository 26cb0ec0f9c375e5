"""Size and zero-cost scores of a candidate's network, for the strategy's optional guidance
(``constraints``, ``prefilter``, ``predictor_features``; docs/search.md)."""
import copy
from typing import Sequence

import torch

from seg101_mm.space import Genotype
from .config_writer import set_genotype

#: Measures computed here; every other name is a registered zero-cost proxy.
SIZE_MEASURES = ('params', 'flops')


class ModelMeasure:
    """``genotype -> {name: float}``: size and zero-cost scores of the candidate's network.

    ``params`` (parameter count) and ``flops`` (multiply-accumulates of one eval-mode forward
    of one ``input_size`` image, counted by mmengine's FlopAnalyzer) are computed here; every
    other name goes to :func:`seg101_mm.proxies.compute_proxies` on a random batch.

    Args:
        model_cfg (dict): The candidate template's ``model`` (its genotype is replaced).
        names (list[str]): ``params``, ``flops`` and/or proxy names (``snip``, ``synflow``...).
        input_size (tuple[int, int]): Image size of the FLOP count and the random batch.
        batch_size (int): Images of the random batch of the proxies.
        seed (int): Seed of weights and batch.
    """

    def __init__(self,
                 model_cfg: dict,
                 names: Sequence[str] = SIZE_MEASURES,
                 input_size=(64, 64),
                 batch_size: int = 2,
                 seed: int = 0):
        self.model_cfg = model_cfg
        self.names = list(names)
        self.input_size = tuple(input_size)
        self.batch_size = batch_size
        self.seed = seed

    def build(self, genotype):
        """The candidate's segmentor, initialised from :attr:`seed`."""
        from seg101_mm.models.builder import build_segmentor
        cfg = {'model': copy.deepcopy(self.model_cfg)}
        set_genotype(cfg, genotype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return build_segmentor(cfg['model'])

    def __call__(self, genotype: Genotype):
        model = self.build(genotype)
        out = {}
        if 'params' in self.names:
            out['params'] = float(sum(p.numel() for p in model.parameters()))
        if 'flops' in self.names:
            out['flops'] = self.flops(model)
        proxies = [n for n in self.names if n not in SIZE_MEASURES]
        if proxies:
            from seg101_mm.proxies import compute_proxies, random_batch
            batch = random_batch(batch_size=self.batch_size, size=self.input_size, seed=self.seed)
            out.update(compute_proxies(model, batch, proxies, seed=self.seed))
        return {n: float(out[n]) for n in self.names}

    def flops(self, model):
        from seg101_mm.proxies.flops import count_flops
        return count_flops(model, torch.zeros(1, 3, *self.input_size))
