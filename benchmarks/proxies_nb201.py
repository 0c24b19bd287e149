"""edgenas's synflow against its published anchor: Spearman with final accuracy on NAS-Bench-201.

Abdelfattah et al. 2021 ("Zero-Cost Proxies for Lightweight NAS", table 2) report synflow's Spearman rank
correlation with the final accuracy of all 15,625 NAS-Bench-201 cells as 0.74 (CIFAR-10), 0.76 (CIFAR-100)
and 0.75 (ImageNet16-120). Synflow needs no data (an all-ones input), so that figure can be re-measured
here with `edgenas.train.proxies.synflow` itself on the NAS-Bench-201 networks and the accuracies of
shared/benchmarks/nb201_pi5.csv: an independent check of the implementation behind the flow and
digits-hard tables of issue 9 (a low synflow figure on flow is then the task's, not a bug's). The other
proxies need the datasets' images (not on this machine), so they are not checked this way. Two known
differences from the published setting: its CIFAR-10 accuracy is NAS-Bench-201's `cifar10-valid` (trained
on half the training set), the table's is trained on all of it (CIFAR-100 and ImageNet16-120 are the same
split in both); and its reference code (zero-cost-nas) gives the cells' convs a bias, which
`--cell-conv-bias` reproduces.

The networks are NAS-Bench-201's as its authors define them (xautodl `TinyNetwork`, C=16, N=5): a 3x3
stem, three stages of five cells (16, 32, 64 channels) joined by residual stride-2 blocks, BatchNorm and
ReLU, global pooling and a linear classifier; cell ops none, skip_connect, nor_conv_1x1/3x3 (ReLU-conv-BN),
avg_pool_3x3 (count_include_pad False). Written here, not imported: xautodl's last release (2021) pins
numpy<=1.19.5, so it cannot be a dependency; the tests install it without its dependencies and check this
builder against its TinyNetwork weight for weight. PyTorch's default initialisation, seeded
per cell, as in the reference (init "none"); 32x32 inputs for CIFAR, 16x16 for ImageNet16-120.

    python benchmarks/proxies_nb201.py [--sample 1000] [--jobs 1]   (--sample 0: all 15,625 cells)
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import describe

TABLE = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if (p / "benchmarks" / "nb201_pi5.csv").exists()),
             ROOT.parent / "shared") / "benchmarks" / "nb201_pi5.csv"
# dataset -> (accuracy column, classes, input side, the published Spearman of synflow over all cells, to three
# places as the reference code's notebook prints them: zero-cost-nas, notebooks/nasbench201_correlations.ipynb)
DATASETS = {"cifar10": ("cifar10_acc", 10, 32, 0.737), "cifar100": ("cifar100_acc", 100, 32, 0.763),
            "imagenet16": ("imagenet16_acc", 120, 16, 0.751)}


def build_nb201(arch: str, classes: int, cell_conv_bias: bool = False):
    """The NAS-Bench-201 network of one cell string (see the module docstring); `cell_conv_bias`: the cells'
    convs with a bias, as the zero-cost reference code builds them (its cells have affine=False BatchNorm)."""
    import torch
    from torch import nn

    from edgenas.space.nb201 import NB201_EDGES, NB201Space

    ops = NB201Space().parse_genotype(arch).as_dict()

    def relu_conv_bn(c_in: int, c_out: int, k: int, stride: int, bias: bool = False) -> nn.Module:
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=bias), nn.BatchNorm2d(c_out))

    def edge_op(name: str, c: int) -> nn.Module | None:
        return {"none": lambda: None, "skip_connect": nn.Identity,
                "nor_conv_1x1": lambda: relu_conv_bn(c, c, 1, 1, cell_conv_bias),
                "nor_conv_3x3": lambda: relu_conv_bn(c, c, 3, 1, cell_conv_bias),
                "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False)}[name]()

    class Cell(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            # edge e{i}{j} carries node i to node j; node j sums its incoming edges ("none" adds nothing)
            self.edges = nn.ModuleDict({e: op for e in NB201_EDGES if (op := edge_op(ops[e], c)) is not None})

        def forward(self, x):
            nodes = [x]
            for j in (1, 2, 3):
                terms = [self.edges[f"e{i}{j}"](nodes[i]) for i in range(j) if f"e{i}{j}" in self.edges]
                nodes.append(sum(terms) if terms else torch.zeros_like(x))
            return nodes[3]

    class Reduction(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.a = relu_conv_bn(c_in, c_out, 3, 2)
            self.b = relu_conv_bn(c_out, c_out, 3, 1)
            self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

        def forward(self, x):
            return self.shortcut(x) + self.b(self.a(x))

    class Network(nn.Module):
        def __init__(self, c: int = 16, n: int = 5) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)]
            for stage, width in enumerate((c, 2 * c, 4 * c)):
                if stage:
                    layers.append(Reduction(width // 2, width))
                layers.extend(Cell(width) for _ in range(n))
            layers += [nn.BatchNorm2d(4 * c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                       nn.Linear(4 * c, classes)]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return (self.body(x),)  # a tuple of outputs, as edgenas's GraphModule gives

    return Network()


def score(job: tuple[int, str, int, int, bool]) -> tuple[int, float, int, float]:
    """(index, synflow, parameter count, seconds of synflow) of one cell, its weights seeded by its index."""
    import torch

    from edgenas.train.proxies import synflow

    index, arch, classes, side, cell_conv_bias = job
    torch.set_num_threads(1)
    torch.manual_seed(index)
    net = build_nb201(arch, classes, cell_conv_bias)
    t0 = time.perf_counter()
    value = synflow(net, torch.zeros(1, 3, side, side), None, None)
    return index, value, sum(p.numel() for p in net.parameters()), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=1000, help="cells drawn at random, seeded (0 = all 15,625)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the draw")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS))
    ap.add_argument("--jobs", type=int, default=1, help="processes, one torch thread each")
    ap.add_argument("--cell-conv-bias", action="store_true",
                    help="cell convs with a bias, as in the zero-cost reference code that measured the published "
                    "figures (NAS-Bench-201 itself has none)")
    ap.add_argument("--table", type=Path, default=TABLE, help="the NAS-Bench-201 table (nb201_pi5.csv)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "proxies_nb201.json", help="JSON of every score")
    a = ap.parse_args()
    if not a.table.exists():
        print(f"{a.table}: not found (shared/benchmarks/nb201_pi5.csv beside the checkout; or pass --table FILE)",
              file=sys.stderr)
        return 2
    names = [d.strip() for d in a.datasets.split(",") if d.strip()]
    if bad := [d for d in names if d not in DATASETS]:
        print(f"--datasets: unknown {', '.join(bad)}; allowed: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    with a.table.open() as f:
        rows = list(csv.DictReader(f))
    if not 0 <= a.sample <= len(rows):
        print(f"--sample: {a.sample} is not between 0 (all) and {len(rows)}, the cells of {a.table}", file=sys.stderr)
        return 2
    if a.sample:
        rows = [rows[i] for i in sorted(np.random.default_rng(a.seed).choice(len(rows), a.sample, replace=False))]
    cmd = "python benchmarks/proxies_nb201.py " + " ".join(sys.argv[1:])
    print(f"Command: `{cmd.strip()}`; {describe()}; {time.strftime('%Y-%m-%d')}; {len(rows)} cells.\n")
    print("| dataset | cells | synflow Spearman [95% CI] | published (all cells) | synflow Kendall tau "
          "| params Spearman [95% CI] | synflow - params [95% CI] | synflow CPU s / cell |")
    print("|---|---|---|---|---|---|---|---|")
    record = {"command": cmd, "cells": len(rows), "datasets": {}}
    from edgenas.analysis.fidelity import bootstrap_indices, percentile_interval, rank_correlations, spearman_rho

    idx = bootstrap_indices(len(rows), 1000, seed=0)  # the same resamples of the cells for every figure: paired
    for name in names:
        column, classes, side, published = DATASETS[name]
        jobs = [(int(r["index"]), r["arch"], classes, side, a.cell_conv_bias) for r in rows]
        with mp.get_context("spawn").Pool(a.jobs or os.cpu_count()) as pool:
            scores = {}
            for i, v, n, s in pool.imap_unordered(score, jobs, chunksize=8):
                scores[i] = (v, n, s)
                if len(scores) % max(1, len(jobs) // 10) == 0:  # a line every tenth: a full run takes an hour
                    print(f"  {name}: {len(scores):,} of {len(jobs):,} cells scored", file=sys.stderr, flush=True)
        syn = np.array([scores[j[0]][0] for j in jobs])
        params = np.array([scores[j[0]][1] for j in jobs], dtype=float)
        acc = np.array([float(r[column]) for r in rows])
        tau, rho = rank_correlations(syn, acc)
        rho_p = rank_correlations(params, acc)[1]
        boot, boot_p = spearman_rho(syn[idx], acc[idx]), spearman_rho(params[idx], acc[idx])
        ci, ci_p, ci_d = (percentile_interval(v) for v in (boot, boot_p, boot - boot_p))
        sec = float(np.mean([s for _, _, s in scores.values()]))
        print(f"| {name} | {len(rows)} | {rho:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] | {published:+.3f} | {tau:+.3f} "
              f"| {rho_p:+.3f} [{ci_p[0]:+.3f}, {ci_p[1]:+.3f}] | {rho - rho_p:+.3f} [{ci_d[0]:+.3f}, {ci_d[1]:+.3f}] "
              f"| {sec:.3f} |", flush=True)
        record["datasets"][name] = {"spearman": rho, "interval": ci, "kendall": tau, "published": published,
                                    "params_spearman": rho_p, "params_interval": ci_p,
                                    "synflow_minus_params_interval": ci_d, "cpu_s_per_cell": sec,
                                    "scores": {str(j[0]): scores[j[0]][0] for j in jobs},
                                    "params": {str(j[0]): scores[j[0]][1] for j in jobs}}
    from edgenas.atomic import write_text

    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(a.out, json.dumps(record, indent=1))
    print(f"\nscores: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
