"""How a search candidate gets trained: local torchrun jobs, Slurm jobs, or in this process.

A launcher takes :class:`Job` s (a written config and a work_dir), starts them when it has room
(:meth:`Launcher.slots`), and hands back finished ones with their outcome (:meth:`Launcher.poll`):
``dict(status='done', metrics=...)`` or ``dict(status='failed', cause=..., log=...)``. Outcomes
come from the ``result.json`` that :class:`~seg101_mm.search.result_hook.SearchResultHook` writes
in the candidate's work_dir; a job that ends without one crashed, and a job that runs past its
``timeout`` is killed.

- :class:`LocalLauncher`: a torchrun of ``seg101_mm.tools.train`` per candidate, a pool of
  GPUs with ``gpus_per_candidate`` each and ``max_concurrent`` candidates at once; on a machine
  without GPUs each candidate runs ``gpus_per_candidate`` CPU processes with the gloo backend.
- :class:`SlurmLauncher`: one Slurm job per candidate, a blocking srun (the package's
  ``tools/slurm_run.sh``) or a batch job submitted with submitit (sbatch); partition, GPUs and
  time options. A job that Slurm ends (time limit, scancel, memory, node failure) is recorded
  with that cause.
- :class:`InProcessLauncher`: builds an mmengine Runner in this process (tests, tiny runs).

Subprocess launchers start every job in its own process group and report its id, so a search
that is restarted after a kill can end the orphans of its predecessor (:func:`kill_stale`);
Slurm jobs carry a name derived from the candidate's work dir, by which they are cancelled then.
"""
import getpass
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .registry import LAUNCHERS, build_registered
from .result_hook import read_result

#: The package's torchrun and srun scripts (installed with it), and the command line they run.
DIST_RUN = str(Path(__file__).resolve().parents[1] / 'tools' / 'dist_run.sh')
SLURM_RUN = str(Path(__file__).resolve().parents[1] / 'tools' / 'slurm_run.sh')
TRAIN_MODULE = 'seg101_mm.tools.train'
#: The folder that holds the package: batch jobs put it on ``PYTHONPATH`` so that they import
#: the seg101_mm that submitted them.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def _user_script(kind: str, script: Optional[str]) -> Optional[str]:
    """A user's training script (relative paths from the working directory), or None."""
    if script is None:
        return None
    path = os.path.abspath(os.path.expanduser(script))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{kind} script {script!r} not found (looked for {path})')
    return path


def build_launcher(cfg: dict) -> 'Launcher':
    """Build a launcher from ``dict(type='LocalLauncher', ...)`` (or ``type='local'``)."""
    return build_registered(LAUNCHERS, 'launcher', cfg)


@dataclass
class Job:
    """One candidate to train: ``config`` file, ``work_dir`` and ``log`` paths."""

    cid: int
    config: str
    work_dir: str
    log: str
    timeout: Optional[float] = None
    started: float = 0.0
    handle: object = None
    resources: Tuple = ()
    info: dict = field(default_factory=dict)


def tail(path, lines: int = 5) -> str:
    try:
        with open(path, 'rb') as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4000))
            text = fh.read().decode(errors='replace')
    except OSError:
        return ''
    return ' | '.join(t for t in text.strip().splitlines()[-lines:])


_RANK_PREFIX = re.compile(r'^\[(?:rank|default)\d+\]:\s?')


def first_exception(path, window: int = 1 << 20) -> Optional[str]:
    """The first exception line of a log, e.g. ``FileNotFoundError: [Errno 2] ...``.

    It is the first unindented line after the log's first ``Traceback (most recent call
    last):`` (within its last ``window`` bytes); torchrun's ``[rankN]:`` prefixes are removed.
    torchrun's own ``ChildFailedError`` banner comes after the worker's traceback, so the
    worker's real error is found.
    """
    try:
        with open(path, 'rb') as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - window))
            text = fh.read().decode(errors='replace')
    except OSError:
        return None
    in_traceback = False
    for line in text.splitlines():
        line = _RANK_PREFIX.sub('', line.rstrip())
        if line.startswith('Traceback (most recent call last):'):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            return line if len(line) <= 500 else line[:497] + '...'
    return None


#: What a done result may add to its final val metrics (:mod:`.result_hook`), kept as given.
RESULT_EXTRAS = ('curve', 'test_metrics', 'val_seconds', 'test_seconds', 'elapsed',
                 'backbone_sha256')


def outcome(job: Job, returncode=None, timed_out=False, ended: Optional[str] = None) -> dict:
    """What became of ``job``, from its ``result.json``, exit code and time limit.

    ``ended`` is the cause of a job that its scheduler ended (e.g. Slurm's time limit); it
    applies when the job left no result.
    """
    result = read_result(job.work_dir)
    if result is not None and result.get('status') == 'done':
        extra = {k: result[k] for k in RESULT_EXTRAS if k in result}
        return dict(status='done', metrics=result.get('metrics', {}), log=job.log, **extra)
    if timed_out:
        return dict(status='failed', cause=f'timeout: killed after {job.timeout} s', log=job.log)
    if result is not None and result.get('status') == 'failed':
        return dict(status='failed', cause=str(result.get('cause', 'failed')), log=job.log)
    if ended is not None:
        return dict(status='failed', cause=f'{ended}; log tail: {tail(job.log)}', log=job.log)
    error = first_exception(job.log)
    if error is not None:
        return dict(
            status='failed', log=job.log, cause=f'crashed: exit code {returncode}: {error}')
    return dict(
        status='failed',
        log=job.log,
        cause=f'crashed: exit code {returncode}, no result.json; log tail: '
        f'{tail(job.log)}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _processes():
    """``{pid: (ppid, start time, state)}`` of every process, from /proc."""
    out = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f'/proc/{entry}/stat').read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()  # the name may hold spaces and ')'
        out[int(entry)] = (int(fields[1]), int(fields[19]), fields[0])
    return out


def _cmdline(pid) -> str:
    try:
        return Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0',
                                                                 b' ').decode(errors='replace')
    except OSError:
        return ''


def job_processes(pid: Optional[int], match: Sequence[str] = ()) -> dict:
    """``{pid: start time}`` of ``pid``, all its descendants, and (with ``match``) every process
    whose command line names all of ``match`` (a job's config and work dir), e.g. torchrun
    workers whose parent already died."""
    procs = _processes()
    found = {}
    if pid and pid in procs:
        found[pid] = procs[pid][1]
        children = {}
        for p, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(p)
        todo = [pid]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found[child] = procs[child][1]
                    todo.append(child)
    if match:
        me = os.getpid()
        for p in procs:
            if p != me and p not in found and all(str(m) in _cmdline(p) for m in match):
                found[p] = procs[p][1]
    return found


def _alive(targets: dict) -> dict:
    procs = _processes()
    # a reused pid (other start time) is another process; a zombie has ended
    return {
        p: t
        for p, t in targets.items() if p in procs and procs[p][1] == t and procs[p][2] != 'Z'
    }


def kill_group(pid: Optional[int], grace: float = 5.0, match: Sequence[str] = ()):
    """End a job: SIGTERM its process group and every descendant, then SIGKILL what is left.

    torchrun starts each worker in a session (and process group) of its own, so signalling the
    job's group alone would miss them: every descendant of ``pid`` is found first (and, with
    ``match``, every process whose command line names all of it), then signalled by pid.
    """
    targets = job_processes(pid, match)
    if not targets:
        return
    groups = set()
    if pid in targets:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
        # children started since the last look (a dataloader worker, a respawn) are included
        for p in list(_alive(targets)):
            for q, t in job_processes(p).items():
                targets.setdefault(q, t)
        for g in groups:
            try:
                os.killpg(g, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for p in _alive(targets):
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.time() + wait
        while time.time() < end and _alive(targets):
            time.sleep(0.1)
        if not _alive(targets):
            return


def kill_stale(pid: Optional[int], config: str, work_dir: str):
    """End a job left running by an earlier (killed) search process, if it is still there.

    The processes are matched by their command line, which must name both the job's
    ``config`` and its ``work_dir`` (as every training command does), so that a reused pid or
    a process that only reads the config is never touched; the descendants of a matching job
    process go with it.

    A Slurm job submitted for the candidate is cancelled first (:func:`cancel_slurm_jobs`).
    """
    # Slurm first: it ends the job on every node, the processes here are what may be left
    cancelled = cancel_slurm_jobs(work_dir)
    match = (str(config), str(work_dir))
    root = pid if pid and all(m in _cmdline(pid) for m in match) else None
    if not job_processes(root, match=match):
        return cancelled
    kill_group(root, grace=2.0, match=match)
    return True


class Launcher:
    """Base class: a set of running jobs and a number of free slots."""

    def __init__(self):
        self.running: List[Job] = []

    def slots(self) -> int:
        raise NotImplementedError

    def submit(self, job: Job) -> dict:
        """Start ``job``; return facts for the ledger (e.g. ``pid``)."""
        raise NotImplementedError

    def poll(self) -> List[Tuple[Job, dict]]:
        """Finished jobs with their outcomes (each job is returned once)."""
        raise NotImplementedError

    def shutdown(self):
        """Stop every running job."""


class _SubprocessLauncher(Launcher):
    """Jobs as child processes in their own process groups (local and Slurm srun modes)."""

    def _popen(self, job: Job, cmd: Sequence[str], env: dict) -> dict:
        Path(job.log).parent.mkdir(parents=True, exist_ok=True)
        log = open(job.log, 'ab')
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True)
        finally:
            log.close()
        job.handle = proc
        job.started = time.time()
        self.running.append(job)
        return dict(pid=proc.pid)

    def poll(self):
        done = []
        for job in list(self.running):
            rc = job.handle.poll()
            timed_out = (
                rc is None and job.timeout is not None and time.time() - job.started > job.timeout)
            if timed_out:
                kill_group(job.handle.pid, match=(job.config, job.work_dir))
                rc = job.handle.wait()
            if rc is None:
                continue
            self.running.remove(job)
            self.release(job)
            done.append((job, self._outcome(job, rc, timed_out)))
        return done

    def _outcome(self, job, returncode, timed_out):
        return outcome(job, returncode, timed_out)

    def release(self, job):
        pass

    def shutdown(self):
        for job in self.running:
            kill_group(job.handle.pid, grace=2.0, match=(job.config, job.work_dir))
            job.handle.wait()
            self.release(job)
        self.running = []


def _detect_gpus():
    try:
        import torch
        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001  no torch or no driver: a CPU machine
        return []


@LAUNCHERS.register_module(name=['LocalLauncher', 'local'])
class LocalLauncher(_SubprocessLauncher):
    """Train each candidate with a torchrun of ``seg101_mm.tools.train`` on this machine.

    Args:
        gpus (int | list[int], optional): GPU ids of the pool (an int n means ids 0..n-1).
            None: every visible GPU; none visible (or an empty list): CPU processes with gloo.
        gpus_per_candidate (int): Processes (GPUs) per candidate.
        max_concurrent (int): Candidates at once (also limited by the GPU pool).
        script (str, optional): A training script with ``tools/dist_train.sh``'s command line
            (``CONFIG GPUS [ARGS...]``), relative to the working directory; None (default):
            the package's torchrun of ``seg101_mm.tools.train``.
        threads_per_process (int, optional): ``OMP_NUM_THREADS`` of every process.
        extra_args (list[str]): Appended to the training command (e.g. ``['--amp']``).
        python (str, optional): Interpreter for the script (``PYTHON``), default this one's.
    """

    def __init__(self,
                 gpus=None,
                 gpus_per_candidate: int = 1,
                 max_concurrent: int = 1,
                 script: Optional[str] = None,
                 threads_per_process: Optional[int] = None,
                 extra_args: Sequence[str] = (),
                 python: Optional[str] = None):
        super().__init__()
        if isinstance(gpus, int) and not isinstance(gpus, bool):
            gpus = list(range(gpus))
        self.gpus = _detect_gpus() if gpus is None else [int(g) for g in gpus]
        if not isinstance(gpus_per_candidate, int) or gpus_per_candidate < 1:
            raise ValueError(f'gpus_per_candidate must be a positive int, got '
                             f'{gpus_per_candidate!r}')
        if self.gpus and gpus_per_candidate > len(self.gpus):
            raise ValueError(f'gpus_per_candidate={gpus_per_candidate} but the pool has only '
                             f'{len(self.gpus)} GPUs {self.gpus}')
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f'max_concurrent must be a positive int, got {max_concurrent!r}')
        self.gpus_per_candidate = gpus_per_candidate
        self.max_concurrent = max_concurrent
        self.free_gpus = list(self.gpus)
        self.script = _user_script('training', script)
        self.threads_per_process = threads_per_process
        self.extra_args = [str(a) for a in extra_args]
        self.python = python

    def slots(self):
        room = self.max_concurrent - len(self.running)
        if self.gpus:
            room = min(room, len(self.free_gpus) // self.gpus_per_candidate)
        return max(room, 0)

    def submit(self, job):
        if self.slots() < 1:
            raise RuntimeError('LocalLauncher.submit() called without a free slot')
        env = dict(os.environ)
        if self.gpus:
            job.resources = tuple(self.free_gpus[:self.gpus_per_candidate])
            self.free_gpus = self.free_gpus[self.gpus_per_candidate:]
            env['CUDA_VISIBLE_DEVICES'] = ','.join(str(g) for g in job.resources)
        else:
            env['CUDA_VISIBLE_DEVICES'] = ''
        env['PORT'] = str(free_port())
        if self.threads_per_process:
            env['OMP_NUM_THREADS'] = str(self.threads_per_process)
        env['PYTHON'] = self.python or env.get('PYTHON') or _python()
        nproc = str(self.gpus_per_candidate)
        head = ['bash', self.script, job.config, nproc] if self.script else \
            ['bash', DIST_RUN, TRAIN_MODULE, nproc, job.config]
        cmd = head + ['--work-dir', job.work_dir] + self.extra_args
        info = self._popen(job, cmd, env)
        return dict(info, gpus=list(job.resources))

    def release(self, job):
        self.free_gpus = sorted(self.free_gpus + list(job.resources))
        job.resources = ()


def _python():
    import sys
    return sys.executable


_SLURM_WORD = re.compile(r'^[A-Za-z0-9_.,:=+@/-]+$')
_SLURM_TIME = re.compile(r'^(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?$')
#: Slurm job states of a job that has not ended (a preempted job may be requeued).
SLURM_ACTIVE_STATES = frozenset({
    'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED', 'REQUEUE_FED',
    'REQUEUE_HOLD', 'RESIZING', 'SIGNALING', 'STAGE_OUT', 'PREEMPTED', 'RESV_DEL_HOLD'
})
#: The file in a candidate's work dir that says a Slurm job was submitted for it.
SLURM_MARKER = 'slurm_job.json'
# slurmstepd's line when Slurm ends a job or step, e.g.
# "*** JOB 12 ON node1 CANCELLED AT 2026-12-02T18:31:57 DUE TO TIME LIMIT ***"
_SLURM_END = re.compile(r'\*\*\* (?:JOB|STEP) ([0-9.]+) ON \S+ CANCELLED AT \S+'
                        r'(?: DUE TO ([A-Z ]+?))? \*\*\*')
_SUBMITIT_HINT = "pip install 'seg101_mm[slurm]' (or: pip install submitit)"


class MissingDependency(ModuleNotFoundError, ValueError):
    """An optional dependency of a launcher is not installed (a ValueError for config checks)."""


def _check_word(name, value, pattern=_SLURM_WORD):
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f'slurm option {name}={value!r} is not allowed; expected letters, '
                         f'digits and {pattern.pattern}')
    return value


def slurm_minutes(time_limit: str) -> int:
    """Minutes of a Slurm time limit (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``,
    ``D-H:M:S``), seconds rounded up as Slurm does."""
    m = _SLURM_TIME.match(time_limit)
    if m is None:
        raise ValueError(f'{time_limit!r} is not a Slurm time limit')
    days, first, second, third = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-H[:M[:S]]
        h, mi, s = first, second or 0, third or 0
    elif third is not None:  # H:M:S
        h, mi, s = first, second, third
    else:  # M or M:S
        h, mi, s = 0, first, second or 0
    return (days or 0) * 1440 + h * 60 + mi + (1 if s else 0)


def slurm_job_name(work_dir) -> str:
    """``seg101-<candidate dir>-<hash>``: a Slurm job name that only this work dir's jobs have,
    so that a restarted search finds the jobs of its predecessor in the queue by name."""
    path = os.path.abspath(str(work_dir))
    digest = hashlib.sha1(path.encode()).hexdigest()[:10]
    return f'seg101-{os.path.basename(path)}-{digest}'


def _slurm_run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def slurm_states(job_ids: Sequence[str]) -> Optional[dict]:
    """``{job id: state}`` from one ``squeue`` call; jobs that Slurm no longer lists (ended
    more than ``MinJobAge`` ago) are missing. None when ``squeue`` itself failed."""
    if not job_ids:
        return {}
    try:
        out = _slurm_run(['squeue', '-h', '-t', 'all', '-j', ','.join(job_ids), '-o', '%i|%T'])
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # every id unknown is an error for squeue; any other failure says nothing about jobs
        return {} if 'Invalid job id' in out.stderr else None
    states = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.strip().partition('|')
        if jid:
            states[jid] = state.split()[0] if state else ''
    return states


def slurm_named_jobs(name: str,
                     after: int = 0,
                     since: Optional[float] = None) -> List[Tuple[int, str]]:
    """``(job id, state)`` of this user's Slurm jobs named ``name`` with ids above ``after``,
    oldest first.

    They are squeue's (an ended job is listed until ``MinJobAge`` has passed); where squeue
    lists none, sacct's of the jobs active after the time stamp ``since`` (only where Slurm
    keeps accounting; sacct learns of an end later than squeue). Empty when neither answers.
    """
    user = getpass.getuser()
    cmds = [['squeue', '-h', '-t', 'all', '-u', user, '-n', name, '-o', '%i|%T']]
    if since is not None:
        cmds.append([
            'sacct', '-n', '-X', '-P', '-u', user, '--name', name, '-S',
            time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(since)), '-o', 'JobID,State'
        ])
    for cmd in cmds:
        try:
            out = _slurm_run(cmd, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode != 0:  # e.g. sacct without accounting storage
            continue
        jobs = {}
        for line in out.stdout.splitlines():
            jid, _, state = line.strip().partition('|')
            if jid.isdigit() and int(jid) > after and state.strip():
                jobs[int(jid)] = state.split()[0]  # sacct: "CANCELLED by 1000"
        if jobs:
            return sorted(jobs.items())
    return []


def slurm_end_reason(*logs) -> Optional[Tuple[str, str]]:
    """``(job or step id, reason)`` of slurmstepd's last "CANCELLED AT" line in ``logs``, each
    a path or ``(path, offset)`` (where this attempt's output starts); reason is e.g.
    ``'TIME LIMIT'``, ``'PREEMPTION'`` or ``''`` (scancel)."""
    for log in logs:
        log, start = log if isinstance(log, tuple) else (log, 0)
        try:
            with open(log, 'rb') as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(start, fh.tell() - (1 << 20)))
                text = fh.read().decode(errors='replace')
        except OSError:
            continue
        found = _SLURM_END.findall(text)
        if found:
            return found[-1][0], found[-1][1] or ''
    return None


def cancel_slurm_jobs(work_dir, wait: float = 30.0) -> bool:
    """Cancel this user's Slurm jobs of a candidate ``work_dir`` (found by their job name),
    if a Slurm job was ever submitted for it, and wait until they have ended.

    Returns whether there was a job to cancel. Raises RuntimeError when Slurm cannot be asked:
    a restarted search must not train a candidate whose old job may still run.
    """
    if not (Path(work_dir) / SLURM_MARKER).exists():
        return False
    name = slurm_job_name(work_dir)
    user = getpass.getuser()

    def active():
        try:
            out = _slurm_run(['squeue', '-h', '-u', user, '-n', name, '-o', '%i|%T'])
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f'cannot look for the Slurm jobs of {work_dir} (job name '
                               f'{name}): squeue: {e}') from None
        if out.returncode != 0:
            raise RuntimeError(f'cannot look for the Slurm jobs of {work_dir} (job name '
                               f'{name}): squeue exited with {out.returncode}: '
                               f'{out.stderr.strip()}')
        jobs = [line.split('|') for line in out.stdout.split()]
        return [j for j, state in jobs if state in SLURM_ACTIVE_STATES]

    jobs = active()
    if not jobs:
        return False
    _slurm_run(['scancel'] + jobs)
    end = time.time() + wait
    while active() and time.time() < end:
        time.sleep(0.5)
    return True


def _slurm_training_task(cmd, log, cwd, env, ignore_usr2):
    """Runs in every task of a Slurm job (called by submitit there): the training command,
    its output appended to the candidate's log. Pickled by value, so that the job's Python
    imports neither this package nor mmseg before the training does."""
    import os
    import signal
    import subprocess
    if ignore_usr2:
        # no time limit known to submitit: its warning handler cannot judge a USR2, and the
        # job ends at its limit (state TIMEOUT) instead
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)

    def usr2_ignored():
        # Slurm sends the warning signal to every process of the job, the training too: left
        # at its default, USR2 would end the training (exit -12) before submitit's handler here
        # could call it a timeout; ignored there, the handler ends it (finally, below)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)

    with open(log, 'ab') as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=dict(os.environ, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=usr2_ignored)
        try:
            code = proc.wait()
        finally:  # submitit's time-limit handler raises here: the training ends with the job
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if code != 0:
        raise ChildProcessError(f'training exited with code {code}')
    return code


def _submitit():
    try:
        import submitit
    except ImportError:
        raise MissingDependency(f"SlurmLauncher mode='sbatch' needs submitit, which is not "
                                f"installed; install it with {_SUBMITIT_HINT}") from None
    return submitit


@LAUNCHERS.register_module(name=['SlurmLauncher', 'slurm'])
class SlurmLauncher(_SubprocessLauncher):
    """One Slurm job per candidate.

    Args:
        partition (str): Slurm partition.
        gpus_per_candidate (int): GPUs (tasks) per candidate.
        gpus_per_node (int): Upper bound of GPUs per node; 0: CPU nodes, no GPU request and
            one task per candidate (trained without a process group).
        cpus_per_task (int): CPUs per task.
        time (str, optional): Slurm time limit, e.g. ``'02:00:00'`` or ``'1-00:00:00'``; None:
            the partition's default.
        max_concurrent (int): Candidates submitted at once.
        mode (str): ``'srun'``: a blocking srun per candidate;
            ``'sbatch'`` submits a batch job through submitit (``pip install
            seg101_mm[slurm]``) and polls its state.
        srun_args (list[str]): Extra srun options (checked words only).
        script (str, optional): Script of the srun mode, with ``tools/slurm_train.sh``'s
            command line (``PARTITION JOB_NAME CONFIG WORK_DIR``), relative to the working
            directory; None (default): the package's srun of ``seg101_mm.tools.train``.
        python (str, optional): Interpreter of the training (default: this one).
    """

    #: Seconds that an srun-mode candidate which exited with an error waits for Slurm to
    #: finish ending its job (state COMPLETING) before its final state is taken.
    state_wait = 15.0
    #: Seconds before a job's start from which sacct is asked for it (clock differences).
    sacct_slack = 300.0

    def __init__(self,
                 partition: str,
                 gpus_per_candidate: int = 1,
                 gpus_per_node: int = 8,
                 cpus_per_task: int = 5,
                 time: Optional[str] = None,
                 max_concurrent: int = 1,
                 mode: str = 'srun',
                 srun_args: Sequence[str] = (),
                 script: Optional[str] = None,
                 python: Optional[str] = None):
        super().__init__()
        self.partition = _check_word('partition', partition)
        if time is not None:
            _check_word('time', time, _SLURM_TIME)
        self.time = time
        for name, v in dict(
                gpus_per_candidate=gpus_per_candidate,
                cpus_per_task=cpus_per_task,
                max_concurrent=max_concurrent).items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        if not isinstance(gpus_per_node, int) or isinstance(gpus_per_node, bool) or \
                gpus_per_node < 0:
            raise ValueError(f'gpus_per_node must be a positive int, or 0 for CPU nodes, got '
                             f'{gpus_per_node!r}')
        if gpus_per_node == 0 and gpus_per_candidate != 1:
            # seg101_mm.tools.train's slurm launcher sets a CUDA device per task
            raise ValueError(f'gpus_per_node=0 (CPU nodes) trains one task per candidate, got '
                             f'gpus_per_candidate={gpus_per_candidate}; expected 1')
        if mode not in ('srun', 'sbatch'):
            raise ValueError(f"mode must be 'srun' or 'sbatch', got {mode!r}")
        if mode == 'sbatch':
            _submitit()
        self.gpus_per_candidate = gpus_per_candidate
        self.gpus_per_node = min(gpus_per_node, gpus_per_candidate)
        self.cpus_per_task = cpus_per_task
        self.max_concurrent = max_concurrent
        self.mode = mode
        self.srun_args = [_check_word('srun_args', a) for a in srun_args]
        self.script = _user_script('srun', script)
        self.python = python or _python()

    def slots(self):
        return max(self.max_concurrent - len(self.running), 0)

    def _srun_options(self):
        opts = list(self.srun_args)
        if self.time:
            opts.append(f'--time={self.time}')
        return opts

    def submit(self, job):
        name = slurm_job_name(job.work_dir)
        Path(job.work_dir).mkdir(parents=True, exist_ok=True)
        marker = Path(job.work_dir) / SLURM_MARKER
        if self.mode == 'srun' and marker.exists():
            # an earlier attempt's job, which Slurm may still list, is not this one's
            job.info['slurm_before'] = max((jid for jid, _ in slurm_named_jobs(
                name, since=marker.stat().st_mtime - self.sacct_slack)),
                                           default=0)
        marker.write_text(json.dumps(dict(name=name, mode=self.mode)) + '\n')
        # the log is appended to by every attempt: Slurm's messages are looked for in this one's
        job.info['log_start'] = os.path.getsize(job.log) if os.path.exists(job.log) else 0
        if self.mode == 'srun':
            env = dict(
                os.environ,
                GPUS=str(self.gpus_per_candidate),
                GPUS_PER_NODE=str(self.gpus_per_node),
                CPUS_PER_TASK=str(self.cpus_per_task),
                SRUN_ARGS=' '.join(self._srun_options()),
                PYTHON=self.python)
            if self.script:
                cmd = ['bash', self.script, self.partition, name, job.config, job.work_dir]
            else:
                cmd = ['bash', SLURM_RUN, self.partition, name, TRAIN_MODULE, job.config,
                       f'--work-dir={job.work_dir}']
            return self._popen(job, cmd, env)
        return self._sbatch(job, name, marker)

    # ------------------------------------------------------------------ sbatch (submitit)
    def executor(self, job, name):
        """The submitit executor of ``job``: its files go to ``<work_dir>/slurm``."""
        submitit = _submitit()
        ex = submitit.SlurmExecutor(
            folder=str(Path(job.work_dir) / 'slurm'), python=shlex.quote(self.python))
        tasks = self.gpus_per_candidate
        per_node = self.gpus_per_node or 1
        params = dict(
            partition=self.partition,
            job_name=name,
            nodes=-(-tasks // per_node),
            ntasks_per_node=per_node,
            cpus_per_task=self.cpus_per_task,
            time=slurm_minutes(self.time) if self.time else None,
            wckey=None,
            stderr_to_stdout=True,
            srun_args=['--kill-on-bad-exit=1'] + self.srun_args,
            additional_parameters=dict(ntasks=tasks))
        if self.gpus_per_node:
            params['gres'] = f'gpu:{self.gpus_per_node}'
        ex.update_parameters(**params)
        return ex

    def _sbatch(self, job, name, marker):
        import cloudpickle
        launcher = 'slurm' if self.gpus_per_node else 'none'
        cmd = [
            self.python, '-u', '-m', TRAIN_MODULE, job.config, f'--work-dir={job.work_dir}',
            f'--launcher={launcher}'
        ]
        env = dict(
            PYTHONPATH=os.pathsep.join(
                [PACKAGE_PARENT] +
                [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
        Path(job.log).parent.mkdir(parents=True, exist_ok=True)
        module = sys.modules[__name__]
        cloudpickle.register_pickle_by_value(module)
        try:
            handle = self.executor(job, name).submit(_slurm_training_task, cmd, job.log,
                                                     os.getcwd(), env, self.time is None)
        except Exception as e:  # noqa: BLE001  sbatch's refusal, as one message
            raise RuntimeError(f'sbatch of candidate {job.cid} failed: {e}') from None
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        job.handle = handle
        job.started = time.time()
        self.running.append(job)
        marker.write_text(
            json.dumps(dict(name=name, mode=self.mode, job_id=int(handle.job_id))) + '\n')
        return dict(slurm_job=int(handle.job_id))

    def _batch_state(self, job, states) -> Optional[str]:
        """The job's state: squeue's, else (ended long ago) sacct's through submitit; None
        when Slurm keeps no record of it any more."""
        state = states.get(job.handle.job_id)
        if state:
            return state
        try:
            state = job.handle.state.split()[0].upper()  # sacct; UNKNOWN without accounting
        except Exception:  # noqa: BLE001  no accounting storage, no record
            return None
        return None if state == 'UNKNOWN' else state

    def _submitit_error(self, job) -> Optional[str]:
        """The error submitit recorded for the job's first task (a traceback), if any."""
        try:
            from submitit.core.utils import pickle_load
            path = job.handle.paths.result_pickle
            if not path.exists():
                return None
            kind, value = pickle_load(path)
        except Exception:  # noqa: BLE001  unreadable: the job died while writing it
            return None
        return str(value) if kind == 'error' else None

    def _srun_job(self, job) -> Tuple[Optional[str], Optional[str]]:
        """``(job id, state)`` of the Slurm job of an srun-mode candidate's attempt, from
        :func:`slurm_named_jobs`; ``(None, None)`` when Slurm names none (srun got no job, or
        Slurm has forgotten it).

        srun can exit before slurmstepd's "CANCELLED" line reaches the log, and while Slurm
        still ends the job: its state is COMPLETING then, which hides the final one (e.g.
        CANCELLED), so the final state is waited for up to :attr:`state_wait` seconds; a job
        that is still active after that has state None (the log decides).
        """
        name = slurm_job_name(job.work_dir)
        after = job.info.get('slurm_before', 0)
        since = (job.started or time.time()) - self.sacct_slack
        end = time.time() + self.state_wait
        while True:
            jobs = slurm_named_jobs(name, after=after, since=since)
            if not jobs:
                return None, None
            jid, state = jobs[-1]
            if state not in SLURM_ACTIVE_STATES:
                return str(jid), state
            if time.time() >= end:
                return str(jid), None
            time.sleep(0.25)

    def slurm_cause(self, job, state: Optional[str], jid: Optional[str] = None) -> Optional[str]:
        """Why Slurm ended ``job`` (time limit, scancel, memory, node), or None.

        ``state`` is Slurm's final state of the job, if known; ``jid`` its id in srun mode
        (else the id in slurmstepd's line of the log is named).
        """
        logs = [(job.log, job.info.get('log_start', 0))]
        if self.mode == 'sbatch':
            logs.append(job.handle.paths.stdout)
        end = slurm_end_reason(*logs)
        if self.mode == 'sbatch':
            jid = job.handle.job_id
        elif jid is None:
            jid = end[0].split('.')[0] if end else '?'
        error = self._submitit_error(job) if self.mode == 'sbatch' else None
        if state == 'TIMEOUT' or (end and end[1] == 'TIME LIMIT') or \
                (error and 'timed-out' in error):
            limit = f'Slurm time limit {self.time}' if self.time else \
                "the partition's Slurm time limit"
            return f'timeout: {limit} reached (job {jid})'
        if state == 'OUT_OF_MEMORY':
            return f'crashed: Slurm job {jid} ran out of memory (OUT_OF_MEMORY)'
        ended = ('NODE_FAIL', 'BOOT_FAIL', 'DEADLINE', 'PREEMPTED')
        if state in ended:
            return f'crashed: Slurm job {jid} ended {state}'
        if end and end[1] and state != 'CANCELLED':  # e.g. DUE TO PREEMPTION, NODE FAILURE
            return f'crashed: Slurm job {jid} was cancelled due to {end[1].lower()}'
        # slurmstepd also reports the steps that srun's --kill-on-bad-exit ends after a task
        # crashed: without Slurm's word for it, a traceback in the log is the better cause
        if state == 'CANCELLED' or (end and state is None and first_exception(job.log) is None):
            return f'cancelled: Slurm job {jid} was cancelled (scancel or an administrator)'
        return None

    def _outcome(self, job, returncode, timed_out, state=None):
        jid = None
        if self.mode == 'srun' and returncode != 0 and not timed_out and \
                read_result(job.work_dir) is None:
            jid, state = self._srun_job(job)
        return outcome(job, returncode, timed_out, ended=self.slurm_cause(job, state, jid))

    def poll(self):
        if self.mode == 'srun':
            return super().poll()
        states = slurm_states([job.handle.job_id for job in self.running])
        if states is None:  # squeue failed this time: ask again at the next poll
            return []
        done = []
        for job in list(self.running):
            state = self._batch_state(job, states)
            timed_out = (job.timeout is not None and time.time() - job.started > job.timeout)
            if state in SLURM_ACTIVE_STATES and not timed_out:
                continue
            if state in SLURM_ACTIVE_STATES:
                job.handle.cancel(check=False)
            self.running.remove(job)
            error = self._submitit_error(job) or ''
            code = re.search(r'training exited with code (-?\d+)', error)
            rc = int(code.group(1)) if code else f'unknown (Slurm state {state or "gone"})'
            done.append((job, self._outcome(job, rc, timed_out, state)))
        return done

    def shutdown(self):
        if self.mode == 'srun':
            return super().shutdown()
        for job in self.running:
            job.handle.cancel(check=False)
        self.running = []


@LAUNCHERS.register_module(name=['InProcessLauncher', 'inprocess'])
class InProcessLauncher(Launcher):
    """Train each candidate with an mmengine Runner inside the search process.

    For tests and tiny runs: one candidate at a time, and ``timeout`` is enforced only from
    inside the training (by :class:`SearchResultHook`), not by killing anything.
    """

    def __init__(self):
        super().__init__()
        self.finished = []

    def slots(self):
        return 1

    def submit(self, job):
        from mmengine.config import Config
        from mmengine.runner import Runner
        job.started = time.time()
        cfg = Config.fromfile(job.config)
        cfg.work_dir = job.work_dir
        cause = None
        try:
            Runner.from_cfg(cfg).train()
        except Exception as e:  # noqa: BLE001  any failure of a candidate is recorded
            cause = f'{type(e).__name__}: {e}'
            Path(job.log).parent.mkdir(parents=True, exist_ok=True)
            import traceback
            with open(job.log, 'a') as fh:
                traceback.print_exc(file=fh)
        result = outcome(job, 0 if cause is None else 1)
        if result['status'] == 'failed' and cause and result['cause'].startswith('crashed'):
            result['cause'] = f'raised {cause}'
        self.finished.append((job, result))
        return dict(pid=os.getpid())

    def poll(self):
        out, self.finished = self.finished, []
        return out
