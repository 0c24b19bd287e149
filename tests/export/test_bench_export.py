"""benchmarks/bench_export.py prices CPU-fallback ops with the sweep's estimate on both sides: an op the
compiler leaves on the CPU (DEPTH_TO_SPACE on Ethos-U55, found by a real Vela compile) costs the same whether
it comes from the compiler's per-layer rows (`cpu_part_seconds`, the edgenas side) or from the op's output
shape in torch (`cpu_seconds`, how the ExecuTorch side's non-delegated ops are priced)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from edgenas.graph.ir import Graph
from edgenas.hardware.profile import load_profile
from edgenas.hardware.vela import VelaEvaluator
from edgenas.sweep.rows import cpu_part_seconds
from edgenas.train.builder import GraphModule

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_export import cpu_seconds


def test_cpu_estimate_is_the_sweeps() -> None:
    g = Graph("d2s")
    x = g.add_input("input", (1, 8, 12, 4))
    y = g.add("conv2d", "c0", [x], kernel=3, stride=1, out_channels=8, act="relu")
    g.mark_output(g.add("depth_to_space", "d2s", [y], block=2, lowering="op"))
    profile = load_profile("ethos-u55-256")
    m = VelaEvaluator(profile).evaluate(g, per_layer=True)
    assert m.status == "ok" and int(m.metrics["cpu_ops"]) == 1
    with torch.no_grad():
        out = GraphModule(g).eval()(torch.rand(1, 4, 8, 12))[-1]  # NCHW, as torch.export records it
    expected = cpu_part_seconds(g, m, profile)
    assert expected and expected > 0
    got = cpu_seconds([{"op": "depth_to_space", "out_shape": list(out.shape), "macs": 0}], profile.host_cpu_macs_per_s)
    assert math.isclose(got, expected, rel_tol=1e-12)
    # A MAC-heavy op counts its MACs, not its output elements.
    assert cpu_seconds([{"out_shape": [1, 2], "macs": 10**6}], 1e9) == 1e-3
