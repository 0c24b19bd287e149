"""The search loop one process runs: `edgenas search` is a worker too, and any number of `edgenas worker`
processes on any machines can run it on the same study.

Per trial: the strategy proposes a genotype (one `suggest_categorical` per choice point); every evaluator
is asked for it through the measurement store (a result already in the database is reused, one being
measured by another worker is waited for); cheap evaluators run first and a candidate that breaks a hard
limit never reaches an expensive one; the trial records its real objective values, its metrics and whether
it is feasible, and Optuna gets the limits through the strategy's `constraints_func`.

Liveness and totals: Optuna's heartbeat thread beats for the running trial; any worker starting a trial
first fails the trials whose heartbeat went stale and queues them again (`RetryHeartbeatStaleTrialCallback`),
and a queued trial is the next one asked for. The study stops at exactly `target` COMPLETE trials: a trial
may start only while the COMPLETE trials plus the running trials started before it are fewer than the
target; otherwise it waits (a running one may still die) and is pruned, without being evaluated, once the
target is reached.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgenas.processes import interrupt_pending, interrupts_allowed, interrupts_deferred
from edgenas.search.evaluators import EvaluationFailed, Hints, Stage
from edgenas.search.objectives import StageResult
from edgenas.search.storage import Claim, MeasurementKey, MeasurementStore, Record
from edgenas.search.study import RECORD_ATTR, SearchSetup, make_strategy, name_metrics, trial_constraints_supported
from edgenas.space.genotype import Genotype

ProgressFn = Callable[[int, int, Any], None]  # (COMPLETE trials in the study, target, the finished FrozenTrial)
RUNG_ATTR = "rung_"  # trial user attrs of successive halving: rung_<epoch> = value, rung_known = cheap metrics
SEED_STRIDE = 1_000_003  # session k of a study samples with seed + k * SEED_STRIDE (k = 0: the seed itself)


@dataclass(frozen=True)
class RunSummary:
    complete: int  # COMPLETE trials in the study when this process stopped
    target: int
    trials: int  # trials this process finished (any state)
    measured: int  # evaluator runs this process made
    reused: int  # evaluator results this process took from the store
    seed: int  # the seed this process's strategy used
    session: int  # this process's index among the study's sessions


def hardware_key(setup: SearchSetup) -> str:
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(setup.profile.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
    return f"{setup.profile.name}@{digest[:10]}"


def _finite(v: Any) -> Any:
    return v if not isinstance(v, float) or math.isfinite(v) else None


KNOWN_LIMIT = 10_000  # candidates: a space up to this size gets every cheap figure before any expensive one


def known_objectives(setup: SearchSetup, measure: Callable[[Stage, Genotype, Mapping[str, Any]], StageResult], *,
                     seed: int, limit: int = KNOWN_LIMIT, on_measured: Callable[[int, int], None] | None = None
                     ) -> Callable[[Mapping[str, Any]], list[float | None]] | None:
    """The objectives the cheap evaluators give (the compiler's FPS, say), measured for every candidate of the
    space before the search starts, as the `known` function of a strategy that takes one (the default,
    `frontier`: exact values instead of a model, and side inputs of its accuracy model). Only where it pays:
    the strategy takes `known`, some evaluator is expensive, a cheap one gives an objective, and the space
    has at most `limit` candidates. The order is shuffled by `seed`, so workers starting together measure
    different candidates first (each result is stored once and reused). A candidate whose cheap figure is
    missing (failed compile) gives None (the strategy then models that objective instead). `on_measured(done,
    total)` after each candidate (a progress bar)."""
    import random

    from edgenas.search.strategies import uses_known

    stages = setup.problem.stages
    cheap = [s for s in stages if s.cost == "cheap"]
    cheap_metrics = {m for s in cheap for m in s.metrics}
    wanted = [o.metric if o.metric in cheap_metrics else None for o in setup.objectives]
    size = setup.space.size()
    if (not uses_known(setup.strategy) or "known" in setup.section.strategy_options or size > limit
            or not any(s.cost == "expensive" for s in stages) or not any(wanted)):
        return None
    genotypes = list(setup.space.enumerate())
    random.Random(seed).shuffle(genotypes)
    table: dict[str, list[float | None]] = {}
    for i, g in enumerate(genotypes):
        metrics: dict[str, Any] = {}
        for stage in cheap:
            res = measure(stage, g, dict(metrics))
            if res.error is None:
                metrics.update(stage.rename(res.metrics))
        table[g.arch_id] = [None if m is None or _finite(metrics.get(m)) is None else float(metrics[m])
                            for m in wanted]
        if on_measured is not None:
            on_measured(i + 1, len(genotypes))

    def known(params: Mapping[str, Any]) -> list[float | None]:
        return table.get(setup.space.genotype(dict(params)).arch_id, [None] * len(wanted))

    return known


def run_trials(setup: SearchSetup, study_name: str, storage: Any, *, target: int, seed: int,
               on_progress: ProgressFn | None = None, poll_s: float = 0.25,
               on_prepass: Callable[[int, int], None] | None = None) -> RunSummary:
    """Work on the study until it has `target` COMPLETE trials (all workers together). `on_prepass(done,
    total)`: progress of the cheap pre-pass over the space (`known_objectives`), when there is one."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from edgenas.search.storage import engine_of
    from edgenas.search.strategies import suggest_genotype

    sec = setup.section
    store = MeasurementStore(engine_of(storage), heartbeat_interval=sec.heartbeat_interval,
                             grace_period=sec.grace)
    worker_id, session = store.register_worker(study_name)
    my_seed = seed + session * SEED_STRIDE
    store.set_worker_seed(worker_id, my_seed)
    study = optuna.load_study(study_name=study_name, storage=storage)
    directions = [d.name.lower() for d in study.directions]
    res_text = setup.resolution_text
    hw_key = hardware_key(setup)
    stats = {"trials": 0, "measured": 0, "reused": 0}
    use_trial_constraints = trial_constraints_supported()
    last_sweep = [0.0]

    def count(states: tuple[Any, ...]) -> list[Any]:
        return study.get_trials(deepcopy=False, states=states)

    def fail_stale() -> None:
        """Fail trials whose worker died (Optuna does this only when a trial starts)."""
        if time.monotonic() - last_sweep[0] < sec.heartbeat_interval:
            return
        last_sweep[0] = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.storages.fail_stale_trials(study)

    def admit(trial: optuna.Trial) -> None:
        while True:
            trials = count((TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
            complete = sum(t.state == TrialState.COMPLETE for t in trials)
            if complete >= target:
                trial.set_user_attr("surplus", True)
                study.stop()
                raise optuna.TrialPruned("the study has its trials")
            ahead = sum(t.state == TrialState.RUNNING and t.number < trial.number for t in trials)
            if complete + ahead < target:
                return
            if any(t.state == TrialState.WAITING for t in trials):
                trial.set_user_attr("surplus", True)  # make way for a queued (retried) trial
                raise optuna.TrialPruned("a queued trial goes first")
            fail_stale()
            time.sleep(poll_s)

    objectives = tuple((o.metric, o.direction) for o in setup.problem.objectives)

    def front() -> list[tuple[float, ...]]:
        """Objective vectors of the feasible, non-dominated trials finished so far (all workers)."""
        from edgenas.search.study import pareto_front, trial_rows

        return [r.values for r in pareto_front(trial_rows(study), setup.problem.objectives)]

    def hints_for(trial: optuna.Trial, stage: Stage, known: Mapping[str, Any]) -> Hints:
        prune = None
        if len(directions) == 1:  # Optuna's pruners work on single-objective studies
            def prune(step: int, value: float) -> bool:
                trial.report(value, step)
                return trial.should_prune()
        def record_rung(step: int, value: float) -> None:
            if f"{RUNG_ATTR}known" not in trial.user_attrs:
                trial.set_user_attr(f"{RUNG_ATTR}known", {k: v for k, v in known.items()
                                                          if isinstance(v, (int, float)) and not isinstance(v, bool)})
            trial.set_user_attr(f"{RUNG_ATTR}{step}", float(value))

        def rung_peers(step: int) -> list[dict[str, float]]:
            from optuna.trial import TrialState

            peers = []
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE)):
                value = t.user_attrs.get(f"{RUNG_ATTR}{step}")
                if t.number != trial.number and value is not None:
                    peers.append({**t.user_attrs.get(f"{RUNG_ATTR}known", {}), "value": float(value)})
            return peers

        return Hints(known=dict(known), objectives=objectives, front=front, prefix=stage.prefix,
                     should_prune=prune, record_rung=record_rung, rung_peers=rung_peers)

    def measure_for(trial: optuna.Trial | None) -> Callable[[Stage, Genotype, Mapping[str, Any]], StageResult]:
        """Measure through the store; without a trial (the cheap pre-pass) there is nothing to hint."""
        def measure(stage: Stage, g: Genotype, known: Mapping[str, Any]) -> StageResult:
            key = MeasurementKey(g.arch_id, str(g), res_text, hw_key, stage.key)
            got = store.acquire(key, study=study_name, trial_number=None if trial is None else trial.number,
                                on_wait=fail_stale)
            if isinstance(got, Record):
                stats["reused"] += 1
                if got.status == "ok":
                    return StageResult(got.metrics, reused=True)
                return StageResult(error=got.error or "failed", reused=True)
            claim: Claim = got
            stats["measured"] += 1
            try:
                with store.heartbeat(claim):
                    hints = Hints(known=dict(known)) if trial is None else hints_for(trial, stage, known)
                    metrics = stage.evaluator.evaluate_with(g, hints)
            except EvaluationFailed as e:
                if e.retryable:
                    store.abandon(claim, "retryable")
                else:
                    store.finish(claim, "failed", {}, str(e))
                return StageResult(error=str(e))
            except BaseException:
                store.abandon(claim, "aborted")
                raise
            store.finish(claim, "ok", metrics, None)
            return StageResult(dict(metrics))
        return measure

    if session == 0 and setup.section.enqueue and not study.get_trials(deepcopy=False):
        from edgenas.search.strategies._params import values_to_params
        from edgenas.search.study import enqueued_genotypes

        for g in enqueued_genotypes(setup.space, setup.section, setup.source):  # first, in order (search.enqueue)
            study.enqueue_trial(values_to_params(g.as_dict(), setup.space.choices), skip_if_exists=True)
    # Cheap figures first, for every candidate of a listable space, then the strategy that uses them exactly
    # (`known_objectives`); the results are in the store, so the trials reuse them and other workers share them.
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= target
    known = None if done else known_objectives(setup, measure_for(None), seed=my_seed, on_measured=on_prepass)
    strategy = make_strategy(setup, seed=my_seed, known=known)
    study.sampler = strategy.sampler
    name_metrics(study, setup)  # a study made by an older edgenas, resumed by `edgenas worker`

    def objective(trial: optuna.Trial) -> list[float]:
        with interrupts_allowed():  # Ctrl-C / SIGTERM end the trial here, and Optuna marks it FAIL
            try:
                admit(trial)
                values = suggest_genotype(trial, setup.space.choices)
                g = setup.space.genotype(values)
                trial.set_user_attr("arch_id", g.arch_id)  # first: a trial whose worker dies names its design
                out = setup.problem.evaluate(g, measure_for(trial))
            except KeyboardInterrupt:
                optuna.logging.set_verbosity(optuna.logging.ERROR)  # the CLI says it in one line, no traceback
                raise
        record = {
            "genotype": str(g),
            "values": [_finite(v) for v in out.values],
            "feasible": out.feasible,
            "violated": out.violated,
            "constraints": [float(v) for v in out.constraint_values],
            "metrics": {k: _finite(v) for k, v in out.metrics.items()},
            "measured": out.measured,
            "reused": out.reused,
            "skipped": out.skipped,
            "error": out.error,
        }
        trial.set_user_attr(RECORD_ATTR, record)  # few writes: every write is a database commit
        trial.set_user_attr("feasible", out.feasible)  # on its own too, to filter on in optuna-dashboard
        if use_trial_constraints:
            for name, v in zip(setup.problem.constraint_names, out.constraint_values):
                trial.set_constraint(name, float(v))
        told = strategy.study_values(out.values)
        return [v if not math.isnan(v) else (-math.inf if d == "maximize" else math.inf)
                for v, d in zip(told, directions)]

    def progress(st: optuna.Study, ft: Any) -> None:
        stats["trials"] += 1
        if on_progress is not None:
            on_progress(len(count((TrialState.COMPLETE,))), target, ft)
        if interrupt_pending():  # it came while Optuna asked or told: stop before the next trial
            st.stop()

    if len(count((TrialState.COMPLETE,))) < target:
        # Interrupts wait while Optuna asks and tells (a trial cut off there would stay RUNNING, with no
        # heartbeat if cut off early, and block the study's total): they stop a trial inside the objective
        # or between trials, and are raised when optimize returns.
        verbosity = optuna.logging.get_verbosity()
        try:
            with warnings.catch_warnings(), interrupts_deferred():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(objective, n_trials=None, catch=(),
                               callbacks=[MaxTrialsCallback(target, states=(TrialState.COMPLETE,)), progress])
        finally:
            optuna.logging.set_verbosity(verbosity)
    return RunSummary(len(count((TrialState.COMPLETE,))), target, stats["trials"], stats["measured"],
                      stats["reused"], my_seed, session)
