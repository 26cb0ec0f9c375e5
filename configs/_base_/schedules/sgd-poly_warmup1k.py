# The training recipe of docs/method.md section 7, without its length: SGD lr 0.01, momentum 0.9,
# weight decay 1e-4 with no decay on normalisation layers (BN gamma/beta), poly decay of power
# 0.9 to 0 over the whole run, multiplied during the first 1000 iterations by a linear warmup
# from factor 0.001 (the two schedulers overlap and chain, as detectron2's WarmupPolyLR does).
# The dataset schedules next to this file set `max_iters` and the scheduler ends.
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    clip_grad=None,
    paramwise_cfg=dict(norm_decay_mult=0.0))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
