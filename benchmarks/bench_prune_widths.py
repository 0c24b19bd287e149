"""Where do the compiler's cycles and SRAM step as a channel count grows? (issue 10 item 6: the default
`round_to` of structured pruning, edgenas.export.prune.)

Three layers, each compiled with Vela (edgenas.hardware.vela.VelaEvaluator, in-process) while one width C
grows 1..64 and a few larger values:
- conv3x3_out: 32 -> C channels, conv 3x3 (the output width of a pruned conv);
- conv1x1_in:  C -> 32 channels, conv 1x1 (the input width its consumer sees);
- dsconv_mid:  16 -> C (conv 1x1) -> depthwise 3x3 on C -> 16 (conv 1x1): a pruned mbconv/dsconv middle.
For each series: the widths worth having in 1..64 (the frontier: no wider width costs at most 2% more), and
the share of them that are multiples of m. Where the hardware works in blocks of m channels, cycles stay
flat inside a block and only multiples of m are on the frontier; the series' grid is the largest m that
divides at least 75% of its frontier widths (1 where none does: no step). The last lines count the grids
over all series, for cycles and for SRAM: the most common one is the default `round_to`.
Then whole networks: flow networks of the seed space at 120x160 with every prunable group kept at a ratio
r, rounded to 1, 8 or 16 (edgenas.export.prune.plan_widths): MACs, cycles and SRAM on ethos-u55-256.

Usage: python benchmarks/bench_prune_widths.py [--targets ethos-u55-256,ethos-u55-128,ethos-u65-256]
       [--res 32x32,96x128] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))  # machine.py

from machine import describe

from edgenas.export.prune import plan_widths
from edgenas.graph.blocks import BlockArgs, apply_block
from edgenas.graph.channels import pruned_graph
from edgenas.graph.ir import Graph
from edgenas.hardware.profile import load_profile
from edgenas.hardware.vela import VelaEvaluator, compiler_version
from edgenas.space.space import load_space

WIDTHS = (*range(1, 65), 72, 80, 96, 112, 128, 160, 192, 256)
MULTIPLES = (1, 2, 4, 8, 16, 32)
TOLERANCE = 0.02  # a wider width that costs at most this much more makes a width not worth having


def layer(kind: str, c: int, res: tuple[int, int]) -> Graph:
    g = Graph(kind)
    h, w = res
    if kind == "conv3x3_out":
        x = g.add_input("input", (1, h, w, 32))
        y = g.add("conv2d", "conv", [x], kernel=3, stride=1, out_channels=c, act="relu")
    elif kind == "conv1x1_in":
        x = g.add_input("input", (1, h, w, c))
        y = g.add("conv2d", "conv", [x], kernel=1, stride=1, out_channels=32, act="relu")
    elif kind == "dsconv_mid":
        x = g.add_input("input", (1, h, w, 16))
        y = g.add("conv2d", "expand", [x], kernel=1, stride=1, out_channels=c, act="relu")
        y = apply_block(g, "dsconv3x3", y, "ds", BlockArgs(16, 1, "relu"))
    else:
        raise ValueError(kind)
    g.mark_output(y)
    return g


SERIES = ("conv3x3_out", "conv1x1_in", "dsconv_mid")


def frontier(values: dict[int, float], tol: float = TOLERANCE) -> list[int]:
    """Widths w in 1..64 for which no wider width costs at most (1 + tol) * values[w]."""
    return [w for w in range(1, 65) if not any(values[x] <= values[w] * (1 + tol) for x in values if x > w)]


def grid(front: list[int]) -> tuple[int, dict[int, float]]:
    """(largest m dividing >= 75% of the frontier widths, share of frontier widths per multiple)."""
    share = {m: sum(w % m == 0 for w in front) / len(front) for m in MULTIPLES}
    return max(m for m in MULTIPLES if share[m] >= 0.75), share


def steps(values: dict[int, float], rel: float = 0.05) -> list[int]:
    """Widths w in 1..63 after which the figure rises by more than `rel` (values[w + 1] / values[w] - 1)."""
    return [w for w in range(1, 64) if values[w + 1] > values[w] * (1.0 + rel)]


NETWORKS = ("backbone=mbconv_e4,head1_block=mbconv_e4", "backbone=resnet,head1_block=dsconv3x3",
            "backbone=shufflenet,head1_block=mbconv_e6")


def networks(target: str) -> None:
    space = load_space("flow_head_upsample")
    ev = VelaEvaluator(load_profile(target), check_input=False)
    print(f"\n## whole networks, {target}, 120x160: ratio, round_to -> MMACs, cycles, SRAM KiB")
    for genotype in NETWORKS:
        graph = space.build(space.parse_genotype(genotype), (120, 160))
        full = ev.evaluate(graph, per_layer=False).metrics
        print(f"{genotype}: unpruned {graph.macs / 1e6:.1f} MMAC, {full['cycles_total']} cycles, "
              f"{full['sram_kib']:.0f} KiB")
        for ratio in (0.3, 0.5, 0.7):
            parts = []
            for round_to in (1, 8, 16):
                g = pruned_graph(graph, plan_widths(graph, ratio, round_to))
                m = ev.evaluate(g, per_layer=False).metrics
                parts.append(f"round_to {round_to}: {g.macs / 1e6:.1f} MMAC {m['cycles_total']} cycles "
                             f"({m['cycles_total'] / full['cycles_total']:.3f}) {m['sram_kib']:.0f} KiB")
            print(f"  r={ratio}: " + "; ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="ethos-u55-256,ethos-u55-128,ethos-u65-256")
    ap.add_argument("--res", default="32x32,96x128")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    resolutions = [tuple(int(v) for v in r.split("x")) for r in a.res.split(",")]
    print(f"# bench_prune_widths, {datetime.date.today()}, {describe()}, {compiler_version()}")
    out: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    votes: dict[str, dict[int, int]] = {"cycles": {}, "sram_kib": {}}
    t0 = time.perf_counter()
    for target in a.targets.split(","):
        ev = VelaEvaluator(load_profile(target), check_input=False)
        for res in resolutions:
            for kind in SERIES:
                key = f"{target} {kind} {res[0]}x{res[1]}"
                rows: dict[int, dict[str, float]] = {}
                for c in WIDTHS:
                    meas = ev.evaluate(layer(kind, c, res), per_layer=False)
                    if meas.status != "ok":
                        raise SystemExit(f"{key} C={c}: {meas.error}")
                    rows[c] = {"cycles": meas.metrics["cycles_total"], "sram_kib": meas.metrics["sram_kib"]}
                out[key] = rows
                for metric in ("cycles", "sram_kib"):
                    front = frontier({w: r[metric] for w, r in rows.items()})
                    m, share = grid(front)
                    votes[metric][m] = votes[metric].get(m, 0) + 1
                    print(f"{key} {metric}: grid {m}; frontier {front}; share per multiple "
                          + ", ".join(f"{mm}: {share[mm]:.2f}" for mm in MULTIPLES)
                          + f"; rises >5% after C = {steps({w: r[metric] for w, r in rows.items()})}")
                print("  C: cycles / SRAM KiB: " + "  ".join(
                    f"{w}:{int(rows[w]['cycles'])}/{rows[w]['sram_kib']:.1f}"
                    for w in (1, 2, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 64, 128, 256)))
    for metric, v in votes.items():
        print(f"\ngrids of {metric} over {sum(v.values())} series: "
              + ", ".join(f"{m}: {n}" for m, n in sorted(v.items())))
    print(f"{sum(len(v) for v in out.values())} compiles in {time.perf_counter() - t0:.0f} s")
    networks("ethos-u55-256")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
