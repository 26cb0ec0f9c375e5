# DeepLabV3+ R50-D8: a depthwise-separable ASPP head (rates 1, 12, 24, 36) on the dilated
# ResNet-50-V1c, fused with the stride-4 features, as in mmseg's model zoo.
_base_ = ['./resnet50-v1c-d8.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
