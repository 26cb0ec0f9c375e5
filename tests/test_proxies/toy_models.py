"""Small segmentors for the proxy tests: closed-form toys and tiny mmseg EncoderDecoders."""
import torch
import torch.nn as nn


class StackPreprocessor(nn.Module):
    """Stacks uint8 CHW images as float, like a data preprocessor with mean 0 and std 1."""

    def forward(self, data, training=False):
        return dict(inputs=torch.stack(data['inputs']).float(), data_samples=data['data_samples'])


class _Head(nn.Module):

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)


class ToySegmentor(nn.Module):
    """A segmentor with mmseg's interface: ``loss(x, samples)`` calls ``decode_head.forward``
    and returns ``0.5 * sum((logits - onehot)^2) / N`` (squared error, mean over images).

    Args:
        body (nn.Module): the decode head's network, C -> K channels.
        num_classes (int): K.
    """

    def __init__(self, body, num_classes=2):
        super().__init__()
        self.data_preprocessor = StackPreprocessor()
        self.decode_head = _Head(body)
        self.num_classes = num_classes

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.decode_head(inputs)

    def loss(self, inputs, data_samples):
        logits = self.decode_head.forward(inputs)
        labels = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
        onehot = nn.functional.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float()
        err = logits - onehot
        return {
            'decode.loss_mse': 0.5 * (err * err).sum() / inputs.shape[0],
            'decode.acc_seg': torch.zeros(())
        }


def tiny_encoder_decoder(dropout_ratio=0.1, channels=8, depth=18):
    """A tiny mmseg EncoderDecoder: ResNetV1c (2 stages, 8 base channels) and an FCNHead."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import seg101_mm  # noqa: F401
    norm = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(
            type='ResNetV1c',
            depth=depth,
            num_stages=2,
            out_indices=(0, 1),
            strides=(1, 2),
            dilations=(1, 1),
            stem_channels=channels,
            base_channels=channels,
            norm_cfg=norm),
        decode_head=dict(
            type='FCNHead',
            in_channels=2 * channels,
            in_index=1,
            channels=channels,
            num_convs=1,
            num_classes=2,
            norm_cfg=norm,
            dropout_ratio=dropout_ratio,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model
