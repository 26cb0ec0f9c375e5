# DeepLabV3+ R50-D8 on WHU Building with the small-scale CPU protocol (docs/datasets.md, 'The CPU
# protocol'), the same data, crops, batch, optimiser and iterations as SEG101's
# seg101_regnetx400mf_1xb4-cpu-2k config: random 256x256 crops, batch 4, AdamW for 2000
# iterations, from a random initialisation (no download), BN instead of SyncBN (no process
# group on a CPU).
_base_ = [
    '../_base_/models/deeplabv3plus_r50-d8.py', '../_base_/datasets/whu_building_cpu-256x256.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cpu-adamw-2k.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
# the protocol's class-weighted cross-entropy (building x2), as in the SEG101 config
model = dict(
    data_preprocessor=dict(size=(256, 256)),
    pretrained=None,
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(
        norm_cfg=norm_cfg,
        loss_decode=dict(
            _delete_=True,
            type='TopKPixelCrossEntropyLoss',
            top_k_percent=1.0,
            class_weight=[1.0, 2.0],
            loss_weight=1.0)),
    auxiliary_head=dict(
        norm_cfg=norm_cfg,
        loss_decode=dict(
            _delete_=True,
            type='TopKPixelCrossEntropyLoss',
            top_k_percent=1.0,
            class_weight=[1.0, 2.0],
            loss_weight=0.4)))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
