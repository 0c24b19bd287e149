"""Search strategies against the exhaustive NAS-Bench-201 front (shared/benchmarks/nb201_pi5.csv): the two
README pairs, normal and hardware-free, at 300 distinct evaluations over 10 seeds; prints a markdown block
for benchmarks/RESULTS.md. Takes minutes (per pair: 10 seeds x (default, random, nsga2, tpe), and the default
again hardware-free).
Usage: python benchmarks/bench_search.py [--budget 300] [--seeds 10] [--jobs 0] [--table PATH] [--extra]
(--extra adds two other pairs of the same table, a check against tuning to the README pairs).
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

from machine import describe

from edgenas.search.bench import Objective, Problem, run_bench, strategy_list, summarise
from edgenas.search.strategies import ANCHORS, DEFAULT_STRATEGY, uses_known

ROOT = Path(__file__).resolve().parents[1]
TABLE = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if (p / "benchmarks" / "nb201_pi5.csv").exists()),
             ROOT.parent / "shared") / "benchmarks" / "nb201_pi5.csv"
PAIRS = [("cifar10_acc", "pi5_litert_ms", 90.0), ("cifar100_acc", "pi5_onnx_ms", 65.0)]
EXTRA = [("imagenet16_acc", "pi5_torchmobile_ms", 40.0), ("cifar10_acc", "pi5_onnx_ms", 90.0)]
README = {("cifar10_acc", "pi5_litert_ms"): (0.886, 0.906, 0.931),
          ("cifar100_acc", "pi5_onnx_ms"): (0.830, 0.904, 0.944)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--extra", action="store_true")
    a = ap.parse_args()
    specs = strategy_list([])
    pairs = PAIRS + (EXTRA if a.extra else [])
    rows = []
    t0 = time.perf_counter()
    for acc, lat, floor in pairs:
        args = dict(table=a.table, arch_col="arch", objectives=(Objective(acc, "max"), Objective(lat, "min")),
                    floors={acc: floor})
        summary, normal = run_bench(args, specs, seeds=a.seeds, budget=a.budget, jobs=a.jobs)
        rows.append((acc, lat, floor, False, summary))
        # hardware-free: only strategies that take the known latency run again; the others' runs are the
        # normal mode's (same seeds, nothing they could use), so they are reused instead of recomputed
        hw_args = dict(args, hardware_free=True)
        users = [s for s in specs if uses_known(s.name)]
        _, hw_runs = run_bench(hw_args, users, seeds=a.seeds, budget=a.budget, jobs=a.jobs)
        reused = [r for r in normal if r.label not in {s.label for s in users}]
        rows.append((acc, lat, floor, True, summarise(Problem(**hw_args).load(), specs, a.seeds, a.budget,
                                                      hw_runs + reused)))
    minutes = (time.perf_counter() - t0) / 60
    cmd = f"python benchmarks/bench_search.py --budget {a.budget} --seeds {a.seeds}" + (" --extra" if a.extra else "")
    print(f"### Search strategies on NAS-Bench-201 ({datetime.date.today()})\n")
    print(f"Command: `{cmd}` (each pair also as `edgenas bench-search --table nb201_pi5.csv --objective ACC:max "
          f"--objective LAT:min --floor ACC=FLOOR --budget {a.budget} --seeds {a.seeds} [--hardware-free]`); "
          f"machine: {describe()}; {minutes:.1f} min in all. hv_ratio as defined in shared/benchmarks/README.md, "
          f"{a.budget} distinct evaluations, median and minimum over seeds 0-{a.seeds - 1}; `{DEFAULT_STRATEGY}` "
          f"is the default strategy, the others are Optuna's samplers with default settings. Hardware-free: the "
          f"latency of every architecture is known up front and only accuracy lookups count; the anchors cannot "
          f"use a value before proposing, so their figures are those of the normal mode.\n")
    print("| pair, floor | mode | true front | " + " | ".join(
        f"{s.label} hv median / min (front pts)" for s in specs) + " | default - best anchor |")
    print("|---|---|---|" + "---|" * len(specs) + "---|")
    for acc, lat, floor, hw, summary in rows:
        st = summary["strategies"]
        cells = [f"{st[s.label]['hv_ratio_median']:.3f} / {st[s.label]['hv_ratio_min']:.3f} "
                 f"({st[s.label]['front_points_found_median']})" for s in specs]
        margin = st[DEFAULT_STRATEGY]["hv_ratio_median"] - max(st[x]["hv_ratio_median"] for x in ANCHORS)
        print(f"| `{acc}` x `{lat}`, {floor:g} | {'hardware-free' if hw else 'normal'} | "
              f"{summary['true_front_points']} | " + " | ".join(cells) + f" | {margin:+.3f} |")
    print("\nREADME reference figures (random / NSGA-II / TPE): " + "; ".join(
        f"`{k[0]}` x `{k[1]}` {v[0]:.3f} / {v[1]:.3f} / {v[2]:.3f}" for k, v in README.items()) + ".")


if __name__ == "__main__":
    main()
