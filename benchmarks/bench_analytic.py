"""Analytic evaluator vs the compiler on the seed space: Spearman rank correlation of calibrated analytic
cycles with Vela cycles, on architectures not used for calibration (target >= 0.8), over several splits.
Usage: python benchmarks/bench_analytic.py [--splits 5] [--hardware ethos-u55-256]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile

from machine import describe

from edgenas.hardware.calibrate import calibrate
from edgenas.hardware.profile import load_profile
from edgenas.space.space import load_space
from edgenas.sweep.runner import plan_jobs, run_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--space", default="flow_head_upsample")
    ap.add_argument("--hardware", nargs="+", default=["ethos-u55-256", "ethos-u65-256", "ethos-u85-256"])
    a = ap.parse_args()
    space = load_space(a.space)
    print(f"### Analytic vs compiler ranking ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/bench_analytic.py --splits {a.splits}`; machine: {describe()}; "
          f"space {a.space}, all resolutions; half of the "
          "architectures fit, the other half held out.\n")
    print("| profile | held-out Spearman, calibrated (median / min) | plain roofline (median) | "
          "median abs error calibrated / roofline |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name in a.hardware:
            profile = load_profile(name)
            results = run_sweep(space, [profile], plan_jobs(space), cache_path=os.path.join(d, "c.sqlite"))
            samples = [(r.job.genotype.arch_id, space.build(r.job.genotype, r.job.resolution), r.measurements[0])
                       for r in results]
            reps = [calibrate(samples, profile, seed=s) for s in range(a.splits)]
            cal = [r.spearman_calibrated for r in reps]
            print(f"| {name} | {statistics.median(cal):.3f} / {min(cal):.3f} | "
                  f"{statistics.median(r.spearman_roofline for r in reps):.3f} | "
                  f"{100 * statistics.median(r.median_abs_rel_error for r in reps):.1f}% / "
                  f"{100 * statistics.median(r.median_abs_rel_error_roofline for r in reps):.1f}% |")


if __name__ == "__main__":
    main()
