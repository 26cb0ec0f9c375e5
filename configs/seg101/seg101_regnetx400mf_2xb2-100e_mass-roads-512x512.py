# SEG101 on Massachusetts Roads, the full recipe (ImageNet-pretrained backbone, best val IoU of
# the road class kept): docs/method.md section 7, batch 4 as 2 GPUs x 2 images, 512x512 crops, 100
# epochs of the paper's training tiles.
_base_ = [
    '../_base_/models/seg101_regnetx400mf.py', '../_base_/datasets/mass_roads.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_mass-roads_100e.py'
]
# The SEG101 architecture trained here: the reference genotype of
# configs/_base_/models/seg101_regnetx400mf.py, written out so that it can be swapped (set it in
# both the neck and the decode head). The paper does not publish its searched architecture;
# replace it with the winner of a search (docs/datasets.md, 'Configs').
genotype = ('ga=conv3x3,dil3_conv3x3,conv3x3,avgpool_0.25;'
            'gb=se,dil3_conv3x3,self_attention,avgpool_0.25;'
            'st=conv3x3,dil3_conv3x3,dil5_conv3x3,avgpool_0.75;'
            'h0=01+02+13/01+12;h1=02+03+23/01+02;hm=concat_head')
train_dataloader = dict(batch_size=2)
# batches are padded to the crop size (mmseg's data preprocessor needs it for training)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/regnet/regnet'
            'x-400mf_8xb128_in1k_20211213-89bfc226.pth',
            prefix='backbone.')),
    neck=dict(genotype=genotype),
    decode_head=dict(genotype=genotype))
