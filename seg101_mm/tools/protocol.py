"""Table 1 at small scale: the CPU protocol's configs trained, tested and tabulated side by side.

:func:`run_table` trains the protocol config of every model of one dataset (SEG101, DeepLabV3+,
PSPNet; docs/datasets.md, 'The CPU protocol') through the package's train command line, each in
a work dir of its own under ``work_root`` and in a process of its own (``jobs`` at a time, each
on ``threads`` CPU threads), tests the last checkpoint with the test command line, and writes one
record per model into a JSON file: the val learning curve, the test metrics, the median seconds
per training iteration and the training time taken from the run's own logs, the command lines
and the environment. A rerun skips finished steps and resumes a stopped training from its last
checkpoint, so a table that takes longer than one sitting grows over several.

Every value that reaches a child process travels as a separate word of its argument list
(never through a shell); ``--cfg-options`` values are parsed by mmengine's ``DictAction`` as
literals.
"""
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .common import ToolError
from .logs import load_json_log

#: The CPU-protocol config of each model, by dataset; the first model is the ratios' reference.
PROTOCOL_CONFIGS = {
    'seg101': 'configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_{}-256x256.py',
    'deeplabv3plus': 'configs/deeplabv3plus/deeplabv3plus_r50-d8_1xb4-cpu-2k_{}-256x256.py',
    'pspnet': 'configs/pspnet/pspnet_r50-d8_1xb4-cpu-2k_{}-256x256.py',
}
MODEL_NAMES = {
    'seg101': 'SEG101, reference genotype',
    'deeplabv3plus': 'DeepLabV3+ R50-D8',
    'pspnet': 'PSPNet R50-D8',
}
DATASETS = ('mass-roads', 'whu-building')
#: Characters that mmengine's ``DictAction`` reads as structure in a value: a data root holding
#: one would arrive in the child as a list or tuple, not as the path.
_STRUCTURE_CHARS = re.compile(r'[,\[\]()\'" =]')
TEST_METRICS = 'test_metrics.json'


def protocol_config(model: str, dataset: str, repo: Path) -> Path:
    """The CPU-protocol config of ``model`` on ``dataset`` in the checkout ``repo``."""
    if model not in PROTOCOL_CONFIGS:
        raise ToolError(f'model {model!r} is not one of the protocol\'s; expected one of '
                        f'{sorted(PROTOCOL_CONFIGS)}')
    if dataset not in DATASETS:
        raise ToolError(f'dataset {dataset!r} is unknown; expected one of {list(DATASETS)}')
    path = Path(repo) / PROTOCOL_CONFIGS[model].format(dataset)
    if not path.is_file():
        raise ToolError(f'config {str(path)!r} does not exist (run from a checkout of the '
                        f'project, or pass --repo)')
    return path


def check_data_root(data_root: Optional[str]) -> Optional[str]:
    """The absolute data root, after checking that it exists and travels as one literal."""
    if data_root is None:
        return None
    path = Path(data_root).expanduser().resolve()
    if not path.is_dir():
        raise ToolError(f'data root {data_root!r} is not a directory (expected the output '
                        f'folder of tools/dataset_converters, with img_dir/ and ann_dir/)')
    if not (path / 'img_dir').is_dir() or not (path / 'ann_dir').is_dir():
        raise ToolError(f'data root {data_root!r} has no img_dir/ and ann_dir/ (expected the '
                        f'output folder of tools/dataset_converters)')
    if _STRUCTURE_CHARS.search(str(path)):
        raise ToolError(f'data root {str(path)!r} contains one of , [ ] ( ) \' " = or a space, '
                        f'which --cfg-options would not pass on as a path; move or link it')
    return str(path)


def run_options(seed: int, data_root: Optional[str], checkpoint_interval: int,
                extra: Sequence[str] = ()) -> List[str]:
    """The ``--cfg-options`` words of a protocol run (``KEY=VALUE`` each)."""
    opts = [
        f'randomness.seed={seed}', f'default_hooks.checkpoint.interval={checkpoint_interval}',
        'default_hooks.checkpoint.max_keep_ckpts=1'
    ]
    if data_root is not None:
        opts += [
            f'{loader}.dataset.data_root={data_root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        ]
    for word in extra:
        if '=' not in word or word.startswith('='):
            raise ToolError(f'--cfg-options word {word!r} is not KEY=VALUE')
    return opts + list(extra)


def train_command(config: Path, work_dir: Path, options: Sequence[str], amp: bool,
                  resume: bool) -> List[str]:
    cmd = [sys.executable, '-m', 'seg101_mm.tools.train', str(config), '--work-dir', str(work_dir)]
    if resume:
        cmd.append('--resume')
    if amp:
        cmd.append('--amp')
    return cmd + ['--cfg-options', *options]


def test_command(config: Path, checkpoint: Path, out: Path, options: Sequence[str]) -> List[str]:
    return [
        sys.executable, '-m', 'seg101_mm.tools.test',
        str(config),
        str(checkpoint), '--work-dir',
        str(Path(out).parent / 'test'), '--metrics-out',
        str(out), '--cfg-options', *options
    ]


def shown(cmd: Sequence[str]) -> str:
    """A command line as a user types it from the checkout (``python tools/<tool>.py ...``)."""
    words = list(cmd)
    if words[:2] == [sys.executable, '-m'] and words[2].startswith('seg101_mm.tools.'):
        words = ['python', f'tools/{words[2].rsplit(".", 1)[1]}.py'] + words[3:]
    return shlex.join(words)


def last_checkpoint(work_dir: Path) -> Optional[Path]:
    """The checkpoint mmengine resumes from (``last_checkpoint``), else the highest iter_N."""
    pointer = work_dir / 'last_checkpoint'
    if pointer.is_file():
        path = Path(pointer.read_text().strip())
        if path.is_file():
            return path
    found = sorted(work_dir.glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    return found[-1] if found else None


def read_run(work_dir: Path) -> dict:
    """What a run's logs say: val metrics by iteration, iteration times, last iteration.

    A resumed run writes a new ``<timestamp>/vis_data/scalars.json``; the logs are read in time
    order and a later value at the same iteration replaces an earlier one.
    """
    val: Dict[int, dict] = {}
    times: Dict[int, float] = {}
    data_times: Dict[int, float] = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for step, values in load_json_log(str(path)).items():
            if 'mIoU' in values:
                val[step] = {
                    k: v[-1]
                    for k, v in values.items()
                    if isinstance(v[-1], (int, float)) and k not in ('data_time', 'time')
                }
            if 'loss' in values and 'time' in values:
                times[step] = values['time'][-1]
                data_times[step] = values.get('data_time', [None])[-1]
    last = max(times) if times else 0
    return dict(val=dict(sorted(val.items())), times=times, data_times=data_times, last_iter=last)


def _rounded(metrics: dict) -> dict:
    return {k: round(float(v), 2) for k, v in metrics.items() if isinstance(v, (int, float))}


def _load(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ToolError(f'{path}: not a JSON file ({e.msg}); move it away or pass another '
                        f'--out') from None


def write_json(path: Path, record: dict):
    """Write ``record`` to ``path`` atomically (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=1)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def environment(threads: int, amp: bool) -> dict:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return dict(
        torch=torch.__version__,
        threads=threads,
        precision='bfloat16 autocast (CPUAmpOptimWrapper)' if amp else 'float32',
        cpu=cpu)


class _Job:
    """One model's row: training (resumable), then the test of its last checkpoint."""

    def __init__(self, model, config, work_dir, options, test_options, amp, max_iters, repo):
        self.model, self.config, self.work_dir = model, config, work_dir
        self.options, self.test_options, self.amp = options, test_options, amp
        self.max_iters, self.repo = max_iters, repo
        self.proc = None
        self.stage = 'queued'
        self.log = None
        self.commands = {}

    def final_checkpoint(self) -> Path:
        return self.work_dir / f'iter_{self.max_iters}.pth'

    def _tested(self) -> bool:
        out, ckpt = self.work_dir / TEST_METRICS, self.final_checkpoint()
        return out.is_file() and ckpt.is_file() and out.stat().st_mtime >= ckpt.stat().st_mtime

    def next_command(self) -> Optional[List[str]]:
        """The next step's command line, or None when the row is complete."""
        rel = os.path.relpath(self.config, self.repo)
        if not self.final_checkpoint().is_file():
            resume = last_checkpoint(self.work_dir) is not None
            self.stage = 'training' + (' (resumed)' if resume else '')
            cmd = train_command(rel, self.work_dir, self.options, self.amp, resume)
            self.commands['train'] = train_command(rel, self.work_dir, self.options, self.amp,
                                                   False)
            return cmd
        if not self._tested():
            self.stage = 'testing'
            return test_command(rel, self.final_checkpoint(), self.work_dir / TEST_METRICS,
                                self.test_options)
        self.commands.setdefault(
            'train', train_command(rel, self.work_dir, self.options, self.amp, False))
        self.stage = 'done'
        return None

    def start(self, env) -> bool:
        cmd = self.next_command()
        if cmd is None:
            return False
        self.work_dir.mkdir(parents=True, exist_ok=True)
        name = 'train' if self.stage.startswith('training') else 'test'
        self.log = self.work_dir / f'{name}.out'
        with open(self.log, 'a') as out:
            out.write(f'\n# {time.strftime("%Y-%m-%d %H:%M:%S")}: {" ".join(cmd)}\n')
            out.flush()
            self.proc = subprocess.Popen(
                cmd, cwd=self.repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        return True

    def progress(self) -> str:
        run = read_run(self.work_dir)
        if self.stage.startswith('training'):
            return f'{self.model}: {self.stage}, iteration {run["last_iter"]}/{self.max_iters}'
        return f'{self.model}: {self.stage}'


def row_record(job: _Job, dataset: str, seed: int, env_info: dict) -> dict:
    run = read_run(job.work_dir)
    steps = sorted(run['times'])
    times = [run['times'][s] for s in steps]
    test = _load(job.work_dir / TEST_METRICS) if job.stage == 'done' else {}
    record = dict(
        model=MODEL_NAMES[job.model],
        config=os.path.relpath(job.config, job.repo),
        dataset=dataset,
        seed=seed,
        iterations=job.max_iters,
        trained_iterations=run['last_iter'],
        val={str(k): _rounded(v)
             for k, v in run['val'].items()},
        test=_rounded(test),
        s_per_iter=round(statistics.median(times), 3) if times else None,
        train_hours=round(statistics.mean(times) * job.max_iters / 3600, 2) if times else None,
        command=shown(job.commands.get('train', [])),
        environment=env_info)
    return record


def run_table(dataset: str,
              work_root: str,
              out: str,
              repo: str,
              models: Sequence[str] = tuple(PROTOCOL_CONFIGS),
              seed: int = 0,
              data_root: Optional[str] = None,
              amp: bool = False,
              jobs: int = 1,
              threads: Optional[int] = None,
              checkpoint_interval: int = 250,
              cfg_options: Sequence[str] = (),
              poll_s: float = 30.0,
              progress: Callable[[str], None] = print) -> dict:
    """Train and test ``models`` on ``dataset`` and write their rows into ``out``; the record."""
    from mmengine.config import Config
    repo = Path(repo).resolve()
    if jobs < 1:
        raise ToolError(f'--jobs must be >= 1, got {jobs}')
    if checkpoint_interval < 1:
        raise ToolError(f'--checkpoint-interval must be >= 1, got {checkpoint_interval}')
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    if threads < 1:
        raise ToolError(f'--threads must be >= 1, got {threads}')
    data_root = check_data_root(data_root)
    options = run_options(seed, data_root, checkpoint_interval, cfg_options)
    test_options = [
        o for o in options
        if not o.startswith(('train_dataloader.', 'val_dataloader.', 'default_hooks.checkpoint.'))
    ]
    out_path = Path(out)
    record = _load(out_path) or dict(dataset=dataset, rows={})
    if record.get('dataset') != dataset:
        raise ToolError(f'{out}: holds the table of dataset {record.get("dataset")!r}, not '
                        f'{dataset!r}; pass another --out')
    env_info = environment(threads, amp)
    pending = []
    for model in models:
        config = protocol_config(model, dataset, repo)
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(
            {k: v
             for k, v in (o.split('=', 1) for o in cfg_options) if k == 'train_cfg.max_iters'})
        max_iters = int(cfg.train_cfg.max_iters)
        work_dir = Path(work_root).resolve() / f'{config.stem}_seed{seed}'
        pending.append(
            _Job(model, config, work_dir, options, test_options, amp, max_iters, repo))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    running: List[_Job] = []
    failed = []
    last_report = 0.0
    while pending or running:
        while pending and len(running) < jobs:
            job = pending.pop(0)
            if job.start(env):
                progress(f'{job.model}: {job.stage} (log: {job.log})')
                running.append(job)
            else:
                record['rows'][job.model] = row_record(job, dataset, seed, env_info)
                write_json(out_path, record)
                progress(f'{job.model}: done')
        time.sleep(min(poll_s, 1.0))
        for job in list(running):
            code = job.proc.poll()
            if code is None:
                continue
            running.remove(job)
            if code != 0:
                failed.append(f'{job.model} ({job.stage}, exit {code}; log {job.log})')
                progress(f'{job.model}: {job.stage} failed with exit {code}; see {job.log}')
                continue
            pending.insert(0, job)  # its next step (test, or the row)
        if running and time.monotonic() - last_report >= poll_s:
            last_report = time.monotonic()
            progress('; '.join(job.progress() for job in running))
    if failed:
        raise ToolError('failed: ' + ', '.join(failed) + '; fix the cause and rerun the same '
                        'command to continue')
    return record


def markdown_table(record: dict, target: str) -> str:
    """The record's rows as Table 1: test metrics, seconds per iteration and its ratio."""
    rows = list(record.get('rows', {}).values())
    ref = next((r['s_per_iter'] for r in rows if r['model'].startswith('SEG101')
                and r.get('s_per_iter')), None)
    lines = [
        f'| model | iterations | mIoU | IoU {target} | FWIoU | PA | MPA | s / iteration '
        f'(ratio) | training time |', '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        t = r.get('test') or {}
        cells = [f'{t[k]:.2f}' if k in t else '-'
                 for k in ('mIoU', f'IoU.{target}', 'FWIoU', 'PA', 'MPA')]
        spi = r.get('s_per_iter')
        speed = f'{spi:.2f} ({spi / ref:.2f})' if spi and ref else '-'
        hours = r.get('train_hours')
        lines.append(f'| {r["model"]} | {r["trained_iterations"]} / {r["iterations"]} | '
                     f'{" | ".join(cells)} | {speed} | '
                     f'{f"{hours * 60:.0f} min" if hours is not None else "-"} |')
    return '\n'.join(lines)
