"""A cached row costs nothing: the seed study's sweep (examples/seed_head_upsample.yaml, 28 networks x 6
resolutions x 3 profiles = 504 rows) run cold and then again on the same cache, side by side.

Reports, for the `edgenas sweep` command: the whole command's wall time, its start-up (imports, space and
profiles loaded: the wall time less the sweep itself, which the command times and prints), and the sweep net
of start-up, per row; and the same sweep in-process (`run_sweep`) for the cached re-run, with the number of
worker processes it started. Prints a markdown block for benchmarks/RESULTS.md.
Usage: python benchmarks/bench_cached_rerun.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

from edgenas.hardware.profile import load_profile_spec
from edgenas.space.space import load_space
from edgenas.sweep import runner

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "seed_head_upsample.yaml"
EDGENAS = str(Path(sys.executable).with_name("edgenas"))


def cli_sweep(cache: Path, out: Path) -> tuple[float, float, int]:
    """(wall seconds, the sweep's own seconds as the command prints them, rows)."""
    t0 = time.perf_counter()
    res = subprocess.run([EDGENAS, "sweep", str(CONFIG), "--cache", str(cache), "--out", str(out)], check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = re.search(r"(\d+) rows .* in ([\d.]+) s", res.stderr.replace("\n", " "))
    assert m, res.stderr
    return wall, float(m.group(2)), int(m.group(1))


def in_process_rerun(cache: Path) -> tuple[float, float, int, int]:
    """(wall s, CPU s of this process, rows, worker processes started) of run_sweep on a warm cache. CPU time
    is what a row costs whatever else the shared machine runs."""
    space = load_space(str(CONFIG))
    profiles = [load_profile_spec(h) for h in space.config.hardware]
    jobs = runner.plan_jobs(space)
    started = []
    real_iterate = runner._iterate

    def counting(jobs_, n, *args, **kwargs):
        started.append(n)
        return real_iterate(jobs_, n, *args, **kwargs)

    runner._iterate = counting
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        results = runner.run_sweep(space, profiles, jobs, cache_path=cache)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        runner._iterate = real_iterate
    return wall, cpu, sum(len(r.rows) for r in results), sum(started) + len(mp.active_children())


def worker_path_rerun(cache: Path) -> tuple[float, float, int]:
    """The anchor: the same cached rows the way every row went before the memo (and still goes on a miss):
    each job's model built and serialised to compute its key, in this process. (wall s, CPU s, rows)."""
    space = load_space(str(CONFIG))
    profiles = [load_profile_spec(h) for h in space.config.hardware]
    jobs = runner.plan_jobs(space)
    runner._init_worker(space.config, space.source, profiles, str(cache), None)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = sum(len(runner.run_job(j).rows) for j in jobs)
    return time.perf_counter() - t0, time.process_time() - c0, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cache = tmp / "cache.sqlite"
        cold_wall, cold_sweep, rows = cli_sweep(cache, tmp / "r0.csv")
        warm = [cli_sweep(cache, tmp / f"r{i + 1}.csv") for i in range(a.repeats)]
        same = all((tmp / f"r{i + 1}.csv").read_bytes() == (tmp / "r0.csv").read_bytes() for i in range(a.repeats))
        inproc = [in_process_rerun(cache) for _ in range(a.repeats)]
        anchor = [worker_path_rerun(cache) for _ in range(a.repeats)]
    warm_wall = statistics.median(w for w, _, _ in warm)
    warm_sweep = statistics.median(s for _, s, _ in warm)
    ip = statistics.median(t for t, _, _, _ in inproc)
    ip_cpu = statistics.median(c for _, c, _, _ in inproc)
    workers = max(w for _, _, _, w in inproc)
    old_wall = statistics.median(t for t, _, _ in anchor)
    old_cpu = statistics.median(c for _, c, _ in anchor)
    print(f"### Cached re-run ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/bench_cached_rerun.py --repeats {a.repeats}`; machine: {describe()}; "
          f"`edgenas sweep examples/seed_head_upsample.yaml` ({rows} rows: 168 networks x resolutions, 3 profiles), "
          f"cold cache, then {a.repeats} re-runs on it (medians); re-run CSVs identical to the first: {same}.\n")
    print("| run | whole command s | start-up s | sweep net of start-up s | per row (wall) | per row (CPU) |")
    print("|---|---|---|---|---|---|")
    print(f"| first run (compiles) | {cold_wall:.2f} | {cold_wall - cold_sweep:.2f} | {cold_sweep:.2f} | "
          f"{cold_sweep / rows * 1000:.1f} ms | - |")
    print(f"| cached re-run | {warm_wall:.2f} | {warm_wall - warm_sweep:.2f} | {warm_sweep:.2f} | "
          f"{warm_sweep / rows * 1000:.2f} ms | - |")
    print(f"| cached re-run in-process (`run_sweep`) | - | - | {ip:.3f} | {ip / rows * 1000:.2f} ms | "
          f"{ip_cpu / rows * 1000:.2f} ms |")
    print(f"| anchor: cached rows with the model built and serialised (`run_job`, the path before the memo) | - | - "
          f"| {old_wall:.3f} | {old_wall / rows * 1000:.2f} ms | {old_cpu / rows * 1000:.2f} ms |")
    print(f"\nCached re-run net of start-up: {cold_sweep / warm_sweep:.0f}x faster than the first run; a cached row "
          f"costs {old_cpu / ip_cpu:.1f}x less CPU than through the model build; worker processes started by the "
          f"in-process re-run: {workers}.")


if __name__ == "__main__":
    main()
