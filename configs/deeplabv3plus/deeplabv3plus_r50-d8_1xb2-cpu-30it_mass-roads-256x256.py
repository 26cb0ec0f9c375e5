# DeepLabV3+ R50-D8 on Massachusetts Roads for a 15-minute CPU run: the 300-iteration CPU config
# cut to 30 iterations (5 of warmup) and without the validation pass at the end, because one
# 512x512 forward of R50-D8 takes several seconds on a 2-core CPU and testing the 80 sample test
# tiles alone takes about 10 minutes. A check that the model trains and tests end to end on
# real tiles; far too short to learn roads from a random initialisation.
_base_ = ['./deeplabv3plus_r50-d8_1xb2-cpu-300it_mass-roads-256x256.py']
max_iters = 30
warmup_iters = 5
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0,
        end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
val_dataloader = None
val_evaluator = None
val_cfg = None
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
