# Full training of a searched architecture (docs/method.md section 7): the search recipe for 100
# epochs of Massachusetts Roads (201900 iterations at a total batch of 4 = 2 GPUs x 2), random
# 512x512 crops after a resize by 1, 1.5 or 2, validation every 10 epochs keeping the best
# IoU of the road class. The search exports the best genotype into a standalone copy of this
# config. The paper starts from an ImageNet-pretrained backbone: set
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.').
_base_ = [
    '../../_base_/models/seg101_regnetx400mf.py', '../../_base_/datasets/mass_roads.py',
    '../../_base_/default_runtime.py', '../../_base_/schedules/schedule_mass-roads_100e.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=2)
