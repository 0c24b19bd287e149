"""Fit the analytic model's per-op coefficients to compiler measurements and check them on held-out
architectures: the figure that says whether the analytic evaluator can rank candidates."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from edgenas.graph.ir import Graph
from edgenas.hardware.analytic import AnalyticEvaluator, Calibration, fit_calibration, spearman
from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile


@dataclass(frozen=True)
class CalibrationReport:
    calibration: Calibration
    train_archs: int
    test_archs: int
    test_points: int
    spearman_calibrated: float  # held-out: calibrated analytic cycles vs compiler cycles
    spearman_roofline: float  # held-out: uncalibrated roofline vs compiler cycles
    median_abs_rel_error: float  # held-out, calibrated
    median_abs_rel_error_roofline: float  # held-out, uncalibrated


def split_archs(arch_ids: Sequence[str], train_fraction: float, seed: int) -> set[str]:
    """Architectures (all their resolutions together) for training; the rest are never seen by the fit."""
    uniq = sorted(set(arch_ids))
    rng = random.Random(seed)
    rng.shuffle(uniq)
    n = min(len(uniq) - 1, max(1, round(train_fraction * len(uniq))))
    return set(uniq[:n])


def calibrate(samples: Sequence[tuple[str, Graph, Measurement]], profile: HardwareProfile, *,
              train_fraction: float = 0.5, seed: int = 0) -> CalibrationReport:
    """`samples`: (arch_id, graph, compiler measurement with per-layer rows)."""
    ok = [s for s in samples if s[2].ok]
    if len({a for a, _, _ in ok}) < 2:
        raise ValueError("calibration needs measurements of at least 2 architectures")
    train = split_archs([a for a, _, _ in ok], train_fraction, seed)
    cal = fit_calibration([(g, m) for a, g, m in ok if a in train], profile)
    test = [(g, m) for a, g, m in ok if a not in train]
    truth = [float(m.metrics["cycles_total"]) for _, m in test]
    fitted = AnalyticEvaluator(profile, cal)
    plain = AnalyticEvaluator(profile)
    pred = [float(fitted.evaluate_graph(g).metrics["cycles_total"]) for g, _ in test]
    roof = [float(plain.evaluate_graph(g).metrics["cycles_total"]) for g, _ in test]
    return CalibrationReport(cal, len(train), len({a for a, _, _ in ok}) - len(train), len(test),
                             spearman(pred, truth), spearman(roof, truth), _median_rel_error(pred, truth),
                             _median_rel_error(roof, truth))


def _median_rel_error(pred: Sequence[float], truth: Sequence[float]) -> float:
    return float(statistics.median(abs(p - t) / t for p, t in zip(pred, truth)))
