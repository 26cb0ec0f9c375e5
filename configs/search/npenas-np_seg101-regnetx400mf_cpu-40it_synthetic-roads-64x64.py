# A complete small NPENAS-NP search on a CPU (about 10 minutes on 2 cores): 16 candidates of SEG101
# on RegNetX-400MF, each trained for real by a torchrun of seg101_mm.tools.train (gloo, 1 process,
# two candidates at once) for 40 iterations on 64x64 crops of a procedural road dataset that the
# search generates in <work_dir>/data, in rounds of 4 after 8 random ones. Same algorithm as the
# paper (docs/method.md section 6), smaller numbers. Point `train_cfg.candidate.data_root` at
# converted Massachusetts tiles (tools/dataset_converters/mass_roads.py) to search on real data:
#   python tools/search.py THIS_CONFIG --cfg-options train_cfg.candidate.data_root=DIR
default_scope = 'mmseg'
custom_imports = dict(imports=['seg101_mm'], allow_failed_imports=False)

train_cfg = dict(
    type='NPENASSearchLoop',
    strategy=dict(type='NPENASNP', num_init=8, top_k=4),  # paper: 10 and 10
    budget=16,  # paper: 200
    seed=0,
    launcher=dict(
        type='LocalLauncher', gpus_per_candidate=1, max_concurrent=2, threads_per_process=1),
    candidate=dict(
        template='{{ fileDirname }}/candidates/seg101_regnetx400mf_1xb2-cpu-tiny_roads-64x64.py',
        iters=40,
        data_root=None,
        synthetic=dict(kind='roads', num_train=16, num_val=4, num_test=4, size=64, seed=0)),
    export=dict(
        template='{{ fileDirname }}/full/seg101_regnetx400mf_2xb2-100e_mass-roads-512x512.py'),
    max_failures=5,
    candidate_timeout=600,
    poll_interval=0.5)

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
