"""Benchmark of the search machinery (docs/search.md): predictor fit time and the overhead the
search adds to every candidate.

    python bench/bench_search.py                 # everything, one real tiny candidate job
    python bench/bench_search.py --train-s 40    # reuse a measured candidate time

Measures, in one process on this machine's CPU:

1. the GIN predictor fit on 200 architectures x 600 epochs (docs/method.md s. 6);
2. per candidate: writing its config, launching its job (LocalLauncher: Popen of
   tools/dist_train.sh), reading its result and recording it in the ledger (fsync), and its
   share of one round's predictor fit + mutation pool + ranking (the round's cost divided by
   the ``top_k`` candidates it proposes); at the paper's scale (fit on 100 architectures, the
   mean over a 200-architecture search, 100 candidates, top 10) and at the CPU demo's scale
   (configs/search: fit on up to 12 architectures, top 4);
3. the wall time of one tiny candidate of the CPU demo (tools/dist_train.sh, 1 gloo process,
   40 iterations at 64x64), and the overhead as a fraction of it (target < 2 %).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEARCH_CFG = 'configs/search/npenas-np_seg101-regnetx400mf_cpu-40it_synthetic-roads-64x64.py'


def timed(fn, repeat=1):
    best = float('inf')
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fit_time(n, epochs, seed=0):
    from seg101_mm.search.predictor import fit_predictor
    from seg101_mm.space import sample
    gs = [sample(seed * 100000 + i) for i in range(n)]
    ys = [40.0 + (hash(g.key) % 1000) / 50 for g in gs]
    cpu = time.process_time()
    wall = timed(lambda: fit_predictor(gs, ys, epochs=epochs))[0]
    return wall, time.process_time() - cpu


def round_time(n_train, top_k, num_candidates, epochs=600):
    """One NPENAS-NP round: fit on n_train results, mutate a pool, rank, pick top_k."""
    from seg101_mm.search.strategy import NPENASNP
    s = NPENASNP(
        num_init=n_train,
        top_k=top_k,
        num_candidates=num_candidates,
        predictor=dict(epochs=epochs),
        budget=n_train + top_k,
        seed=0)
    for g in s.ask(n_train):
        s.tell(g, 40.0 + (hash(g.key) % 1000) / 50)
    t, batch = timed(lambda: s.ask(top_k))
    assert len(batch) == top_k
    return t


def per_candidate_io(work):
    """Config writing, launching, result parsing + ledger updates of one candidate."""
    from mmengine.config import Config

    from seg101_mm.search.config_writer import candidate_config, write_config
    from seg101_mm.search.launchers import Job, LocalLauncher
    from seg101_mm.search.ledger import Ledger
    from seg101_mm.search.result_hook import write_result
    from seg101_mm.search.templates import load_template
    from seg101_mm.space import sample
    tmpl = Config.fromfile(str(REPO / SEARCH_CFG)).train_cfg.candidate.template
    template = load_template(str(REPO / tmpl), iters=20)
    g = sample(0)
    cdir = Path(work) / 'cand'

    def write():
        cfg = candidate_config(
            template,
            g,
            data_root='/data',
            work_dir=str(cdir),
            seed=0,
            extra_hooks=[dict(type='SearchResultHook')])
        return write_config(cdir / 'candidate_0000.py', cfg)

    t_write, path = timed(write, repeat=5)
    script = Path(work) / 'noop.sh'
    script.write_text('#!/usr/bin/env bash\nexit 0\n')
    launcher = LocalLauncher(gpus=[], script=str(script))

    def launch():
        job = Job(0, str(path), str(cdir), str(cdir / 'train.log'))
        launcher.submit(job)
        return job

    t_launch, job = timed(launch)
    job.handle.wait()
    write_result(cdir, dict(status='done', metrics={'mIoU': 50.0}))
    ledger = Ledger(Path(work) / 'ledger.jsonl', fsync=True)
    ledger.propose([dict(id=0, genotype=str(g), key=g.key, round=0)], dict(round=1))

    def parse():
        (done, ) = launcher.poll()
        ledger.update(0, status='running', started_at=time.time())
        ledger.update(0, status='done', score=done[1]['metrics']['mIoU'], ended_at=time.time())
        ledger.save_strategy(dict(round=1))
        launcher.running.append(done[0])  # put it back so that poll() finds it again

    t_parse = timed(parse, repeat=3)[0]
    return t_write, t_launch, t_parse


def train_time(work):
    """Wall time of one real tiny candidate job, as the CPU demo runs it."""
    from mmengine.config import Config

    from seg101_mm.datasets.synthetic import make_synthetic_dataset
    from seg101_mm.search.config_writer import candidate_config, write_config
    from seg101_mm.search.templates import load_template
    from seg101_mm.space import sample
    search = Config.fromfile(str(REPO / SEARCH_CFG)).train_cfg
    data = make_synthetic_dataset(Path(work) / 'data', **search.candidate.synthetic)
    template = load_template(str(REPO / search.candidate.template), iters=search.candidate.iters)
    cdir = Path(work) / 'train'
    cfg = candidate_config(
        template,
        sample(1),
        data_root=str(data),
        work_dir=str(cdir),
        seed=0,
        extra_hooks=[dict(type='SearchResultHook')])
    path = write_config(cdir / 'candidate_0001.py', cfg)
    env = dict(
        os.environ,
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1',
        PORT='29731',
        PYTHON=sys.executable)
    t = time.perf_counter()
    subprocess.run(
        ['bash',
         str(REPO / 'tools/dist_train.sh'),
         str(path), '1', '--work-dir',
         str(cdir)],
        env=env,
        cwd=str(REPO),
        check=True,
        capture_output=True)
    elapsed = time.perf_counter() - t
    result = json.loads((cdir / 'result.json').read_text())
    assert result['status'] == 'done', result
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fit-archs', type=int, default=200)
    parser.add_argument('--epochs', type=int, default=600)
    parser.add_argument(
        '--train-s',
        type=float,
        default=None,
        help='seconds of one tiny candidate (skips the real job)')
    args = parser.parse_args(argv)
    import torch

    import seg101_mm  # noqa: F401
    rows = []
    t_fit, cpu_fit = fit_time(args.fit_archs, args.epochs)
    rows.append((f'predictor fit, {args.fit_archs} archs x {args.epochs} epochs', t_fit,
                 f'process CPU time {cpu_fit:.1f} s (1 thread)'))
    with tempfile.TemporaryDirectory() as work:
        t_write, t_launch, t_parse = per_candidate_io(work)
        t_round_demo = round_time(12, 4, 100)
        t_round_paper = round_time(100, 10, 100)
        t_train = args.train_s if args.train_s else train_time(work)
    rows += [('config writing / candidate', t_write, ''),
             ('launch (Popen of dist_train.sh) / candidate', t_launch, ''),
             ('result parsing + 3 fsync ledger events / candidate', t_parse, ''),
             ('NPENAS round, demo scale (fit 12, pool 100, top 4)', t_round_demo, ''),
             ('NPENAS round, paper scale (fit 100, pool 100, top 10)', t_round_paper, ''),
             ('tiny candidate training (dist_train.sh, 40 it, 64x64)', t_train, '')]
    io = t_write + t_launch + t_parse
    demo = io + t_round_demo / 4
    paper = io + t_round_paper / 10
    rows += [('overhead / candidate, demo scale', demo, f'{100 * demo / t_train:.2f} % of '
              'training (< 2 %)'),
             ('overhead / candidate, paper scale', paper, f'{100 * paper / t_train:.2f} % of '
              'training (< 2 %)')]
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end')
    width = max(len(r[0]) for r in rows)
    print(f'| {"measure":<{width}} | seconds | note |')
    print(f'|{"-" * (width + 2)}|---------|------|')
    for name, sec, note in rows:
        print(f'| {name:<{width}} | {sec:7.3f} | {note} |')


if __name__ == '__main__':
    main()
