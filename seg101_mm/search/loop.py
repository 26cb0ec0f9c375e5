"""The search as an mmengine loop: ``train_cfg=dict(type='NPENASSearchLoop', ...)``.

:class:`NPENASSearchLoop` ties the parts together and owns none of their logic: the strategy
(:mod:`.strategy`) proposes, the config writer (:mod:`.config_writer`) turns every proposal into
a standalone mmseg config in the work_dir, a launcher (:mod:`.launchers`) trains it, the ledger
(:mod:`.ledger`) records everything durably, and :mod:`.reports` writes the leaderboard, plots
and the best architecture's full-training config after every round.

``tools/search.py CONFIG [--work-dir DIR] [--resume]`` runs it through mmengine's Runner. The
Runner needs a model and an optimiser to enter ``train()``, so search configs use
:class:`SearchController`, a placeholder model; candidates are trained in their own jobs.
"""
import copy
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import BaseLoop
from mmseg.registry import LOOPS, MODELS

from seg101_mm.space import Genotype
from .config_writer import candidate_config, write_config
from .launchers import Job, build_launcher, kill_stale, outcome
from .ledger import Ledger
from .strategy import build_strategy


@MODELS.register_module()
class SearchController(BaseModel):
    """The model of a search config: one unused parameter, so that the Runner can start.

    The search trains candidates in separate jobs (or Runners); this model is never run.
    """

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        raise RuntimeError('SearchController is the placeholder model of a search config; it '
                           'is not meant to be run (candidates train in their own jobs)')


class ModelMeasure:
    """``genotype -> {name: float}``: size and zero-cost scores of the candidate's network.

    ``params`` (parameter count) and ``flops`` (multiply-accumulates of one eval-mode forward
    of one ``input_size`` image, counted by mmengine's FlopAnalyzer) are computed here; every
    other name goes to :func:`seg101_mm.proxies.compute_proxies` on a random batch.

    Args:
        model_cfg (dict): The candidate template's ``model`` (its genotype is replaced).
        names (list[str]): ``params``, ``flops`` and/or proxy names (``snip``, ``synflow``...).
        input_size (tuple[int, int]): Image size of the FLOP count and the random batch.
        batch_size (int): Images of the random batch of the proxies.
        seed (int): Seed of weights and batch.
    """

    def __init__(self, model_cfg: dict, names: Sequence[str] = ('params', 'flops'),
                 input_size=(64, 64), batch_size: int = 2, seed: int = 0):
        self.model_cfg = model_cfg
        self.names = list(names)
        self.input_size = tuple(input_size)
        self.batch_size = batch_size
        self.seed = seed

    def build(self, genotype):
        from mmengine.config import ConfigDict
        from mmengine.registry import DefaultScope

        from seg101_mm.models.builder import quiet_init_weights
        from .config_writer import set_genotype
        cfg = {'model': copy.deepcopy(self.model_cfg)}
        set_genotype(cfg, genotype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            with DefaultScope.overwrite_default_scope('mmseg'):
                model = MODELS.build(ConfigDict(cfg['model']))
            quiet_init_weights(model)
        return model

    def __call__(self, genotype: Genotype):
        model = self.build(genotype)
        out = {}
        for name in self.names:
            if name == 'params':
                out[name] = float(sum(p.numel() for p in model.parameters()))
            elif name == 'flops':
                out[name] = self.flops(model)
        rest = [n for n in self.names if n not in ('params', 'flops')]
        if rest:
            from seg101_mm.proxies import compute_proxies, random_batch
            batch = random_batch(batch_size=self.batch_size, size=self.input_size,
                                 seed=self.seed)
            out.update(compute_proxies(model, batch, rest, seed=self.seed))
        return {n: float(out[n]) for n in self.names}

    def flops(self, model):
        from seg101_mm.proxies.flops import count_flops
        return count_flops(model, torch.zeros(1, 3, *self.input_size))


def _load_template(path, overrides=None, iters=None):
    """A resolved template config as a plain dict, with ``iters`` training iterations."""
    cfg = Config.fromfile(path)
    if overrides:
        cfg.merge_from_dict(dict(overrides))
    cfg = cfg.to_dict()
    if iters is not None:
        if not isinstance(iters, int) or iters < 1:
            raise ValueError(f'candidate iters must be a positive int, got {iters!r}')
        train_cfg = cfg.get('train_cfg') or {}
        old = train_cfg.get('max_iters')
        if old is None:
            raise ValueError(f'candidate iters needs an iteration-based template train_cfg, '
                             f'got {train_cfg!r}')
        train_cfg.update(max_iters=iters, val_interval=iters)
        for sch in cfg.get('param_scheduler') or []:
            # Schedulers that span the whole run end with it; shorter ones (warmup) are clipped.
            end = sch.get('end')
            if end is not None and (end >= old or end > iters):
                sch['end'] = iters
    return cfg


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
            ``data_root`` (dataset folder; optional if ``synthetic`` is given), ``synthetic``
            (kwargs of :func:`seg101_mm.datasets.synthetic.make_synthetic_dataset`, used to
            generate ``<work_dir>/data`` when ``data_root`` is not given or does not exist),
            ``seed`` (training seed of every candidate, default the search seed).
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
        resume (bool): Continue the search in the work_dir (``tools/search.py --resume``).
        fsync (bool): fsync every ledger event.
    """

    def __init__(self, runner, dataloader=None, strategy: dict = dict(type='NPENASNP'),
                 launcher: dict = dict(type='LocalLauncher'), candidate: dict = None,
                 export: Optional[dict] = None, budget: int = 200, seed: int = 0,
                 max_failures: int = 10, candidate_timeout: Optional[float] = None,
                 measure: Optional[dict] = None, poll_interval: float = 1.0,
                 resume: bool = False, fsync: bool = True):
        self._runner = runner
        if not candidate or 'template' not in candidate:
            raise ValueError(f'candidate must be a dict with a "template" config path, got '
                             f'{candidate!r}')
        unknown = set(candidate) - {'template', 'overrides', 'iters', 'data_root', 'synthetic',
                                    'seed'}
        if unknown:
            raise ValueError(f'unknown candidate options {sorted(unknown)}; expected template, '
                             f'overrides, iters, data_root, synthetic, seed')
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
        self.resume = resume
        self.fsync = fsync
        self._iter = 0

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

    def _data_root(self):
        root = self.candidate.get('data_root')
        self.synthetic_data = False
        if root and Path(root).exists():
            return str(Path(root).resolve())
        synthetic = self.candidate.get('synthetic')
        if synthetic is None:
            raise FileNotFoundError(f'candidate data_root {root!r} does not exist and no '
                                    f'synthetic dataset is configured')
        from seg101_mm.datasets.synthetic import make_synthetic_dataset
        self.synthetic_data = True
        target = self.work_dir / 'data'
        if not (target / 'img_dir' / 'val').is_dir():
            self.log(f'generating the synthetic dataset {synthetic} in {target}')
            make_synthetic_dataset(target, **synthetic)
        return str(target.resolve())

    def _setup(self):
        self.template = _load_template(self.candidate['template'],
                                       self.candidate.get('overrides'),
                                       self.candidate.get('iters'))
        self.data_root = self._data_root()
        self.candidate_seed = int(self.candidate.get('seed', self.seed))
        measure = None
        if self.measure_cfg is not None:
            measure = ModelMeasure(self.template['model'], **self.measure_cfg)
        self.measure = measure
        self.strategy = build_strategy(self.strategy_cfg, budget=self.budget, seed=self.seed,
                                       measure=measure)
        self.launcher = build_launcher(self.launcher_cfg)
        ledger_path = self.work_dir / 'ledger.jsonl'
        if ledger_path.exists() and ledger_path.stat().st_size and not self.resume:
            raise FileExistsError(f'{ledger_path} already holds a search; continue it with '
                                  f'--resume or choose another --work-dir')
        self.ledger = Ledger(ledger_path, fsync=self.fsync)
        if self.ledger.dropped_tail:
            self.log(f'dropped a torn last ledger line ({len(self.ledger.dropped_tail)} bytes)')
        if self.resume and len(self.ledger):
            self._restore()

    def _restore(self):
        state = self.ledger.strategy_state
        if state is not None:
            self.strategy.load_state_dict(state)
        for rec in self.ledger.records():
            if rec['status'] in ('done', 'failed') and rec['key'] not in self.strategy.results:
                self.strategy.tell(rec['genotype'], rec.get('score'))
            elif rec['status'] == 'running':
                if kill_stale(rec.get('pid'), rec['config']):
                    self.log(f'ended the orphaned job of candidate {rec["id"]}')
                job = Job(cid=rec['id'], config=rec['config'], work_dir=rec['work_dir'],
                          log=rec['log'])
                result = outcome(job)
                if result['status'] == 'done':
                    # It finished after the kill, before its result was recorded: keep it.
                    self._finish(job, result)
                else:
                    self.ledger.update(rec['id'], status='queued')
        self.ledger.save_strategy(self.strategy.state_dict())
        counts = {s: len(self.ledger.records(s)) for s in ('done', 'failed', 'queued')}
        self.log(f'resumed: {counts}, strategy round {self.strategy.round}')

    # ------------------------------------------------------------------ steps
    def _propose(self, n):
        new = self.strategy.ask(n)
        if not new:
            return 0
        records = []
        rnd = self.strategy.round - 1
        for g in new:
            cid = self.ledger.next_id() + len(records)
            cdir = self.work_dir / 'candidates' / f'{cid:04d}'
            cfg_path = cdir / f'candidate_{cid:04d}.py'
            cfg = candidate_config(
                self.template, g, data_root=self.data_root, work_dir=str(cdir),
                seed=self.candidate_seed,
                extra_hooks=[dict(type='SearchResultHook', timeout=self.candidate_timeout)])
            write_config(cfg_path, cfg, header=f'SEG101 search candidate {cid} (round {rnd})'
                         f'\ngenotype: {g.key}')
            rec = dict(id=cid, genotype=str(g), key=g.key, round=rnd, config=str(cfg_path),
                       work_dir=str(cdir), log=str(cdir / 'train.log'),
                       seed=self.candidate_seed)
            if self.measure is not None:
                rec['measures'] = self.strategy.get_measure(g)
            records.append(rec)
        self.ledger.propose(records, self.strategy.state_dict())
        self.log(f'round {rnd}: proposed candidates {[r["id"] for r in records]}')
        return len(records)

    def _launch(self, rec):
        job = Job(cid=rec['id'], config=rec['config'], work_dir=rec['work_dir'],
                  log=rec['log'], timeout=self.candidate_timeout)
        self.ledger.update(rec['id'], status='running', started_at=time.time(),
                           attempts=rec.get('attempts', 0) + 1)
        info = self.launcher.submit(job)
        if 'pid' in info:
            self.ledger.update(rec['id'], pid=info['pid'])
        self.log(f'candidate {rec["id"]} started ({rec["key"]})')

    def _finish(self, job, result):
        rec = self.ledger.candidates[job.cid]
        now = time.time()
        if result['status'] == 'done':
            metrics = result.get('metrics', {})
            score = metrics.get('mIoU')
            if score is None:
                result = dict(status='failed', log=job.log,
                              cause=f'no mIoU among the val metrics {sorted(metrics)}')
            else:
                self.ledger.update(job.cid, status='done', metrics=metrics, score=float(score),
                                   ended_at=now, cause=None)
                self.strategy.tell(rec['genotype'], float(score))
                self.log(f'candidate {job.cid} done: mIoU {score:.2f} '
                         f'({now - rec["started_at"]:.1f} s)')
        if result['status'] == 'failed':
            self.ledger.update(job.cid, status='failed', ended_at=now, cause=result['cause'],
                               log=result.get('log', job.log), score=None)
            self.strategy.tell(rec['genotype'], None)
            self.log(f'candidate {job.cid} FAILED: {result["cause"]} (log: {job.log})')
        self.ledger.save_strategy(self.strategy.state_dict())
        self._iter = len(self.ledger.records('done')) + len(self.ledger.records('failed'))

    def _report(self):
        from .reports import write_reports
        # The full-training config trains on the search's dataset when it is a real one;
        # after a search on generated scenes it keeps the export template's data_root.
        data_root = self.export.get('data_root') if self.export else None
        if data_root is None and not self.synthetic_data:
            data_root = self.data_root
        write_reports(self.ledger.records(), self.work_dir, self.export, data_root=data_root)

    # ------------------------------------------------------------------ run
    def run(self):
        self._setup()
        self.runner.call_hook('before_train')
        self.log(f'{type(self.strategy).__name__}, budget {self.budget}, launcher '
                 f'{type(self.launcher).__name__}, work_dir {self.work_dir}')
        last_round_reported = None
        try:
            while True:
                for job, result in self.launcher.poll():
                    self._finish(job, result)
                failed = len(self.ledger.records('failed'))
                if failed >= self.max_failures:
                    raise RuntimeError(
                        f'search stopped: {failed} candidates failed (max_failures='
                        f'{self.max_failures}); causes: '
                        f'{[r["cause"] for r in self.ledger.records("failed")][-3:]}; see '
                        f'{self.work_dir / "ledger.jsonl"}')
                queued = self.ledger.records('queued')
                while self.launcher.slots() > 0 and queued:
                    self._launch(queued.pop(0))
                    for job, result in self.launcher.poll():  # in-process jobs end at once
                        self._finish(job, result)
                if self.launcher.slots() > 0 and not queued:
                    if self._propose(self.launcher.slots()):
                        continue
                idle = not self.launcher.running and not self.ledger.records('queued')
                if idle and not self.strategy.pending and self.strategy.round != \
                        last_round_reported:
                    self._report()
                    last_round_reported = self.strategy.round
                    best = self.strategy.best()
                    if best is not None:
                        self.log(f'after round {self.strategy.round - 1}: '
                                 f'{len(self.ledger)} trained, best mIoU {best[1]:.2f}')
                if self.strategy.finished and idle:
                    break
                if self.launcher.running:
                    time.sleep(self.poll_interval)
        finally:
            self.launcher.shutdown()
            self.ledger.close()
        self.runner.call_hook('after_train')
        best = self.strategy.best()
        self.log(f'search finished: {len(self.ledger)} candidates; best '
                 f'{"none" if best is None else f"{best[1]:.2f} mIoU: {best[0].key}"}')
        return self.runner.model
