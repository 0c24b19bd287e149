"""Sweep: every genotype x resolution of a space, compiled for one or more hardware profiles.

Work is split into jobs of one (genotype, resolution): the network is built and written once and then
measured for every profile. Jobs run in a process pool because the compiler holds the GIL. Each worker
looks in the measurement cache first, so a re-run compiles nothing and a killed sweep resumes. A worker
that dies (a compiler segfault, the OOM killer) costs only its job, a failed row, and a fresh one goes on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas import atomic
from edgenas.graph.ir import Graph
from edgenas.hardware.cache import MeasurementCache, cache_key_for_digest, model_digest
from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile
from edgenas.processes import WorkerDied, run_in_workers
from edgenas.space.config import SpaceConfig, format_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace
from edgenas.sweep.rows import ir_figures, ir_figures_version, measurement_row
from edgenas.tflite.writer import WEIGHTS_DESCRIPTION, graph_to_tflite, model_fingerprint


@dataclass(frozen=True)
class SweepJob:
    genotype: Genotype
    resolution: tuple[int, int]


@dataclass(frozen=True)
class JobResult:
    job: SweepJob
    rows: list[dict[str, Any]]  # one per profile
    measurements: list[Measurement]
    compiled: int  # how many profiles had to be compiled (not from cache)


def make_evaluator(profile: HardwareProfile) -> Any:
    """The profile's evaluator. The compiler's input check stays on even for our own models: the C++ core
    segfaults on a malformed flatbuffer, which would take a whole worker process down."""
    if profile.evaluator == "analytic":
        from edgenas.hardware.analytic import AnalyticEvaluator, Calibration

        return AnalyticEvaluator(profile, Calibration.load(profile.calibration) if profile.calibration else None)
    from edgenas.hardware.vela import VelaEvaluator

    return VelaEvaluator(profile)


def _evaluator(i: int) -> Any:
    if i not in _W["evaluators"]:
        _W["evaluators"][i] = make_evaluator(_W["profiles"][i])
    return _W["evaluators"][i]


def weight_seed(arch_id: str) -> int:
    """Weights are seeded by the network, so every resolution of one architecture has the same weights."""
    return int(arch_id[:8], 16)


# ---- worker side ----------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(config: SpaceConfig, source: str, profiles: list[HardwareProfile], cache_path: str | None,
                 save_dir: str | None) -> None:
    _W["space"] = SearchSpace(config, source)
    _W["profiles"] = profiles
    _W["evaluators"] = {}  # made on first use: a fully cached sweep never loads the compiler
    _W["cache"] = MeasurementCache(cache_path) if cache_path else None
    _W["save_dir"] = Path(save_dir) if save_dir else None


def run_job(job: SweepJob) -> JobResult:
    space: SearchSpace = _W["space"]
    cache: MeasurementCache | None = _W["cache"]
    profiles: list[HardwareProfile] = _W["profiles"]
    graph = space.build(job.genotype, job.resolution)
    seed = weight_seed(job.genotype.arch_id)
    data = graph_to_tflite(graph, seed=seed)
    if _W["save_dir"] is not None:
        out = _W["save_dir"] / f"{job.genotype.arch_id}_{format_resolution(job.resolution)}.tflite"
        atomic.write_bytes(out, data)
    ir = ir_figures(graph)
    digest = model_digest(data)
    # Only compiler measurements are cached: the analytic model takes microseconds.
    keys = [cache_key_for_digest(digest, p) if p.evaluator == "vela" else None for p in profiles]
    cached = cache.get_many([k for k in keys if k]) if cache else {}
    measurements, compiled = [], 0
    for i, (key, profile) in enumerate(zip(keys, profiles)):
        if key is None:
            m = _evaluator(i).evaluate_graph(graph)
        elif key in cached:
            m = cached[key]
        else:
            m = _evaluator(i).evaluate_bytes(data)
            compiled += 1
            if cache is not None:
                cache.put(key, m)
        measurements.append(m)
    if cache is not None:  # the next run finds this model's key without writing it again
        cache.put_models([(row_fingerprint(graph, seed), digest, ir)])
    return _job_result(space, profiles, job, graph, seed, ir, measurements, compiled)


def _job_result(space: SearchSpace, profiles: list[HardwareProfile], job: SweepJob, graph: Graph, seed: int,
                ir: dict[str, Any], measurements: list[Measurement], compiled: int) -> JobResult:
    rows = [measurement_row(space, job.genotype, job.resolution, graph, p, m, ir=ir,
                            weights=f"{WEIGHTS_DESCRIPTION} seed={seed}") for p, m in zip(profiles, measurements)]
    return JobResult(job, rows, measurements, compiled)


def row_fingerprint(graph: Graph, seed: int) -> str:
    """Memo key of a job's model bytes and IR figures: what decides the bytes (`model_fingerprint`) and the
    code that computes the figures."""
    text = f"{model_fingerprint(graph, seed=seed)}\0{ir_figures_version()}"
    return hashlib.sha256(text.encode()).hexdigest()


# ---- parent side: rows found in the cache without a worker ----------------------------------------

MEMO_BATCH = 256  # jobs resolved per round of lookups; bounds the graphs held at once


def resolve_cached(space: SearchSpace, profiles: list[HardwareProfile], jobs: list[SweepJob],
                   cache: MeasurementCache) -> Iterator[tuple[int, JobResult]]:
    """The jobs whose every measurement is cached and whose model key is memoised, with their results,
    in the parent process: a cached row costs a graph build and two lookups, not a model build and
    serialisation, and a fully cached sweep starts no worker process (nor the compiler)."""
    analytic: dict[int, Any] = {}
    for start in range(0, len(jobs), MEMO_BATCH):
        batch = []
        for i in range(start, min(start + MEMO_BATCH, len(jobs))):
            job = jobs[i]
            graph = space.build(job.genotype, job.resolution)
            seed = weight_seed(job.genotype.arch_id)
            batch.append((i, graph, seed, row_fingerprint(graph, seed)))
        models = cache.get_models(fp for *_, fp in batch)
        keys = {fp: [cache_key_for_digest(models[fp][0], p) if p.evaluator == "vela" else None for p in profiles]
                for *_, fp in batch if fp in models}
        cached = cache.get_many(k for ks in keys.values() for k in ks if k)
        for i, graph, seed, fp in batch:
            if fp not in keys or any(k is not None and k not in cached for k in keys[fp]):
                continue
            measurements = []
            for p_idx, (key, profile) in enumerate(zip(keys[fp], profiles)):
                if key is None:
                    if p_idx not in analytic:
                        analytic[p_idx] = make_evaluator(profile)
                    measurements.append(analytic[p_idx].evaluate_graph(graph))
                else:
                    measurements.append(cached[key])
            yield i, _job_result(space, profiles, jobs[i], graph, seed, models[fp][1], measurements, 0)


# ---- driver side ----------------------------------------------------------------------------------


def plan_jobs(space: SearchSpace, genotypes: Iterable[Genotype] | None = None,
              resolutions: Iterable[tuple[int, int]] | None = None) -> list[SweepJob]:
    gs = list(genotypes) if genotypes is not None else list(space.enumerate())
    rs = list(resolutions) if resolutions is not None else space.resolutions
    return [SweepJob(g, r) for g in gs for r in rs]


def run_sweep(space: SearchSpace, profiles: list[HardwareProfile], jobs: list[SweepJob], *,
              n_jobs: int = 0, cache_path: str | Path | None = None, save_tflite: str | Path | None = None,
              on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run every job; results come back in job order. `n_jobs` <= 0 means one process per core. Jobs
    found whole in the cache are answered here; only the others go to worker processes (with
    `save_tflite` every model is written, so every job goes)."""
    results: dict[int, JobResult] = {}

    def take(i: int, res: JobResult) -> None:
        results[i] = res
        if on_result is not None:
            on_result(res)

    if cache_path is not None and save_tflite is None:
        with MeasurementCache(cache_path) as cache:
            for i, res in resolve_cached(space, profiles, jobs, cache):
                take(i, res)
    todo = [i for i in range(len(jobs)) if i not in results]
    if todo:
        n = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
        n = max(1, min(n, len(todo)))
        init_args = (space.config, space.source, profiles, str(cache_path) if cache_path else None,
                     str(save_tflite) if save_tflite else None)
        for k, res in _iterate([jobs[i] for i in todo], n, init_args,
                               lambda job, error: lost_job(space, profiles, job, error)):
            take(todo[k], res)
    return [results[i] for i in range(len(jobs))]


def _iterate(jobs: list[SweepJob], n: int, init_args: tuple,
             lost: Callable[[SweepJob, str], JobResult]) -> Iterator[tuple[int, JobResult]]:
    """(index, result) as jobs finish, in `n` worker processes; `lost(job, error)` stands in for a job whose
    worker died (a compiler segfault, the OOM killer), and the sweep goes on with a fresh worker. Even
    `n == 1` runs in a worker, so a crash is one failed row and not the end of the command. Workers are
    forked on Linux: they inherit the parent's imports (the compiler alone takes ~0.5 s to import); the
    parent starts no threads before they fork. See `edgenas.processes.run_in_workers`."""
    for i, res in run_in_workers(run_job, jobs, workers=n, initializer=_init_worker, initargs=init_args):
        yield i, lost(jobs[i], res.message) if isinstance(res, WorkerDied) else res


def lost_job(space: SearchSpace, profiles: list[HardwareProfile], job: SweepJob, error: str) -> JobResult:
    """A job whose worker died: one failed row per profile with the cause. Retryable, so never cached: the
    death may say more about the machine (memory) than the model, and a re-run measures it again (profiles
    measured before the death come from the cache)."""
    graph = space.build(job.genotype, job.resolution)
    seed = weight_seed(job.genotype.arch_id)
    measurements = [Measurement.failed(error, retryable=True, provenance={"evaluator": p.evaluator, "profile": p.name})
                    for p in profiles]
    return _job_result(space, profiles, job, graph, seed, ir_figures(graph), measurements, 0)
