"""bench-search: judge search strategies on a table of known metrics against its exhaustive Pareto front.

The measure (`../shared/benchmarks/README.md`), for objectives with directions and floors:
- region of interest: the rows meeting every floor (`accuracy >= floor`);
- true front: the non-dominated rows of the region (weakly: equal points are all on it);
- reference point: the floor for a floored objective; for any other, the worst value on the true front
  pushed out by 5 % of its magnitude (for a minimised latency: 1.05 x the largest latency on the front);
- hv_ratio: hypervolume of the non-dominated set of what a strategy evaluated, inside the reference box,
  divided by the hypervolume of the true front;
- budget: distinct architectures evaluated. A proposal of an architecture already evaluated is answered
  from the cache (the study is told the same values) and spends nothing; proposals are bounded at
  `PROPOSALS_PER_BUDGET` x budget so a strategy that only repeats itself ends its run early.
The same runs are also measured on the prefixes of their distinct evaluations (`checkpoints`: 50 and 100
evaluations and the budget), and the default's median trajectory says after how many evaluations it
reaches the best anchor's figure at the full budget (`evaluations_to_reach`).

What each strategy is told. The floors are the region the user declared, so every strategy that can take
them gets them: the default as its reference point (`reference`), and the Optuna anchors that read
constraints (NSGA-II, TPE) as a constraint per trial, `floor - accuracy <= 0` (`Trial.set_constraint`,
Optuna >= 5's replacement for the deprecated `constraints_func`; a sampler then prefers feasible trials).
These informed anchors (`nsga2+floor`, `tpe+floor`) always run beside the plain ones (Optuna's defaults,
told nothing); random cannot use a constraint and runs plain only. `NAME+floor` (or `NAME:floor=on`) asks
for the same with any strategy that reads constraints; `floor=off` withholds the floor from the default.

`hardware_free`: the free objectives (default: every minimised one, i.e. the hardware cost) are known for
every architecture before any evaluation, as a compiler makes them cheap; only the others (accuracy) cost
budget. Strategies that accept `known` (`uses_known`) get them as a function of the params. Optuna's
samplers have no documented way to take an objective value before a trial is evaluated (a trial can be
enqueued with fixed params, `enqueue_trial`, or added complete with all its values, `add_trial`, and
`PartialFixedSampler` fixes params; none takes one known objective of an unevaluated candidate), so for
the anchors, plain or informed, the run is the normal one: they are told the free objective with each
evaluation, as always, and their figures equal the normal mode's.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import moocore
import numpy as np

from edgenas.errors import ConfigError
from edgenas.processes import child_initialiser, kill_executor
from edgenas.search.strategies import (
    ANCHORS,
    DEFAULT_STRATEGY,
    make_strategy,
    reads_constraints,
    strategy_names,
    suggest_genotype,
    uses_known,
)
from edgenas.search.table_eval import TableEvaluator
from edgenas.space.genotype import parse_genotype_text

PROPOSALS_PER_BUDGET = 10
CHECKPOINTS = (50, 100)  # besides the budget: hv_ratio after this many distinct evaluations
INFORMED_ANCHORS = tuple(f"{a}+floor" for a in ANCHORS if reads_constraints(a))  # told the floor as a constraint
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Objective:
    column: str
    direction: str  # "max" | "min"

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "max" else "minimize"


@dataclass(frozen=True)
class StrategySpec:
    """`name`, `name:key=value:key=value` or `name+floor[:...]` (= `name:floor=on`) as typed on the command
    line; `label` keys the JSON."""

    label: str
    name: str
    options: tuple[tuple[str, str], ...] = ()


def parse_objective(text: str) -> Objective:
    col, sep, d = text.rpartition(":")
    d = d.strip().lower()
    if not sep or not col.strip() or d not in ("max", "min"):
        raise ConfigError(f"expected COLUMN:max or COLUMN:min, got {text!r}", field="--objective")
    return Objective(col.strip(), d)


def parse_floor(text: str) -> tuple[str, float]:
    col, sep, v = text.partition("=")
    try:
        value = float(v)
    except ValueError:
        value = math.nan
    if not sep or not col.strip() or not math.isfinite(value):
        raise ConfigError(f"expected COLUMN=NUMBER, got {text!r}", field="--floor")
    return col.strip(), value


def parse_strategy(text: str) -> StrategySpec:
    parts = [p.strip() for p in text.strip().split(":")]
    name, plus, suffix = parts[0].partition("+")
    name, opts = name.strip(), []
    if plus:
        if suffix.strip() != "floor":
            raise ConfigError(f"strategy {text.strip()!r}: the only suffix is +floor", field="--strategies")
        opts.append(("floor", "on"))
    if name not in strategy_names():
        raise ConfigError(f"unknown strategy {name!r}; allowed: {', '.join(strategy_names())}", field="--strategies")
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise ConfigError(f"strategy option {p!r} of {name!r}: expected KEY=VALUE", field="--strategies")
        opts.append((k.strip(), v.strip()))
    return StrategySpec(text.strip(), name, tuple(opts))


def strategy_list(requested: Sequence[str] | None) -> list[StrategySpec]:
    """The default, the plain anchors and the informed ones first (always run), then what was asked for,
    each once."""
    specs = [parse_strategy(s) for s in (DEFAULT_STRATEGY, *ANCHORS, *INFORMED_ANCHORS)]
    for text in requested or ():
        s = parse_strategy(text)
        if s.label not in {x.label for x in specs}:
            specs.append(s)
    return specs


# ---- the problem: a table, its space and its ground truth ----------------------------------------------
@dataclass
class Problem:
    table: Path
    arch_col: str
    objectives: tuple[Objective, ...]
    floors: Mapping[str, float]
    hardware_free: bool = False
    free: tuple[str, ...] = ()
    # filled by load()
    keys: list[str] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    choices: dict[str, list[Any]] = field(default_factory=dict)
    index: dict[tuple, int] = field(default_factory=dict)
    sign: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ref: np.ndarray = field(default_factory=lambda: np.zeros(0))
    true_front: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    true_hv: float = 0.0

    @property
    def directions(self) -> list[str]:
        return [o.optuna_direction for o in self.objectives]

    @property
    def free_columns(self) -> tuple[str, ...]:
        if not self.hardware_free:
            return ()
        return self.free or tuple(o.column for o in self.objectives if o.direction == "min")

    def load(self) -> Problem:
        cols = [o.column for o in self.objectives]
        if len(cols) < 2:
            raise ConfigError("bench-search needs at least two objectives (e.g. ACC:max and LAT:min)",
                              field="--objective")
        if len(set(cols)) != len(cols):
            raise ConfigError("an objective column is given twice", field="--objective")
        if self.arch_col in cols:
            raise ConfigError(f"the arch column {self.arch_col!r} cannot be an objective", field="--objective")
        for c in self.floors:
            if c not in cols:
                raise ConfigError(f"floor column {c!r} is not an objective; objectives: {', '.join(cols)}",
                                  field="--floor")
        for c in self.free:
            if c not in cols:
                raise ConfigError(f"free column {c!r} is not an objective; objectives: {', '.join(cols)}",
                                  field="--free")
        if self.hardware_free and len(self.free_columns) == len(cols):
            raise ConfigError("with every objective free there is nothing to search; free only the cheap ones",
                              field="--free")
        ev = TableEvaluator(self.table, self.arch_col, cols)
        self.keys = ev.archs()
        self.values = np.array([[ev.peek(k)[c] for c in cols] for k in self.keys], dtype=float)
        self.choices, codes = _table_space(self.keys, str(self.table), self.arch_col)
        self.index = {c: i for i, c in enumerate(codes)}
        self.sign = np.array([1.0 if o.direction == "min" else -1.0 for o in self.objectives])
        self._ground_truth()
        return self

    def _ground_truth(self) -> None:
        y = self.values * self.sign
        region = np.ones(len(y), dtype=bool)
        for j, o in enumerate(self.objectives):
            if o.column in self.floors:
                f = self.floors[o.column]
                region &= (self.values[:, j] >= f) if o.direction == "max" else (self.values[:, j] <= f)
        if not region.any():
            raise ConfigError("no row meets the floor(s): the region of interest is empty", field="--floor")
        idx = np.flatnonzero(region)
        nd = moocore.is_nondominated(y[idx], keep_weakly=True)
        self.true_front = idx[nd]
        fy = y[self.true_front]
        ref = []
        for j, o in enumerate(self.objectives):
            if o.column in self.floors:
                ref.append(self.floors[o.column] * self.sign[j])
            else:
                worst = fy[:, j].max()
                ref.append(worst + 0.05 * abs(worst))
        self.ref = np.array(ref)
        self.true_hv = _hv(fy, self.ref)
        if not self.true_hv > 0:
            raise ConfigError("the true front has zero hypervolume (a single point on the floor?): choose "
                              "another floor", field="--floor")

    def row_of(self, params: Mapping[str, Any]) -> int | None:
        return self.index.get(tuple(params[k] for k in self.choices))

    def trajectory(self, order: Sequence[int]) -> np.ndarray:
        """hv_ratio after each of the first 1..len(order) evaluations (rows in the order evaluated)."""
        y = self.values[np.asarray(list(order), dtype=int)] * self.sign
        out = np.zeros(len(y))
        front = np.zeros((0, y.shape[1]))
        hv = 0.0
        for i, p in enumerate(y):
            if np.all(p < self.ref) and not np.any(np.all(front <= p, axis=1)):  # p adds hypervolume
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
                hv = _hv(front, self.ref)
            out[i] = hv / self.true_hv
        return out

    def measure(self, rows: Sequence[int]) -> tuple[float, int]:
        """(hv_ratio, true-front rows among `rows`) for a set of evaluated rows."""
        rows = np.unique(np.asarray(list(rows), dtype=int))
        if len(rows) == 0:
            return 0.0, 0
        hv = _hv(self.values[rows] * self.sign, self.ref)
        return hv / self.true_hv, int(np.isin(self.true_front, rows).sum())

    def _floor_on(self, spec: StrategySpec) -> bool:
        """Whether `spec` is told the floors: `floor=on|off`, on by default for strategies that take a
        reference point (the default), off for the others (the plain anchors)."""
        floor = str(dict(spec.options).get("floor", "on" if uses_known(spec.name) else "off")).lower()
        if floor not in ("on", "off"):
            raise ConfigError(f"strategy {spec.label!r}: floor must be on or off", field="--strategies")
        if floor == "on" and not (uses_known(spec.name) or reads_constraints(spec.name)):
            raise ConfigError(f"strategy {spec.label!r}: {spec.name} can take neither a reference point nor a "
                              "constraint, so it cannot be told the floor", field="--strategies")
        return floor == "on"

    def strategy_options(self, spec: StrategySpec) -> dict[str, Any]:
        """The spec's options plus what the bench gives strategies that can use it: the free objectives
        (`known`, hardware-free mode) and the floors as the reference point (`reference`). A strategy that
        reads constraints gets the floors through `floor_constraints` instead."""
        options = {k: v for k, v in spec.options if k != "floor"}
        floor = self._floor_on(spec)
        if uses_known(spec.name):
            if self.hardware_free:
                options["known"] = self.known_fn()
            if floor and self.floors:
                options["reference"] = [self.floors.get(o.column) for o in self.objectives]
        return options

    def floor_constraints(self, spec: StrategySpec) -> list[tuple[str, int, float]]:
        """(constraint name, objective index, sign) per floor for a strategy told the floors as constraints
        (empty otherwise): the value set on a trial is sign * (value - floor), <= 0 where the floor is met."""
        if uses_known(spec.name) or not self._floor_on(spec):
            return []
        return [(f"floor:{o.column}", j, -1.0 if o.direction == "max" else 1.0)
                for j, o in enumerate(self.objectives) if o.column in self.floors]

    def known_fn(self):
        """params -> objective values with None for the ones that cost budget (hardware-free mode)."""
        free = [o.column in self.free_columns for o in self.objectives]
        values, row_of = self.values, self.row_of

        def known(params: Mapping[str, Any]) -> list[float | None]:
            r = row_of(params)
            return [None if (r is None or not f) else float(values[r, j]) for j, f in enumerate(free)]

        return known


def _hv(points_min: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume (minimisation) of the points strictly inside the reference box."""
    inside = points_min[np.all(points_min < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(moocore.hypervolume(moocore.filter_dominated(inside), ref=ref))


def _table_space(keys: Sequence[str], source: str, arch_col: str) -> tuple[dict[str, list[Any]], list[tuple]]:
    """The search space of a table's arch column: NAS-Bench-201 cell strings, or NAME=VALUE lists (the
    genotype's str()) whose options are the values that occur; returns choices and each row's code."""
    from edgenas.space.nb201 import NB201_EDGES, NB201_OPS, parse_arch

    if all(k.startswith("|") for k in keys):
        try:
            codes = [tuple(parse_arch(k).as_dict().values()) for k in keys]
        except ConfigError as e:
            raise ConfigError(f"column {arch_col}: {e.message}", source=source) from None
        return {e: list(NB201_OPS) for e in NB201_EDGES}, codes
    try:
        parsed = [parse_genotype_text(k) for k in keys]
    except ValueError:
        parsed = []
    names = list(parsed[0]) if parsed else []
    if not parsed or not names or any(list(p) != names for p in parsed):
        raise ConfigError(f"column {arch_col}: neither NAS-Bench-201 cell strings nor NAME=VALUE lists with the "
                          f"same names on every row (first: {keys[0]!r})", source=source)
    choices = {n: list(dict.fromkeys(p[n] for p in parsed)) for n in names}
    return choices, [tuple(p[n] for n in names) for p in parsed]


# ---- one run -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    label: str
    seed: int
    hv_ratio: float
    front_points_found: int
    evaluated: int
    proposals: int
    seconds: float
    order: tuple[int, ...] = ()  # rows in the order first evaluated


def run_one(problem: Problem, spec: StrategySpec, seed: int, budget: int) -> RunResult:
    """One strategy, one seed: ask/tell on an in-memory study until `budget` distinct rows are evaluated."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    options = problem.strategy_options(spec)
    constraints = problem.floor_constraints(spec)
    strat = make_strategy(spec.name, seed=seed, choices=problem.choices, directions=problem.directions, **options)
    study = optuna.create_study(directions=list(strat.directions), sampler=strat.sampler)
    order: list[int] = []
    seen: set[int] = set()
    proposals = 0
    while len(order) < budget and proposals < PROPOSALS_PER_BUDGET * budget:
        trial = study.ask()
        proposals += 1
        row = problem.row_of(suggest_genotype(trial, problem.choices))
        if row is None:  # the table does not have this architecture: no measurement, no budget
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        if row not in seen:
            seen.add(row)
            order.append(row)
        for name, j, sg in constraints:  # the floor, as Optuna's samplers take a constraint
            trial.set_constraint(name, sg * (problem.values[row, j] - problem.floors[problem.objectives[j].column]))
        study.tell(trial, strat.study_values(problem.values[row]))
    ratio, found = problem.measure(order)
    return RunResult(spec.label, seed, ratio, found, len(order), proposals, time.perf_counter() - t0, tuple(order))


# ---- many runs in processes ------------------------------------------------------------------------------
_WORKER_PROBLEM: Problem | None = None


def _init_worker(problem_args: dict[str, Any]) -> None:
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = Problem(**problem_args).load()


def _run_in_worker(spec: StrategySpec, seed: int, budget: int) -> RunResult:
    assert _WORKER_PROBLEM is not None
    return run_one(_WORKER_PROBLEM, spec, seed, budget)


def run_bench(problem_args: Mapping[str, Any], strategies: Sequence[StrategySpec], seeds: int, budget: int,
              jobs: int = 0, progress: Any = None) -> tuple[dict[str, Any], list[RunResult]]:
    """Every strategy x seeds 0..seeds-1; returns the JSON summary and the runs."""
    if budget < 1:
        raise ConfigError(f"budget must be >= 1, got {budget}", field="--budget")
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}", field="--seeds")
    problem = Problem(**problem_args).load()
    if budget > len(problem.keys):
        raise ConfigError(f"budget {budget} exceeds the table's {len(problem.keys)} architectures", field="--budget")
    # check every strategy and its options once, here, so bad input fails before any process starts
    for s in strategies:
        make_strategy(s.name, seed=0, choices=problem.choices, directions=problem.directions,
                      **problem.strategy_options(s))
    tasks = [(s, seed) for seed in range(seeds) for s in strategies]
    jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    results: list[RunResult] = []
    if jobs == 1 or len(tasks) == 1:
        for s, seed in tasks:
            results.append(run_one(problem, s, seed, budget))
            if progress:
                progress(results[-1])
    else:
        # Fresh interpreters with one BLAS thread each: the runs are the parallelism, and BLAS threads
        # spinning next to them on small matrices cost more than they give.
        saved = {k: os.environ.get(k) for k in _BLAS_ENV}
        os.environ.update({k: "1" for k in _BLAS_ENV})
        try:
            # child_initialiser: the workers die with this process and leave Ctrl-C / SIGTERM to it
            with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=mp.get_context("spawn"),
                                     initializer=child_initialiser,
                                     initargs=(os.getpid(), _init_worker, dict(problem_args))) as pool:
                futures = [pool.submit(_run_in_worker, s, seed, budget) for s, seed in tasks]
                try:
                    for f in futures:
                        results.append(f.result())
                        if progress:
                            progress(results[-1])
                except BaseException:  # an interrupt: stop now, not after the running runs
                    kill_executor(pool)
                    raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return summarise(problem, strategies, seeds, budget, results), results


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def checkpoints(budget: int) -> tuple[int, ...]:
    return (*(n for n in CHECKPOINTS if n < budget), budget)


def median_trajectory(problem: Problem, runs: Sequence[RunResult], budget: int) -> np.ndarray:
    """Median over runs of hv_ratio after n = 1..budget distinct evaluations (a run that ended early keeps
    its last value)."""
    t = np.zeros((len(runs), budget))
    for i, r in enumerate(runs):
        tr = problem.trajectory(r.order[:budget])
        if len(tr):
            t[i, :len(tr)] = tr
            t[i, len(tr):] = tr[-1]
    return np.median(t, axis=0)


def evaluations_to_reach(trajectory: np.ndarray, target: float) -> int | None:
    """The smallest n whose (median) hv_ratio after n evaluations is >= target; None if never."""
    hit = np.flatnonzero(np.asarray(trajectory) >= target - 1e-12)
    return int(hit[0]) + 1 if len(hit) else None


def summarise(problem: Problem, strategies: Sequence[StrategySpec], seeds: int, budget: int,
              results: Sequence[RunResult]) -> dict[str, Any]:
    """Per strategy: median and minimum hv_ratio over seeds at the budget, the median at each checkpoint,
    front points found. `default_vs_best_anchor`: the anchor (plain or informed) with the highest median at
    the budget, and the fewest evaluations after which the default's median trajectory reaches it (None if
    it does not within the budget; the whole entry is None when the default or no anchor ran)."""
    out: dict[str, Any] = {"budget": budget, "seeds": seeds, "default": DEFAULT_STRATEGY, "strategies": {},
                           "true_front_points": len(problem.true_front)}
    medians: dict[str, np.ndarray] = {}
    final: dict[str, float] = {}
    for s in strategies:
        rs = [r for r in results if r.label == s.label]
        hv = [r.hv_ratio for r in rs]
        medians[s.label] = median_trajectory(problem, rs, budget)
        final[s.label] = statistics.median(hv)
        out["strategies"][s.label] = {
            "hv_ratio_median": round(statistics.median(hv), 4),
            "hv_ratio_min": round(min(hv), 4),
            "front_points_found_median": _num(statistics.median(r.front_points_found for r in rs)),
            "hv_ratio_median_at": {str(n): round(float(medians[s.label][n - 1]), 4) for n in checkpoints(budget)},
        }
    anchors = [s.label for s in strategies if s.label in (*ANCHORS, *INFORMED_ANCHORS)]
    out["default_vs_best_anchor"] = None
    if DEFAULT_STRATEGY in final and anchors:
        best = max(anchors, key=lambda a: final[a])  # the first of equals
        out["default_vs_best_anchor"] = {
            "anchor": best, "hv_ratio_median": round(final[best], 4),
            "default_evaluations_to_reach": evaluations_to_reach(medians[DEFAULT_STRATEGY], final[best])}
    return out
