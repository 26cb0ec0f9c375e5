# Training recipe of one real-tile candidate on Massachusetts tiles, for a CPU: the CPU
# protocol (configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py) shortened to
# 150 iterations: 2 to 16 minutes per random network on one core (0.7 to 6.3 s per iteration;
# the real-tile search uses SEG101-Bench's 128x128 version of it, configs/nasbench/candidates).
# As in the paper, every candidate starts from the same trained backbone and only the neck and head
# differ; here that backbone is trained in-house on the train split (ImageNet weights cannot be
# downloaded) by
#   python tools/pretrain_backbone.py \
#       configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py \
#       --data-root data/mass_roads --seed 0 \
#       --out ~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0.pth
# (docs/datasets.md, 'The CPU protocol'). Validation is cheap and fixed: 20 of the 80 val
# tiles (every fourth, so four of each val image) at their full 512x512.
_base_ = ['../../seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py']
backbone_checkpoint = '~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0.pth'
max_iters = 150
warmup_iters = 15
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True, type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
train_dataloader = dict(num_workers=0, persistent_workers=False)
val_dataloader = dict(
    num_workers=0, persistent_workers=False, dataset=dict(indices=list(range(0, 80, 4))))
test_dataloader = dict(num_workers=0, persistent_workers=False)
# the search reads the final val metrics only: no checkpoint
default_hooks = dict(logger=dict(interval=25), checkpoint=None)
