# NPENAS-NP on real Massachusetts tiles on a CPU: 16 candidates of SEG101 on RegNetX-400MF,
# 10 random then 2 predictor-guided rounds of 3, each trained by tools/dist_train.sh (gloo, one
# process of one thread, two candidates at once) with SEG101-Bench's real-tile recipe: the CPU
# protocol from a backbone trained in-house once, 160 iterations on 128x128 crops, so that the
# candidates' scores lie on the scale of the benchmark's 100 entries (docs/study.md). A random
# network trains in 2.7 minutes on one core (median of the benchmark; 0.9 to 14 minutes).
# Candidates are ranked by val road IoU: after 160 iterations the val mIoU of random networks
# spreads less than one network's seed noise, the road IoU two to three times more
# (docs/search.md, 'A search on the Massachusetts sample'); train_cfg.score=mIoU ranks as the
# paper does.
# Before the search: convert the tiles and train the shared backbone (docs/datasets.md,
# 'The CPU protocol'):
#   python tools/dataset_converters/mass_roads.py SRC -o data/mass_roads --nproc 2 \
#       --nodata-threshold 1.0
#   python tools/pretrain_backbone.py \
#       configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_mass-roads-256x256.py \
#       --data-root data/mass_roads_all --seed 0 \
#       --out ~/.cache/seg101_mm/regnetx400mf_mass-roads-cpu-2k_seed0.pth
# (data/mass_roads_all: the same tiles converted without --nodata-threshold), then
#   python tools/search.py THIS_CONFIG --work-dir work_dirs/search_mass_roads
default_scope = 'mmseg'
custom_imports = dict(imports=['seg101_mm'], allow_failed_imports=False)

train_cfg = dict(
    type='NPENASSearchLoop',
    strategy=dict(type='NPENASNP', num_init=10, top_k=3),  # paper: 10 and 10
    budget=16,  # paper: 200
    seed=0,
    launcher=dict(
        type='LocalLauncher', gpus_per_candidate=1, max_concurrent=2, threads_per_process=1),
    candidate=dict(
        template='{{ fileDirname }}/../nasbench/candidates/'
        'seg101_regnetx400mf-inhouse_1xb4-cpu-160it_mass-roads-128x128.py',
        data_root='data/mass_roads'),
    export=dict(
        template='{{ fileDirname }}/full/seg101_regnetx400mf_2xb2-100e_mass-roads-512x512.py'),
    score='IoU.road',  # paper: mIoU
    max_failures=5,
    candidate_timeout=1800,
    poll_interval=2.0)

# mmengine's Runner needs a model, an optimiser and a train dataloader to enter train(); the
# search trains its candidates in their own jobs, so these are placeholders that never run.
model = dict(type='SearchController')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.0))
train_dataloader = dict()

default_hooks = dict(
    runtime_info=None,
    timer=None,
    logger=None,
    param_scheduler=None,
    checkpoint=None,
    sampler_seed=None)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
log_level = 'INFO'
randomness = dict(seed=0)
