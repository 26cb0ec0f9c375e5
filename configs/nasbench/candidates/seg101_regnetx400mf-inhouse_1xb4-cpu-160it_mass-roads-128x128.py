# Training recipe of one SEG101-Bench entry on real Massachusetts tiles, for a CPU: the search's
# real-tile candidate recipe (the CPU protocol from the in-house backbone) on 128x128 crops for
# 160 iterations, validated every 40 for a learning curve (1/4, 1/2, 3/4 and the end of
# training), then tested once. Random SEG101 networks differ six-fold in training cost (0.7 to
# 6.3 s per iteration of batch 4 at 256x256 on one core); at 128x128 the average network trains
# in about 2.5 minutes on one core, so two entries run at once on 2 cores. Evaluation is cheap
# and fixed: validation on the central 256x256 of 20 of the 80 val tiles (every fourth), the
# test on 20 of the 80 test tiles (every fourth) at their full 512x512 (docs/study.md,
# 'The protocol').
_base_ = [
    '../../search/candidates/seg101_regnetx400mf-inhouse_1xb4-cpu-150it_mass-roads-256x256.py'
]
crop_size = (128, 128)
max_iters = 160
warmup_iters = 16
val_interval = 40
eval_subset = list(range(0, 80, 4))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[(512, 512), (768, 768), (1024, 1024)],
        resize_type='Resize',
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.95),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs')
]
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CenterCropTile', crop_size=256),
    dict(type='PackSegInputs')
]
model = dict(data_preprocessor=dict(size=crop_size))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(indices=eval_subset, pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(indices=eval_subset))
