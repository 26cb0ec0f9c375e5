# PSPNet R50-D8 on WHU Building with the paper's training recipe (docs/method.md s. 7): mmseg's
# own model config with 2 classes, SyncBN over 2 GPUs x 2 images, 100 epochs, 512x512 crops,
# ImageNet-pretrained ResNet-50-V1c (mmseg's 'open-mmlab://resnet50_v1c'; offline, set
# model.pretrained to a local checkpoint path).
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/whu_building.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_whu-building_100e.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2))
train_dataloader = dict(batch_size=2)
