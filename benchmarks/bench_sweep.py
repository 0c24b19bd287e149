"""Sweep speed: edgenas (in-process compiles, process pool) against the naive way, side by side.

The naive way writes each candidate's .tflite and runs the `vela` CLI in a subprocess per candidate, with
the same number of parallel jobs. Also times a cold `edgenas sweep` command and a cached re-run of it.
Prints a markdown block for benchmarks/RESULTS.md. Usage: python benchmarks/bench_sweep.py [--jobs N]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from machine import describe

from edgenas.hardware.profile import load_profile, vela_cli_args
from edgenas.space.space import load_space
from edgenas.sweep.runner import plan_jobs, run_sweep, weight_seed
from edgenas.tflite.writer import graph_to_tflite

VELA = str(Path(sys.executable).with_name("vela"))
EDGENAS = str(Path(sys.executable).with_name("edgenas"))


def naive_sweep(space_name: str, profile_name: str, jobs: int, workdir: Path) -> float:
    space = load_space(space_name)
    profile = load_profile(profile_name)
    args = vela_cli_args(profile)
    t0 = time.perf_counter()
    files = []
    for job in plan_jobs(space):
        graph = space.build(job.genotype, job.resolution)
        f = workdir / f"{job.genotype.arch_id}_{job.resolution[0]}x{job.resolution[1]}.tflite"
        f.write_bytes(graph_to_tflite(graph, seed=weight_seed(job.genotype.arch_id)))
        files.append(f)

    def compile_one(f: Path) -> int:
        out = workdir / (f.stem + "_out")
        r = subprocess.run([VELA, str(f), *args, "--output-dir", str(out)], capture_output=True)
        return r.returncode

    with ThreadPoolExecutor(jobs) as pool:
        codes = list(pool.map(compile_one, files))
    dt = time.perf_counter() - t0
    assert all(c == 0 for c in codes), f"vela CLI failed on {codes.count(1)} files"
    return dt


def edgenas_sweep(space_name: str, profile_name: str, jobs: int) -> float:
    space = load_space(space_name)
    profile = load_profile(profile_name)
    t0 = time.perf_counter()
    results = run_sweep(space, [profile], plan_jobs(space), n_jobs=jobs, cache_path=None)
    dt = time.perf_counter() - t0
    assert all(r.measurements[0].status == "ok" for r in results)
    return dt


def cli_sweep(space_name: str, jobs: int, cache: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([EDGENAS, "sweep", space_name, "--jobs", str(jobs), "--cache", str(cache), "--out", str(out)],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--space", default="flow_head_upsample")
    ap.add_argument("--hardware", default="ethos-u55-256")
    a = ap.parse_args()
    n = len(plan_jobs(load_space(a.space)))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        naive = naive_sweep(a.space, a.hardware, a.jobs, tmp)
        ours = edgenas_sweep(a.space, a.hardware, a.jobs)
        cache = tmp / "cache.sqlite"
        cold = cli_sweep(a.space, a.jobs, cache, tmp / "r1.csv")
        warm = cli_sweep(a.space, a.jobs, cache, tmp / "r2.csv")
    print(f"### Sweep speed ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/bench_sweep.py --jobs {a.jobs}`; machine: {describe()}; "
          f"space {a.space} ({n} compiles) on {a.hardware}.\n")
    print("| way | seconds | per compile | ratio vs naive |")
    print("|---|---|---|---|")
    print(f"| naive: write .tflite + `vela` CLI subprocess each, {a.jobs} parallel | {naive:.2f} | "
          f"{naive / n * 1000:.0f} ms | 1.00x |")
    print(f"| edgenas in-process pool, {a.jobs} jobs, no cache | {ours:.2f} | {ours / n * 1000:.0f} ms | "
          f"{naive / ours:.2f}x |")
    print(f"| `edgenas sweep` command, cold cache | {cold:.2f} | {cold / n * 1000:.0f} ms | {naive / cold:.2f}x |")
    print(f"| `edgenas sweep` command, cached re-run | {warm:.2f} | {warm / n * 1000:.1f} ms | "
          f"{naive / warm:.2f}x |")


if __name__ == "__main__":
    main()
