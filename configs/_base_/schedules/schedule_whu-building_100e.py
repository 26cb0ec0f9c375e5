# Full training recipe (docs/method.md section 7) on WHU Building: 100 epochs of the paper's
# 4736 training tiles at batch 4 = 4736 * 100 / 4 = 118400 iterations. Validation every
# 10 epochs; the checkpoint with the best val IoU of the building class is kept.
_base_ = ['./sgd-poly_warmup1k.py']
max_iters = 118400
warmup_iters = 1000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=11840)
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False, interval=11840, max_keep_ckpts=1, save_best='IoU.building',
        rule='greater'))
