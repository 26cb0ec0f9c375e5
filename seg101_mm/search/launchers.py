"""How a search candidate gets trained: local torchrun jobs, Slurm jobs, or in this process.

A launcher takes :class:`Job` s (a written config and a work_dir), starts them when it has room
(:meth:`Launcher.slots`), and hands back finished ones with their outcome (:meth:`Launcher.poll`):
``dict(status='done', metrics=...)`` or ``dict(status='failed', cause=..., log=...)``. Outcomes
come from the ``result.json`` that :class:`~seg101_mm.search.result_hook.SearchResultHook` writes
in the candidate's work_dir; a job that ends without one crashed, and a job that runs past its
``timeout`` is killed.

- :class:`LocalLauncher`: ``tools/dist_train.sh CONFIG N`` per candidate, a pool of GPUs with
  ``gpus_per_candidate`` each and ``max_concurrent`` candidates at once; on a machine without
  GPUs each candidate runs ``gpus_per_candidate`` CPU processes with the gloo backend.
- :class:`SlurmLauncher`: one Slurm job per candidate, through ``tools/slurm_train.sh`` (srun)
  or ``sbatch`` with a generated batch script; partition / GPUs / time options.
- :class:`InProcessLauncher`: builds an mmengine Runner in this process (tests, tiny runs).

Subprocess launchers start every job in its own process group and report its id, so a search
that is restarted after a kill can end the orphans of its predecessor (:func:`kill_stale`).
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .result_hook import read_result

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Launcher name -> class, for :func:`build_launcher`.
LAUNCHERS = {}
#: Short names of the launchers.
LAUNCHER_ALIASES = dict(local='LocalLauncher', slurm='SlurmLauncher',
                        inprocess='InProcessLauncher')


def register_launcher(cls):
    LAUNCHERS[cls.__name__] = cls
    return cls


def build_launcher(cfg: dict) -> 'Launcher':
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'a launcher config must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    name = cfg.pop('type')
    name = LAUNCHER_ALIASES.get(name, name)
    if name not in LAUNCHERS:
        raise ValueError(f'unknown launcher {name!r}; expected one of {sorted(LAUNCHERS)} or '
                         f'{sorted(LAUNCHER_ALIASES)}')
    return LAUNCHERS[name](**cfg)


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


def outcome(job: Job, returncode=None, timed_out=False) -> dict:
    """What became of ``job``, from its ``result.json``, exit code and time limit."""
    result = read_result(job.work_dir)
    if result is not None and result.get('status') == 'done':
        return dict(status='done', metrics=result.get('metrics', {}), log=job.log)
    if timed_out:
        return dict(status='failed', cause=f'timeout: killed after {job.timeout} s',
                    log=job.log)
    if result is not None and result.get('status') == 'failed':
        return dict(status='failed', cause=str(result.get('cause', 'failed')), log=job.log)
    error = first_exception(job.log)
    if error is not None:
        return dict(status='failed', log=job.log,
                    cause=f'crashed: exit code {returncode}: {error}')
    return dict(status='failed', log=job.log,
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
        return Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode(
            errors='replace')
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
    return {p: t for p, t in targets.items()
            if p in procs and procs[p][1] == t and procs[p][2] != 'Z'}


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
    """
    match = (str(config), str(work_dir))
    root = pid if pid and all(m in _cmdline(pid) for m in match) else None
    if not job_processes(root, match=match):
        return False
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
            proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT,
                                    cwd=str(REPO_ROOT), env=env, start_new_session=True)
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
            timed_out = (rc is None and job.timeout is not None
                         and time.time() - job.started > job.timeout)
            if timed_out:
                kill_group(job.handle.pid, match=(job.config, job.work_dir))
                rc = job.handle.wait()
            if rc is None:
                continue
            self.running.remove(job)
            self.release(job)
            done.append((job, outcome(job, rc, timed_out)))
        return done

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


@register_launcher
class LocalLauncher(_SubprocessLauncher):
    """Train each candidate with ``tools/dist_train.sh CONFIG N`` on this machine.

    Args:
        gpus (int | list[int], optional): GPU ids of the pool (an int n means ids 0..n-1).
            None: every visible GPU; none visible (or an empty list): CPU processes with gloo.
        gpus_per_candidate (int): Processes (GPUs) per candidate.
        max_concurrent (int): Candidates at once (also limited by the GPU pool).
        script (str): The training script, relative to the repository root.
        threads_per_process (int, optional): ``OMP_NUM_THREADS`` of every process.
        extra_args (list[str]): Appended to the training command (e.g. ``['--amp']``).
        python (str, optional): Interpreter for the script (``PYTHON``), default this one's.
    """

    def __init__(self, gpus=None, gpus_per_candidate: int = 1, max_concurrent: int = 1,
                 script: str = 'tools/dist_train.sh', threads_per_process: Optional[int] = None,
                 extra_args: Sequence[str] = (), python: Optional[str] = None):
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
        self.script = str(REPO_ROOT / script) if not os.path.isabs(script) else script
        if not os.path.exists(self.script):
            raise FileNotFoundError(f'training script {self.script} not found')
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
        cmd = ['bash', self.script, job.config, str(self.gpus_per_candidate), '--work-dir',
               job.work_dir] + self.extra_args
        info = self._popen(job, cmd, env)
        return dict(info, gpus=list(job.resources))

    def release(self, job):
        self.free_gpus = sorted(self.free_gpus + list(job.resources))
        job.resources = ()


def _python():
    import sys
    return sys.executable


_SLURM_WORD = re.compile(r'^[A-Za-z0-9_.,:=+@/-]+$')
_SLURM_TIME = re.compile(r'^(\d+-)?\d+(:\d{1,2}){0,2}$')


def _check_word(name, value, pattern=_SLURM_WORD):
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f'slurm option {name}={value!r} is not allowed; expected letters, '
                         f'digits and {pattern.pattern}')
    return value


@register_launcher
class SlurmLauncher(_SubprocessLauncher):
    """One Slurm job per candidate.

    Args:
        partition (str): Slurm partition.
        gpus_per_candidate (int): GPUs (tasks) per candidate.
        gpus_per_node (int): Upper bound of GPUs per node.
        cpus_per_task (int): CPUs per task.
        time (str, optional): Slurm time limit, e.g. ``'02:00:00'`` or ``'1-00:00:00'``.
        max_concurrent (int): Candidates submitted at once.
        mode (str): ``'srun'`` runs ``tools/slurm_train.sh`` (a blocking srun per candidate);
            ``'sbatch'`` submits a generated batch script and polls ``squeue``.
        srun_args (list[str]): Extra srun options (checked words only).
        script (str): Script of the srun mode.
    """

    def __init__(self, partition: str, gpus_per_candidate: int = 1, gpus_per_node: int = 8,
                 cpus_per_task: int = 5, time: Optional[str] = None, max_concurrent: int = 1,
                 mode: str = 'srun', srun_args: Sequence[str] = (),
                 script: str = 'tools/slurm_train.sh', python: Optional[str] = None):
        super().__init__()
        self.partition = _check_word('partition', partition)
        if time is not None:
            _check_word('time', time, _SLURM_TIME)
        self.time = time
        for name, v in dict(gpus_per_candidate=gpus_per_candidate, gpus_per_node=gpus_per_node,
                            cpus_per_task=cpus_per_task, max_concurrent=max_concurrent).items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        if mode not in ('srun', 'sbatch'):
            raise ValueError(f"mode must be 'srun' or 'sbatch', got {mode!r}")
        self.gpus_per_candidate = gpus_per_candidate
        self.gpus_per_node = min(gpus_per_node, gpus_per_candidate)
        self.cpus_per_task = cpus_per_task
        self.max_concurrent = max_concurrent
        self.mode = mode
        self.srun_args = [_check_word('srun_args', a) for a in srun_args]
        self.script = str(REPO_ROOT / script)
        self.python = python or _python()

    def slots(self):
        return max(self.max_concurrent - len(self.running), 0)

    def _srun_options(self):
        opts = list(self.srun_args)
        if self.time:
            opts.append(f'--time={self.time}')
        return opts

    def submit(self, job):
        name = f'seg101-c{job.cid}'
        if self.mode == 'srun':
            env = dict(os.environ, GPUS=str(self.gpus_per_candidate),
                       GPUS_PER_NODE=str(self.gpus_per_node),
                       CPUS_PER_TASK=str(self.cpus_per_task),
                       SRUN_ARGS=' '.join(self._srun_options()), PYTHON=self.python)
            cmd = ['bash', self.script, self.partition, name, job.config, job.work_dir]
            return self._popen(job, cmd, env)
        return self._sbatch(job, name)

    def batch_script(self, job, name) -> str:
        """The sbatch script of ``job``: every value is a checked word or a quoted path."""
        q = shlex.quote
        lines = [
            '#!/usr/bin/env bash',
            f'#SBATCH --partition={self.partition}',
            f'#SBATCH --job-name={name}',
            f'#SBATCH --gres=gpu:{self.gpus_per_node}',
            f'#SBATCH --ntasks={self.gpus_per_candidate}',
            f'#SBATCH --ntasks-per-node={self.gpus_per_node}',
            f'#SBATCH --cpus-per-task={self.cpus_per_task}',
            f'#SBATCH --output={q(job.log)}',
        ]
        if self.time:
            lines.append(f'#SBATCH --time={self.time}')
        lines += [
            'set -euo pipefail',
            f'cd {q(str(REPO_ROOT))}',
            f'export PYTHONPATH={q(str(REPO_ROOT))}:${{PYTHONPATH:-}}',
            ' '.join(['srun', '--kill-on-bad-exit=1'] + self.srun_args + [
                q(self.python), '-u', q(str(REPO_ROOT / 'tools' / 'train.py')), q(job.config),
                f'--work-dir={q(job.work_dir)}', '--launcher=slurm'
            ]),
        ]
        return '\n'.join(lines) + '\n'

    def _sbatch(self, job, name):
        path = Path(job.work_dir) / 'slurm_job.sh'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.batch_script(job, name))
        out = subprocess.run(['sbatch', '--parsable', str(path)], capture_output=True,
                             text=True, cwd=str(REPO_ROOT))
        if out.returncode != 0:
            raise RuntimeError(f'sbatch failed with exit code {out.returncode}: '
                               f'{out.stderr.strip()}')
        job_id = out.stdout.strip().split(';')[0]
        if not job_id.isdigit():
            raise RuntimeError(f'sbatch --parsable printed {out.stdout!r}, expected a job id')
        job.handle = job_id
        job.started = time.time()
        self.running.append(job)
        return dict(slurm_job=int(job_id))

    def poll(self):
        if self.mode == 'srun':
            return super().poll()
        done = []
        for job in list(self.running):
            q = subprocess.run(['squeue', '-h', '-j', job.handle, '-o', '%T'],
                               capture_output=True, text=True)
            state = q.stdout.strip()
            timed_out = (job.timeout is not None and time.time() - job.started > job.timeout)
            if state and not timed_out:
                continue
            if state and timed_out:
                subprocess.run(['scancel', job.handle], capture_output=True)
            self.running.remove(job)
            done.append((job, outcome(job, None if state else 'slurm job ended', timed_out)))
        return done

    def shutdown(self):
        if self.mode == 'srun':
            return super().shutdown()
        for job in self.running:
            subprocess.run(['scancel', job.handle], capture_output=True)
        self.running = []


@register_launcher
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
