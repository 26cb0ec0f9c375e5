"""The search as an mmengine loop: ``train_cfg=dict(type='NPENASSearchLoop', ...)``.

:class:`NPENASSearchLoop` ties the parts together and owns none of their logic: the strategy
(:mod:`.strategy`) proposes, the config writer (:mod:`.config_writer`) turns every proposal into
a standalone mmseg config in the work_dir, a launcher (:mod:`.launchers`) trains it, the ledger
(:mod:`.ledger`) records everything durably, and after every round :mod:`.reports` writes the
leaderboard, plots and the best architecture's full-training config, and :mod:`.visualization`
one point per finished candidate to the runner's visualizer (TensorBoard, ``scalars.json``).

``tools/search.py CONFIG [--work-dir DIR] [--resume]`` runs it through mmengine's Runner. The
Runner needs a model and an optimiser to enter ``train()``, so search configs use
:class:`~.controller.SearchController`, a placeholder model; candidates are trained in their
own jobs. Candidate templates are read by :func:`~.templates.load_template`, and proposals are
measured, where a strategy asks for it, by :class:`~.measure.ModelMeasure`.
"""
import inspect
import json
import math
import numbers
import os
import signal
import threading
import time
from pathlib import Path
from typing import Optional

from mmengine.runner import BaseLoop
from mmseg.registry import LOOPS

from seg101_mm.space import Genotype
from . import lock
from .config_writer import candidate_config, set_genotype, write_config
from .controller import SearchController  # noqa: F401  (search configs name it)
from .errors import SearchConfigError, SearchError, SearchExists, SearchStopped
from .launchers import Job, build_launcher, kill_stale, outcome
from .ledger import Ledger
from .measure import ModelMeasure
from .registry import LAUNCHERS, STRATEGIES, expected_types, registered_type
from .reports import DEFAULT_SCORE
from .result_hook import RESULT_FILE
from .strategy import build_strategy
from .templates import load_template
from .visualization import write_search_scalars

CANDIDATE_KEYS = ('template', 'overrides', 'iters', 'data_root', 'synthetic', 'seed', 'test')
EXPORT_KEYS = ('template', 'overrides', 'data_root')
LEDGER_FILE = 'ledger.jsonl'


def _result_extras(result: dict) -> dict:
    """The learning curve, test metrics, training seconds and backbone hash of a done result,
    as ledger fields (only those the result has)."""
    out = {k: result[k] for k in ('curve', 'test_metrics', 'backbone_sha256') if k in result}
    if 'elapsed' in result:
        spent = result.get('val_seconds', 0.0) + result.get('test_seconds', 0.0)
        out['train_seconds'] = max(float(result['elapsed']) - spent, 0.0)
    return out


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_positive(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0


def _bad(key, value, expected):
    return SearchConfigError(f'train_cfg.{key}={value!r} is not allowed; expected {expected}')


def _check_file(key, path):
    if not isinstance(path, str) or not Path(path).is_file():
        raise SearchConfigError(f'train_cfg.{key}={path!r} does not exist; expected the path '
                                f'of a config file')
    return path


def _check_template_section(key, section, allowed, expected):
    """A ``train_cfg`` dict naming a ``template`` file, with options among ``allowed``;
    returns the template's path."""
    if not isinstance(section, dict) or 'template' not in section:
        raise _bad(key, section, expected)
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise SearchConfigError(f'train_cfg.{key} has unknown options {unknown}; expected '
                                f'some of {list(allowed)}')
    return _check_file(f'{key}.template', section['template'])


def check_search_config(train_cfg: dict):
    """Raise :class:`SearchConfigError` for the first bad value of a search's ``train_cfg``.

    Nothing is written: the templates are read and the strategy and launcher are built and
    dropped, so that a refused search leaves its work dir as it was.
    """
    from seg101_mm.space import sample
    cfg = {k: v for k, v in dict(train_cfg).items() if k != 'type'}
    params = inspect.signature(NPENASSearchLoop.__init__).parameters
    allowed = [n for n in params if n not in ('self', 'runner', 'dataloader')]
    for k in cfg:
        if k not in allowed:
            raise SearchConfigError(f'train_cfg.{k} is not a search option; expected some of '
                                    f'{allowed}')

    def get(k):
        return cfg.get(k, params[k].default)

    budget = get('budget')
    if not _is_int(budget) or budget < 1:
        raise _bad('budget', budget, 'a positive int (candidates to train)')
    if not _is_int(get('seed')):
        raise _bad('seed', get('seed'), 'an int')
    if not _is_int(get('max_failures')) or get('max_failures') < 1:
        raise _bad('max_failures', get('max_failures'), 'a positive int')
    if get('candidate_timeout') is not None and not _is_positive(get('candidate_timeout')):
        raise _bad('candidate_timeout', get('candidate_timeout'), 'None or a positive number '
                   'of seconds')
    if not _is_positive(get('poll_interval')):
        raise _bad('poll_interval', get('poll_interval'), 'a positive number of seconds')
    for k in ('resume', 'fsync'):
        if not isinstance(get(k), bool):
            raise _bad(k, get(k), 'True or False')

    cand = get('candidate')
    template = _check_template_section('candidate', cand, CANDIDATE_KEYS,
                                       'a dict with a "template" config path')
    iters = cand.get('iters')
    if iters is not None and (not _is_int(iters) or iters < 1):
        raise _bad('candidate.iters', iters, 'None or a positive int (training iterations)')
    if cand.get('seed') is not None and not _is_int(cand['seed']):
        raise _bad('candidate.seed', cand['seed'], 'None or an int')
    if not isinstance(cand.get('test', False), bool):
        raise _bad('candidate.test', cand['test'], 'True or False')
    try:
        loaded = load_template(template, cand.get('overrides'), iters)
        set_genotype(loaded, sample(0))
    except Exception as e:  # noqa: BLE001  any reason the template is unusable is reported
        raise SearchConfigError(f'train_cfg.candidate.template={template!r} cannot be used: '
                                f'{type(e).__name__}: {e}') from None
    score = get('score')
    if not isinstance(score, str) or not score:
        raise _bad('score', score, "a val metric name such as 'mIoU' or 'IoU.road'")
    names = reported_metrics(loaded)
    if names is not None and score not in names:
        raise _bad('score', score, f'one of the val metrics that the candidates report: {names}')
    root, synthetic = cand.get('data_root'), cand.get('synthetic')
    if root is not None:
        if not isinstance(root, str) or not root:
            raise _bad('candidate.data_root', root, 'None or a dataset folder path')
        if not Path(root).is_dir():
            raise SearchConfigError(
                f'train_cfg.candidate.data_root={root!r} does not exist (resolved: '
                f'{Path(root).resolve()}); expected a dataset folder, or no data_root to '
                f'train on generated scenes')
    elif synthetic is None:
        raise SearchConfigError('train_cfg.candidate has neither a data_root nor a synthetic '
                                'dataset; expected data_root=<dataset folder> or '
                                'synthetic=dict(...)')
    elif not isinstance(synthetic, dict):
        raise _bad('candidate.synthetic', synthetic, 'a dict of make_synthetic_dataset '
                   'arguments')

    export = get('export')
    if export is not None:
        _check_template_section('export', export, EXPORT_KEYS,
                                'None or a dict with a "template" config path')

    measure = get('measure')
    if measure is not None:
        names = [
            n for n in inspect.signature(ModelMeasure.__init__).parameters
            if n not in ('self', 'model_cfg')
        ]
        if not isinstance(measure, dict) or set(measure) - set(names):
            raise _bad('measure', measure, f'None or a dict of some of {names}')

    strategy = get('strategy')
    if not isinstance(strategy, dict) or \
            registered_type(STRATEGIES, strategy.get('type')) is None:
        key, value = ('strategy.type', strategy.get('type')) if isinstance(strategy, dict) \
            else ('strategy', strategy)
        raise _bad(key, value, expected_types(STRATEGIES))
    try:
        build_strategy(
            strategy,
            budget=budget,
            seed=get('seed'),
            measure=(lambda g: {}) if measure is not None else None)
    except (TypeError, ValueError) as e:
        raise SearchConfigError(f'train_cfg.strategy={strategy!r} is not allowed: {e}') from None

    launcher = get('launcher')
    if not isinstance(launcher, dict) or 'type' not in launcher:
        raise _bad('launcher', launcher, f'a dict whose "type" is {expected_types(LAUNCHERS)}')
    cls = registered_type(LAUNCHERS, launcher['type'])
    if cls is None:
        raise _bad('launcher.type', launcher['type'], expected_types(LAUNCHERS))
    name = cls.__name__
    options = [n for n in inspect.signature(cls.__init__).parameters if n != 'self']
    for k in launcher:
        if k != 'type' and k not in options:
            raise SearchConfigError(f'train_cfg.launcher.{k} is not an option of {name}; '
                                    f'expected some of {options}')
    try:
        build_launcher(launcher)
    except (TypeError, ValueError, FileNotFoundError) as e:
        raise SearchConfigError(f'train_cfg.launcher={launcher!r} is not allowed: {e}') from None


def candidate_paths(work_dir, cid: int) -> dict:
    """``config``, ``work_dir`` and ``log`` of candidate ``cid``, from the work dir alone.

    The config lives outside the candidate's work dir: mmengine's Runner rewrites
    ``<its work_dir>/<config name>`` when the job starts (empty for a moment), and that copy
    must never be the search's.
    """
    work_dir = Path(work_dir)
    cdir = work_dir / 'candidates' / f'{cid:04d}'
    return dict(
        config=str(work_dir / 'configs' / f'candidate_{cid:04d}.py'),
        work_dir=str(cdir),
        log=str(cdir / 'train.log'))


def dataset_of(candidate: dict) -> dict:
    """What a search's candidates train on, as its ledger records it: the resolved
    ``data_root``, or the ``synthetic`` arguments of the scenes generated in the work dir."""
    root = candidate.get('data_root')
    if root is not None:
        return dict(data_root=str(Path(root).resolve()), synthetic=None)
    return json.loads(json.dumps(dict(data_root=None, synthetic=candidate.get('synthetic'))))


def reported_metrics(template: dict) -> Optional[list]:
    """The val metric names that a candidate of ``template`` reports, or None where they are not
    known beforehand (an evaluator other than the project's ``SegPaperMetric``)."""
    from mmseg.registry import DATASETS

    from seg101_mm.evaluation import metric_names
    evaluator = template.get('val_evaluator')
    if not isinstance(evaluator, dict) or \
            str(evaluator.get('type', '')).split('.')[-1] != 'SegPaperMetric':
        return None
    dataset = (template.get('val_dataloader') or {}).get('dataset') or {}
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        cls = registered_type(DATASETS, dataset.get('type'))
        classes = getattr(cls, 'METAINFO', {}).get('classes') if cls is not None else None
    if not classes:
        return None
    prefix = evaluator.get('prefix')
    names = metric_names(classes, evaluator.get('target_class', 1),
                         bool(evaluator.get('threshold_free', False)))
    return [f'{prefix}/{n}' for n in names] if prefix else names


def _check_score(ledger: Ledger, now: str):
    """Refuse ``now`` when the ledger's search ranked by another score (a ledger with candidates
    but no recorded score ranked by the default)."""
    if not len(ledger) and 'score' not in ledger.setup:
        return
    recorded = ledger.setup.get('score', DEFAULT_SCORE)
    if recorded != now:
        raise SearchConfigError(
            f'train_cfg.score={now!r}: this search ranked its candidates by {recorded!r}; '
            f'resuming would mix two scores in one search. Resume with '
            f'score={recorded!r}, or start a new search in another --work-dir')


def _check_dataset(recorded: dict, now: dict):
    if recorded == now:
        return

    def text(d):
        return (f'data_root={d["data_root"]!r}'
                if d.get('data_root') else f'generated scenes synthetic={d.get("synthetic")!r}')

    raise SearchConfigError(
        f'train_cfg.candidate: this search trained its candidates on {text(recorded)}, not '
        f'on {text(now)}; resuming would mix two datasets in one search. Resume with the '
        f'same dataset, or start a new search in another --work-dir')


def preflight(train_cfg: dict, work_dir, resume: bool):
    """The checks of ``tools/search.py`` before mmengine's Runner writes in ``work_dir``.

    Validates the search config, refuses a work dir that holds a search (unless ``resume``),
    that another search process holds, or whose search trained on another dataset, and takes
    the work dir's lock (:mod:`.lock`; the caller releases it). A refused search without
    ``resume`` leaves ``work_dir`` untouched.
    """
    check_search_config(train_cfg)
    holder = lock.lock_holder(work_dir)
    if holder is not None:
        raise lock.busy(work_dir, holder)
    ledger_path = Path(work_dir) / LEDGER_FILE
    if ledger_path.exists() and ledger_path.stat().st_size and not resume:
        raise SearchExists(f'{ledger_path} already holds a search; continue it with --resume '
                           f'or choose another --work-dir')
    lock.acquire(work_dir)
    try:
        if resume and ledger_path.exists():
            ledger = Ledger(ledger_path, readonly=True)
            recorded = ledger.setup.get('dataset')
            if recorded is not None:
                _check_dataset(recorded, dataset_of(train_cfg['candidate']))
            _check_score(ledger, train_cfg.get('score', DEFAULT_SCORE))
    except BaseException:
        lock.release(work_dir)
        raise


@LOOPS.register_module()
class NPENASSearchLoop(BaseLoop):
    """Architecture search loop (docs/method.md section 6) over real training jobs.

    Args:
        runner: The mmengine Runner (its ``work_dir`` holds the whole search).
        dataloader: Unused (the Runner passes its ``train_dataloader``).
        strategy (dict): ``dict(type='NPENASNP' | 'NPENASBO' | 'RandomSearch', ...)``.
        launcher (dict): ``dict(type='LocalLauncher' | 'SlurmLauncher' | 'InProcessLauncher',
            ...)``.
        candidate (dict): ``template`` (a SEG101 training config file), ``overrides``
            (``--cfg-options``-style dotted keys applied to it), ``iters`` (training
            iterations; the schedulers spanning the run are cut to match),
            ``data_root`` (dataset folder, which must exist), ``synthetic`` (kwargs of
            :func:`seg101_mm.datasets.synthetic.make_synthetic_dataset`, used to generate
            ``<work_dir>/data`` only when no ``data_root`` is given),
            ``seed`` (training seed of every candidate, default the search seed), ``test``
            (also evaluate every candidate on the test split after training; default False).
            The ledger keeps each candidate's learning curve (``curve``), its
            ``train_seconds`` (without validation and test) and, with ``test``, its
            ``test_metrics``.
        export (dict): ``template`` and ``overrides`` of the full-training config written for
            the best architecture (the 100-epoch recipe), and optionally its ``data_root``
            (default: the search's, unless the search ran on generated scenes).
        budget (int): Candidates to train in all. Paper: 200.
        seed (int): Seed of the strategy.
        max_failures (int): Stop the search (with an error) when this many candidates failed.
        candidate_timeout (float, optional): Seconds a candidate may train before it is
            recorded as failed.
        measure (dict, optional): ``dict(names=[...], input_size=(h, w))``: measure every
            proposal with :class:`ModelMeasure` (recorded in the ledger; needed by the
            strategy's ``constraints``, ``prefilter`` and ``predictor_features``).
        poll_interval (float): Seconds between launcher polls.
        score (str): The val metric that ranks the candidates, as the candidate's evaluator
            names it: ``'mIoU'`` (the paper's, default), ``'IoU.road'``, ``'F1.building'``,
            ... It is checked against the template's evaluator before anything trains, and
            the ledger records it: a search resumes only with the score it started with.
        resume (bool): Continue the search in the work_dir (``tools/search.py --resume``).
        fsync (bool): fsync every ledger event.
    """

    def __init__(self,
                 runner,
                 dataloader=None,
                 strategy: dict = dict(type='NPENASNP'),
                 launcher: dict = dict(type='LocalLauncher'),
                 candidate: dict = None,
                 export: Optional[dict] = None,
                 budget: int = 200,
                 seed: int = 0,
                 max_failures: int = 10,
                 candidate_timeout: Optional[float] = None,
                 measure: Optional[dict] = None,
                 poll_interval: float = 1.0,
                 score: str = DEFAULT_SCORE,
                 resume: bool = False,
                 fsync: bool = True):
        self._runner = runner
        check_search_config(
            dict(
                strategy=strategy,
                launcher=launcher,
                candidate=candidate,
                export=export,
                budget=budget,
                seed=seed,
                max_failures=max_failures,
                candidate_timeout=candidate_timeout,
                measure=measure,
                poll_interval=poll_interval,
                score=score,
                resume=resume,
                fsync=fsync))
        self.strategy_cfg = dict(strategy)
        self.launcher_cfg = dict(launcher)
        self.candidate = dict(candidate)
        self.export = dict(export) if export else None
        self.budget = budget
        self.seed = seed
        self.max_failures = max_failures
        self.candidate_timeout = candidate_timeout
        self.measure_cfg = dict(measure) if measure else None
        self.poll_interval = poll_interval
        self.score = score
        self.resume = resume
        self.fsync = fsync
        self._iter = 0
        self._stop_signal = None
        self._cleaning = False
        self._reported = None
        self._reported_round = None

    # mmengine's Runner.train() reads these before calling run().
    @property
    def iter(self):
        return self._iter

    @property
    def max_iters(self):
        return self.budget

    @property
    def epoch(self):
        return 0

    # ------------------------------------------------------------------ set-up
    @property
    def work_dir(self) -> Path:
        return Path(self.runner.work_dir)

    def log(self, msg):
        self.runner.logger.info(f'[search] {msg}')

    def candidate_paths(self, cid: int) -> dict:
        return candidate_paths(self.work_dir, cid)

    def _data_root(self):
        root = self.candidate.get('data_root')
        self.synthetic_data = root is None
        if root is not None:
            if not Path(root).is_dir():  # it was there when the config was checked
                raise SearchConfigError(f'train_cfg.candidate.data_root={root!r} does not exist; '
                                        f'expected a dataset folder')
            return str(Path(root).resolve())
        from seg101_mm.datasets.synthetic import make_synthetic_dataset
        synthetic = self.candidate['synthetic']
        target = self.work_dir / 'data'
        if not (target / 'img_dir' / 'val').is_dir():
            self.log(f'generating the synthetic dataset {synthetic} in {target}')
            make_synthetic_dataset(target, **synthetic)
        return str(target.resolve())

    def _setup(self):
        self._scalars_written = 0  # points of write_search_scalars in this run's visualizer
        lock.acquire(self.work_dir)
        self._locked = True
        ledger_path = self.work_dir / LEDGER_FILE
        if ledger_path.exists() and ledger_path.stat().st_size and not self.resume:
            raise SearchExists(f'{ledger_path} already holds a search; continue it with '
                               f'--resume or choose another --work-dir')
        self.template = load_template(self.candidate['template'], self.candidate.get('overrides'),
                                      self.candidate.get('iters'))
        seed = self.candidate.get('seed')
        self.candidate_seed = self.seed if seed is None else int(seed)
        self.ledger = Ledger(ledger_path, fsync=self.fsync)
        if self.ledger.dropped_tail:
            self.log(f'dropped a torn last ledger line ({len(self.ledger.dropped_tail)} bytes, '
                     f'kept in {self.ledger.dropped_path})')
        dataset = dataset_of(self.candidate)
        recorded = self.ledger.setup.get('dataset')
        if recorded is None:
            self.ledger.save_setup(dataset=dataset)
        else:
            _check_dataset(recorded, dataset)
        _check_score(self.ledger, self.score)
        if 'score' not in self.ledger.setup:
            self.ledger.save_setup(score=self.score)
        self.data_root = self._data_root()
        measure = None
        if self.measure_cfg is not None:
            measure = ModelMeasure(self.template['model'], **self.measure_cfg)
        self.measure = measure
        self.strategy = build_strategy(
            self.strategy_cfg, budget=self.budget, seed=self.seed, measure=measure)
        self.launcher = build_launcher(self.launcher_cfg)
        if self.resume and len(self.ledger):
            self._restore()

    def _restore(self):
        state = self.ledger.strategy_state
        if state is not None:
            self.strategy.load_state_dict(state)
        for rec in self.ledger.records():
            cid = rec['id']
            # Paths come from the work dir and the id, never from the ledger's text.
            paths = self.candidate_paths(cid)
            if rec['status'] in ('done', 'failed') and rec['key'] not in self.strategy.results:
                self.strategy.tell(rec['genotype'], rec.get('score'))
            elif rec['status'] == 'running':
                if kill_stale(rec.get('pid'), paths['config'], paths['work_dir']):
                    self.log(f'ended the orphaned job of candidate {cid}')
                job = Job(cid=cid, **paths)
                result = outcome(job)
                if result['status'] == 'done':
                    # It finished after the kill, before its result was recorded: keep it.
                    self._finish(job, result)
                    continue
                self.ledger.update(cid, status='queued')
                rec['status'] = 'queued'
            if rec['status'] == 'queued':
                # Written again from the ledger's genotype: the file may have been cut by a
                # kill, and it must train on this search's template and dataset.
                self._write_candidate(cid, rec['genotype'], rec.get('round'))
                moved = {k: v for k, v in paths.items() if rec.get(k) != v}
                if moved:
                    self.ledger.update(cid, **moved)
        self.ledger.save_strategy(self.strategy.state_dict())
        counts = {s: len(self.ledger.records(s)) for s in ('done', 'failed', 'queued')}
        self.log(f'resumed: {counts}, strategy round {self.strategy.round}')

    # ------------------------------------------------------------------ steps
    def _write_candidate(self, cid, genotype, rnd) -> dict:
        try:
            genotype = Genotype.parse(genotype)
        except (TypeError, ValueError) as e:
            raise SearchError(f'{self.ledger.path}: candidate {cid} has an invalid genotype '
                              f'{genotype!r}: {e}') from None
        paths = self.candidate_paths(cid)
        cfg = candidate_config(
            self.template,
            genotype,
            data_root=self.data_root,
            work_dir=paths['work_dir'],
            seed=self.candidate_seed,
            extra_hooks=[
                dict(
                    type='SearchResultHook',
                    timeout=self.candidate_timeout,
                    test=bool(self.candidate.get('test', False)))
            ])
        write_config(
            paths['config'],
            cfg,
            header=f'SEG101 search candidate {cid} (round '
            f'{rnd})\ngenotype: {genotype.key}')
        return paths

    def _propose(self, n):
        new = self.strategy.ask(n)
        if not new:
            return 0
        records = []
        rnd = self.strategy.round - 1
        for g in new:
            cid = self.ledger.next_id() + len(records)
            paths = self._write_candidate(cid, g, rnd)
            rec = dict(
                id=cid, genotype=str(g), key=g.key, round=rnd, seed=self.candidate_seed, **paths)
            if self.measure is not None:
                rec['measures'] = self.strategy.get_measure(g)
            records.append(rec)
        self.ledger.propose(records, self.strategy.state_dict())
        self.log(f'round {rnd}: proposed candidates {[r["id"] for r in records]}')
        return len(records)

    def _launch(self, rec):
        job = Job(cid=rec['id'], timeout=self.candidate_timeout, **self.candidate_paths(rec['id']))
        self.ledger.update(
            rec['id'],
            status='running',
            started_at=time.time(),
            attempts=rec.get('attempts', 0) + 1)
        info = self.launcher.submit(job)
        if 'pid' in info:
            self.ledger.update(rec['id'], pid=info['pid'])
        self.log(f'candidate {rec["id"]} started ({rec["key"]})')

    def _ended_at(self, job, rec, now):
        """When the job wrote its result (it may have ended while the search was down)."""
        try:
            written = os.stat(Path(job.work_dir) / RESULT_FILE).st_mtime
        except OSError:
            return now
        started = rec.get('started_at')
        # a result older than this attempt's start is a stale one of an earlier attempt
        return min(written, now) if started is None or written >= started else now

    def _finish(self, job, result):
        rec = self.ledger.candidates[job.cid]
        now = time.time()
        ended = self._ended_at(job, rec, now)
        if result['status'] == 'done':
            metrics = result.get('metrics', {})
            score = metrics.get(self.score)
            if not isinstance(score, (int, float)) or not math.isfinite(score):
                cause = (f'no {self.score} among the val metrics {sorted(metrics)}'
                         if score is None else f'val {self.score} is {score!r}, not a number')
                result = dict(status='failed', log=job.log, cause=cause)
            else:
                self.ledger.update(
                    job.cid,
                    status='done',
                    metrics=metrics,
                    score=float(score),
                    ended_at=ended,
                    cause=None,
                    **_result_extras(result))
                self.strategy.tell(rec['genotype'], float(score))
                self.log(f'candidate {job.cid} done: {self.score} {score:.2f} '
                         f'({ended - rec["started_at"]:.1f} s)')
        if result['status'] == 'failed':
            self.ledger.update(
                job.cid,
                status='failed',
                ended_at=ended,
                cause=result['cause'],
                log=result.get('log', job.log),
                score=None)
            self.strategy.tell(rec['genotype'], None)
            self.log(f'candidate {job.cid} FAILED: {result["cause"]} (log: {job.log})')
        self.ledger.save_strategy(self.strategy.state_dict())
        self._iter = self._trained()

    def _trained(self):
        return len(self.ledger.records('done')) + len(self.ledger.records('failed'))

    def _report(self):
        from .reports import write_reports

        # The full-training config trains on the search's dataset when it is a real one;
        # after a search on generated scenes it keeps the export template's data_root.
        data_root = self.export.get('data_root') if self.export else None
        if data_root is None and not self.synthetic_data:
            data_root = self.data_root
        records = self.ledger.records()
        write_reports(records, self.work_dir, self.export, data_root=data_root, score=self.score)
        # One point per finished candidate for the search config's vis_backends (TensorBoard,
        # LocalVisBackend's scalars.json); a resumed search writes them all to its new log dir.
        self._scalars_written = write_search_scalars(
            self.runner.visualizer, records, start=self._scalars_written)
        self._reported = self._trained()

    def _stop_jobs(self):
        """End the running jobs; those without a result are queued again for a resume."""
        running = list(self.launcher.running)
        self.launcher.shutdown()
        for job in running:
            result = outcome(job)
            if result['status'] == 'done':
                self._finish(job, result)
            elif self.ledger.candidates[job.cid]['status'] == 'running':
                self.ledger.update(job.cid, status='queued', pid=None)
        if running:
            self.log(f'ended the jobs of candidates {[j.cid for j in running]}')

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame):
        if self._stop_signal is not None and not self._cleaning:
            raise KeyboardInterrupt  # a second signal: stop waiting (jobs are still ended)
        self._stop_signal = self._stop_signal or signum

    def _install_signal_handlers(self) -> dict:
        """SIGTERM and SIGINT stop the search at its next step, through its clean-up."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT)
        }

    def _check_signal(self):
        if self._stop_signal is not None:
            name = signal.Signals(self._stop_signal).name
            raise SearchStopped(
                f'search stopped by {name}: its running candidates are ended '
                f'and queued again; continue it with --resume',
                exit_code=128 + self._stop_signal)

    # ------------------------------------------------------------------ run
    def run(self):
        """The search: propose, train, record and report until the budget is spent."""
        previous = self._install_signal_handlers()
        self._locked = False
        try:
            self._setup()
            self._check_signal()
            self.runner.call_hook('before_train')
            self.log(f'{type(self.strategy).__name__}, budget {self.budget}, launcher '
                     f'{type(self.launcher).__name__}, work_dir {self.work_dir}')
            try:
                while not self._step():
                    pass
            finally:
                self._clean_up()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._locked:
                lock.release(self.work_dir)
        self.runner.call_hook('after_train')
        best = self.strategy.best()
        self.log(f'search finished: {len(self.ledger)} candidates; best '
                 f'{"none" if best is None else f"{best[1]:.2f} {self.score}: {best[0].key}"}')
        return self.runner.model

    def _step(self) -> bool:
        """One turn of the search; True once it is over."""
        self._check_signal()
        self._collect_results()
        self._check_failures()
        self._launch_queued()
        idle = not self.launcher.running and not self.ledger.records('queued')
        if idle:
            self._report_finished_round()
            if self.strategy.finished:
                return True
        if not self._propose_for_free_slots() and self.launcher.running:
            time.sleep(self.poll_interval)
        return False

    def _collect_results(self):
        for job, result in self.launcher.poll():
            self._finish(job, result)

    def _check_failures(self):
        failed = self.ledger.records('failed')
        if len(failed) >= self.max_failures:
            causes = '; '.join(f'candidate {r["id"]}: {r["cause"]} (log: {r["log"]})'
                               for r in failed[-3:])
            raise SearchStopped(f'search stopped: {len(failed)} candidates failed (max_failures='
                                f'{self.max_failures}); last causes: {causes}; see '
                                f'{self.work_dir / LEDGER_FILE}')

    def _launch_queued(self):
        queued = self.ledger.records('queued')
        while self.launcher.slots() > 0 and queued:
            self._launch(queued.pop(0))
            self._collect_results()  # in-process jobs end at once

    def _report_finished_round(self):
        """Report a round once all its proposals are told, before the next is proposed."""
        s = self.strategy
        if s.round > 0 and not s.queue and not s.pending and s.round != self._reported_round:
            self._report()
            self._reported_round = s.round
            # A finished round is the search's epoch: custom hooks of the search config
            # (e.g. the benchmark's export) run on it, with no candidate training.
            self.runner.call_hook('after_train_epoch')
            best = s.best()
            if best is not None:
                self.log(
                    f'after round {s.round - 1}: {len(self.ledger)} trained, best {self.score} '
                    f'{best[1]:.2f}')

    def _propose_for_free_slots(self) -> bool:
        """Propose as many candidates as there are free slots, once the queue is empty."""
        if self.launcher.slots() > 0 and not self.ledger.records('queued'):
            return self._propose(self.launcher.slots()) > 0
        return False

    def _clean_up(self):
        """End the jobs, report what is not reported yet and close the ledger."""
        self._cleaning = True  # from here on, signals are noted, not raised
        try:
            self._stop_jobs()
            if self._trained() != self._reported:
                self._report()
        except Exception as e:  # noqa: BLE001  the first error is the one to raise
            self.log(f'clean-up after the stop failed: {type(e).__name__}: {e}')
        self.ledger.close()
