"""Sweep: every genotype x resolution of a space, compiled for one or more hardware profiles.

Work is split into jobs of one (genotype, resolution): the network is built and written once and then
measured for every profile. Jobs run in a process pool because the compiler holds the GIL. Each worker
looks in the measurement cache first, so a re-run compiles nothing and a killed sweep resumes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from edgenas.hardware.cache import MeasurementCache, cache_key
from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile
from edgenas.space.config import SpaceConfig, format_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace
from edgenas.sweep.rows import measurement_row
from edgenas.tflite.writer import WEIGHTS_DESCRIPTION, graph_to_tflite


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
        tmp = out.with_suffix(".tflite.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
    # Only compiler measurements are cached: the analytic model takes microseconds.
    keys = [cache_key(data, p) if p.evaluator == "vela" else None for p in profiles]
    cached = cache.get_many([k for k in keys if k]) if cache else {}
    rows, measurements, compiled = [], [], 0
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
        rows.append(measurement_row(space, job.genotype, job.resolution, graph, profile, m,
                                    weights=f"{WEIGHTS_DESCRIPTION} seed={seed}"))
    return JobResult(job, rows, measurements, compiled)


# ---- driver side ----------------------------------------------------------------------------------


def plan_jobs(space: SearchSpace, genotypes: Iterable[Genotype] | None = None,
              resolutions: Iterable[tuple[int, int]] | None = None) -> list[SweepJob]:
    gs = list(genotypes) if genotypes is not None else list(space.enumerate())
    rs = list(resolutions) if resolutions is not None else space.resolutions
    return [SweepJob(g, r) for g in gs for r in rs]


def run_sweep(space: SearchSpace, profiles: list[HardwareProfile], jobs: list[SweepJob], *,
              n_jobs: int = 0, cache_path: str | Path | None = None, save_tflite: str | Path | None = None,
              on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run every job; results come back in job order. `n_jobs` <= 0 means one process per core."""
    n = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    n = max(1, min(n, len(jobs)))
    init_args = (space.config, space.source, profiles, str(cache_path) if cache_path else None,
                 str(save_tflite) if save_tflite else None)
    results: dict[int, JobResult] = {}
    for i, res in _iterate(jobs, n, init_args):
        results[i] = res
        if on_result is not None:
            on_result(res)
    return [results[i] for i in range(len(jobs))]


def _iterate(jobs: list[SweepJob], n: int, init_args: tuple) -> Iterator[tuple[int, JobResult]]:
    if n == 1:
        _init_worker(*init_args)
        for i, job in enumerate(jobs):
            yield i, run_job(job)
        return
    # fork: workers inherit the parent's imports (the compiler alone takes ~0.5 s to import), which is
    # what keeps a fully cached re-run fast. The parent starts no threads before the pool forks.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=init_args) as pool:
        chunk = max(1, min(8, len(jobs) // (n * 4)))
        for i, res in enumerate(pool.map(run_job, jobs, chunksize=chunk)):
            yield i, res
