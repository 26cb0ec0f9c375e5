# SEG101 on the WHU-layout building tiles with the small-scale CPU protocol, starting from the
# in-house RegNetX-400MF backbone trained on the Massachusetts Roads sample (the other dataset;
# ImageNet weights cannot be downloaded here) instead of a random initialisation: the
# shared-backbone side of docs/datasets.md, 'The CPU protocol'. The backbone comes from
#   python tools/pretrain_backbone.py \
#       configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py \
#       --data-root data/mass_roads_all --seed 0 \
#       --out ~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0.pth
# (data/mass_roads_all: the Massachusetts sample converted with the converter's defaults).
_base_ = ['./seg101_regnetx400mf_1xb4-cpu-2k_whu-building-256x256.py']
backbone_checkpoint = '~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True, type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')))
