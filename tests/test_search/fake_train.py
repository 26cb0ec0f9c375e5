"""A stand-in for tools/train.py in launcher and loop tests: no training, exact behaviours.

Called as ``fake_train.py CONFIG [NPROC] --work-dir DIR`` (or ``--work-dir=DIR``). It reads the
genotype literal from the generated config, scores it with a known function, and writes
``result.json`` as SearchResultHook does. ``FAKE_BEHAVIOUR`` (JSON ``{candidate id: mode}``)
injects failures: ``raise`` (an exception, exit 1), ``nan`` (a non-finite loss report),
``hang`` (sleeps until killed), ``no_data`` (a worker's FileNotFoundError followed by torchrun's
ChildFailedError banner, exit 1), ``hang_in_dump`` (sleeps inside the start-up config dump,
the file still empty), ``spawn_hang`` (starts a worker in a session of its own, as torchrun
does, and both sleep until killed); ``FAKE_SLEEP`` seconds of "training" precede the result.

Like mmengine's ``Runner.dump_config``, it rewrites ``<work_dir>/<config file name>`` at start-up
(opened with 'w', then written), after it read the config.
"""
import ast
import json
import os
import re
import subprocess
import sys
import time

TORCHRUN_BANNER = """Traceback (most recent call last):
  File "/usr/bin/torchrun", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
tools/train.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
============================================================"""


def score(genotype: str) -> float:
    ops = genotype.replace(';', ',').split(',')
    return round(
        30 + 3 * ops.count('st=conv3x3') + 2 * ops.count('se') + 1.5 * ops.count('dil3_conv3x3') +
        (5 if 'concat_head' in genotype else 0), 4)


def main(argv):
    if argv[0] == '--worker':  # a torchrun worker: records its pid, then waits to be killed
        with open(os.path.join(argv[2], 'worker.pid'), 'w') as fh:
            fh.write(str(os.getpid()))
        time.sleep(3600)
        return
    config = argv[0]
    work_dir = None
    for i, a in enumerate(argv):
        if a == '--work-dir':
            work_dir = argv[i + 1]
        elif a.startswith('--work-dir='):
            work_dir = a.split('=', 1)[1]
    text = open(config).read()
    genotype = next(
        ast.literal_eval(line.split('=', 1)[1].strip()) for line in text.splitlines()
        if line.startswith('genotype = '))
    cid = str(int(re.search(r'candidate_(\d+)\.py', config).group(1)))
    mode = json.loads(os.environ.get('FAKE_BEHAVIOUR', '{}')).get(cid, 'ok')
    print(f'fake training of candidate {cid} ({mode}), argv {argv}', flush=True)
    print(
        'env CUDA_VISIBLE_DEVICES=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'),
        'PORT=' + os.environ.get('PORT', '<unset>'),
        flush=True)
    os.makedirs(work_dir, exist_ok=True)
    with open(os.path.join(work_dir, os.path.basename(config)), 'w') as fh:
        if mode == 'hang_in_dump':
            open(os.path.join(work_dir, 'in_dump'), 'w').close()
            time.sleep(3600)
        fh.write(text)
    if mode == 'spawn_hang':
        subprocess.Popen([sys.executable, __file__, '--worker', config, work_dir],
                         start_new_session=True)
        time.sleep(3600)
    time.sleep(float(os.environ.get('FAKE_SLEEP', '0')))
    if mode == 'no_data':
        print(
            'Traceback (most recent call last):\n  File "tools/train.py", line 90, in main\n'
            '[rank0]: FileNotFoundError: [Errno 2] No such file or directory: '
            f"'{work_dir}/missing/img_dir/train'",
            file=sys.stderr,
            flush=True)
        print(TORCHRUN_BANNER, file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == 'raise':
        raise ZeroDivisionError('injected failure')
    if mode == 'hang':
        time.sleep(3600)
    if mode == 'nan':
        result = dict(status='failed', cause='non-finite loss (nan) at iteration 1')
    else:
        result = dict(
            status='done',
            metrics={
                'mIoU': score(genotype),
                'aAcc': 90.0
            },
            env=dict(cuda=os.environ.get('CUDA_VISIBLE_DEVICES'), argv=argv))
    with open(os.path.join(work_dir, 'result.json'), 'w') as fh:
        json.dump(result, fh)


if __name__ == '__main__':
    main(sys.argv[1:])
