# SEG101 on an mmpretrain RegNetX-400MF backbone (docs/method.md sections 1-3).
# Child configs that change the architecture must set the genotype in BOTH places:
#   model = dict(neck=dict(genotype=G), decode_head=dict(genotype=G))
# ImageNet weights: set model.backbone.init_cfg to
#   dict(type='Pretrained', checkpoint='<path or URL of an mmpretrain RegNetX-400MF checkpoint>',
#        prefix='backbone.')
genotype = ('ga=conv3x3,dil3_conv3x3,conv3x3,avgpool_0.25;'
            'gb=se,dil3_conv3x3,self_attention,avgpool_0.25;'
            'st=conv3x3,dil3_conv3x3,dil5_conv3x3,avgpool_0.75;'
            'h0=01+02+13/01+12;h1=02+03+23/01+02;hm=concat_head')
norm_cfg = dict(type='BN', requires_grad=True)
stage_channels = (32, 64, 160, 384)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.RegNet',
        arch='regnetx_400mf',
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=None),
    neck=dict(
        type='SEG101EnhanceNeck', genotype=genotype, in_channels=stage_channels,
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='SEG101FusionHead',
        genotype=genotype,
        in_channels=stage_channels,
        num_classes=2,
        norm_cfg=norm_cfg,
        loss_decode=dict(type='TopKPixelCrossEntropyLoss', top_k_percent=0.2, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
# A genotype may leave a stage unread by both heads: its stage op (and the backbone stage, when
# nothing later uses it) then gets no gradient, which DDP must be told about.
find_unused_parameters = True
