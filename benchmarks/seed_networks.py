"""The seed study's 28 networks with accuracy: the flow reference's two seeds beside FPS and SRAM on the device.

  python benchmarks/seed_networks.py            # markdown for docs/seed_comparison.md

The seed (shared/seeds/000_*) chose its heads without measuring accuracy. bench-proxies' `full` preset on flow
trains each of its 28 networks (4 backbones x 7 head blocks, Head2 = Head1, the 7x7 predict conv; the list is
benchmarks/genotypes/flow_seed.txt) stand-alone with two seeds, A and B, at the flow reference's recipe
(benchmarks/flow_space.yaml). This script reads those finished records from benchmarks/reference/flow-full.runs/
(nothing is trained) and compiles each network with Vela at the seed's key resolution for the seed's device,
then prints one row per network (EPE of both seeds, their mean, FPS, SRAM, whether it fits) and one row per
head block (the mean over the backbones where both seeds are done), so the seed's recommended heads can be
read against the others at their cost. Networks whose trainings have not finished yet are listed as such.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
from pathlib import Path
from typing import Any

from machine import describe

from edgenas.hardware.profile import load_profile_spec
from edgenas.hardware.vela import VelaEvaluator
from edgenas.space.config import format_resolution, parse_resolution
from edgenas.space.space import load_space
from edgenas.train import bench_proxies as bp

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
CONFIG = BENCH / "flow_space.yaml"
SEED_LIST = BENCH / "genotypes" / "flow_seed.txt"
REFERENCE = BENCH / "reference" / "flow-full.json"
RECOMMENDED = ("conv3x3", "dsconv3x3", "conv5x5")  # the seed's reduced head space (its section 8)
PLATEAU_PX = 1.9  # a training that ends at or above this is stuck near the no-motion level (printed beside it)


def seed_records(runs: Path, arch_id: str, seeds: dict[str, int]) -> dict[str, Any]:
    """The reference's EPE of one network for seeds A and B (None: not finished), and whether both are done."""
    out: dict[str, Any] = {}
    for name in ("a", "b"):
        rec = bp.read_done(runs / f"{arch_id}-ref-s{seeds[name]}.json")
        out[name] = float(rec["metric"]) if rec else None
    out["both"] = out["a"] is not None and out["b"] is not None
    return out


def seed_spread(runs: Path, space, settings) -> list[float]:
    """|EPE A - EPE B| of every network of the reference's list with both seeds finished."""
    listed = bp.read_genotypes(space, str(BENCH / "genotypes" / "flow.txt"))
    both = [seed_records(runs, g.arch_id, settings.seeds) for g in listed]
    return [abs(e["a"] - e["b"]) for e in both if e["both"]]


def no_motion_epe() -> float:
    """EPE of an all-zero flow on the reference's validation set at its resolution (the level a network that
    has learned nothing scores), measured the way the study report measures it."""
    from edgenas.train.builder import GraphModule
    from edgenas.train.run import make_candidate
    from edgenas.train.study import evaluate_with_zero

    c = make_candidate(str(CONFIG))  # any network of the space: only its output shapes matter
    _, zero = evaluate_with_zero(GraphModule(c.graph()), c.task, c.task.eval_data(c.resolution), batch_size=32)
    return zero[c.task.primary]


def device_figures(graph, evaluator: VelaEvaluator) -> tuple[float, float]:
    m = evaluator.evaluate(graph, per_layer=False)
    if not m.ok:
        return float("nan"), float("nan")
    return float(m.metrics["fps"]), float(m.metrics["sram_kib"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hardware", default="ethos-u55-256", help="the device (the seed's: ethos-u55-256)")
    ap.add_argument("--resolution", default="192x256", help="where FPS and SRAM are measured (the seed's key one)")
    a = ap.parse_args()
    space = load_space(CONFIG)
    settings = bp.make_settings(str(CONFIG))
    seeds = settings.seeds
    runs = bp.runs_dir(REFERENCE)
    bp.check_folder(runs, settings, space, create=False)
    profile = load_profile_spec(a.hardware)
    evaluator = VelaEvaluator(profile)
    res = parse_resolution(a.resolution)
    genotypes = bp.read_genotypes(space, str(SEED_LIST))
    rows = []
    for g in genotypes:
        epe = seed_records(runs, g.arch_id, seeds)
        fps, sram = device_figures(space.build(g, res), evaluator)
        rows.append({"backbone": g["backbone"], "head": g["head1_block"], **epe, "fps": fps,
                     "sram": sram, "fits": profile.sram_kib is None or sram <= profile.sram_kib})
    st = settings.recipe
    done = [r for r in rows if r["both"]]
    zero = no_motion_epe()
    print(f"### The seed's 28 networks: EPE of the flow reference's two seeds, FPS and SRAM ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/seed_networks.py`; machine: {describe()}. EPE (px, lower is better) at "
          f"{format_resolution(settings.resolution)} on the reference's "
          f"{settings.task.get('val_samples')} validation pairs after {st['epochs']} epochs on "
          f"{settings.task.get('train_samples'):,} synthetic pairs (batch {st['batch_size']}, {st['optimizer']} lr "
          f"{st['lr']}, {st['scheduler']}), seeds A = {seeds['a']} and B = {seeds['b']} "
          f"(benchmarks/reference/flow-full.runs/; predicting no motion scores {zero:.3f} px). FPS and SRAM: Vela for "
          f"{profile.name} at {a.resolution}; fits = SRAM within its {profile.sram_kib:,.0f} KiB. "
          f"{len(done)} of {len(rows)} networks have both seeds.\n")
    print("| backbone | head (Head1 = Head2) | EPE seed A | EPE seed B | mean | FPS | SRAM KiB | fits |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cells = [_px(r["a"]), _px(r["b"]),
                 _px((r["a"] + r["b"]) / 2) if r["both"] else "training"]
        mark = " (seed's pick)" if r["head"] in RECOMMENDED else ""
        print(f"| {r['backbone']} | {r['head']}{mark} | {' | '.join(cells)} | {r['fps']:.2f} | {r['sram']:,.1f} | "
              f"{'yes' if r['fits'] else 'no'} |")
    spread = seed_spread(runs, space, settings)
    print(f"\nSeed noise, for reading differences: |EPE A - EPE B| over the reference's {len(spread)} networks with "
          f"both seeds (random and seed's): median {statistics.median(spread):.3f} px, 90th percentile "
          f"{statistics.quantiles(spread, n=10)[-1]:.3f} px, largest {max(spread):.3f} px.")
    print("\nPer head block, over the backbones with both seeds done (mean EPE of the 2 x n trainings; "
          f"'stuck': trainings that ended at {PLATEAU_PX} px or above, near the no-motion level of {zero:.3f} px):\n")
    print("| head | backbones | mean EPE | best network's mean | stuck | mean FPS | fits (all backbones) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for head in space.choices["head1_block"]:
        hs = [r for r in done if r["head"] == head]
        every = [r for r in rows if r["head"] == head]
        fps = statistics.fmean(r["fps"] for r in every)
        fits = f"{sum(r['fits'] for r in every)} of {len(every)}"
        if not hs:
            print(f"| {head} | 0 | - | - | - | {fps:.2f} | {fits} |")
            continue
        epes = [e for r in hs for e in (r["a"], r["b"])]
        best = min((r["a"] + r["b"]) / 2 for r in hs)
        stuck = sum(e >= PLATEAU_PX for e in epes)
        print(f"| {head} | {len(hs)} | {statistics.fmean(epes):.3f} | {best:.3f} | {stuck} of {len(epes)} | "
              f"{fps:.2f} | {fits} |")


def _px(v: float | None) -> str:
    return "training" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    main()
