# A short CPU schedule for honest quick runs on a laptop: the optimiser and poly decay of
# docs/method.md s. 7, shortened to 300 iterations with a 50-iteration warmup (the paper's 1000
# iterations of warmup would be longer than the whole run). Validation and the checkpoint at
# the end only.
_base_ = ['./sgd-poly_warmup1k.py']
max_iters = 300
warmup_iters = 50
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0,
        end=max_iters)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
