"""FrontierSampler, the default strategy: a surrogate per expensive objective, and as each proposal the
unevaluated architecture that would add the most hypervolume to the current front if it turned out as
good as is plausible.

Why it should work on tables of this kind (and any finite categorical space): the metrics of an
architecture are smooth in its choices (one changed edge moves accuracy and latency a little, and some
choice points matter far more than others), which a Gaussian process over the choices with one relevance
weight per choice point learns from a few dozen evaluations. The space is finite, so nothing is optimised
by gradient: every unevaluated candidate is scored (or, for a space too large to list, a random pool plus
every one-choice neighbour of the front). What is cheap is used as it is: an objective known for every
candidate (`known`: the compiler's latency in hardware-free mode) is exact, not modelled, and is also a
side input of the surrogates of the expensive objectives (accuracy tracks network size, and equivalent
cells share a latency).

Per proposal:
1. Fewer than `n_startup` completed trials: a uniform random architecture not proposed before.
2. Otherwise, for every objective not known: a monotone warp of its values (worse-than-median values
   compressed, so broken networks do not dominate), a GP fit (hyper-parameters by marginal likelihood,
   refitted while there are fewer than 30 points and then whenever the data grew by 10 %), and the
   predicted mean m and deviation s of a new observation for every candidate.
3. The optimistic point of a candidate: m - beta * s per modelled objective (minimisation form), the
   exact value for a known one.
4. The candidate whose optimistic point adds the most hypervolume to the non-dominated set of what was
   evaluated (inside the region of interest when `reference` gives one) is proposed. The reference point
   is `reference` where given (the bench passes its floor), else the worst value seen (evaluated, or known
   for any candidate) pushed out by 10 % of the range: the front's own nadir would give no credit for
   extending the front's ends and would trap the search in the part it already has.
5. When no candidate's optimistic point improves the front, the one that needs the fewest deviations of
   optimism to do so is proposed (never the least-dominated in absolute terms: that one is usually a
   well-known near-duplicate, and would be proposed over and over).
Ties go to the first candidate in the space's order, so a seed fixes every proposal.

Hyper-parameters, all generic: `n_startup` = 10 random points (Optuna's default for TPE and GP); `beta`
= 1, one standard deviation of optimism on top of a deviation that already includes the observation noise
(with a budget of hundreds in a space of thousands, exploitation pays; 0.5, 1, 2 and 3 were compared on
four NAS-Bench-201 pairs and 1 was the best or within seed noise of the best on each);
`max_pool` = 50,000 candidates scored per proposal (the whole space when it is smaller); `max_train` =
1,000 points per GP (the best ones). Nothing refers to a particular table, metric or floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from edgenas.errors import ConfigError
from edgenas.search.strategies._base import CONSTRAINTS_ATTR, CategoricalSampler, ConstraintsFn
from edgenas.search.strategies._blas import single_thread_blas
from edgenas.search.strategies._gp import CategoricalGP, OneHot, PoolPosterior, Warp
from edgenas.search.strategies._mo import hv_improvement, nondominated_rank, sigma_gap, signs

KnownFn = Callable[[Mapping[str, Any]], Sequence[float | None]]


class FrontierSampler(CategoricalSampler):
    """Surrogate-guided hypervolume search over a finite categorical space (see the module docstring)."""

    def __init__(self, choices: Mapping[str, Sequence[Any]], directions: Sequence[str], *, seed: int | None = None,
                 n_startup: int = 10, beta: float = 1.0, max_pool: int = 50_000, known: KnownFn | None = None,
                 reference: Sequence[float | None] | None = None, max_train: int = 1000, side: bool = True,
                 constraints_func: ConstraintsFn | None = None) -> None:
        super().__init__(choices, seed=seed, constraints_func=constraints_func)
        self._keys = list(self._choices)
        self._opts = [list(d.choices) for d in self._dists.values()]
        self._sign = signs(directions)
        self._n_startup = max(1, int(n_startup))
        self._beta = float(beta)
        self._max_pool = int(max_pool)
        self._max_train = int(max_train)
        self._known = known
        self._rng = np.random.RandomState(seed)
        self._enc = OneHot([len(o) for o in self._opts])
        self._radix = np.array([len(o) for o in self._opts])
        self._size = math.prod(len(o) for o in self._opts)
        self._gps: dict[int, tuple[int, CategoricalGP, Warp]] = {}
        self._known_cache: dict[int, np.ndarray] = {}
        self._all_codes: np.ndarray | None = None
        self._known_all: np.ndarray | None = None
        self._posts: dict[int, PoolPosterior] = {}
        self._side = bool(side)
        self._side_scale: tuple[list[Warp], np.ndarray, np.ndarray] | None = None
        self._side_all: np.ndarray | None = None
        ref = list(reference) if reference is not None else [None] * len(self._sign)
        if len(ref) != len(self._sign):
            raise ConfigError(f"reference has {len(ref)} values for {len(self._sign)} objectives", field="reference")
        self._ref_min = np.array([np.inf if r is None else float(r) * sg for r, sg in zip(ref, self._sign)])

    # ---- Optuna sampler interface (the rest is CategoricalSampler's) -------------------------------
    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        done, taken = self._history(study, trial)
        if len(done) < self._n_startup:
            code = self._random_unseen(taken)
        else:
            with single_thread_blas():
                code = self._propose(study, done, taken)
        return {k: self._opts[i][c] for i, (k, c) in enumerate(zip(self._keys, code))}

    # ---- history -----------------------------------------------------------------------------------
    def _code(self, params: Mapping[str, Any]) -> np.ndarray | None:
        try:
            return np.array([self._opts[i].index(params[k]) for i, k in enumerate(self._keys)])
        except (KeyError, ValueError):
            return None

    def _history(self, study: Study, trial: FrozenTrial) -> tuple[list[tuple[np.ndarray, np.ndarray, bool]], set[int]]:
        """Completed trials as (code, minimisation values, feasible) and the ids of every genotype proposed
        (completed, running or failed: never propose one twice)."""
        done, taken = [], set()
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            code = self._code(t.params)
            if code is None:
                continue
            taken.add(self._index(code))
            if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == len(self._sign):
                cons = [*t.system_attrs.get(CONSTRAINTS_ATTR, ()), *getattr(t, "constraints", {}).values()]
                feasible = all(c <= 0 for c in cons)
                done.append((code, np.asarray(t.values, dtype=float) * self._sign, feasible))
        return done, taken

    def _index(self, code: np.ndarray) -> int:
        i = 0
        for c, r in zip(code, self._radix):
            i = i * int(r) + int(c)
        return i

    def _decode(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).copy()
        out = np.zeros((len(idx), len(self._radix)), dtype=int)
        for j in range(len(self._radix) - 1, -1, -1):
            out[:, j] = idx % self._radix[j]
            idx //= self._radix[j]
        return out

    def _random_unseen(self, taken: set[int]) -> np.ndarray:
        if len(taken) >= self._size:  # everything proposed: repeat one (the caller's cache answers)
            return np.array([self._rng.randint(r) for r in self._radix])
        for _ in range(1000):
            code = np.array([self._rng.randint(r) for r in self._radix])
            if self._index(code) not in taken:
                return code
        free = np.setdiff1d(np.arange(min(self._size, 10 * len(taken) + 1)), list(taken))
        return self._decode(free[:1])[0]

    # ---- the proposal ------------------------------------------------------------------------------
    def _pool(self, taken: set[int], front_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Unproposed candidates as codes, and their ids when the whole space is enumerated (it fits in
        max_pool); else random draws plus every one-choice neighbour of the front (ids None)."""
        if self._size <= self._max_pool:
            if self._all_codes is None:
                self._all_codes = self._decode(np.arange(self._size))
            mask = np.ones(self._size, dtype=bool)
            mask[list(taken)] = False
            ids = np.flatnonzero(mask)
            return self._all_codes[ids], ids
        neigh = []
        for code in front_codes:
            for j, r in enumerate(self._radix):
                for v in range(r):
                    if v != code[j]:
                        c = code.copy()
                        c[j] = v
                        neigh.append(c)
        rand = np.column_stack([self._rng.randint(r, size=self._max_pool) for r in self._radix])
        codes = np.vstack([np.array(neigh, dtype=int).reshape(-1, len(self._radix)), rand])
        ids = np.array([self._index(c) for c in codes])
        _, first = np.unique(ids, return_index=True)
        keep = [i for i in np.sort(first) if int(ids[i]) not in taken]
        return codes[keep], None

    def _known_values(self, codes: np.ndarray, ids: np.ndarray | None) -> np.ndarray | None:
        """Cheap objectives for `codes` (minimisation form; NaN where unknown), cached per genotype."""
        if self._known is None:
            return None
        if ids is not None:  # enumerated space: ask once for everything
            if self._known_all is None:
                self._known_all = np.array([self._known_row(c) for c in self._all_codes])
            return self._known_all[ids]
        return np.array([self._known_row(c) for c in codes])

    def _known_row(self, code: np.ndarray) -> np.ndarray:
        i = self._index(code)
        v = self._known_cache.get(i)
        if v is None:
            raw = self._known({k: self._opts[j][c] for j, (k, c) in enumerate(zip(self._keys, code))})
            v = np.array([np.nan if x is None else float(x) for x in raw]) * self._sign
            if len(self._known_cache) < 1_000_000:
                self._known_cache[i] = v
        return v

    def _propose(self, study: Study, done: list[tuple[np.ndarray, np.ndarray, bool]], taken: set[int]) -> np.ndarray:
        codes = np.array([c for c, _, _ in done])
        y = np.array([v for _, v, _ in done])
        feasible = np.array([f for _, _, f in done]) & np.all(np.isfinite(y), axis=1)
        inside = feasible & np.all(y <= self._ref_min, axis=1)
        fy = y[inside]
        front_mask = nondominated_rank(fy) == 0 if len(fy) else np.zeros(0, bool)
        front = fy[front_mask]
        pool, pool_ids = self._pool(taken, codes[inside][front_mask])
        if len(pool) == 0:
            return self._random_unseen(taken)
        known = self._known_values(pool, pool_ids)
        free = [] if known is None else [m for m in range(y.shape[1]) if not np.isnan(known[:, m]).any()]
        u = pool_u = None
        if free and self._side:  # known objectives as side inputs of the surrogates: warped, standardised
            if self._side_scale is None:  # fixed from the first pool, so every proposal sees the same inputs
                base = np.column_stack([Warp(known[:, m])(known[:, m]) for m in free])
                self._side_scale = ([Warp(known[:, m]) for m in free], base.mean(axis=0), base.std(axis=0) + 1e-12)

            def side(v: np.ndarray) -> np.ndarray:
                warps, mu, sd = self._side_scale
                return (np.column_stack([w(v[:, m]) for w, m in zip(warps, free)]) - mu) / sd

            u, pool_u = side(y), side(known)
            if pool_ids is not None and self._side_all is None:
                self._side_all = side(self._known_all)
        # per objective: mean and deviation in the GP's (warped) units, and the warp; a known one is exact
        mean_t = np.empty((len(pool), y.shape[1]))
        sd_t = np.zeros_like(mean_t)
        warps: list[Warp | None] = []
        for m in range(y.shape[1]):
            if m in free:
                mean_t[:, m] = known[:, m]
                warps.append(None)
            else:
                mean_t[:, m], sd_t[:, m], w = self._predict(m, codes, y[:, m], pool, pool_ids, u, pool_u)
                warps.append(w)

        def to_t(v: np.ndarray) -> np.ndarray:
            v = np.atleast_2d(np.asarray(v, dtype=float))
            return np.column_stack([v[:, m] if w is None else w(v[:, m]) for m, w in enumerate(warps)])

        def from_t(v: np.ndarray) -> np.ndarray:
            return np.column_stack([v[:, m] if w is None else w.inverse(v[:, m]) for m, w in enumerate(warps)])

        opt = from_t(mean_t - self._beta * sd_t)
        # reference point: the given one, else the worst value seen (evaluated, or known for any candidate)
        # pushed out by 10 % of the range. The front's own nadir would give no credit for extending the
        # front's ends, and a box that is too small traps the search in the part of the front it has.
        basis = y[feasible] if feasible.any() else y
        lo, hi = basis.min(axis=0), basis.max(axis=0)
        for m in free:
            lo[m], hi[m] = min(lo[m], known[:, m].min()), max(hi[m], known[:, m].max())
        span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
        ref = np.where(np.isfinite(self._ref_min), self._ref_min, hi + 0.1 * span)
        hvi = hv_improvement(opt / span, front / span, ref / span)
        if (hvi > 0).any():
            return pool[int(np.argmax(hvi))]
        # nothing improves the front at this optimism: the candidate fewest deviations away from doing so
        kappa = sigma_gap(mean_t, sd_t, to_t(front) if len(front) else front, to_t(ref)[0])
        return pool[int(np.argmin(kappa))]

    def _predict(self, m: int, codes: np.ndarray, y: np.ndarray, pool: np.ndarray, pool_ids: np.ndarray | None,
                 u: np.ndarray | None, pool_u: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, Warp]:
        """GP mean and deviation of objective m over the pool, in the units of the returned warp.
        Hyper-parameters (and the warp) are refitted while there are fewer than 30 points and then whenever
        the data grew by 10 %; in between, an enumerated space keeps its posterior over every architecture
        and adds the new points to it (exact, and cheap)."""
        finite = np.isfinite(y)
        codes, y = codes[finite], y[finite]
        u = None if u is None else u[finite]
        if len(y) > self._max_train:  # the best points by this objective
            keep = np.sort(np.argsort(y, kind="stable")[: self._max_train])
            codes, y = codes[keep], y[keep]
            u = None if u is None else u[keep]
        last = self._gps.get(m)
        refit = last is None or len(y) < 30 or len(y) >= 1.1 * last[0]
        if refit:
            warp = Warp(y)
            gp = CategoricalGP(self._enc, 0 if u is None else u.shape[1]) if last is None else last[1]
            gp.fit(codes, warp(y), u, optimise=True)
            self._gps[m] = (len(y), gp, warp)
        else:
            _, gp, warp = last
            if pool_ids is None:
                gp.fit(codes, warp(y), u, optimise=False)
        y = warp(y)
        if pool_ids is None:
            return (*gp.predict(pool, pool_u, observed=True), warp)
        post = self._posts.get(m)
        n_old = 0 if post is None else len(post.codes)
        if refit or post is None or n_old > len(y) or not np.array_equal(post.codes, codes[:n_old]):
            post = PoolPosterior(gp, self._all_codes, self._side_all, codes, u)
            self._posts[m] = post
        elif n_old < len(y):
            post.add(codes[n_old:], None if u is None else u[n_old:])
        mean, sd = post.predict(y, observed=True)
        return mean[pool_ids], sd[pool_ids], warp
