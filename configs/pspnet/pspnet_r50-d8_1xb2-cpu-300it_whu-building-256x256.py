# PSPNet R50-D8 on WHU Building, small enough for a CPU: mmseg's model with 2 classes, BN
# instead of SyncBN (no process group on a CPU), random initialisation (no download), random
# 256x256 crops after the paper's resize by 1, 1.5 or 2, batch 2, 300 iterations, evaluated on
# whole 512x512 tiles. A small-scale check, not the paper's recipe.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/whu_building_cpu-256x256.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cpu-300it.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(256, 256)),
    pretrained=None,
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=2, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=2, norm_cfg=norm_cfg))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
