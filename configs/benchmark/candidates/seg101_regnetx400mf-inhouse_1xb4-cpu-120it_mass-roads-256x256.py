# Training recipe of one SEG101-Bench entry on real Massachusetts tiles, for a CPU: the search's
# real-tile candidate recipe (the CPU protocol from the in-house backbone) at 120 iterations,
# validated every 30 iterations for a learning curve (1/4, 1/2, 3/4 and the end of training),
# then tested once on the whole test split. Validation is cheap and fixed: 20 of the 80 val
# tiles (every fourth) at their full 512x512. About 4 minutes per entry with two at once on
# 2 cores (docs/study.md, 'The protocol').
_base_ = ['../../search/candidates/seg101_regnetx400mf-inhouse_1xb4-cpu-150it_mass-roads-256x256.py']
max_iters = 120
warmup_iters = 12
val_interval = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
