"""Search strategies against the exhaustive NAS-Bench-201 front (shared/benchmarks/nb201_pi5.csv): the two
README pairs, normal and hardware-free, at 300 distinct evaluations over 10 seeds, with hv_ratio also after
50 and 100 evaluations; prints a markdown block for benchmarks/RESULTS.md. Per pair: 10 seeds x (default,
random, nsga2, tpe, nsga2+floor, tpe+floor), and the default again hardware-free; tpe+floor is by far the
slowest (Optuna's constrained TPE re-reads every trial's constraints for every parameter it samples).
Usage: python benchmarks/bench_search.py [--budget 300] [--seeds 10] [--jobs 0] [--table PATH] [--extra]
[--log runs.jsonl [--rerun LABEL,...] [--report-only]] (--extra adds two other pairs of the same table, a check
against tuning to the README pairs; --log keeps every finished run, so an interrupted benchmark resumes where it
stopped, a changed strategy is re-measured alone with --rerun, and --report-only prints the tables of what is
logged so far, seed counts marked).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from machine import describe

from edgenas.search.bench import (
    INFORMED_ANCHORS,
    PROPOSALS_PER_BUDGET,
    Objective,
    Problem,
    RunResult,
    checkpoints,
    run_bench,
    strategy_list,
    summarise,
)
from edgenas.search.strategies import ANCHORS, DEFAULT_STRATEGY, uses_known

ROOT = Path(__file__).resolve().parents[1]
TABLE = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if (p / "benchmarks" / "nb201_pi5.csv").exists()),
             ROOT.parent / "shared") / "benchmarks" / "nb201_pi5.csv"
PAIRS = [("cifar10_acc", "pi5_litert_ms", 90.0), ("cifar100_acc", "pi5_onnx_ms", 65.0)]
EXTRA = [("imagenet16_acc", "pi5_torchmobile_ms", 40.0), ("cifar10_acc", "pi5_onnx_ms", 90.0)]
LAST = ("tpe+floor",)  # the slowest strategy: its runs start once every other figure is in
README = {("cifar10_acc", "pi5_litert_ms"): (0.886, 0.906, 0.931),
          ("cifar100_acc", "pi5_onnx_ms"): (0.830, 0.904, 0.944)}


def _cell(st: dict, label: str, seeds: int | None = None) -> str:
    if label not in st:
        return "-"
    v = st[label]
    return (f"{v['hv_ratio_median']:.3f} / {v['hv_ratio_min']:.3f} ({v['front_points_found_median']})"
            + (f" [{seeds} seeds]" if seeds is not None else ""))


def _best(st: dict, labels: tuple[str, ...], key: str = "") -> float:
    return max((st[x]["hv_ratio_median_at"][key] if key else st[x]["hv_ratio_median"]) for x in labels if x in st)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--extra", action="store_true")
    ap.add_argument("--log", type=Path, help="append every finished run as one JSON line (label, seed, rows in "
                    "evaluation order, ...); a strategy whose runs for a pair and mode are all in it already is "
                    "read back instead of run again")
    ap.add_argument("--rerun", default="", help="comma-separated labels whose logged runs are ignored")
    ap.add_argument("--report-only", action="store_true", help="print the tables from the runs in --log and run "
                    "nothing (a benchmark still under way); a strategy with fewer logged seeds than --seeds says "
                    "how many it has")
    a = ap.parse_args()
    if not a.table.exists():  # a table beside the checkout, not shipped with it: `make bench` goes on without it
        print(f"bench_search: skipped: no NAS-Bench-201 table at {a.table} (the benchmark data beside the "
              "checkout, ../shared/benchmarks/nb201_pi5.csv; or pass --table FILE)", file=sys.stderr)
        return
    specs = strategy_list([])
    users = [s for s in specs if uses_known(s.name)]
    pairs = PAIRS + (EXTRA if a.extra else [])
    rerun = {x.strip() for x in a.rerun.split(",") if x.strip()}
    logged: dict[tuple, RunResult] = {}
    if a.log and a.log.exists():
        for line in a.log.read_text().splitlines():
            d = json.loads(line)
            if d["budget"] == a.budget and d["label"] not in rerun:
                logged[(*d["pair"], d["hardware_free"], d["label"], d["seed"])] = RunResult(
                    d["label"], d["seed"], d["hv_ratio"], d["front_points_found"], d["evaluated"], d["proposals"],
                    d["seconds"], tuple(d["order"]))

    def problem_args(pair: tuple[str, str, float], hw: bool) -> dict:
        acc, lat, floor = pair
        return dict(table=a.table, arch_col="arch", objectives=(Objective(acc, "max"), Objective(lat, "min")),
                    floors={acc: floor}, hardware_free=hw)

    def log(pair: tuple[str, str, float], hw: bool):
        def write(r: RunResult) -> None:
            logged[(*pair, hw, r.label, r.seed)] = r
            if a.log:
                with a.log.open("a") as f:
                    f.write(json.dumps(dict(budget=a.budget, pair=list(pair), hardware_free=hw, label=r.label,
                                            seed=r.seed, hv_ratio=r.hv_ratio, front_points_found=r.front_points_found,
                                            evaluated=r.evaluated, proposals=r.proposals, seconds=round(r.seconds, 2),
                                            order=list(r.order))) + "\n")
        return write

    def missing(pair: tuple[str, str, float], hw: bool, group: list) -> list:
        return [s for s in group if any((*pair, hw, s.label, seed) not in logged for seed in range(a.seeds))]

    # hardware-free: only strategies that take the known latency run again; the others' runs are the normal
    # mode's (same seeds, nothing they could use), so they are reused instead of recomputed. Optuna's
    # constrained TPE is by far the slowest, so it runs last, after every pair's other figures are in.
    t0 = time.perf_counter()
    phases = ([s for s in specs if s.label not in LAST], [s for s in specs if s.label in LAST])
    for phase in () if a.report_only else phases:
        for pair in pairs:
            for hw, group in ((False, phase), (True, [s for s in phase if s in users])):
                todo = missing(pair, hw, group)
                if todo:
                    run_bench(problem_args(pair, hw), todo, seeds=a.seeds, budget=a.budget, jobs=a.jobs,
                              progress=log(pair, hw))
    rows = []
    short: dict[tuple, int] = {}  # (pair, hw, label) -> seeds logged, where fewer than asked (--report-only)
    for pair in pairs:
        for hw in (False, True):
            keys = {s.label: [(*pair, hw and s in users, s.label, seed) for seed in range(a.seeds)] for s in specs}
            have = [s for s in specs if any(k in logged for k in keys[s.label])]
            for s in have:
                n = sum(k in logged for k in keys[s.label])
                if n < a.seeds:
                    short[(*pair, hw, s.label)] = n
            runs = [logged[k] for s in have for k in keys[s.label] if k in logged]
            rows.append((*pair, hw, summarise(Problem(**problem_args(pair, hw)).load(), have, a.seeds, a.budget,
                                              runs)))
    run_minutes = sum(r.seconds for r in logged.values()) / 60
    minutes = (time.perf_counter() - t0) / 60
    plain = tuple(ANCHORS)
    informed = tuple(INFORMED_ANCHORS)
    at = [str(n) for n in checkpoints(a.budget)]
    cmd = f"python benchmarks/bench_search.py --budget {a.budget} --seeds {a.seeds}" + (" --extra" if a.extra else "")
    print(f"### Search strategies on NAS-Bench-201 ({datetime.date.today()})\n")
    print(f"Command: `{cmd}` (each pair also as `edgenas bench-search --table nb201_pi5.csv --objective ACC:max "
          f"--objective LAT:min --floor ACC=FLOOR --budget {a.budget} --seeds {a.seeds} [--hardware-free]`); "
          f"machine: {describe()}; {minutes:.1f} min wall in this invocation, {run_minutes:.0f} min of runs in all "
          f"({a.jobs or os.cpu_count()} processes). hv_ratio as defined in shared/benchmarks/README.md, "
          f"median and minimum over seeds 0-{a.seeds - 1}; `{DEFAULT_STRATEGY}` is the default strategy, given the "
          f"floor as its reference point. Plain anchors ({', '.join(plain)}) are Optuna's samplers with default "
          f"settings, told nothing; informed anchors ({', '.join(informed)}) are the same samplers told the floor "
          f"as a constraint on every trial (`Trial.set_constraint`: floor - accuracy <= 0). Hardware-free: the "
          f"latency of every architecture is known up front and only accuracy lookups count; Optuna's samplers "
          f"have no documented way to take a value before proposing, so every anchor's figures are those of the "
          f"normal mode.\n")
    print(f"At {a.budget} distinct evaluations, hv_ratio median / min (true-front points found, median):\n")
    print("| pair, floor | mode | true front | " + " | ".join(f"`{s.label}`" for s in specs)
          + " | default - best plain anchor | default - best informed anchor |")
    print("|---|---|---|" + "---|" * len(specs) + "---|---|")
    for acc, lat, floor, hw, summary in rows:
        st = summary["strategies"]
        d = st[DEFAULT_STRATEGY]["hv_ratio_median"]
        print(f"| `{acc}` x `{lat}`, {floor:g} | {'hardware-free' if hw else 'normal'} | "
              f"{summary['true_front_points']} | "
              + " | ".join(_cell(st, s.label, short.get((acc, lat, floor, hw, s.label))) for s in specs)
              + f" | {d - _best(st, plain):+.3f} | {d - _best(st, informed):+.3f} |")
    stalled = []  # runs that hit the proposal cap before `budget` distinct evaluations (repeat proposals)
    for pair in pairs:
        for s in specs:
            rs = [r for hw in (False, True) if not (hw and s not in users)
                  for k in range(a.seeds) if (r := logged.get((*pair, hw, s.label, k))) is not None]
            short_runs = sorted(r.evaluated for r in rs if r.evaluated < a.budget)
            if short_runs:
                stalled.append(f"`{s.label}` on `{pair[0]}` x `{pair[1]}`: {len(short_runs)} of {len(rs)} runs "
                               f"({', '.join(map(str, short_runs))} distinct)")
    if stalled:
        print(f"\nRuns that stopped short of {a.budget} distinct evaluations: the sampler kept proposing "
              f"architectures it had already evaluated (answered from the cache, free) until the cap of "
              f"{PROPOSALS_PER_BUDGET} x {a.budget} proposals; their hv_ratio is what they had found by then, and "
              f"their figure at {a.budget} is their last. " + "; ".join(stalled) + ".")
    print(f"\nMedian hv_ratio after {' / '.join(at)} distinct evaluations (prefixes of the same runs); last column: "
          f"the fewest evaluations n after which the default's median over seeds of hv_ratio after n evaluations "
          f"reaches the best anchor's (plain or informed) median at {a.budget}:\n")
    print("| pair, floor | mode | " + " | ".join(f"`{s.label}`" for s in specs)
          + f" | default - best informed anchor at {' / '.join(at)} | default needs, to reach the best anchor at "
          f"{a.budget} |")
    print("|---|---|" + "---|" * len(specs) + "---|---|")
    for acc, lat, floor, hw, summary in rows:
        st = summary["strategies"]
        cells = [" / ".join(f"{st[s.label]['hv_ratio_median_at'][n]:.3f}" for n in at) if s.label in st else "-"
                 for s in specs]
        margins = " / ".join(f"{st[DEFAULT_STRATEGY]['hv_ratio_median_at'][n] - _best(st, informed, n):+.3f}"
                             for n in at)
        vs = summary["default_vs_best_anchor"]
        need = vs["default_evaluations_to_reach"]
        need_text = f"not reached within {a.budget}" if need is None else str(need)
        print(f"| `{acc}` x `{lat}`, {floor:g} | {'hardware-free' if hw else 'normal'} | " + " | ".join(cells)
              + f" | {margins} | {need_text} (`{vs['anchor']}`: {vs['hv_ratio_median']:.3f}) |")
    print("\nREADME reference figures (random / NSGA-II / TPE): " + "; ".join(
        f"`{k[0]}` x `{k[1]}` {v[0]:.3f} / {v[1]:.3f} / {v[2]:.3f}" for k, v in README.items()) + ".")


if __name__ == "__main__":
    main()
