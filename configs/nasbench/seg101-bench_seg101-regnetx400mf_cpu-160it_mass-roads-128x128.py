# SEG101-Bench on real Massachusetts tiles: architectures sampled uniformly from SEG101 (random
# search, seed 0), each trained with the 160-iteration real-tile recipe on 128x128 crops,
# validated four times and tested once, and scored by every registered zero-cost proxy at
# random initialisation on one batch of 32 augmented 128x128 training crops, as the paper does
# (about 30 s per network). The file grows after every round of 10.
# Before the build: convert the tiles without the training tiles that are all no-data (a third
# of the sample's; they hold no labelled pixel to learn from), and train the shared backbone
# (docs/datasets.md, 'The CPU protocol'):
#   python tools/dataset_converters/mass_roads.py SRC -o data/mass_roads --nproc 2 \
#       --nodata-threshold 1.0
# then
#   python tools/analysis_tools/build_nasbench.py THIS_CONFIG
# (docs/study.md, 'Building the benchmark'); a kill is continued by running it again, and a
# fresh machine continues from the committed file.
_base_ = ['../search/npenas-np_seg101-regnetx400mf_cpu-160it_mass-roads-128x128.py']
train_cfg = dict(
    strategy=dict(_delete_=True, type='RandomSearch', batch_size=10),
    budget=100,
    seed=0,
    candidate=dict(
        template='{{ fileDirname }}/candidates/'
        'seg101_regnetx400mf-inhouse_1xb4-cpu-160it_mass-roads-128x128.py',
        test=True),
    export=None,
    max_failures=10)
custom_hooks = [
    dict(
        type='NASBenchExportHook',
        out='nasbench/seg101-bench_mass-roads-cpu.json',
        proxies=dict(batch_size=32, chunk_size=8, seed=0, threads=2),
        meta=dict(name='SEG101-Bench (Massachusetts Roads sample, CPU protocol)'))
]
