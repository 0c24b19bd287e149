"""Analytic evaluator: per-layer roofline latency and IR peak memory, for hardware no compiler covers.

Uncalibrated, a layer takes max(compute, activation traffic, weight traffic) cycles at the profile's peak
MAC rate and bandwidths. Calibrated against compiler measurements (`fit_calibration`), each op kind gets
non-negative coefficients on the same features, so systematic inefficiencies (depthwise convs far below
peak, resize lowered to several ops) are learned rather than guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgenas.graph.ir import Graph
from edgenas.hardware.measurement import LayerRow, Measurement
from edgenas.hardware.profile import HardwareProfile

FEATURES = ("macs", "act_bytes", "weight_bytes", "ops")
CALIBRATION_VERSION = 1


@dataclass(frozen=True)
class LayerFeatures:
    name: str
    kind: str
    macs: int
    act_bytes: int  # activation bytes read + written
    weight_bytes: int

    def vector(self) -> np.ndarray:
        return np.array([self.macs, self.act_bytes, self.weight_bytes, 1.0], dtype=float)


def layer_features(graph: Graph) -> list[LayerFeatures]:
    feats = []
    for op, st in zip(graph.ops, graph.layer_stats()):
        act = sum(graph.tensors[t].nbytes for t in op.inputs) + sum(graph.tensors[t].nbytes for t in op.outputs)
        feats.append(LayerFeatures(op.name, op.kind, st.macs, act, st.weight_bytes))
    return feats


def roofline_cycles(f: LayerFeatures, p: HardwareProfile) -> float:
    compute = f.macs / p.macs_per_cycle
    act = f.act_bytes / p.sram_bytes_per_cycle
    wbw = p.flash_bytes_per_cycle or p.dram_bytes_per_cycle or p.sram_bytes_per_cycle
    weights = f.weight_bytes / wbw
    return max(compute, act, weights)


@dataclass(frozen=True)
class Calibration:
    """Per op kind: cycles = coef . (macs, act_bytes, weight_bytes, 1). Fitted for one profile + compiler."""

    profile: str
    compiler: str
    coefficients: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def predict(self, f: LayerFeatures, p: HardwareProfile) -> float:
        c = self.coefficients.get(f.kind)
        if c is None:
            return roofline_cycles(f, p)
        return float(np.dot(c, f.vector()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"version": CALIBRATION_VERSION, "profile": self.profile,
                                          "compiler": self.compiler, "features": FEATURES,
                                          "coefficients": {k: list(v) for k, v in self.coefficients.items()}},
                                         indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        d = json.loads(Path(path).read_text())
        return cls(d["profile"], d["compiler"], {k: tuple(v) for k, v in d["coefficients"].items()})


def fit_calibration(samples: Iterable[tuple[Graph, Measurement]], profile: HardwareProfile) -> Calibration:
    """Non-negative least squares per op kind of the compiler's per-layer cycles on the IR's features.

    The compiler's rows are matched to IR ops by output tensor name; rows the compiler added for one IR op
    (a lowered resize, a split output) are summed into that op."""
    from scipy.optimize import nnls

    xs: dict[str, list[np.ndarray]] = {}
    ys: dict[str, list[float]] = {}
    compiler = ""
    for graph, m in samples:
        if not m.ok:
            continue
        compiler = m.provenance.get("compiler", compiler)
        cycles = per_op_cycles(graph, m.layers)
        for f in layer_features(graph):
            if f.name in cycles:
                xs.setdefault(f.kind, []).append(f.vector())
                ys.setdefault(f.kind, []).append(cycles[f.name])
    coefs = {}
    for kind, rows in xs.items():
        a = np.array(rows)
        y = np.array(ys[kind])
        # Relative errors matter (a 2x miss on a small layer as much as on a big one): weight rows by 1/y.
        w = 1.0 / np.maximum(y, 1.0)
        scale = a.max(axis=0)
        scale[scale == 0] = 1.0
        sol, _ = nnls(a / scale * w[:, None], y * w)
        coefs[kind] = tuple(float(v) for v in sol / scale)
    return Calibration(profile.name, compiler, coefs)


def per_op_cycles(graph: Graph, layers: Sequence[LayerRow]) -> dict[str, float]:
    """Compiler cycles per IR op name (rows are keyed by output tensor; `op:1` outputs belong to `op`)."""
    owner = {t: op.name for op in graph.ops for t in op.outputs}
    out: dict[str, float] = {}
    for row in layers:
        name = owner.get(row.name) or owner.get(row.name.split(":")[0])
        if name is not None:
            out[name] = out.get(name, 0.0) + row.cycles
    return out


class AnalyticEvaluator:
    """Evaluates a Graph (no compiler) on any profile; calibrated when given a Calibration."""

    def __init__(self, profile: HardwareProfile, calibration: Calibration | None = None) -> None:
        self.profile = profile
        self.calibration = calibration

    def evaluate_graph(self, graph: Graph) -> Measurement:
        p = self.profile
        feats = layer_features(graph)
        rows = []
        total = 0.0
        for f in feats:
            cyc = self.calibration.predict(f, p) if self.calibration else roofline_cycles(f, p)
            cyc = max(cyc, 0.0)
            total += cyc
            util = 100.0 * f.macs / (cyc * p.macs_per_cycle) if cyc > 0 and f.macs else 0.0
            rows.append(LayerRow(f.name, f.kind, "NPU" if p.accelerator_config else "CPU", f.name, round(cyc),
                                 round(cyc), 0, 0, 0, 0, f.macs, util, 0))
        plan = graph.memory_plan()
        weights_kib = graph.weight_bytes / 1024
        metrics: dict[str, float | int] = {
            "cycles_total": round(total),
            "cycles_npu": round(total) if p.accelerator_config else 0,
            "fps": p.core_clock_hz / total if total > 0 else math.inf,
            "inference_ms": 1000.0 * total / p.core_clock_hz,
            "sram_kib": plan.peak_bytes / 1024,
            "offchip_flash_kib": weights_kib if p.flash_kib else 0.0,
            "dram_kib": 0.0,
            "npu_ops": len(graph.ops) if p.accelerator_config else 0,
            "cpu_ops": 0,
            "macs": graph.macs,
            "encoded_weight_bytes": graph.weight_bytes,
        }
        prov = {"evaluator": "analytic" + ("-calibrated" if self.calibration else "-roofline"),
                "profile": p.name, "compiler": "", "weights": ""}
        return Measurement("ok", metrics=metrics, layers=tuple(rows), provenance=prov)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)
