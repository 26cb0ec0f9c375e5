"""Table 1 at small scale: the CPU protocol's configs trained, tested and tabulated side by side.

:func:`run_table` trains the protocol config of every model of one dataset (SEG101, DeepLabV3+,
PSPNet; docs/datasets.md, 'The CPU protocol') through the package's train command line, each in
a work dir of its own under ``work_root`` and in a process of its own (``jobs`` at a time, each
on ``threads`` CPU threads), tests the last checkpoint with the test command line, and writes one
record per model into a JSON file: the val learning curve, the test metrics, the median seconds
per training iteration and the training time taken from the run's own logs, the command lines
and the environment. A rerun skips finished steps and resumes a stopped training from its last
checkpoint, so a table that takes longer than one sitting grows over several.

Other SEG101 genotypes run the same protocol as rows of their own (``genotypes`` of
:func:`run_table`): each trains a standalone config that the search's literal-only config writer
makes from the SEG101 protocol config with the genotype swapped in (in ``<work_root>/configs``;
the row names it, and :func:`write_genotype_config` writes it again from the row's genotype).

Every value that reaches a child process travels as a separate word of its argument list
(never through a shell); ``--cfg-options`` values are parsed by mmengine's ``DictAction`` as
literals.
"""
import fcntl
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
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..engine.resumed_validation import is_validation_step, scalar_log_entries, validation_schedule
from ..search.result_hook import write_result
from .common import ToolError

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


#: Where a genotype row's key, config name and work dir name come from: ``bench<id>`` for a
#: SEG101-Bench entry, ``g<first 8 hex digits of the canonical key's sha256>`` otherwise.
GENOTYPE_LABEL = re.compile(r'(bench[0-9]+|g[0-9a-f]{8})')


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


def train_command(config: str, work_dir: Path, options: Sequence[str], amp: bool,
                  resume: bool) -> List[str]:
    cmd = [sys.executable, '-m', 'seg101_mm.tools.train', str(config), '--work-dir', str(work_dir)]
    if resume:
        cmd.append('--resume')
    if amp:
        cmd.append('--amp')
    return cmd + ['--cfg-options', *options]


def test_command(config: str, checkpoint: Path, out: Path, options: Sequence[str]) -> List[str]:
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
    """The checkpoint a resume starts from: the one ``last_checkpoint`` names, else the highest
    ``iter_<N>.pth`` in ``work_dir``; None when there is none."""
    pointer = work_dir / 'last_checkpoint'
    if pointer.is_file():
        path = Path(pointer.read_text().strip())
        if path.is_file():
            return path
    found = [p for p in work_dir.glob('iter_*.pth') if re.fullmatch(r'iter_\d+\.pth', p.name)]
    return max(found, key=lambda p: int(p.stem[5:])) if found else None


def read_run(work_dir: Path) -> dict:
    """What a run's logs say: val metrics and training iteration times, by iteration.

    mmengine writes one JSON line per logged training window (``iter``, ``loss``, ``time``,
    ...) and one per validation (``mIoU`` and the other metrics, ``step``); both can carry the
    same step, so lines are told apart by their keys, not grouped by step. A resumed run writes
    a new ``<timestamp>/vis_data/scalars.json``; the logs are read in time order and a later
    line for the same iteration replaces an earlier one.
    """
    val: Dict[int, dict] = {}
    times: Dict[int, float] = {}
    for entry in scalar_log_entries(work_dir):
        if 'mIoU' in entry and isinstance(entry.get('step'), int):
            val[entry['step']] = {
                k: v
                for k, v in entry.items()
                if isinstance(v, (int, float)) and k not in ('data_time', 'time', 'step')
            }
        elif 'loss' in entry and isinstance(entry.get('iter'), int) and 'time' in entry:
            times[entry['iter']] = float(entry['time'])
    last = max(times) if times else 0
    return dict(val=dict(sorted(val.items())), times=dict(sorted(times.items())), last_iter=last)


def resolve_genotypes(refs: Sequence[str],
                      bench_path: Optional[str],
                      repo: Optional[Path] = None) -> List[dict]:
    """``refs`` (SEG101-Bench entry ids, or genotype texts) as ``label``, ``genotype`` (its
    canonical text), ``bench_id`` and ``bench`` (the file an id was looked up in, relative to
    ``repo`` when inside it); one error names a bad reference, an unreadable benchmark or a
    repeat."""
    import hashlib

    from seg101_mm.space import Genotype
    bench = None
    found, keys = [], {}
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip():
            raise ToolError(f'genotype {ref!r} is empty; expected a SEG101-Bench entry id or a '
                            f'genotype text (ga=...;gb=...;st=...;h0=...;h1=...;hm=...)')
        ref = ref.strip()
        if re.fullmatch(r'[0-9]+', ref):
            if bench is None:
                from seg101_mm.nasbench.table import NASBench, NASBenchError
                if bench_path is None:
                    raise ToolError(f'genotype {ref!r} is an entry id, but no --bench file is '
                                    f'given to look it up in')
                try:
                    bench = NASBench.load(bench_path)
                except NASBenchError as e:
                    raise ToolError(str(e)) from None
                except OSError as e:
                    raise ToolError(f'benchmark file {bench_path!r} cannot be read '
                                    f'({e.strerror}); expected a SEG101-Bench JSON file') from None
            entry = [e for e in bench if e.get('id') == int(ref)]
            if not entry:
                ids = sorted(e['id'] for e in bench if isinstance(e.get('id'), int))
                raise ToolError(f'genotype {ref!r}: no entry with that id in {bench_path}; '
                                f'expected one of {ids[0]}-{ids[-1]}' if ids else
                                f'genotype {ref!r}: {bench_path} has no entries')
            text, bench_id = entry[0]['genotype'], int(ref)
            bench_file = Path(bench_path).resolve()
            if repo is not None and bench_file.is_relative_to(Path(repo).resolve()):
                bench_file = bench_file.relative_to(Path(repo).resolve())
        else:
            text, bench_id, bench_file = ref, None, None
        try:
            genotype = Genotype.parse(text).canonical()
        except (TypeError, ValueError) as e:
            raise ToolError(f'genotype {ref!r} is not a SEG101 genotype: {e}') from None
        if genotype.key in keys:
            raise ToolError(f'genotype {ref!r} is the same architecture as {keys[genotype.key]!r}'
                            f'; give each once')
        keys[genotype.key] = ref
        label = (f'bench{bench_id}' if bench_id is not None else
                 'g' + hashlib.sha256(genotype.key.encode()).hexdigest()[:8])
        found.append(
            dict(
                label=label,
                genotype=str(genotype),
                bench_id=bench_id,
                bench=None if bench_file is None else str(bench_file)))
    return found


def checked_genotype(genotype: dict) -> dict:
    """``genotype`` (as :func:`resolve_genotypes` gives it) with its label checked, since it
    names files and folders, and its genotype text made canonical."""
    from seg101_mm.space import Genotype
    if not GENOTYPE_LABEL.fullmatch(str(genotype.get('label'))):
        raise ToolError(f'genotype label {genotype.get("label")!r} is not bench<id> or '
                        f'g<8 hex digits>')
    try:
        text = str(Genotype.parse(genotype.get('genotype')).canonical())
    except (TypeError, ValueError) as e:
        raise ToolError(f'genotype {genotype.get("genotype")!r} is not a SEG101 genotype: '
                        f'{e}') from None
    return dict(genotype, genotype=text)


def genotype_config_path(base: Path, genotype: dict, config_dir: Path) -> Path:
    """Where the config of a genotype row (label checked) of the protocol config ``base`` is
    written."""
    return Path(config_dir) / f'{base.stem}_{genotype["label"]}.py'


def write_genotype_config(repo: Path, dataset: str, genotype: dict, config_dir: Path) -> Path:
    """The SEG101 protocol config of ``dataset`` with ``genotype`` swapped in, written as a
    standalone literal config into ``config_dir``; its path."""
    from mmengine.config import Config

    from seg101_mm.search.config_writer import candidate_config, render_config, write_config
    genotype = checked_genotype(genotype)
    base = protocol_config('seg101', dataset, repo)
    cfg = candidate_config(Config.fromfile(base).to_dict(), genotype['genotype'])
    cfg.pop('work_dir', None)
    source = (f'SEG101-Bench entry {genotype["bench_id"]}' if genotype['bench_id'] is not None
              else 'a genotype given on the command line')
    header = (f'{base.name} with the genotype of {source}, written by '
              f'tools/analysis_tools/protocol_table.py.\ngenotype: {genotype["genotype"]}')
    path = genotype_config_path(base, genotype, config_dir)
    if path.is_file() and path.read_text() == render_config(cfg, header):
        return path  # unchanged: a run of another seed may be reading it
    return write_config(path, cfg, header)


def _rounded(metrics: dict) -> dict:
    return {k: round(float(v), 2) for k, v in metrics.items() if isinstance(v, (int, float))}


def _load(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ToolError(f'{path}: not a JSON file ({e.msg}); move it away or pass another '
                        f'--out') from None
    if not isinstance(record, dict) or not isinstance(record.get('rows', {}), dict):
        raise ToolError(f'{path}: not a protocol table (expected an object with "dataset" and '
                        f'"rows"); move it away or pass another --out')
    return record


def write_json(path: Path, record: dict):
    """Write ``record`` to ``path`` atomically, with the search's result writer."""
    # unsorted: the val curve stays in iteration order ('500' before '1000')
    write_result(path.parent, record, path.name, sort_keys=False)


def save_row(path: Path, dataset: str, model: str, row: dict):
    """Put one model's row into the table file, keeping the rows other commands wrote since."""
    record = _load(path) or dict(dataset=dataset, rows={})
    record.setdefault('rows', {})[model] = row
    for other in record['rows'].values():  # curves by iteration, whatever order a file had
        if isinstance(other, dict) and isinstance(other.get('val'), dict):
            other['val'] = dict(sorted(other['val'].items(), key=lambda kv: _iteration(kv[0])))
    write_json(path, record)


def _iteration(key) -> float:
    try:
        return int(key)
    except (TypeError, ValueError):
        return float('inf')


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
        device='cpu',
        precision='bfloat16 autocast (CPUAmpOptimWrapper)' if amp else 'float32',
        cpu=cpu)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Job:
    """One model's row: training (resumable), then the test of its last checkpoint."""

    def __init__(self,
                 model,
                 config,
                 work_dir,
                 options,
                 test_options,
                 amp,
                 max_iters,
                 validation,
                 repo,
                 name=None,
                 genotype=None):
        self.model, self.config, self.work_dir = model, Path(config), Path(work_dir)
        self.options, self.test_options, self.amp = options, test_options, amp
        self.max_iters, self.validation, self.repo = max_iters, validation, Path(repo)
        self.name = name or MODEL_NAMES[model]
        self.genotype = genotype
        config = self.config.resolve()
        inside = config.is_relative_to(self.repo.resolve())
        self.rel_config = os.path.relpath(config, self.repo) if inside else str(config)
        self.proc = None
        self.stage = 'queued'
        self.log = None
        self.train_cmd = train_command(self.rel_config, self.work_dir, options, amp, False)

    def settings(self) -> dict:
        """What makes two runs the same run: the train command's options and precision (and
        the architecture of a genotype row, whose config file a later command rewrites)."""
        settings = dict(config=self.rel_config, amp=self.amp, cfg_options=list(self.options))
        if self.genotype is not None:
            settings['genotype'] = self.genotype['genotype']
        return settings

    def lock(self):
        """Hold the work dir's lock until this process ends: a second command that would train
        in the same work dir stops with an error instead of training beside this one."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.work_dir / 'protocol.lock', 'a+')
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or 'unknown'
            self._lock.close()
            raise ToolError(f'{self.work_dir} is in use by another protocol_table.py (pid '
                            f'{holder}); wait for it or stop it first') from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()

    def check_settings(self):
        """Refuse a work dir that an earlier command filled with other settings."""
        self.lock()
        path = self.work_dir / 'protocol_settings.json'
        if path.is_file():
            try:
                before = json.loads(path.read_text())
            except json.JSONDecodeError:
                before = None
            if before != self.settings():
                raise ToolError(f'{self.work_dir} holds a run with other settings ({path}); '
                                f'pass another --work-root, or the options of that run')
        elif self.work_dir.is_dir() and any(self.work_dir.glob('iter_*.pth')):
            raise ToolError(f'{self.work_dir} holds checkpoints of an unknown run (no {path.name})'
                            f'; pass another --work-root')
        else:
            write_json(path, self.settings())

    def final_checkpoint(self) -> Path:
        return self.work_dir / f'iter_{self.max_iters}.pth'

    def tested(self) -> bool:
        out, ckpt = self.work_dir / TEST_METRICS, self.final_checkpoint()
        return out.is_file() and ckpt.is_file() and out.stat().st_mtime >= ckpt.stat().st_mtime

    def validated(self, iteration: int, run: Optional[dict] = None) -> bool:
        """Whether the run has logged its validation after ``iteration`` (True for an iteration
        that is not a validation step, and in a config without validation); ``run``: its
        :func:`read_run`, when already read."""
        if self.validation is None or not is_validation_step(self.validation, iteration):
            return True
        return iteration in (run or read_run(self.work_dir))['val']

    def next_command(self) -> Optional[List[str]]:
        """The next step's command line, or None when the row is complete.

        A final checkpoint whose validation was not logged (the run stopped during it) is
        resumed: the train tool validates a resumed checkpoint first, and has nothing left to
        train.
        """
        final = self.final_checkpoint()
        if not final.is_file() or not self.validated(self.max_iters):
            resume_from = last_checkpoint(self.work_dir)
            if resume_from is not None:
                # mmengine resumes from the file last_checkpoint names: make it this one
                (self.work_dir / 'last_checkpoint').write_text(str(resume_from))
            self.stage = 'training' + (f' (resumed from {resume_from.name})'
                                       if resume_from else '')
            return train_command(self.rel_config, self.work_dir, self.options, self.amp,
                                 resume_from is not None)
        if not self.tested():
            self.stage = 'testing'
            return test_command(self.rel_config, self.final_checkpoint(),
                                self.work_dir / TEST_METRICS, self.test_options)
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
            out.write(f'\n# {time.strftime("%Y-%m-%d %H:%M:%S")}: {shlex.join(cmd)}\n')
            out.flush()
            self.proc = subprocess.Popen(
                cmd, cwd=self.repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        return True

    def finished_step(self) -> Optional[str]:
        """After a child exited 0: None if its step left what it should, else what is missing."""
        if self.stage.startswith('training') and not self.final_checkpoint().is_file():
            return (f'training exited without {self.final_checkpoint().name} (does an option '
                    f'change the checkpoint hook or the schedule?)')
        if self.stage.startswith('training') and not self.validated(self.max_iters):
            return (f'training exited without logging the validation of iteration '
                    f'{self.max_iters} (does an option change the val loop?)')
        if self.stage == 'testing' and not self.tested():
            return f'testing exited without writing {TEST_METRICS}'
        return None

    def stop(self):
        """End a running child (terminate, then kill)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def progress(self) -> str:
        run = read_run(self.work_dir)
        if self.stage.startswith('training'):
            return f'{self.model}: {self.stage}, iteration {run["last_iter"]}/{self.max_iters}'
        return f'{self.model}: {self.stage}'


def row_record(job: _Job, dataset: str, seed: int, env_info: dict) -> dict:
    """The row of a model: complete once tested, else the val curve so far (no test)."""
    run = read_run(job.work_dir)
    times = list(run['times'].values())
    done = job.stage == 'done'
    checkpoint = job.final_checkpoint() if done else last_checkpoint(job.work_dir)
    trained = int(checkpoint.stem[5:]) if checkpoint is not None else 0
    if not done and trained and not job.validated(trained, run):
        # mmengine saves a validation step's checkpoint just before it validates: until that
        # validation is logged, the row counts the iterations up to the last one logged
        trained = max((k for k in run['val'] if k < trained), default=0)
    extra = {} if job.genotype is None else dict(
        genotype=job.genotype['genotype'],
        bench_id=job.genotype['bench_id'],
        bench=job.genotype.get('bench'))
    return dict(
        model=job.name,
        **extra,
        config=job.rel_config,
        dataset=dataset,
        seed=seed,
        iterations=job.max_iters,
        trained_iterations=trained,
        val={str(k): _rounded(v)
             for k, v in run['val'].items() if k <= trained},
        test=_rounded(_load_metrics(job.work_dir / TEST_METRICS)) if done else {},
        s_per_iter=round(statistics.median(times), 3) if times else None,
        # the median logged iteration times the schedule: a paused or resumed run's idle time
        # and the validations do not count
        train_hours=round(statistics.median(times) * job.max_iters / 3600, 2) if times else None,
        command=shown(job.train_cmd),
        environment=env_info)


def _load_metrics(path: Path) -> dict:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ToolError(f'{path}: unreadable test metrics ({e}); delete it to test '
                        f'again') from None
    return metrics if isinstance(metrics, dict) else {}


def _schedule(config: Path, cfg_options: Sequence[str]) -> Tuple[int, Optional[SimpleNamespace]]:
    """``(max_iters, validation)`` of the config's iteration-based schedule, with the
    ``--cfg-options`` applied: ``validation`` (:func:`validation_schedule`) tells which
    iterations validate; None when the config has no validation."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config)
    for word in cfg_options:
        key, value = word.split('=', 1)
        if key.startswith('train_cfg.') or key in ('val_cfg', 'val_dataloader', 'val_evaluator'):
            cfg.merge_from_dict({key: DictAction._parse_iterable(value)})
    train_cfg = cfg.train_cfg
    for key, default, least in (('max_iters', None, 1), ('val_interval', 1000, 1),
                                ('val_begin', 1, 0)):
        value = train_cfg.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ToolError(f'{config.name}: train_cfg.{key}={value!r}; expected an integer '
                            f'of at least {least} (an iteration-based schedule)')
    if any(cfg.get(key) is None for key in ('val_cfg', 'val_dataloader', 'val_evaluator')):
        return train_cfg.max_iters, None
    return train_cfg.max_iters, validation_schedule(
        train_cfg.max_iters, train_cfg.get('val_interval', 1000), train_cfg.get('val_begin', 1),
        train_cfg.get('dynamic_intervals'))


def run_table(dataset: str,
              work_root: str,
              out: str,
              repo: str,
              models: Sequence[str] = tuple(PROTOCOL_CONFIGS),
              genotypes: Sequence[dict] = (),
              seed: int = 0,
              data_root: Optional[str] = None,
              amp: bool = False,
              jobs: int = 1,
              threads: Optional[int] = None,
              checkpoint_interval: int = 250,
              cfg_options: Sequence[str] = (),
              poll_s: float = 60.0,
              progress: Callable[[str], None] = print) -> dict:
    """Train and test ``models`` on ``dataset`` and write their rows into ``out``; the record.

    Rows of models still training are written at every progress report (val curve so far,
    ``trained_iterations`` below ``iterations``, no test), complete rows when tested.
    ``genotypes`` (from :func:`resolve_genotypes`) add one SEG101 row each, keyed
    ``seg101_<label>``, trained with a config written into ``<work_root>/configs``.
    """
    repo = Path(repo).resolve()
    if jobs < 1:
        raise ToolError(f'--jobs must be >= 1, got {jobs}')
    if checkpoint_interval < 1:
        raise ToolError(f'--checkpoint-interval must be >= 1, got {checkpoint_interval}')
    if threads is None:
        threads = max(1, usable_cores() // jobs)
    if threads < 1:
        raise ToolError(f'--threads must be >= 1, got {threads}')
    if not poll_s > 0:
        raise ToolError(f'--poll must be > 0 seconds, got {poll_s}')
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
    root = Path(work_root).resolve()
    pending = []
    for model in models:
        config = protocol_config(model, dataset, repo)
        work_dir = root / f'{config.stem}_seed{seed}'
        job = _Job(model, config, work_dir, options, test_options, amp,
                   *_schedule(config, cfg_options), repo)
        pending.append(job)
    base = protocol_config('seg101', dataset, repo)
    for genotype in genotypes:
        genotype = checked_genotype(genotype)
        model = f'seg101_{genotype["label"]}'
        work_dir = root / f'{base.stem}_{genotype["label"]}_seed{seed}'
        name = (f'SEG101, SEG101-Bench entry {genotype["bench_id"]}'
                if genotype['bench_id'] is not None else f'SEG101, genotype {genotype["label"]}')
        config = genotype_config_path(base, genotype, root / 'configs')
        # the written config changes the genotype only: the schedule is the protocol config's
        pending.append(
            _Job(model, config, work_dir, options, test_options, amp,
                 *_schedule(base, cfg_options), repo, name, genotype))
    for job in pending:
        job.check_settings()
        if job.genotype is not None:  # written under the work dir's lock, after the check
            write_genotype_config(repo, dataset, job.genotype, job.config.parent)
    # the children train on the CPU, as the protocol and the recorded environment say
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        CUDA_VISIBLE_DEVICES='')
    running: List[_Job] = []
    failed = []
    last_report = time.monotonic()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                job = pending.pop(0)
                if job.start(env):
                    progress(f'{job.model}: {job.stage} (log: {job.log})')
                    running.append(job)
                else:
                    save_row(out_path, dataset, job.model,
                             row_record(job, dataset, seed, env_info))
                    progress(f'{job.model}: done')
            time.sleep(min(poll_s, 1.0))
            for job in list(running):
                code = job.proc.poll()
                if code is None:
                    continue
                running.remove(job)
                missing = job.finished_step() if code == 0 else f'exit {code}'
                if missing:
                    failed.append(f'{job.model} ({job.stage}: {missing}; log {job.log})')
                    progress(f'{job.model}: {job.stage} failed: {missing}; see {job.log}')
                    continue
                pending.insert(0, job)  # its next step (test, or the row)
            if running and time.monotonic() - last_report >= poll_s:
                last_report = time.monotonic()
                progress('; '.join(job.progress() for job in running))
                for job in running:
                    if job.stage.startswith('training'):
                        save_row(out_path, dataset, job.model,
                                 row_record(job, dataset, seed, env_info))
    finally:
        for job in running:
            job.stop()
            if job.stage.startswith('training'):
                save_row(out_path, dataset, job.model, row_record(job, dataset, seed, env_info))
    if failed:
        raise ToolError('failed: ' + ', '.join(failed) + '; fix the cause and rerun the same '
                        'command to continue')
    return _load(out_path) or record


def markdown_table(record: dict, target: str) -> str:
    """The record's rows as Table 1: test metrics, seconds per iteration and its ratio."""
    rows = list(record.get('rows', {}).values())
    # ratios against the reference SEG101 row, or (a table of genotypes) its first row
    first = record.get('rows', {}).get('seg101') or (rows[0] if rows else {})
    ref = first.get('s_per_iter')
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
