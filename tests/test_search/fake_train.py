"""A stand-in for tools/train.py in launcher and loop tests: no training, exact behaviours.

Called as ``fake_train.py CONFIG [NPROC] --work-dir DIR`` (or ``--work-dir=DIR``). It reads the
genotype literal from the generated config, scores it with a known function, and writes
``result.json`` as SearchResultHook does. ``FAKE_BEHAVIOUR`` (JSON ``{candidate id: mode}``)
injects failures: ``raise`` (an exception, exit 1), ``nan`` (a non-finite loss report),
``hang`` (sleeps until killed); ``FAKE_SLEEP`` seconds of "training" precede the result.
"""
import ast
import json
import os
import re
import sys
import time


def score(genotype: str) -> float:
    ops = genotype.replace(';', ',').split(',')
    return round(30 + 3 * ops.count('st=conv3x3') + 2 * ops.count('se') + 1.5 * ops.count(
        'dil3_conv3x3') + (5 if 'concat_head' in genotype else 0), 4)


def main(argv):
    config = argv[0]
    work_dir = None
    for i, a in enumerate(argv):
        if a == '--work-dir':
            work_dir = argv[i + 1]
        elif a.startswith('--work-dir='):
            work_dir = a.split('=', 1)[1]
    text = open(config).read()
    genotype = next(ast.literal_eval(line.split('=', 1)[1].strip())
                    for line in text.splitlines() if line.startswith('genotype = '))
    cid = str(int(re.search(r'candidate_(\d+)\.py', config).group(1)))
    mode = json.loads(os.environ.get('FAKE_BEHAVIOUR', '{}')).get(cid, 'ok')
    print(f'fake training of candidate {cid} ({mode}), argv {argv}', flush=True)
    print('env CUDA_VISIBLE_DEVICES=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'),
          'PORT=' + os.environ.get('PORT', '<unset>'), flush=True)
    time.sleep(float(os.environ.get('FAKE_SLEEP', '0')))
    if mode == 'raise':
        raise ZeroDivisionError('injected failure')
    if mode == 'hang':
        time.sleep(3600)
    os.makedirs(work_dir, exist_ok=True)
    if mode == 'nan':
        result = dict(status='failed', cause='non-finite loss (nan) at iteration 1')
    else:
        result = dict(status='done', metrics={'mIoU': score(genotype), 'aAcc': 90.0},
                      env=dict(cuda=os.environ.get('CUDA_VISIBLE_DEVICES'), argv=argv))
    with open(os.path.join(work_dir, 'result.json'), 'w') as fh:
        json.dump(result, fh)


if __name__ == '__main__':
    main(sys.argv[1:])
