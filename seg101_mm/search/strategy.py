"""Search strategies with an ask/tell interface: NPENAS-NP, NPENAS-BO, random search.

A strategy is a pure object (docs/method.md section 6): :meth:`SearchStrategy.ask` returns
architectures to train, :meth:`SearchStrategy.tell` gives it their val mIoU (or ``None`` for a
failed candidate). It touches no file and no process; the search loop stores its
:meth:`~SearchStrategy.state_dict` in the ledger and restores it on resume.

Rounds are synchronous, as in the paper: a strategy proposes a batch (the ``num_init`` random
architectures, then the top ``top_k`` of every round), and only builds the next batch once every
proposal has been told. The randomness of round ``r`` comes from generators seeded with
``(seed, r)``, and the predictor sees its training pairs sorted by canonical key, so the same
seed and the same results give the same proposals, whatever order the results arrived in and
whether or not the search was interrupted in between.

Zero-cost guidance (beyond the paper): ``measure`` is a callable ``genotype -> {name: float}``
(e.g. params, FLOPs, latency or proxy scores, computed by the loop on the built network).
``constraints={'params': 5e6}`` rejects candidates above a budget before they are trained;
``prefilter=dict(by='snip', keep=50, descending=True)`` keeps only the best of the candidate
pool by a measured score before the predictor ranks it; ``predictor_features=['snip']`` feeds
measured scores to the predictor as extra inputs.
"""
import math
import random
from abc import ABC, abstractmethod
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from seg101_mm.space import Genotype, Mutator, sample
from .registry import STRATEGIES, build_registered

#: The predictor of round ``r`` is seeded with ``seed * PREDICTOR_SEED_STRIDE + r``: a prime
#: larger than any round count, so no two (seed, round) pairs share a predictor seed.
PREDICTOR_SEED_STRIDE = 100003
#: Third entry of the NumPy seed ``[seed, round, ACQUISITION_STREAM]`` of NPENAS-BO's sampled
#: acquisition values: a stream of its own, apart from the round's other random choices.
ACQUISITION_STREAM = 7


def build_strategy(cfg: dict, **default_args) -> 'SearchStrategy':
    """Build a strategy from ``dict(type='NPENASNP', ...)``; ``default_args`` fill the gaps."""
    return build_registered(STRATEGIES, 'search strategy', cfg, default_args)


class SearchStrategy(ABC):
    """Bookkeeping shared by every strategy: budget, rounds, proposals, results, state.

    Args:
        budget (int): Architectures to train in all (failed ones count). Paper: 200.
        seed (int): Seed of every random choice.
        measure (callable, optional): ``genotype -> {name: float}``, needed by ``constraints``,
            ``prefilter`` and ``predictor_features``.
        constraints (dict, optional): ``{name: max_value}``; a candidate whose measured value
            exceeds a maximum is never proposed.
        max_sample_tries (int): Draws allowed to find one new admissible architecture.
    """

    def __init__(self,
                 budget: int = 200,
                 seed: int = 0,
                 measure: Optional[Callable] = None,
                 constraints: Optional[Dict[str, float]] = None,
                 max_sample_tries: int = 10000):
        if not isinstance(budget, int) or budget < 1:
            raise ValueError(f'budget must be a positive int, got {budget!r}')
        if not isinstance(seed, int):
            raise ValueError(f'seed must be an int, got {seed!r}')
        self.budget = budget
        self.seed = seed
        self.measure = measure
        self.constraints = dict(constraints or {})
        if self.constraints and measure is None:
            raise ValueError(f'constraints {self.constraints} need a measure callable')
        self.max_sample_tries = max_sample_tries
        self.round = 0
        self.queue: List[Genotype] = []
        self.proposed: List[str] = []  # canonical keys, in proposal order
        self.results: Dict[str, Optional[float]] = {}  # key -> val mIoU, None if failed
        self.measured: Dict[str, Dict[str, float]] = {}

    # ------------------------------------------------------------------ ask / tell
    @property
    def pending(self) -> List[str]:
        """Keys proposed but not told yet."""
        return [k for k in self.proposed if k not in self.results]

    @property
    def finished(self) -> bool:
        """True when the whole budget has been proposed and told."""
        return len(self.proposed) >= self.budget and not self.pending and not self.queue

    def ask(self, n: int = 1) -> List[Genotype]:
        """Up to ``n`` new canonical architectures; ``[]`` while a round awaits its results.

        Never returns a key that was proposed before (trained, training or queued).
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f'ask(n) needs a positive int n, got {n!r}')
        if not self.queue and not self.pending and len(self.proposed) < self.budget:
            room = self.budget - len(self.proposed)
            batch = self.propose_batch(self.round, room)
            self.round += 1
            self.queue = [g.canonical() for g in batch[:room]]
        out, self.queue = self.queue[:n], self.queue[n:]
        for g in out:
            if g.key in self.proposed:
                raise RuntimeError(f'strategy {type(self).__name__} re-proposed {g.key}')
            self.proposed.append(g.key)
        return out

    def tell(self, genotype, score: Optional[float]):
        """Record the val mIoU (percent) of a proposed architecture; ``None`` if it failed."""
        key = Genotype.parse(genotype).key if not isinstance(genotype, Genotype) \
            else genotype.key
        if key not in self.proposed:
            raise ValueError(f'tell() got an architecture that was never proposed: {key}')
        if key in self.results:
            raise ValueError(f'tell() got a second result for {key}')
        if score is not None:
            score = float(score)
            if not math.isfinite(score):
                raise ValueError(f'score of {key} must be finite or None (failed), got {score}')
        self.results[key] = score

    @abstractmethod
    def propose_batch(self, round_index: int, room: int) -> List[Genotype]:
        """The architectures of round ``round_index`` (at most ``room`` are used)."""

    # ------------------------------------------------------------------ helpers
    def rng(self, round_index: int, purpose: str = '') -> random.Random:
        # str seeds are hashed with SHA-512 by random.Random: stable across processes.
        return random.Random(f'{self.seed}:{round_index}:{purpose}')

    def get_measure(self, g: Genotype) -> Dict[str, float]:
        if g.key not in self.measured:
            values = self.measure(g)
            self.measured[g.key] = {str(k): float(v) for k, v in values.items()}
        return self.measured[g.key]

    def admissible(self, g: Genotype) -> bool:
        if not self.constraints:
            return True
        values = self.get_measure(g)
        for name, limit in self.constraints.items():
            if name not in values:
                raise KeyError(f'constraint on {name!r} but measure() returned only '
                               f'{sorted(values)}')
            if values[name] > limit:
                return False
        return True

    def sample_new(self, rng: random.Random, count: int, taken=()) -> List[Genotype]:
        """``count`` random admissible architectures not proposed and not in ``taken``."""
        seen = set(self.proposed) | set(taken)
        out = []
        tries = 0
        while len(out) < count:
            tries += 1
            if tries > self.max_sample_tries * max(count, 1):
                raise RuntimeError(f'found only {len(out)} of {count} new admissible '
                                   f'architectures in {tries - 1} draws; constraints '
                                   f'{self.constraints} may be too tight')
            g = sample(rng).canonical()
            if g.key in seen or not self.admissible(g):
                continue
            seen.add(g.key)
            out.append(g)
        return out

    def evaluated(self):
        """Successful (genotype, score) pairs sorted by key (order-independent)."""
        keys = sorted(k for k, v in self.results.items() if v is not None)
        return [Genotype.parse(k) for k in keys], [self.results[k] for k in keys]

    def best(self):
        """``(genotype, score)`` of the best told result, or None."""
        gs, ys = self.evaluated()
        if not gs:
            return None
        i = int(np.argmax(ys))
        return gs[i], ys[i]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """JSON-serialisable state: with it and the same results, the same proposals follow."""
        return dict(
            type=type(self).__name__,
            seed=self.seed,
            budget=self.budget,
            round=self.round,
            queue=[str(g) for g in self.queue],
            proposed=list(self.proposed),
            results=dict(self.results),
            measured={
                k: dict(v)
                for k, v in self.measured.items()
            })

    def load_state_dict(self, state: dict):
        if state.get('type') != type(self).__name__:
            raise ValueError(f'state of a {state.get("type")!r} strategy cannot be loaded '
                             f'into {type(self).__name__}')
        if state['seed'] != self.seed:
            raise ValueError(f'state was saved with seed {state["seed"]}, this strategy has '
                             f'seed {self.seed}')
        self.round = int(state['round'])
        self.queue = [Genotype.parse(t) for t in state['queue']]
        self.proposed = list(state['proposed'])
        self.results = {k: (None if v is None else float(v)) for k, v in state['results'].items()}
        self.measured = {k: dict(v) for k, v in state.get('measured', {}).items()}


@STRATEGIES.register_module()
class RandomSearch(SearchStrategy):
    """Random search baseline: batches of ``batch_size`` distinct uniform samples.

    Args:
        batch_size (int): Architectures per round (the NPENAS ``top_k``). Paper: 10.
    """

    def __init__(self, batch_size: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def propose_batch(self, round_index, room):
        return self.sample_new(self.rng(round_index), min(self.batch_size, room))


@STRATEGIES.register_module()
class NPENASNP(SearchStrategy):
    """NPENAS-NP: predictor-guided evolution with a GIN predictor (docs/method.md section 6).

    Args:
        num_init (int): Random architectures of the first round. Paper: 10.
        num_candidates (int): Candidate pool built by mutation each round. Paper: 100.
        num_parents (int): Parents, best measured first. Paper: 50.
        mutants_per_parent (int): Mutation attempts per parent. Paper: 100.
        top_k (int): Architectures trained per round, best by prediction. Paper: 10.
        predictor (dict): Keyword arguments of
            :func:`seg101_mm.search.predictor.fit_predictor` (paper values by default).
        mutator (dict): Keyword arguments of :class:`seg101_mm.space.Mutator`
            (the authors' probabilities by default).
        prefilter (dict, optional): ``dict(by=name, keep=int, descending=bool)``: keep the
            ``keep`` best candidates by a measured score before the predictor ranks them.
        predictor_features (list[str], optional): Measured scores fed to the predictor as
            extra inputs (z-scored over the training architectures).
        **kwargs: :class:`SearchStrategy` arguments (``budget`` 200, ``seed``, ``measure``,
            ``constraints``).
    """

    uncertainty = False

    def __init__(self,
                 num_init: int = 10,
                 num_candidates: int = 100,
                 num_parents: int = 50,
                 mutants_per_parent: int = 100,
                 top_k: int = 10,
                 predictor: Optional[dict] = None,
                 mutator: Optional[dict] = None,
                 prefilter: Optional[dict] = None,
                 predictor_features: Optional[Sequence[str]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        for name, v in dict(
                num_init=num_init,
                num_candidates=num_candidates,
                num_parents=num_parents,
                mutants_per_parent=mutants_per_parent,
                top_k=top_k).items():
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        self.num_init = num_init
        self.num_candidates = num_candidates
        self.num_parents = num_parents
        self.mutants_per_parent = mutants_per_parent
        self.top_k = top_k
        self.predictor_cfg = dict(predictor or {})
        self.mutator = Mutator(**(mutator or {}))
        self.prefilter = dict(prefilter) if prefilter else None
        if self.prefilter is not None:
            unknown = set(self.prefilter) - {'by', 'keep', 'descending'}
            if 'by' not in self.prefilter or 'keep' not in self.prefilter or unknown:
                raise ValueError(f'prefilter must be dict(by=name, keep=int[, descending='
                                 f'bool]), got {prefilter!r}')
        self.predictor_features = list(predictor_features or [])
        if (self.prefilter or self.predictor_features) and self.measure is None:
            raise ValueError('prefilter / predictor_features need a measure callable')
        self.last_predictions: Dict[str, float] = {}

    def candidate_pool(self, rng: random.Random) -> List[Genotype]:
        """Mutants of the best measured architectures, new and admissible (section 6b)."""
        gs, ys = self.evaluated()
        order = sorted(range(len(gs)), key=lambda i: (-ys[i], gs[i].key))
        parents = [gs[i] for i in order[:self.num_parents]]
        seen = set(self.proposed)
        pool = []
        for parent in parents:
            for _ in range(self.mutants_per_parent):
                if len(pool) >= self.num_candidates:
                    return pool
                child = self.mutator(parent, rng).canonical()
                if child.key in seen or not self.admissible(child):
                    continue
                seen.add(child.key)
                pool.append(child)
        if len(pool) < self.num_candidates:
            # Few successful parents (or many duplicates): top up with random architectures.
            pool += self.sample_new(rng, self.num_candidates - len(pool), taken=seen)
        return pool

    def features(self, genotypes, reference):
        """Extra predictor inputs, z-scored with the statistics of ``reference``."""
        if not self.predictor_features:
            return None, None
        ref = np.array([[self.get_measure(g)[n] for n in self.predictor_features]
                        for g in reference],
                       dtype=np.float64)
        mu, sd = ref.mean(0), ref.std(0)
        sd[sd == 0] = 1.0
        x = np.array([[self.get_measure(g)[n] for n in self.predictor_features]
                      for g in genotypes],
                     dtype=np.float64)
        return ((ref - mu) / sd).astype(np.float32), ((x - mu) / sd).astype(np.float32)

    def score_candidates(self, round_index, train_gs, train_ys, pool):
        """Acquisition value of every pool member (higher is better)."""
        from .predictor import fit_predictor, predict
        ref_x, pool_x = self.features(pool, train_gs)
        model = fit_predictor(
            train_gs,
            train_ys,
            extra=ref_x,
            uncertainty=self.uncertainty,
            seed=self.seed * PREDICTOR_SEED_STRIDE + round_index,
            **self.predictor_cfg)
        pred = predict(model, pool, extra=pool_x)
        return self.acquire(round_index, pred)

    def acquire(self, round_index, pred):
        return np.asarray(pred, dtype=np.float64)

    def propose_batch(self, round_index, room):
        rng = self.rng(round_index)
        if round_index == 0:
            return self.sample_new(rng, min(self.num_init, room))
        train_gs, train_ys = self.evaluated()
        pool = self.candidate_pool(rng)
        if self.prefilter:
            by, keep = self.prefilter['by'], self.prefilter['keep']
            sign = -1.0 if self.prefilter.get('descending', True) else 1.0
            pool = sorted(pool, key=lambda g: (sign * self.get_measure(g)[by], g.key))[:keep]
        k = min(self.top_k, room, len(pool))
        if len(train_gs) < 2:
            # Not enough successful results to fit a predictor: rank the pool at random.
            return rng.sample(pool, k)
        scores = self.score_candidates(round_index, train_gs, train_ys, pool)
        self.last_predictions = {g.key: float(s) for g, s in zip(pool, scores)}
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], pool[i].key))
        return [pool[i] for i in order[:k]]


@STRATEGIES.register_module()
class NPENASBO(NPENASNP):
    """NPENAS-BO: the same evolution, a predictor with mean and std heads trained with Gaussian
    NLL, and Thompson-style acquisition with one sampled value per candidate (section 6)."""

    uncertainty = True

    def acquire(self, round_index, pred):
        mean, std = pred
        rs = np.random.default_rng([self.seed, round_index, ACQUISITION_STREAM])
        return rs.normal(np.asarray(mean, np.float64), np.asarray(std, np.float64))
