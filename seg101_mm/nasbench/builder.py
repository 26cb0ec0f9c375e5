"""Build SEG101-Bench with the search machinery: ``RandomSearch`` trains, a hook exports.

A benchmark config is a search config (``train_cfg=dict(type='NPENASSearchLoop',
strategy=dict(type='RandomSearch', ...), candidate=dict(..., test=True))``) with
:class:`NASBenchExportHook` in its ``custom_hooks``. The search loop trains uniformly sampled
architectures with its ledger, launcher and resume; after every finished round the hook scores
the new architectures' zero-cost proxies and rewrites the benchmark file, so the file grows
round by round and can be committed at any time.

:func:`seed_ledger` lets a fresh work dir (a new machine) continue from the committed file:
it replays the random search's proposals and records those the file already holds as done, so
the loop trains only what is missing (docs/study.md, 'Building the benchmark').
"""
import copy
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .table import NASBench, NASBenchError

#: File of the proxy scores in the search's work dir (one JSON line per architecture).
PROXY_CACHE = 'proxies.jsonl'
#: Digits kept of metrics (percent) and seconds in the file; proxies keep 6 significant.
METRIC_DIGITS = 4
PROXY_DIGITS = 6
#: Measures recorded beside the proxies rather than among them.
SIZE_FIELDS = ('params', 'flops')
#: Tiles drawn per tile of the proxies' batch, from which blank ones are passed over.
BATCH_DRAW_FACTOR = 6


def stable_seed(key: str) -> int:
    """Seed of an architecture's random initialisation, from its key alone."""
    return zlib.crc32(key.encode()) & 0x7fffffff


def rounded_metrics(metrics: dict, digits=METRIC_DIGITS) -> dict:
    """Metrics as the benchmark file keeps them (``digits`` decimals)."""
    return {k: round(float(v), digits) for k, v in (metrics or {}).items()}


def _significant(v):
    v = float(v)
    return float(f'{v:.{PROXY_DIGITS}g}') if math.isfinite(v) else None


def entry_from_record(rec: dict, scores: Optional[dict] = None) -> dict:
    """A benchmark entry from a done ledger record and its proxy scores."""
    entry = dict(
        genotype=rec['genotype'],
        id=rec['id'],
        val=rounded_metrics(rec.get('metrics')),
        curve=[
            dict(iter=int(p['iter']), **rounded_metrics(p['metrics']))
            for p in rec.get('curve') or []
        ],
        test=rounded_metrics(rec.get('test_metrics')))
    if rec.get('train_seconds') is not None:
        entry['train_seconds'] = round(float(rec['train_seconds']), 1)
    if rec.get('backbone_sha256'):
        entry['backbone_sha256'] = rec['backbone_sha256']
    return with_scores(entry, scores)


#: Fields of an entry that come from its proxy scores.
SCORE_FIELDS = SIZE_FIELDS + ('proxies', 'proxy_failures', 'proxy_seconds')


def with_scores(entry: dict, scores: Optional[dict]) -> dict:
    """``entry`` with the fields of ``scores`` (:class:`ProxyScorer`'s output), or with none
    of them when ``scores`` is None."""
    entry = {k: v for k, v in entry.items() if k not in SCORE_FIELDS}
    if scores:
        values = scores.get('values', {})
        for k in SIZE_FIELDS:
            if k in values:
                entry[k] = _significant(values[k])
        entry['proxies'] = {
            k: _significant(v)
            for k, v in sorted(values.items()) if k not in SIZE_FIELDS
        }
        if scores.get('reasons'):
            entry['proxy_failures'] = dict(scores['reasons'])
        if scores.get('seconds') is not None:
            entry['proxy_seconds'] = round(float(scores['seconds']), 1)
    return entry


def scores_of_entry(entry: dict) -> Optional[dict]:
    """The proxy scores kept in a benchmark entry, as :class:`ProxyScorer` gives them."""
    if 'proxies' not in entry:
        return None
    values = {k: (math.nan if v is None else v) for k, v in entry['proxies'].items()}
    values.update({k: entry[k] for k in SIZE_FIELDS if k in entry})
    return dict(
        values=values,
        reasons=entry.get('proxy_failures') or {},
        seconds=entry.get('proxy_seconds'))


def record_from_entry(entry: dict) -> dict:
    """The ledger fields of a done candidate, from its benchmark entry."""
    return dict(
        status='done',
        score=entry['val'].get('mIoU'),
        metrics=dict(entry['val']),
        curve=[
            dict(iter=p['iter'], metrics={
                k: v
                for k, v in p.items() if k != 'iter'
            }) for p in entry.get('curve') or []
        ],
        test_metrics=dict(entry.get('test') or {}),
        train_seconds=entry.get('train_seconds'),
        backbone_sha256=entry.get('backbone_sha256'),
        imported=True)


# ---------------------------------------------------------------------- proxies
class ProxyCache:
    """Proxy scores by key in an append-only JSONL file; a torn last line is ignored."""

    def __init__(self, path):
        self.path = Path(path)
        self.scores = {}
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                try:
                    row = json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if isinstance(row, dict) and isinstance(row.get('key'), str):
                    self.scores[row['key']] = row

    def __contains__(self, key):
        return key in self.scores

    def get(self, key):
        return self.scores.get(key)

    def add(self, key, scores: dict):
        row = dict(scores, key=key)
        line = json.dumps(row, sort_keys=True, default=_json_default)
        data = self.path.read_bytes() if self.path.exists() else b''
        with open(self.path, 'ab') as fh:
            if data and not data.endswith(b'\n'):
                fh.write(b'\n')  # a torn line of a killed run stays on its own line
            fh.write(line.encode() + b'\n')
            fh.flush()
            os.fsync(fh.fileno())
        self.scores[key] = row


def _json_default(v):
    raise TypeError(f'{type(v).__name__} is not JSON serialisable')


class ProxyScorer:
    """Zero-cost proxies of SEG101 architectures as the paper computes them.

    Each network is built from the candidate template's ``model`` with the genotype set and
    every ``Pretrained`` initialisation dropped (random initialisation, seeded by the key), in
    train mode (batch-norm statistics of the batch), and scored on one batch of
    ``batch_size`` augmented tiles drawn by ``seed`` from the template's training pipeline,
    in micro-batches of ``chunk_size``. Tiles with less than ``min_labelled`` of their pixels
    labelled are passed over when the batch is drawn (from six times as many): a crop of a
    blank no-data area (white in the Massachusetts imagery, ignored by the converter) is the
    same image for every draw, and two equal images make NASWOT's kernel singular for every
    network.

    Args:
        template (dict): The loaded candidate template (a config dict).
        data_root (str): Dataset folder of the training tiles.
        names (list[str], optional): Proxies; default every registered one.
        batch_size (int): Tiles of the batch. Paper: 32.
        chunk_size (int, optional): Micro-batch size.
        seed (int): Seed of the batch and of the passes.
        threads (int, optional): ``torch.set_num_threads`` while scoring.
        min_labelled (float): Least fraction of labelled pixels of a tile of the batch.
    """

    def __init__(self,
                 template: dict,
                 data_root: str,
                 names: Optional[Sequence[str]] = None,
                 batch_size: int = 32,
                 chunk_size: Optional[int] = 8,
                 seed: int = 0,
                 threads: Optional[int] = None,
                 min_labelled: float = 0.25):
        from seg101_mm.proxies import available_proxies
        self.template = template
        self.data_root = data_root
        self.names = list(names) if names is not None else available_proxies()
        unknown = sorted(set(self.names) - set(available_proxies()))
        if unknown:
            raise ValueError(f'unknown proxies {unknown}; expected some of '
                             f'{available_proxies()}')
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.seed = seed
        self.threads = threads
        self.min_labelled = min_labelled
        self._batch = None

    def settings(self) -> dict:
        return dict(
            names=self.names,
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            seed=self.seed,
            split='train',
            min_labelled=self.min_labelled,
            init='random, seeded by crc32(key)',
            mode='train (batch-norm on batch statistics)')

    @property
    def batch(self):
        if self._batch is None:
            from mmengine.config import Config

            from seg101_mm.proxies import batch_from_config
            cfg = Config(copy.deepcopy(self.template))
            cfg.train_dataloader.dataset.data_root = self.data_root
            ignore = cfg.get('model', {}).get('decode_head', {}).get('ignore_index', 255)
            drawn = batch_from_config(cfg, BATCH_DRAW_FACTOR * self.batch_size, seed=self.seed)
            keep = [
                i for i, s in enumerate(drawn['data_samples'])
                if float((s.gt_sem_seg.data != ignore).float().mean()) >= self.min_labelled
            ]
            if len(keep) < self.batch_size:
                raise ValueError(f'only {len(keep)} of {len(drawn["inputs"])} drawn training '
                                 f'tiles have >= {self.min_labelled:.0%} labelled pixels; '
                                 f'expected {self.batch_size} (lower min_labelled)')
            keep = keep[:self.batch_size]
            self._batch = dict(
                inputs=[drawn['inputs'][i] for i in keep],
                data_samples=[drawn['data_samples'][i] for i in keep])
        return self._batch

    def build(self, genotype):
        import torch

        from seg101_mm.models.builder import build_segmentor, without_pretrained
        from seg101_mm.search.config_writer import set_genotype
        from seg101_mm.space import Genotype
        g = Genotype.parse(genotype)
        cfg = {'model': without_pretrained(copy.deepcopy(self.template['model']))}
        set_genotype(cfg, g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed(g.key))
            return build_segmentor(cfg['model'])

    def __call__(self, genotype) -> dict:
        """``dict(values={name: float}, reasons={name: why NaN}, seconds)``; never raises
        for a proxy that fails (it scores NaN with its reason)."""
        import torch

        from seg101_mm.proxies import ProxyEngine
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        try:
            model = self.build(genotype)
            engine = ProxyEngine(chunk_size=self.chunk_size, seed=self.seed)
            values = engine.compute(model, self.batch, self.names, errors='nan')
            reasons = dict(engine.last_reasons)
        finally:
            torch.set_num_threads(threads)
        return dict(
            values={
                k: float(v)
                for k, v in values.items()
            },
            reasons=reasons,
            seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------- export
def _relative(path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _eval_crop(dataset: dict):
    """The side of the centre crop an evaluation pipeline scores (None: whole tiles)."""
    for t in dataset.get('pipeline') or []:
        if isinstance(t, dict) and t.get('type') == 'CenterCropTile':
            return t.get('crop_size')
    return None


def nasbench_meta(loop, scorer: Optional[ProxyScorer], extra: Optional[dict] = None) -> dict:
    """How a benchmark's entries were produced: enough to retrain and rescore any of them."""
    import mmengine
    import mmseg
    import torch
    cfg_file = getattr(loop.runner.cfg, 'filename', None)
    template = loop.template
    val = template['val_dataloader']['dataset']
    test = template['test_dataloader']['dataset']
    meta = dict(
        search_config=_relative(cfg_file) if cfg_file else None,
        protocol=dict(
            candidate_template=_relative(loop.candidate['template']),
            overrides=loop.candidate.get('overrides'),
            max_iters=template['train_cfg']['max_iters'],
            val_interval=template['train_cfg'].get('val_interval')),
        data=dict(
            dataset=template['train_dataloader']['dataset'].get('type'),
            data_root=loop.candidate.get('data_root'),
            val=dict(
                split=val.get('data_prefix'), indices=val.get('indices'), crop=_eval_crop(val)),
            test=dict(
                split=test.get('data_prefix'), indices=test.get('indices'),
                crop=_eval_crop(test))),
        seeds=dict(sampling=loop.seed, training=loop.candidate_seed),
        strategy=dict(loop.strategy_cfg, budget=loop.budget),
        proxies=scorer.settings() if scorer is not None else None,
        software=dict(
            torch=torch.__version__, mmengine=mmengine.__version__, mmseg=mmseg.__version__))
    meta.update(extra or {})
    return json.loads(json.dumps(meta, default=str))


def export_nasbench(records,
                    out,
                    meta: dict,
                    scorer: Optional[ProxyScorer] = None,
                    cache: Optional[ProxyCache] = None,
                    progress: bool = True) -> NASBench:
    """Merge the done records (and their proxy scores) into the benchmark file ``out``.

    Entries already in the file and absent from ``records`` are kept. Proxy scores count only
    when they were computed with the proxy settings of ``meta`` (``meta['proxies']``): with
    other settings an entry's scores are computed again by ``scorer`` and cached, or, with no
    ``scorer``, left out until a later export computes them, so that every score in the file
    comes from the settings its ``meta`` names.
    """
    out = Path(out)
    bench = NASBench.load(out) if out.exists() else NASBench()
    settings = (meta or {}).get('proxies')
    file_scores_valid = bench.meta.get('proxies') == settings

    def valid_scores(key):
        row = cache.get(key) if cache is not None else None
        if row is not None and row.get('settings') == settings:
            return row
        return scores_of_entry(bench.entries.get(key, {})) if file_scores_valid else None

    for r in records:
        if r['status'] == 'done':
            bench.entries[r['key']] = entry_from_record(r, valid_scores(r['key']))
            bench.failed.pop(r['key'], None)
        elif r['status'] == 'failed' and r['key'] not in bench.entries:
            bench.failed[r['key']] = dict(genotype=r['genotype'], id=r['id'], cause=r.get('cause'))
    if scorer is not None and cache is not None:
        todo = [k for k in sorted(bench.entries) if valid_scores(k) is None]
        if todo:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(len(todo), file=sys.stderr) if progress else None
            for k in todo:
                cache.add(k, dict(scorer(bench.entries[k]['genotype']), settings=settings))
                if bar is not None:
                    bar.update()
            if bar is not None:
                sys.stderr.write('\n')
    for k in list(bench.entries):
        bench.entries[k] = with_scores(bench.entries[k], valid_scores(k))
    bench.meta = meta
    bench.save(out)
    return bench


@HOOKS.register_module()
class NASBenchExportHook(Hook):
    """Export a benchmark search's trained architectures, with their proxies, to ``out``.

    Used in a benchmark config's ``custom_hooks``; it runs after every finished round of the
    search (``after_train_epoch``) and at its end.

    Args:
        out (str): The benchmark file (JSON), e.g. ``nasbench/seg101-bench_....json``.
        proxies (dict, optional): :class:`ProxyScorer` options (``names``, ``batch_size``,
            ``chunk_size``, ``seed``, ``threads``); None: no proxies.
        meta (dict, optional): Extra facts recorded in the file's ``meta``.
    """

    priority = 'LOW'

    def __init__(self,
                 out: str,
                 proxies: Optional[dict] = dict(batch_size=32, chunk_size=8),
                 meta: Optional[dict] = None):
        self.out = out
        self.proxies = dict(proxies) if proxies is not None else None
        self.meta = dict(meta or {})
        self._scorer = None

    def scorer(self, loop):
        if self.proxies is not None and self._scorer is None:
            self._scorer = ProxyScorer(loop.template, loop.data_root, **self.proxies)
        return self._scorer

    def export(self, runner, score: bool = True) -> NASBench:
        loop = runner.train_loop
        scorer = self.scorer(loop)
        cache = ProxyCache(Path(runner.work_dir) / PROXY_CACHE)
        bench = export_nasbench(loop.ledger.records(), self.out,
                                nasbench_meta(loop, scorer, self.meta), scorer if score else None,
                                cache)
        runner.logger.info(f'[benchmark] {len(bench)} entries in {self.out}')
        return bench

    def after_train_epoch(self, runner):
        self.export(runner)

    def after_train(self, runner):
        self.export(runner)


# ---------------------------------------------------------------------- resume from a file
def seed_ledger(work_dir, bench: NASBench, train_cfg: dict) -> int:
    """Start the ledger of a fresh ``work_dir`` from the benchmark file's entries.

    The random search is replayed round by round with the config's strategy, budget and
    seed; the proposals that the file holds are recorded as done (or failed) with their
    metrics, and the first round with proposals the file lacks is recorded with those queued.
    The loop, resumed on this ledger, then trains only what the file lacks. Returns the
    number of entries taken from the file. A work dir that holds a ledger is left alone.
    """
    from seg101_mm.search.ledger import Ledger
    from seg101_mm.search.loop import LEDGER_FILE, candidate_paths, dataset_of
    from seg101_mm.search.strategy import build_strategy
    path = Path(work_dir) / LEDGER_FILE
    if path.exists() and path.stat().st_size:
        return 0
    strategy = build_strategy(
        train_cfg['strategy'], budget=train_cfg['budget'], seed=train_cfg['seed'])
    if type(strategy).__name__ != 'RandomSearch':
        raise NASBenchError(f'a benchmark is built by RandomSearch, not by '
                            f'{type(strategy).__name__}')
    known = dict(bench.failed)
    known.update(bench.entries)
    seed = train_cfg['candidate'].get('seed')
    seed = train_cfg['seed'] if seed is None else seed
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    ledger = Ledger(path)
    imported = 0
    try:
        ledger.save_setup(dataset=dataset_of(train_cfg['candidate']))
        cid = 0
        while not strategy.finished:
            batch = strategy.ask(strategy.budget)
            records, complete = [], True
            for g in batch:
                rec = dict(
                    id=cid,
                    genotype=str(g),
                    key=g.key,
                    round=strategy.round - 1,
                    seed=seed,
                    **candidate_paths(work_dir, cid))
                if g.key in bench.entries:
                    rec.update(record_from_entry(bench.entries[g.key]))
                    strategy.tell(g, rec['score'])
                    imported += 1
                elif g.key in bench.failed:
                    rec.update(
                        status='failed',
                        score=None,
                        imported=True,
                        cause=bench.failed[g.key].get('cause'))
                    strategy.tell(g, None)
                    imported += 1
                else:
                    complete = False
                records.append(rec)
                cid += 1
            ledger.propose(records, strategy.state_dict())
            if not complete:
                break
    finally:
        ledger.close()
    return imported


# ---------------------------------------------------------------------- the build
def export_hook_cfg(cfg) -> dict:
    """The ``NASBenchExportHook`` entry of a benchmark config's ``custom_hooks``."""
    hooks = [
        h for h in cfg.get('custom_hooks') or []
        if h.get('type') in ('NASBenchExportHook', 'mmseg.NASBenchExportHook')
    ]
    if len(hooks) != 1:
        raise NASBenchError(f'{cfg.filename}: a benchmark config needs one '
                            f'NASBenchExportHook in custom_hooks, found {len(hooks)}')
    return hooks[0]


def check_compatible(bench: NASBench, train_cfg: dict, out):
    """Refuse to add to a file whose entries were produced by another protocol or seed."""
    meta = bench.meta or {}
    if not meta:
        return
    now = dict(
        candidate_template=_relative(train_cfg['candidate']['template']),
        data_root=train_cfg['candidate'].get('data_root'),
        sampling_seed=train_cfg['seed'],
        strategy=train_cfg['strategy'].get('type'),
        batch_size=train_cfg['strategy'].get('batch_size'))
    was = dict(
        candidate_template=meta.get('protocol', {}).get('candidate_template'),
        data_root=meta.get('data', {}).get('data_root'),
        sampling_seed=meta.get('seeds', {}).get('sampling'),
        strategy=meta.get('strategy', {}).get('type'),
        batch_size=meta.get('strategy', {}).get('batch_size'))
    diff = {k: (was[k], now[k]) for k in now if was[k] != now[k]}
    if diff:
        text = ', '.join(f'{k} {a!r} (file) vs {b!r} (config)' for k, (a, b) in diff.items())
        raise NASBenchError(f'{out} was built differently: {text}; add to it with its own '
                            f'settings, or write another --out file')


def build(config: str,
          work_dir: Optional[str] = None,
          num: Optional[int] = None,
          out: Optional[str] = None,
          cfg_options: Optional[dict] = None) -> NASBench:
    """Train, score and export a benchmark config's entries until ``budget`` (``num``) are in
    its file; resumes the work dir's search, or starts it from the file's entries."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from seg101_mm.search import lock
    from seg101_mm.search.errors import SearchConfigError
    from seg101_mm.search.loop import LEDGER_FILE, check_search_config, preflight
    if not Path(config).is_file():
        raise SearchConfigError(f'benchmark config {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    hook = export_hook_cfg(cfg)
    if num is not None:
        if not isinstance(num, int) or num < 1:
            raise SearchConfigError(f'--num {num!r} is not allowed; expected a positive int')
        cfg.train_cfg.budget = num
    if out is not None:
        hook['out'] = out
    cfg.work_dir = work_dir or cfg.get('work_dir') or str(Path('work_dirs') / Path(config).stem)
    work_dir = os.path.abspath(cfg.work_dir)
    train_cfg = cfg.train_cfg.to_dict()
    bench = NASBench.load(hook['out']) if Path(hook['out']).exists() else NASBench()
    check_compatible(bench, train_cfg, hook['out'])
    ledger = Path(work_dir) / LEDGER_FILE
    resume = ledger.exists() and ledger.stat().st_size > 0
    check_search_config(train_cfg)  # before anything is written
    if not resume and len(bench) + len(bench.failed):
        holder = lock.lock_holder(work_dir)
        if holder is not None:
            raise lock.busy(work_dir, holder)
        taken = seed_ledger(work_dir, bench, train_cfg)
        print(f'started {work_dir} from {taken} entries of {hook["out"]}', file=sys.stderr)
        resume = True
    preflight(train_cfg, work_dir, resume)
    try:
        cfg.train_cfg.resume = resume
        runner = Runner.from_cfg(cfg)
        try:
            runner.train()
        except BaseException:
            loop = runner._train_loop
            if getattr(loop, 'ledger', None) is not None:
                # after a stop: write what is trained, without scoring anything new
                for h in runner.hooks:
                    if isinstance(h, NASBenchExportHook):
                        h.export(runner, score=False)
            raise
    finally:
        lock.release(work_dir)
    return NASBench.load(hook['out'])
