# The CPU demo search with zero-cost guidance (beyond the paper, see docs/search.md): every
# proposal's network is built and measured (parameters, FLOPs of one 64x64 image); candidates
# above 16 M parameters are never trained; each round's mutation pool is cut to the 30 smallest
# by FLOPs before the predictor ranks it; and parameters and FLOPs are fed to the predictor as
# extra inputs. Measuring builds each pool member once (a few seconds each on a CPU), so a
# round costs more search-side time than in the plain demo.
_base_ = ['./npenas-np_seg101-regnetx400mf_cpu-40it_synthetic-roads-64x64.py']
train_cfg = dict(
    strategy=dict(
        type='NPENASNP',
        num_init=8,
        top_k=4,
        num_candidates=60,
        constraints=dict(params=16e6),
        prefilter=dict(by='flops', keep=30, descending=False),
        predictor_features=['params', 'flops']),
    measure=dict(names=['params', 'flops'], input_size=(64, 64)))
