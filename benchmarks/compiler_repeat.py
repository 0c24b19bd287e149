"""Repeatability check (not a test): does the compiler give the same figures for the same bytes and options
in separate processes? (Addresses differ between processes; a core that iterated over pointers would show it.)

Run: python benchmarks/compiler_repeat.py [--processes 5] [--space flow_head_upsample] [--hardware ethos-u55-256]
Compiles every network of the space at every resolution once per process (fresh interpreter each) and
prints, per metric, the largest relative difference from the first process and how many rows differ.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(space_name: str, hardware: str, out: str) -> None:
    from edgenas.hardware import VelaEvaluator, load_profile
    from edgenas.space.space import load_space
    from edgenas.tflite import graph_to_tflite

    space = load_space(space_name)
    ev = VelaEvaluator(load_profile(hardware))
    rows = {}
    for g in space.enumerate():
        for res in space.config.resolutions:
            m = ev.evaluate_bytes(graph_to_tflite(space.build(g, res), seed=3))  # per-layer, as a sweep does
            rows[f"{g.arch_id}@{res[0]}x{res[1]}"] = {k: v for k, v in m.metrics.items()
                                                      if isinstance(v, (int, float)) and not isinstance(v, bool)}
    Path(out).write_text(json.dumps(rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=5)
    ap.add_argument("--space", default="flow_head_upsample")
    ap.add_argument("--hardware", default="ethos-u55-256")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.space, a.hardware, a.child)
        return
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        runs = []
        for i in range(a.processes):
            out = str(Path(d) / f"{i}.json")
            subprocess.run([sys.executable, __file__, "--space", a.space, "--hardware", a.hardware, "--child", out],
                           check=True)
            runs.append(json.loads(Path(out).read_text()))
    first = runs[0]
    worst: dict[str, float] = {}
    differing: dict[str, int] = {}
    for key, ref in first.items():
        for run in runs[1:]:
            for metric, v in run[key].items():
                b = ref[metric]
                rel = abs(v - b) / abs(b) if b else abs(v)
                worst[metric] = max(worst.get(metric, 0.0), rel)
                differing[metric] = differing.get(metric, 0) + (rel > 0)
    print(f"{a.processes} processes x {len(first)} compiles ({a.space}, every resolution, {a.hardware}); "
          f"{time.perf_counter() - t0:.0f} s")
    changed = {m: w for m, w in worst.items() if w > 0}
    if not changed:
        print(f"every figure identical in every process ({len(worst)} metrics)")
    for m, w in sorted(changed.items()):
        print(f"{m}: max relative difference {w:.2e} ({differing[m]} of {len(first) * (len(runs) - 1)} rows)")


if __name__ == "__main__":
    main()
