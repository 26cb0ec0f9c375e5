# WHU Building for CPU runs: random 256x256 crops after the paper's resize by 1, 1.5 or 2,
# batch 4, one loader worker; validation and test stay on whole 512x512 tiles. A crop in which
# one class covers more than 95 % of the labelled pixels is redrawn (up to 10 times), so that
# most crops hold some building.
_base_ = ['./whu_building.py']
crop_size = (256, 256)
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
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=1)
test_dataloader = dict(num_workers=1)
