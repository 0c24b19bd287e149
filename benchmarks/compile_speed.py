"""Speed check (not a test): in-process compile vs the `vela` CLI on the ~1 GMAC flow network.

Run: python benchmarks/compile_speed.py [repeats]. Prints seconds per compile; no assertions.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "hardware"))

from hw_models import VELA_EXE, flow_net

from edgenas.hardware import VelaEvaluator, load_profile, vela_cli_args
from edgenas.tflite import graph_to_tflite

PROFILE = load_profile("ethos-u55-256")


def _timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _worker(args: tuple[bytes, int]) -> float:
    model, n = args
    ev = VelaEvaluator(PROFILE)
    ev.evaluate_bytes(model)
    t0 = time.perf_counter()
    for _ in range(n):
        ev.evaluate_bytes(model)
    return time.perf_counter() - t0


def main(n: int = 20) -> None:
    g = flow_net()
    model = graph_to_tflite(g, seed=3)
    print(f"model: flow network 6x192x256, {g.macs / 1e9:.2f} GMAC, {len(model)} bytes; profile {PROFILE.name}")
    ev = VelaEvaluator(PROFILE)
    ev.evaluate_bytes(model)  # warm-up
    fast = VelaEvaluator(PROFILE, check_input=False)
    rows = {
        "in-process, per-layer db": _timed(lambda: ev.evaluate_bytes(model), n),
        "in-process, summary only": _timed(lambda: ev.evaluate_bytes(model, per_layer=False), n),
        "in-process, check_input=False": _timed(lambda: fast.evaluate_bytes(model), n),
        "in-process, forked child": _timed(lambda: ev.evaluate_isolated(model), max(n // 2, 3)),
    }
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.tflite")
        with open(path, "wb") as f:
            f.write(model)
        cmd = [VELA_EXE, path, *vela_cli_args(PROFILE), "--output-dir", d]
        cli = lambda c: (lambda: subprocess.run(c, capture_output=True, check=True))
        rows["vela CLI subprocess"] = _timed(cli(cmd), max(n // 4, 3))
        cmd_v = cmd + ["--verbose-performance"]
        rows["vela CLI --verbose-performance"] = _timed(cli(cmd_v), max(n // 4, 3))
    for name, ts in rows.items():
        print(f"{name:34s} median {statistics.median(ts):.4f} s  min {min(ts):.4f} s  (n={len(ts)})")
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(_worker, [(model, n)] * workers))
        wall = time.perf_counter() - t0
    print(f"{workers} worker processes x {n} compiles: {wall / (workers * n):.4f} s per compile (wall incl. start-up)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
