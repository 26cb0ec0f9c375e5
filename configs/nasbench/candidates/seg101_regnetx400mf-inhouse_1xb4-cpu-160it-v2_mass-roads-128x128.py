# SEG101-Bench v2 candidate recipe (pilot): v1's training (160 iterations on 128x128 crops from
# the shared in-house backbone) with an evaluation that measures segmentation, not calibration:
# - validation on the whole 512x512 tiles of 20 val tiles (every fourth), not their centres;
# - SegPaperMetric(threshold_free=True) adds road AP and IoU / F1 at the best threshold, which
#   a network that over-predicts roads (the class-weighted loss makes short runs do so) still
#   earns when it ranks road pixels well;
# - dense validation near the end (40, 80, 120, then 140, 150, 160), so that the mean of the
#   last checkpoints can be a target and the curve holds the rungs 40 / 80 / 160.
# The backbone is trained once with the ISA pinned, so that other x86 machines can regenerate
# the same weights (its hash is recorded in every entry):
#   OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
#   python tools/pretrain_backbone.py \
#       configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py \
#       --data-root data/mass_roads_all --seed 0 \
#       --out ~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0_avx2.pth
_base_ = ['./seg101_regnetx400mf-inhouse_1xb4-cpu-160it_mass-roads-128x128.py']
backbone_checkpoint = '~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0_avx2.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=backbone_checkpoint)))
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_cfg = dict(val_interval=40, dynamic_intervals=[(140, 10)])
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
val_evaluator = dict(type='SegPaperMetric', target_class='road', threshold_free=True)
test_evaluator = val_evaluator
