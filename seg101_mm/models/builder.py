"""Build a SEG101 segmentor from a genotype in code (the configs do the same in files)."""
import copy

from mmseg.registry import MODELS

from seg101_mm.space import Genotype
from .ops import REGNETX_400MF_CHANNELS

#: ImageNet mean and std in RGB (docs/method.md section 1).
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]


def seg101_model_cfg(genotype,
                     num_classes=2,
                     backbone_checkpoint=None,
                     crop_size=None,
                     norm_cfg=dict(type='BN', requires_grad=True),
                     top_k_percent=0.2):
    """The mmseg model config of SEG101 for ``genotype``, as a plain dict.

    With the defaults it is the ``model`` of ``configs/_base_/models/seg101_regnetx400mf.py``
    for that genotype (the tests compare the two).

    Args:
        genotype (str | Genotype): the architecture.
        num_classes (int): output classes. Default: 2.
        backbone_checkpoint (str, optional): path or URL of ImageNet RegNetX-400MF weights
            (an mmpretrain checkpoint whose backbone keys start with ``backbone.``). Default:
            None (random init).
        crop_size (tuple[int, int], optional): training crop the data preprocessor pads to.
        norm_cfg (dict): normalisation of neck and head (``SyncBN`` for multi-GPU training).
        top_k_percent (float): fraction of hardest pixels in the loss. Default: 0.2.
    """
    text = str(Genotype.parse(genotype))
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f'num_classes must be an int >= 2, got {num_classes!r}')
    init_cfg = None
    if backbone_checkpoint is not None:
        init_cfg = dict(type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')
    data_preprocessor = dict(
        type='SegDataPreProcessor',
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255)
    if crop_size:
        data_preprocessor['size'] = tuple(crop_size)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=data_preprocessor,
        backbone=dict(
            type='mmpretrain.RegNet',
            arch='regnetx_400mf',
            out_indices=(0, 1, 2, 3),
            norm_cfg=copy.deepcopy(norm_cfg),
            init_cfg=init_cfg),
        neck=dict(
            type='SEG101EnhanceNeck',
            genotype=text,
            in_channels=REGNETX_400MF_CHANNELS,
            norm_cfg=copy.deepcopy(norm_cfg)),
        decode_head=dict(
            type='SEG101FusionHead',
            genotype=text,
            in_channels=REGNETX_400MF_CHANNELS,
            num_classes=num_classes,
            norm_cfg=copy.deepcopy(norm_cfg),
            loss_decode=dict(
                type='TopKPixelCrossEntropyLoss', top_k_percent=top_k_percent, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def build_seg101(genotype, num_classes=2, init_weights=True, **kwargs):
    """Build (and by default initialise) the SEG101 EncoderDecoder for ``genotype``.

    Keyword arguments go to :func:`seg101_model_cfg`.
    """
    return build_segmentor(
        seg101_model_cfg(genotype, num_classes=num_classes, **kwargs), init_weights=init_weights)


def without_pretrained(cfg):
    """Drop every ``init_cfg=dict(type='Pretrained', ...)`` of a model config, in place and
    recursively, and return it: zero-cost proxies score the randomly initialised network
    (docs/method.md section 8), and nothing is loaded or downloaded."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for v in cfg.values():
            without_pretrained(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            without_pretrained(v)
    return cfg


def build_segmentor(model_cfg, init_weights=True):
    """Build a segmentor from an mmseg ``model`` config dict in the mmseg scope, and by
    default initialise it (:func:`quiet_init_weights`)."""
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope

    # the modules are registered: importing this module ran the package's initialisation
    # ConfigDict: mmseg reads train_cfg / test_cfg by attribute
    cfg = ConfigDict(copy.deepcopy(model_cfg))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    if init_weights:
        quiet_init_weights(model)
    return model


def quiet_init_weights(model):
    """``model.init_weights()`` without mmengine's per-parameter INFO dump."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
