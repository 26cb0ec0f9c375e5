# Search-candidate recipe (docs/method.md section 7) on WHU Building: 20 epochs of the paper's
# 4736 training tiles at batch 4 = 4736 * 20 / 4 = 23680 iterations. One validation at the
# end (the search objective is val mIoU), and only the final checkpoint is kept.
_base_ = ['./sgd-poly_warmup1k.py']
max_iters = 23680
warmup_iters = 1000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
