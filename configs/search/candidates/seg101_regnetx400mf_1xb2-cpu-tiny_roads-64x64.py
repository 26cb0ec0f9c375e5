# Training recipe of one search candidate, shrunk for a CPU: the optimiser, warmup and poly decay
# of docs/method.md s. 7 on 64x64 crops (after a resize by 1, 1.5 or 2 of 64x64 scenes), batch 2,
# a few iterations (the search config sets them), one validation at the end. The learning rate
# is 0.05 instead of the paper's 0.01: in a few dozen iterations 0.01 leaves nearly every
# candidate predicting background only, and the search would compare ties.
# The search loop copies this config per candidate with the candidate's genotype, data_root and
# seed as literals (see configs/search/README in docs/search.md). No checkpoint is written: the
# search only needs the final val metrics.
_base_ = [
    '../../_base_/models/seg101_regnetx400mf.py', '../../_base_/datasets/mass_roads.py',
    '../../_base_/default_runtime.py', '../../_base_/schedules/sgd-poly_warmup1k.py'
]
crop_size = (64, 64)
max_iters = 20
warmup_iters = 5
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomChoiceResize',
        scales=[(64, 64), (96, 96), (128, 128)],
        resize_type='Resize',
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)
]
optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=10), checkpoint=None)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
