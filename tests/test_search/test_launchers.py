"""Launchers with a fake trainer, fake Slurm commands on PATH (for what the CPU test cluster of
test_slurm_cluster.py cannot check), and the result hook."""
import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seg101_mm.search.launchers import (Job, LocalLauncher, SlurmLauncher, build_launcher,
                                        kill_stale, slurm_job_name, slurm_minutes)
from seg101_mm.search.result_hook import CandidateFailed, SearchResultHook, read_result


def write_candidate(tmp_path, cid, genotype='ga=x;st=conv3x3,se;hm=concat_head'):
    cdir = tmp_path / f'{cid:04d}'
    cdir.mkdir(parents=True, exist_ok=True)
    cfg = cdir / f'candidate_{cid:04d}.py'
    cfg.write_text(f'genotype = {genotype!r}\n')
    return Job(cid=cid, config=str(cfg), work_dir=str(cdir), log=str(cdir / 'train.log'))


def drain(launcher, jobs, limit=60):
    out = {}
    pending = list(jobs)
    end = time.time() + limit
    while (pending or launcher.running) and time.time() < end:
        while pending and launcher.slots() > 0:
            launcher.submit(pending.pop(0))
        for job, result in launcher.poll():
            out[job.cid] = result
        time.sleep(0.05)
    return out


def test_local_launcher_outcomes_and_failures(tmp_path, fake_script, monkeypatch):
    monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps({'1': 'raise', '2': 'nan', '3': 'hang'}))
    launcher = LocalLauncher(gpus=[], max_concurrent=4, script=fake_script)
    jobs = [write_candidate(tmp_path, i) for i in range(4)]
    jobs[3].timeout = 2.0
    t0 = time.time()
    out = drain(launcher, jobs)
    assert time.time() - t0 < 30
    assert out[0]['status'] == 'done' and out[0]['metrics']['mIoU'] == 40.0
    assert out[1]['status'] == 'failed' and out[1]['cause'].startswith('crashed: exit code 1')
    assert 'ZeroDivisionError: injected failure' in out[1]['cause']
    assert out[2] == dict(
        status='failed', cause='non-finite loss (nan) at iteration 1', log=jobs[2].log)
    assert out[3]['cause'] == 'timeout: killed after 2.0 s'
    assert launcher.running == [] and launcher.slots() == 4
    log = Path(jobs[0].log).read_text()
    assert 'CUDA_VISIBLE_DEVICES=' in log and 'PORT=' in log


def test_launchers_run_the_packaged_scripts_in_the_callers_directory(tmp_path, monkeypatch):
    # no script configured: the package's torchrun / srun script with the train module, so an
    # installed seg101_mm needs no checkout; the job runs where the search runs
    from seg101_mm.search import launchers
    calls = []

    class Popen:
        pid = 4242

        def __init__(self, cmd, **kwargs):
            calls.append((cmd, kwargs))

    monkeypatch.setattr(launchers.subprocess, 'Popen', Popen)
    monkeypatch.chdir(tmp_path)
    job = write_candidate(tmp_path, 0)
    LocalLauncher(gpus=[], gpus_per_candidate=2).submit(job)
    SlurmLauncher(partition='cpu', gpus_per_node=0).submit(write_candidate(tmp_path, 1))
    (local, local_kw), (srun, _) = calls
    assert local == ['bash', launchers.DIST_RUN, 'seg101_mm.tools.train', '2', job.config,
                     '--work-dir', job.work_dir]
    assert srun[:5] == ['bash', launchers.SLURM_RUN, 'cpu', srun[3], 'seg101_mm.tools.train']
    assert 'cwd' not in local_kw  # inherited: relative data roots mean the same to the job
    for script in (launchers.DIST_RUN, launchers.SLURM_RUN):
        assert Path(script).is_file() and Path(script).parent.name == 'tools'
    with pytest.raises(FileNotFoundError, match=r"training script 'nope\.sh' not found"):
        LocalLauncher(gpus=[], script='nope.sh')
    with pytest.raises(FileNotFoundError, match=r"srun script 'gone\.sh' not found"):
        SlurmLauncher(partition='cpu', script='gone.sh')


def test_local_launcher_gpu_pool(tmp_path, fake_script, monkeypatch):
    monkeypatch.setenv('FAKE_SLEEP', '0.5')
    launcher = LocalLauncher(
        gpus=[0, 1, 2, 3, 4], gpus_per_candidate=2, max_concurrent=8, script=fake_script)
    assert launcher.slots() == 2  # 5 GPUs hold two candidates of 2
    jobs = [write_candidate(tmp_path, i) for i in range(3)]
    launcher.submit(jobs[0])
    launcher.submit(jobs[1])
    assert launcher.slots() == 0
    assert {jobs[0].resources, jobs[1].resources} == {(0, 1), (2, 3)}
    out = drain(launcher, jobs[2:])
    assert len(out) == 3 and all(r['status'] == 'done' for r in out.values())
    cudas = {json.load(open(Path(j.work_dir) / 'result.json'))['env']['cuda'] for j in jobs}
    assert cudas <= {'0,1', '2,3'}
    assert launcher.free_gpus == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match='gpus_per_candidate=3 but the pool has only 2'):
        LocalLauncher(gpus=2, gpus_per_candidate=3)
    with pytest.raises(ValueError) as e:
        build_launcher(dict(type='ssh'))
    assert str(e.value) == ("unknown launcher 'ssh'; expected one of ['InProcessLauncher', "
                            "'LocalLauncher', 'SlurmLauncher'] or ['inprocess', 'local', "
                            "'slurm']")


@pytest.mark.parametrize(
    'type_', ['LocalLauncher', 'local', 'mmseg.LocalLauncher', 'mmseg.local', LocalLauncher])
def test_launcher_types_are_names_aliases_scoped_names_or_classes(type_):
    launcher = build_launcher(dict(type=type_, gpus=3, max_concurrent=2))
    assert type(launcher) is LocalLauncher and launcher.free_gpus == [0, 1, 2]


def fake_bin(tmp_path, name, body):
    path = tmp_path / 'bin' / name
    path.parent.mkdir(exist_ok=True)
    path.write_text('#!/usr/bin/env bash\n' + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


SRUN = '''
echo "$@" >> "$FAKE_SLURM_LOG"
for a in "$@"; do case "$a" in --work-dir=*) wd="${a#--work-dir=}";; esac; done
mkdir -p "$wd"
echo '{"status": "done", "metrics": {"mIoU": 61.5}}' > "$wd/result.json"
'''


# The CPU-only test cluster of test_slurm_cluster.py cannot check GPU requests, multi-node
# jobs or a missing submitit; fake Slurm commands can.
@pytest.mark.parametrize('mode', ['srun', 'sbatch'])
def test_slurm_launcher_gpu_requests_with_fake_slurm(tmp_path, monkeypatch, mode):
    if mode == 'sbatch':
        pytest.importorskip(
            'submitit',
            reason="the sbatch mode needs submitit "
            "(pip install 'seg101_mm[slurm]')")
    fake_bin(tmp_path, 'srun', SRUN)
    fake_bin(tmp_path, 'sbatch', 'echo "sbatch $@" >> "$FAKE_SLURM_LOG"\n'
             'echo "Submitted batch job 4242"\n')
    fake_bin(tmp_path, 'squeue', 'echo "squeue $@" >> "$FAKE_SLURM_LOG"\necho "4242|COMPLETED"\n')
    monkeypatch.setenv('PATH', f'{tmp_path / "bin"}:{os.environ["PATH"]}')
    monkeypatch.setenv('FAKE_SLURM_LOG', str(tmp_path / 'slurm.log'))
    launcher = SlurmLauncher(
        partition='gpu-a100',
        gpus_per_candidate=2,
        time='01:30:00',
        mode=mode,
        srun_args=['--qos=normal'])
    job = write_candidate(tmp_path, 5)
    name = slurm_job_name(job.work_dir)
    assert name.startswith('seg101-0005-') and name != slurm_job_name(tmp_path / 'x' / '0005')
    info = launcher.submit(job)
    if mode == 'sbatch':  # the fake batch job does not run: its result is written here
        (Path(job.work_dir) / 'result.json').write_text('{"status": "done", "metrics": '
                                                        '{"mIoU": 61.5}}')
    out = drain(launcher, [])
    assert out[5] == dict(status='done', metrics={'mIoU': 61.5}, log=job.log)
    calls = (tmp_path / 'slurm.log').read_text()
    if mode == 'srun':
        assert '--qos=normal' in calls and '--time=01:30:00' in calls
        assert (f'-p gpu-a100 --job-name={name} --gres=gpu:2 --ntasks=2 --ntasks-per-node=2 '
                f'--cpus-per-task=5 --kill-on-bad-exit=1') in calls
        assert '--launcher=slurm' in calls and 'pid' in info
        return
    assert info == dict(slurm_job=4242) and 'squeue -h -t all -j 4242 -o %i|%T' in calls
    script = next((Path(job.work_dir) / 'slurm').glob('*_submission.sh')).read_text()
    for line in ('--partition=gpu-a100', f'--job-name={name}', '--gres=gpu:2', '--nodes=1',
                 '--ntasks=2', '--ntasks-per-node=2', '--cpus-per-task=5', '--time=90'):
        assert f'#SBATCH {line}\n' in script
    assert '--kill-on-bad-exit=1 --qos=normal' in script
    big = SlurmLauncher(partition='gpu', gpus_per_candidate=16, gpus_per_node=8, mode='sbatch')
    job = write_candidate(tmp_path, 6)
    big.submit(job)
    script = next((Path(job.work_dir) / 'slurm').glob('*_submission.sh')).read_text()
    for line in ('--gres=gpu:8', '--nodes=2', '--ntasks=16', '--ntasks-per-node=8'):
        assert f'#SBATCH {line}\n' in script
    assert '--time' not in script  # no limit given: the partition's


def test_slurm_launcher_options_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="slurm option partition='gpu; rm -rf /'"):
        SlurmLauncher(partition='gpu; rm -rf /')
    with pytest.raises(ValueError, match="slurm option time='tomorrow'"):
        SlurmLauncher(partition='gpu', time='tomorrow')
    with pytest.raises(
            ValueError,
            match='gpus_per_node=0 .CPU nodes. trains one task per '
            'candidate, got gpus_per_candidate=2; expected 1'):
        SlurmLauncher(partition='cpu', gpus_per_node=0, gpus_per_candidate=2)
    assert [slurm_minutes(t) for t in ('90', '0:30', '01:30:00', '1-00:00:00', '2-3', '1-0:0:1')
            ] == [90, 1, 90, 1440, 3060, 1441]
    monkeypatch.setitem(sys.modules, 'submitit', None)  # not installed
    with pytest.raises(ValueError) as e:
        SlurmLauncher(partition='gpu', mode='sbatch')
    assert str(e.value) == ("SlurmLauncher mode='sbatch' needs submitit, which is not "
                            "installed; install it with pip install 'seg101_mm[slurm]' (or: "
                            "pip install submitit)")
    assert SlurmLauncher(partition='gpu').mode == 'srun'  # the srun mode does not need it


def test_result_hook_nan_timeout_and_success(tmp_path):
    runner = SimpleNamespace(work_dir=str(tmp_path), iter=4)
    hook = SearchResultHook()
    hook.before_run(runner)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.0)))
    with pytest.raises(CandidateFailed, match=r'non-finite loss \(nan\) at iteration 5'):
        hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(math.nan)))
    assert read_result(tmp_path)['status'] == 'failed'
    slow = SearchResultHook(timeout=0.0)
    slow.before_run(runner)
    assert read_result(tmp_path) is None  # a stale result is removed at the start
    with pytest.raises(CandidateFailed, match='timeout: over 0.0 s at iteration 5'):
        slow.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.0)))
    ok = SearchResultHook()
    ok.before_run(runner)
    ok.after_val_epoch(runner, metrics={'mIoU': 71.25, 'IoU.road': 40.5, 'note': 'x'})
    ok.after_train(runner)
    result = read_result(tmp_path)
    assert result['status'] == 'done' and result['metrics'] == {'mIoU': 71.25, 'IoU.road': 40.5}
    no_val = SearchResultHook()
    no_val.before_run(runner)
    no_val.after_train(runner)
    assert 'without a validation' in read_result(tmp_path)['cause']


def gone(pid):
    """True when ``pid`` has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def test_crash_cause_is_the_workers_first_exception(tmp_path, fake_script, monkeypatch):
    # torchrun prints its ChildFailedError banner after the worker's traceback; the cause must
    # be the worker's error, with the log's path beside it.
    monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps({'0': 'no_data'}))
    launcher = LocalLauncher(gpus=[], script=fake_script)
    job = write_candidate(tmp_path, 0)
    out = drain(launcher, [job])
    missing = Path(job.work_dir) / 'missing' / 'img_dir' / 'train'
    assert out[0] == dict(
        status='failed',
        log=job.log,
        cause=(f"crashed: exit code 1: FileNotFoundError: [Errno 2] No such file or directory: "
               f"'{missing}'"))


def test_shutdown_ends_workers_in_their_own_sessions(tmp_path, fake_script, monkeypatch):
    monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps({'0': 'spawn_hang', '1': 'spawn_hang'}))
    launcher = LocalLauncher(gpus=[], max_concurrent=2, script=fake_script)
    jobs = [write_candidate(tmp_path, i) for i in range(2)]
    for job in jobs:
        launcher.submit(job)
    pid_files = [Path(j.work_dir) / 'worker.pid' for j in jobs]
    end = time.time() + 30
    while not all(p.exists() and p.read_text() for p in pid_files) and time.time() < end:
        time.sleep(0.05)
    workers = [int(p.read_text()) for p in pid_files]
    assert os.getsid(workers[0]) == workers[0]  # out of reach of the job's process group
    parents = [j.handle.pid for j in jobs]
    launcher.shutdown()
    end = time.time() + 10
    while not all(gone(p) for p in workers) and time.time() < end:
        time.sleep(0.05)
    assert [gone(p) for p in workers + parents] == [True] * 4
    assert launcher.running == []


def test_kill_stale_ends_only_the_jobs_own_processes(tmp_path):
    # as in a search: the config lives outside the candidate's work dir
    job = Job(
        cid=3,
        config=str(tmp_path / 'configs' / 'candidate_0003.py'),
        work_dir=str(tmp_path / 'candidates' / '0003'),
        log='')
    sleep = [sys.executable, '-c', 'import time; time.sleep(60)']
    # a worker whose launcher died (pid unknown) and a process that only reads the config
    orphan = subprocess.Popen(
        sleep + [job.config, '--work-dir', job.work_dir], start_new_session=True)
    reader = subprocess.Popen(sleep + [job.config])
    try:
        assert wait_until(lambda: job.config in Path(f'/proc/{orphan.pid}/cmdline').read_text())
        assert kill_stale(None, job.config, job.work_dir)
        assert orphan.wait(10) == -signal.SIGTERM
        assert reader.poll() is None
        assert not kill_stale(reader.pid, job.config, job.work_dir)  # names no work dir
    finally:
        orphan.kill()
        reader.kill()
        orphan.wait()
        reader.wait()


def wait_until(check, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def test_the_training_of_a_slurm_task_ignores_the_time_limit_warning(tmp_path):
    """Slurm sends the warning signal (USR2) to every process of a job: the training must not
    die of it before submitit's handler in the task records the job as timed out."""
    from seg101_mm.search.launchers import _slurm_training_task
    log = tmp_path / 'train.log'
    probe = ('import os, signal; print(signal.getsignal(signal.SIGUSR2)); '
             'os.kill(os.getpid(), signal.SIGUSR2); print("alive after USR2")')
    assert _slurm_training_task([sys.executable, '-c', probe], str(log), str(tmp_path), {},
                                False) == 0
    assert log.read_text().splitlines() == [str(int(signal.SIG_IGN)), 'alive after USR2']
    # the task itself keeps its handler (submitit's, here the default) for the warning
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    probe = 'import os, signal; os.kill(os.getpid(), signal.SIGTERM)'
    with pytest.raises(ChildProcessError, match=r'^training exited with code -15$'):
        _slurm_training_task([sys.executable, '-c', probe], str(log), str(tmp_path), {}, False)
