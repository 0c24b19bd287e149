"""Does a design found by the flow search beat the seed's picks (issue 11 item 5)? The README's command chain
for `examples/flow_search.yaml`, run end to end and resumable, with the verdict printed as a markdown block
for benchmarks/RESULTS.md.

  python benchmarks/flow_search_verdict.py [--supernet DIR] [--supernet-epochs 17] [--trials 150] [--top 4]
                                           [--jobs 2]
                                           [--config examples/flow_search.yaml] [--out-dir runs/flow_search]

1. The supernet: `edgenas supernet train examples/flow_search.yaml --epochs 17 --out runs/flow_search/supernet`
   (resumes; 17 epochs: bench-supernet's budget on this space, the sub-network passes of short training of its
   68-genotype list), unless --supernet names one already trained on the same space, task and recipe (e.g. a
   bench-supernet sandwich-labels supernet trained at the example's learning rate, `bench_supernet.py full
   --lr 0.004`; the benchmark's own reference trains at 1e-3 since 2026-12-01).
2. The search: `edgenas search` of the example with that checkpoint as its supernet evaluator (a config
   beside the outputs extends the example and replaces only the evaluator list), its study in
   runs/flow_search/study.db (resumed up to --trials), the front in runs/flow_search/front.csv.
3. Stand-alone training (`edgenas train examples/flow_search.yaml -g ...`, the example's recipe, seed 0):
   the seed's three picks (its tied heads on its default network: the search's `enqueue`) and, for each pick,
   the --top front designs with the lowest supernet EPE among those at least as fast as that pick (the
   union). Runs already done are kept; an interrupted one resumes.
4. Every trained network evaluated (`edgenas evaluate`) at the training resolution and at the deployment
   resolution (the search's), and the verdict: a found design beats a pick when its stand-alone EPE is
   lower at equal or better FPS (FPS and SRAM: the compiler's figures in the study, all within the SRAM).

The verdict rests on the stand-alone EPE at the training resolution, where the networks were trained; the
deployment-resolution EPE is printed beside it (networks trained at 48x64 see motions four times larger in
pixels at 192x256, docs/seed_comparison.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from bench_proxies import _edgenas
from machine import describe

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flow_search.yaml"


def edgenas(*args: str, log: Path | None = None) -> str:
    """Run one edgenas command in the repository root; its stderr goes to `log` (appended)."""
    proc = subprocess.run([_edgenas(), *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ edgenas {' '.join(args)}\n{proc.stderr}\n")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(proc.returncode)
    return proc.stdout


def search_config(example: Path, raw: dict, out: Path, supernet: Path) -> Path:
    """The example with `supernet` as its supernet evaluator (everything else as the example says)."""
    evaluators = [e if not (isinstance(e, dict) and e.get("type") == "supernet")
                  else {**e, "checkpoint": str(supernet.resolve())} for e in raw["search"]["evaluators"]]
    cfg = out / "search.yaml"
    cfg.write_text(yaml.safe_dump({"extends": str(example), "search": {"evaluators": evaluators}}, sort_keys=False))
    return cfg


def compiler_figures(db: Path) -> dict[str, dict]:
    """arch_id -> the compiler's metrics (fps, sram_kib, ...) measured for the study."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT arch_id, evaluator, metrics FROM edgenas_measurements").fetchall()
    finally:
        con.close()
    return {a: json.loads(m) for a, ev, m in rows if ev.startswith("compiler:")}


def front_designs_to_train(front: list[dict], picks: dict[str, dict], top: int) -> list[dict]:
    """For each seed pick, the `top` front designs with the lowest supernet EPE among those at least as fast
    as that pick (the union, in front order): a found design can only beat a pick it is as fast as, so the
    slowest pick alone would leave the faster picks unchallenged."""
    chosen: set[str] = set()
    for pick in picks.values():
        rivals = [r for r in front if float(r["fps"]) >= pick["fps"] and r["arch_id"] not in picks]
        chosen.update(r["arch_id"] for r in sorted(rivals, key=lambda r: float(r["epe"]))[:top])
    return [r for r in front if r["arch_id"] in chosen]


def train_and_evaluate(example: Path, genotype: str, folder: Path, resolutions: tuple[str, str], log: Path) -> dict:
    from edgenas.train.records import write_json

    if not (folder / "run.json").exists() or json.loads((folder / "run.json").read_text()).get("status") != "done":
        resume = ["--resume"] if (folder / "checkpoint.pt").exists() else []
        edgenas("train", str(example), "-g", genotype, "--threads", "1", "--out", str(folder), "--no-progress",
                *resume, log=log)
    run = json.loads((folder / "run.json").read_text())
    # evaluations kept beside the checkpoint they measured (a 192x256 evaluation costs minutes on a CPU): a
    # re-run reuses them while best.pt is the same file, and measures again once it changed
    cache_file, stamp = folder / "verdict_eval.json", (folder / "best.pt").stat().st_mtime_ns
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    if cache.get("best_pt_mtime_ns") != stamp:
        cache = {"best_pt_mtime_ns": stamp, "epe": {}}
    epe = {}
    for r in resolutions:
        if r not in cache["epe"]:
            res = json.loads(edgenas("evaluate", str(example), "-c", str(folder / "best.pt"), "-r", r, "--json"))
            cache["epe"][r] = res["epe"]
            write_json(cache_file, cache)
        epe[r] = cache["epe"][r]
    return {"epe": epe, "best_epoch": run.get("best_epoch"), "seconds": run.get("seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", type=Path, help="a trained supernet folder (default: train one)")
    ap.add_argument("--supernet-epochs", type=int, default=17,
                    help="epochs of the supernet trained when --supernet is not given (default: %(default)s)")
    ap.add_argument("--trials", type=int, help="search trials (default: the example's)")
    ap.add_argument("--top", type=int, default=4,
                    help="front designs to train stand-alone per seed pick (those at least as fast as it)")
    ap.add_argument("--jobs", type=int, default=2, help="stand-alone trainings at a time (one thread each)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "flow_search")
    ap.add_argument("--config", type=Path, default=EXAMPLE, help="the search example (default: %(default)s)")
    a = ap.parse_args()
    from edgenas.space.config import read_config_mapping
    from edgenas.space.space import load_space

    example = a.config.resolve()
    raw = read_config_mapping(example)  # `extends` merged
    space = load_space(str(example))
    out = a.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "verdict.log"
    t0 = time.perf_counter()

    supernet = a.supernet or out / "supernet"
    if a.supernet is None:
        resume = ["--resume"] if (supernet / "checkpoint.pt").exists() else []
        edgenas("supernet", "train", str(example), "--epochs", str(a.supernet_epochs), "--out", str(supernet),
                "--no-progress", *resume, log=log)
    cfg = search_config(example, raw, out, supernet)
    trials = ["--trials", str(a.trials)] if a.trials else []
    front_table = edgenas("search", str(cfg), "--storage", f"sqlite:///{out / 'study.db'}", "--study", "flow_search",
                          "--out", str(out / "front.csv"), "--no-progress", *trials, log=log)
    with open(out / "front.csv", newline="") as f:
        front = list(csv.DictReader(f))
    measured = compiler_figures(out / "study.db")
    deploy = raw["search"]["resolution"]
    train_res = raw["train"]["resolution"]

    picks = {}
    for p in raw["search"]["enqueue"]:  # the seed's picks, evaluated first by the search
        g = space.parse_genotype(p)
        picks[g.arch_id] = {"name": f"seed pick {p.split(',')[0].split('=')[1]}", "genotype": str(g),
                            "fps": measured[g.arch_id]["fps"], "sram_kib": measured[g.arch_id]["sram_kib"]}
    found = front_designs_to_train(front, picks, a.top)
    designs = dict(picks)
    for r in found:
        text = ",".join(f"{c}={r[c]}" for c in space.choices)
        designs[r["arch_id"]] = {"name": "found", "genotype": text, "fps": float(r["fps"]),
                                 "sram_kib": float(r["sram_kib"]), "supernet_epe": float(r["epe"])}
    for arch, d in picks.items():
        d["supernet_epe"] = next((float(r["epe"]) for r in front if r["arch_id"] == arch), None)

    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        futures = {arch: pool.submit(train_and_evaluate, example, d["genotype"], out / "train" / arch,
                                     (train_res, deploy), log) for arch, d in designs.items()}
        for arch, fut in futures.items():
            designs[arch].update(fut.result())

    def beats(f: dict, p: dict) -> bool:
        return f["epe"][train_res] < p["epe"][train_res] and f["fps"] >= p["fps"]

    result = {"date": str(datetime.date.today()), "machine": describe(), "supernet": str(supernet),
              "train_resolution": train_res, "deploy_resolution": deploy, "designs": designs,
              "front_size": len(front), "minutes": (time.perf_counter() - t0) / 60}
    (out / "verdict.json").write_text(json.dumps(result, indent=1))

    print(f"### Flow search verdict ({result['date']})\n")
    print(f"Machine: {result['machine']}. Supernet: `{supernet}`. Front: {len(front)} designs "
          f"({out / 'front.csv'}); {result['minutes']:.1f} min wall this call.\n")
    print(f"| design | FPS at {deploy} | SRAM KiB | supernet EPE | stand-alone EPE {train_res} | "
          f"stand-alone EPE {deploy} | beats seed picks |")
    print("|---|---|---|---|---|---|---|")
    for arch, d in sorted(designs.items(), key=lambda kv: kv[1]["epe"][train_res]):
        won = [p["name"].removeprefix("seed pick ") for p in picks.values() if arch not in picks and beats(d, p)]
        sn = f"{d['supernet_epe']:.3f}" if d.get("supernet_epe") is not None else "n/a"
        print(f"| {d['name']}: `{d['genotype']}` | {d['fps']:.2f} | {d['sram_kib']:,.1f} | {sn} | "
              f"{d['epe'][train_res]:.3f} | {d['epe'][deploy]:.3f} | {', '.join(won) or '-'} |")
    winners = [d for arch, d in designs.items() if arch not in picks and any(beats(d, p) for p in picks.values())]
    print(f"\nVerdict: {len(winners)} of {len(found)} trained front designs beat at least one seed pick "
          f"(lower stand-alone EPE at {train_res} at equal or better FPS at {deploy}).")
    for p in sorted(picks.values(), key=lambda p: p["fps"]):
        rivals = [d for arch, d in designs.items() if arch not in picks and d["fps"] >= p["fps"]]
        print(f"- {p['name']} ({p['fps']:.2f} FPS, stand-alone EPE {p['epe'][train_res]:.3f}): beaten by "
              f"{sum(beats(d, p) for d in rivals)} of the {len(rivals)} trained front designs as fast")
    print("\nThe search's front table (the seed's recommended designs marked):\n")
    print("```\n" + front_table.strip() + "\n```")


if __name__ == "__main__":
    main()
