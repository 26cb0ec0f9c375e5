# WHU aerial building tiles (512x512), converted by tools/dataset_converters/whu_building.py
# into 0/1 masks (docs/method.md s. 9). Augmentation of docs/method.md s. 7: resize by a factor
# drawn from {1, 1.5, 2}, random 512x512 crop, horizontal flip with probability 0.5.
dataset_type = 'WHUBuildingDataset'
data_root = 'data/whu_building'
crop_size = (512, 512)
# The tiles are 512x512 (the converter pads smaller ones), so these three keep-ratio scales are
# exactly the factors 1, 1.5 and 2 (RandomResize with ratio_range would draw a continuous
# factor instead).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[(512, 512), (768, 768), (1024, 1024)],
        resize_type='Resize',
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    # annotations are loaded after Resize: metrics are computed at the tile's own size
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/test', seg_map_path='ann_dir/test'),
        pipeline=test_pipeline))
# mIoU, IoU.background, IoU.building, FWIoU, PA, MPA, Precision/Recall/F1.building, in percent
val_evaluator = dict(type='SegPaperMetric', target_class='building')
test_evaluator = val_evaluator
