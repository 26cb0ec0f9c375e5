"""The Slurm launcher on a real single-node Slurm cluster (.ci/slurm_cluster.sh).

Searches run through the package's srun script and submitit (sbatch) with the fake
trainer (``fake_python.sh`` stands in for the interpreter, so the real scripts and batch jobs
run), one candidate trains for real, and Slurm's own ends are checked: ``scancel``, the time
limit, and the jobs a killed search leaves behind. The module is skipped, with the reason,
where Slurm is not installed or its daemons cannot start. ``SEG101_SLURM_DIR`` names the
directory of a cluster that ``.ci/slurm_cluster.sh start`` already started (it is then used
and left running).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from seg101_mm.search import launchers
from seg101_mm.search.launchers import SLURM_MARKER, SlurmLauncher, slurm_job_name
from seg101_mm.search.ledger import Ledger

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLUSTER = REPO / '.ci' / 'slurm_cluster.sh'
FAKE_PYTHON = str(HERE / 'fake_python.sh')
COMMANDS = ('munged', 'mungekey', 'slurmctld', 'slurmd', 'scontrol', 'sinfo', 'sbatch', 'srun',
            'squeue', 'scancel')
sys.path.insert(0, str(HERE))
from fake_train import score  # noqa: E402
from test_launchers import drain, write_candidate  # noqa: E402

sys.path.pop(0)


@dataclass
class Cluster:
    dir: Path
    partition: str


def _daemon_pids(d):
    pids = {}
    for name in ('munged', 'slurmctld', 'slurmd'):
        try:
            pids[name] = int((d / f'{name}.pid').read_text())
        except (OSError, ValueError):
            pass
    return pids


def _running(pid):
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state != 'Z'


@pytest.fixture(scope='session')
def slurm_cluster(tmp_path_factory):
    """A running single-node cluster: the one in ``$SEG101_SLURM_DIR``, or one started here
    (and stopped, with every daemon and job step, at the end of the session)."""
    given = os.environ.get('SEG101_SLURM_DIR')
    old_conf = os.environ.get('SLURM_CONF')
    if given:
        d = Path(given).resolve()
        status = subprocess.run(['bash', str(CLUSTER), 'status', str(d)], capture_output=True)
        if status.returncode != 0:
            pytest.skip(f'SEG101_SLURM_DIR={given} holds no running Slurm cluster')
        os.environ['SLURM_CONF'] = str(d / 'slurm.conf')
        yield Cluster(d, (d / 'partition').read_text().strip())
        _restore_conf(old_conf)
        return
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        pytest.skip(f'Slurm is not installed: {" ".join(missing)} not found (Debian: apt-get '
                    f'install slurmctld slurmd slurm-client munge)')
    d = tmp_path_factory.mktemp('slurm')
    t0 = time.time()
    start = subprocess.run(['bash', str(CLUSTER), 'start', str(d)],
                           capture_output=True,
                           text=True,
                           timeout=120)
    if start.returncode != 0:
        subprocess.run(['bash', str(CLUSTER), 'stop', str(d)], capture_output=True, timeout=120)
        reason = (start.stderr.strip().splitlines() or ['no output'])[-1]
        pytest.skip(f'the Slurm test cluster did not start: {reason}')
    print(f'\nslurm test cluster started in {time.time() - t0:.1f} s: {start.stdout.strip()}')
    os.environ['SLURM_CONF'] = str(d / 'slurm.conf')
    pids = _daemon_pids(d)
    try:
        yield Cluster(d, (d / 'partition').read_text().strip())
    finally:
        _restore_conf(old_conf)
        subprocess.run(['bash', str(CLUSTER), 'stop', str(d)], capture_output=True, timeout=120)
    left = {name: pid for name, pid in pids.items() if _running(pid)}
    assert not left, f'the Slurm daemons {left} outlived the test cluster'


def _restore_conf(old):
    if old is None:
        os.environ.pop('SLURM_CONF', None)
    else:
        os.environ['SLURM_CONF'] = old


@pytest.fixture
def fake_env(monkeypatch):
    """The fake trainer's environment (Slurm passes it on to the jobs)."""
    monkeypatch.setenv('FAKE_REAL_PYTHON', sys.executable)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')

    def behave(**modes):
        monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps(modes))

    return behave


@pytest.fixture
def submitit():
    return pytest.importorskip(
        'submitit', reason="the sbatch mode needs submitit (pip install "
        "'seg101_mm[slurm]')")


def search(argv):
    from seg101_mm.tools import search as search_tool
    search_tool.main(argv)


def squeue(*args):
    out = subprocess.run(['squeue', '-h', '-t', 'all', *args, '-o', '%i|%j|%T'],
                         capture_output=True,
                         text=True)
    return [line.split('|') for line in out.stdout.split()]


def job_of(work_dir):
    """``(job id, state)`` of the newest Slurm job of a candidate work dir, or None."""
    jobs = squeue('-n', slurm_job_name(work_dir))
    return max(((int(j), s) for j, _, s in jobs), default=None)


def wait_for(check, limit=60.0, step=0.1):
    end = time.time() + limit
    while time.time() < end:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


def final_state(work_dir, limit=30.0):
    """The state of the newest Slurm job of a candidate work dir once it has ended (a job
    that srun has just left may still be COMPLETING), or None."""

    def ended():
        job = job_of(work_dir)
        return job if job and job[1] != 'COMPLETING' else None

    job = wait_for(ended, limit)
    return job[1] if job else None


def cancel_when_running(work_dir, marker, limit=60.0):
    """A thread that ``scancel`` s the candidate's job once it runs and its log shows
    ``marker``; ``thread.job`` is the job id it cancelled."""

    def run():

        def ready():
            job = job_of(work_dir)
            log = Path(work_dir) / 'train.log'
            return job if job and job[1] == 'RUNNING' and log.exists() and \
                marker in log.read_text() else None

        job = wait_for(ready, limit)
        if job:
            subprocess.run(['scancel', str(job[0])], check=True)
            thread.job = job[0]

    thread = threading.Thread(target=run, daemon=True)
    thread.job = None
    thread.start()
    return thread


def launcher(cluster, **kwargs):
    return dict(
        dict(
            type='SlurmLauncher',
            partition=cluster.partition,
            gpus_per_node=0,
            cpus_per_task=1,
            max_concurrent=2,
            python=FAKE_PYTHON), **kwargs)


def records(work_dir):
    return Ledger(Path(work_dir) / 'ledger.jsonl').records()


@pytest.fixture(scope='module')
def time_limited_job(slurm_cluster, tmp_path_factory):
    """A hanging srun job with a one-minute limit, started with the module: Slurm checks the
    limits every 30 s, so the job ends 60-90 s after its start, while the other tests run."""
    la = SlurmLauncher(
        partition=slurm_cluster.partition,
        gpus_per_node=0,
        cpus_per_task=1,
        time='1',
        python=FAKE_PYTHON)
    job = write_candidate(tmp_path_factory.mktemp('time_limit'), 0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('FAKE_REAL_PYTHON', sys.executable)
        mp.setenv('FAKE_BEHAVIOUR', json.dumps({'0': 'hang'}))
        la.submit(job)
    yield la, job
    la.shutdown()


@pytest.fixture(scope='module', autouse=True)
def _start_time_limited_job_first(request):
    if any(item.originalname == 'test_slurm_time_limit_ends_the_job'
           for item in request.session.items):
        request.getfixturevalue('time_limited_job')


def test_search_with_srun_and_scancel(slurm_cluster, tmp_path, search_config, fake_env):
    # the package's srun script per candidate; candidate 1 hangs until it is scancel'led
    fake_env(**{'1': 'hang'})
    cfg = search_config(
        tmp_path / 's.py',
        launcher(slurm_cluster, mode='srun'),
        budget=4,
        num_init=2,
        top_k=2,
        poll=0.1)
    wd = tmp_path / 'wd'
    cancel = cancel_when_running(wd / 'candidates' / '0001', 'fake training of candidate 1')
    search([cfg, '--work-dir', str(wd)])
    cancel.join(5)
    recs = records(wd)
    assert [(r['round'], r['status']) for r in recs] == [(0, 'done'), (0, 'failed'), (1, 'done'),
                                                         (1, 'done')]
    for r in recs:
        if r['status'] == 'done':
            assert r['score'] == score(r['genotype'])
        log = Path(r['log']).read_text()
        # the real script ran srun, which ran the trainer without a process group on CPU nodes
        assert f"'--work-dir={r['work_dir']}', '--launcher=none'" in log
        assert final_state(r['work_dir']) == ('CANCELLED' if r['id'] == 1 else 'COMPLETED')
    assert cancel.job is not None
    assert recs[1]['cause'].startswith(
        f'cancelled: Slurm job {cancel.job} was cancelled (scancel or an administrator)')


def test_srun_scancel_without_slurmstepd_line(slurm_cluster, tmp_path, fake_env, monkeypatch):
    # on a loaded machine srun can exit before slurmstepd's "CANCELLED" line reaches the log,
    # and while the job is still COMPLETING: the cause comes from Slurm's final state then
    fake_env(**{'0': 'hang'})
    monkeypatch.setattr(launchers, 'slurm_end_reason', lambda *logs: None)
    la = SlurmLauncher(
        partition=slurm_cluster.partition, gpus_per_node=0, cpus_per_task=1, python=FAKE_PYTHON)
    job = write_candidate(tmp_path, 0)
    cancel = cancel_when_running(job.work_dir, 'fake training of candidate 0')
    out = drain(la, [job], limit=90)
    cancel.join(5)
    assert cancel.job is not None
    assert out[0]['status'] == 'failed'
    assert out[0]['cause'].startswith(
        f'cancelled: Slurm job {cancel.job} was cancelled (scancel or an administrator); log '
        f'tail: ')
    # a second attempt whose srun gets no job is not taken for the first one, which Slurm
    # still lists as cancelled
    bad = SlurmLauncher(
        partition='no_such_partition', gpus_per_node=0, cpus_per_task=1, python=FAKE_PYTHON)
    again = drain(bad, [write_candidate(tmp_path, 0)], limit=60)
    assert job_of(job.work_dir) == (cancel.job, 'CANCELLED')
    assert again[0]['cause'].startswith('crashed: exit code 1, no result.json; log tail: ')
    assert 'Invalid partition name specified' in again[0]['cause']


def test_search_with_sbatch_scancel_and_time_limit(slurm_cluster, tmp_path, search_config,
                                                   fake_env, submitit):
    # submitit batch jobs with a three-minute limit: candidate 1 hangs into the limit, candidate 2
    # hangs until it is scancel'led. submitit asks for the warning 90 s before the limit, and
    # Slurm sends it once, from a check every 30 s, up to one period early: 60-90 s in, when the
    # job's step and submitit's handler run. (With a one-minute limit the warning was due at the
    # start, and a check that came before the step had started sent it to nothing.)
    fake_env(**{'1': 'hang', '2': 'hang'})
    cfg = search_config(
        tmp_path / 's.py',
        launcher(slurm_cluster, mode='sbatch', time='3', max_concurrent=3),
        budget=4,
        num_init=4,
        top_k=2,
        poll=0.1)
    wd = tmp_path / 'wd'
    cancel = cancel_when_running(wd / 'candidates' / '0002', 'fake training of candidate 2')
    search([cfg, '--work-dir', str(wd)])
    recs = records(wd)
    assert [r['status'] for r in recs] == ['done', 'failed', 'failed', 'done']
    assert {r['score']
            for r in recs
            if r['status'] == 'done'} == {score(recs[0]['genotype']),
                                          score(recs[3]['genotype'])}
    job1 = json.loads((Path(recs[1]['work_dir']) / SLURM_MARKER).read_text())['job_id']
    # Slurm's warning signal (submitit's --signal=USR2@90) ends the job before its limit
    assert recs[1]['cause'].startswith(f'timeout: Slurm time limit 3 reached (job {job1})')
    # the training ignored the warning signal (else it ends with -12 and a crash), and either
    # submitit's handler ended the job at the warning (FAILED, its log says so) or, where
    # Slurm's once-per-30-s check came late on a loaded machine, the job met its limit
    logs = (Path(recs[1]['work_dir']) / 'slurm').glob('*_log.*')
    err = '\n'.join(f.read_text() for f in logs)
    assert 'code -12' not in err, err[-2000:]
    state = final_state(recs[1]['work_dir'])
    assert state == 'TIMEOUT' or (state == 'FAILED' and 'this job is timed-out' in err), \
        (state, err[-2000:])
    assert recs[2]['cause'].startswith(f'cancelled: Slurm job {cancel.job} was cancelled')
    for r in recs:
        script = next((Path(r['work_dir']) / 'slurm').glob('*_submission.sh')).read_text()
        assert f'#SBATCH --job-name={slurm_job_name(r["work_dir"])}\n' in script
        assert '#SBATCH --time=3\n' in script and '#SBATCH --cpus-per-task=1\n' in script
        assert f'#SBATCH --partition={slurm_cluster.partition}\n' in script
        assert 'gres' not in script
        assert f"'--work-dir={r['work_dir']}', '--launcher=none'" in Path(r['log']).read_text()


def test_real_training_through_sbatch(slurm_cluster, tmp_path, search_config, monkeypatch,
                                      submitit):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    cfg = search_config(
        tmp_path / 's.py',
        launcher(slurm_cluster, mode='sbatch', python=None),
        budget=1,
        num_init=1,
        top_k=1,
        iters=1,
        poll=0.2)
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd)])
    rec, = records(wd)
    assert rec['status'] == 'done', rec.get('cause')
    result = json.loads((Path(rec['work_dir']) / 'result.json').read_text())
    assert result['iter'] == 1 and rec['score'] == result['metrics']['mIoU']
    assert 'Iter(val)' in Path(rec['log']).read_text()  # mmengine's log, in the candidate's log
    assert job_of(rec['work_dir'])[1] == 'COMPLETED'


@pytest.mark.parametrize('mode', ['srun', 'sbatch'])
def test_kill_9_then_resume_cancels_orphaned_jobs(slurm_cluster, tmp_path, search_config, fake_env,
                                                  request, mode):
    if mode == 'sbatch':
        request.getfixturevalue('submitit')
    fake_env(**{'1': 'hang'})
    cfg = search_config(
        tmp_path / 's.py',
        launcher(slurm_cluster, mode=mode, max_concurrent=1),
        budget=4,
        num_init=2,
        top_k=2,
        poll=0.1)
    wd = tmp_path / 'wd'
    proc = subprocess.Popen(
        [sys.executable,
         str(REPO / 'tools' / 'search.py'), cfg, '--work-dir',
         str(wd)],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:

        def hanging():
            job = job_of(wd / 'candidates' / '0001')
            log = wd / 'candidates' / '0001' / 'train.log'
            return job if job and job[1] == 'RUNNING' and log.exists() and \
                'fake training of candidate 1' in log.read_text() else None

        orphan = wait_for(hanging, 90)
        assert orphan, 'candidate 1 never ran'
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {r['id']: r for r in records(wd)}
    assert before[0]['status'] == 'done' and before[1]['status'] == 'running'
    time.sleep(1)
    assert job_of(wd / 'candidates' / '0001') == orphan  # the job outlived its search

    fake_env()  # candidate 1 trains normally when it is trained again
    search([cfg, '--work-dir', str(wd), '--resume'])
    after = records(wd)
    assert [r['status'] for r in after] == ['done'] * 4
    assert after[0]['started_at'] == before[0]['started_at'] and after[0]['attempts'] == 1
    assert after[1]['attempts'] == 2
    states = dict((int(j), s) for j, _, s in squeue('-n', slurm_job_name(after[1]['work_dir'])))
    assert max(states) > orphan[0]
    assert states == {orphan[0]: 'CANCELLED', max(states): 'COMPLETED'}
    if mode == 'srun':  # the orphaned srun, a process on this machine, has ended too
        assert not _running(before[1]['pid'])


def test_slurm_time_limit_ends_the_job(time_limited_job):
    # srun mode has no warning signal: Slurm ends the job at its limit (state TIMEOUT)
    la, job = time_limited_job
    out = drain(la, [], limit=150)
    assert out[0]['status'] == 'failed'
    assert out[0]['cause'].startswith('timeout: Slurm time limit 1 reached (job ')
    assert job_of(job.work_dir)[1] == 'TIMEOUT'
