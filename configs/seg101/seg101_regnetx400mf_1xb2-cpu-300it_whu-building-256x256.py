# SEG101 on WHU Building, small enough for a CPU: random 256x256 crops (after the paper's
# resize by 1, 1.5 or 2) at batch 2 for 300 iterations from a randomly initialised backbone,
# evaluated on whole 512x512 tiles. A small-scale check that training works on real tiles,
# not the paper's recipe (see the 2xb2-100e config for that).
_base_ = [
    '../_base_/models/seg101_regnetx400mf.py', '../_base_/datasets/whu_building_cpu-256x256.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cpu-300it.py'
]
# The SEG101 architecture trained here: the reference genotype of
# configs/_base_/models/seg101_regnetx400mf.py, written out so that it can be swapped (set it in
# both the neck and the decode head). The paper does not publish its searched architecture;
# replace it with the winner of a search (docs/datasets.md, 'Configs').
genotype = ('ga=conv3x3,dil3_conv3x3,conv3x3,avgpool_0.25;'
            'gb=se,dil3_conv3x3,self_attention,avgpool_0.25;'
            'st=conv3x3,dil3_conv3x3,dil5_conv3x3,avgpool_0.75;'
            'h0=01+02+13/01+12;h1=02+03+23/01+02;hm=concat_head')
model = dict(
    data_preprocessor=dict(size=(256, 256)),
    neck=dict(genotype=genotype),
    decode_head=dict(genotype=genotype))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
