"""Runs a sweep with a progress bar and writes its CSV files (nothing is written if it fails)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgenas.hardware.profile import HardwareProfile
from edgenas.space.space import SearchSpace
from edgenas.sweep.rows import sweep_columns, write_csv_atomic
from edgenas.sweep.runner import JobResult, plan_jobs, run_sweep

LAYER_COLUMNS = ("arch_id", "resolution", "hardware", "original_op", "nng_op", "target", "name", "cycles",
                 "npu_cycles", "sram_ac", "dram_ac", "onflash_ac", "offflash_ac", "macs", "util_pct",
                 "staging_usage")


def layer_rows(results: Sequence[JobResult]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        for row, m in zip(res.rows, res.measurements):
            for lr in m.layers:
                d = {k: getattr(lr, k) for k in LAYER_COLUMNS[3:]}
                d.update(arch_id=row["arch_id"], resolution=row["resolution"], hardware=row["hardware"])
                rows.append(d)
    return rows


def sweep_to_csv(space: SearchSpace, profiles: list[HardwareProfile], out_csv: Path, *,
                 resolutions: list[tuple[int, int]] | None = None, n_jobs: int = 0,
                 cache_path: Path | None = None, save_tflite: Path | None = None,
                 layers_csv: Path | None = None, console: Console | None = None) -> str:
    jobs = plan_jobs(space, resolutions=resolutions)
    if save_tflite is not None:
        save_tflite.mkdir(parents=True, exist_ok=True)
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    compiled = 0
    total = len(jobs) * len(profiles)
    # auto_refresh=False: no refresh thread, so the worker processes can be forked safely.
    with Progress(TextColumn("[bold]sweep[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                  transient=False, disable=console is None, auto_refresh=False) as bar:
        task = bar.add_task(space.name, total=total)

        done = 0

        def on_result(r: JobResult) -> None:
            nonlocal compiled, done
            compiled += r.compiled
            done += len(r.rows)
            bar.advance(task, len(r.rows))
            bar.refresh()

        try:
            results = run_sweep(space, profiles, jobs, n_jobs=n_jobs, cache_path=cache_path,
                                save_tflite=save_tflite, on_result=on_result)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the CLI prints this, exits 130 / 143
            e.args = (f"sweep stopped after {done} of {total} rows, no CSV written; " +
                      ("the same command resumes from the measurement cache" if cache_path is not None
                       else "nothing was cached (--no-cache)"),)
            raise
    rows = [row for r in results for row in r.rows]
    write_csv_atomic(out_csv, sweep_columns(list(space.choices)), rows)
    if layers_csv is not None:
        write_csv_atomic(layers_csv, LAYER_COLUMNS, layer_rows(results))
    failed = sum(1 for r in rows if r["status"] != "ok")
    over = sum(1 for r in rows if r.get("over_sram") is True or r.get("over_flash") is True)
    dt = time.perf_counter() - t0
    return (f"{len(rows)} rows ({compiled} compiled, {total - compiled} from cache, {failed} failed, "
            f"{over} over the device's SRAM/flash) in {dt:.1f} s -> {out_csv}")
