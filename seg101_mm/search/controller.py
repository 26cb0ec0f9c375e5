"""The placeholder model of a search config (``model = dict(type='SearchController')``).

mmengine's Runner needs a model and an optimiser to enter ``train()``; the search trains its
candidates in their own jobs, so this model is never run.
"""
import torch
from mmengine.model import BaseModel
from mmseg.registry import MODELS


@MODELS.register_module()
class SearchController(BaseModel):
    """The model of a search config: one unused parameter, so that the Runner can start.

    The search trains candidates in separate jobs (or Runners); this model is never run.
    """

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        raise RuntimeError('SearchController is the placeholder model of a search config; it '
                           'is not meant to be run (candidates train in their own jobs)')
