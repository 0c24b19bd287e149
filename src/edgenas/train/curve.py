"""Learning-curve extrapolation: fit m(t) = a - b * t^(-c) (a metric that rises, e.g. accuracy) or
m(t) = a + b * t^(-c) (one that falls, e.g. EPE) to a run's validation history with scipy, so a short run
says where a long one would end, and a search can stop a candidate that could not catch up.

The power law is the usual model (Domhan et al. 2015 use it among others; it fits saturating curves with
few points); with under 3 points there is nothing to fit. A run still leaving a plateau (EPE falling faster
each epoch) fits a curve that never saturates, whose "asymptote" is any number: `best_possible` (the task's
bound, 0 px of EPE, 100 % top-1) keeps the asymptote on the attainable side, and a fit pinned there says so
(`at_bound`): it predicts nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CurveFit:
    a: float  # the asymptote: the metric after infinitely many epochs
    b: float
    c: float
    rising: bool
    points: int
    rmse: float
    # the asymptote is the task's bound (`best_possible`): the curve has not begun to saturate, so it says
    # nothing about where the run would end (a flow run still leaving its plateau)
    at_bound: bool = False

    def at(self, t: float) -> float:
        sign = -1.0 if self.rising else 1.0
        return self.a + sign * self.b * t ** (-self.c)

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def fit_learning_curve(epochs: Sequence[float], values: Sequence[float], *, rising: bool,
                       best_possible: float | None = None) -> CurveFit | None:
    """Least-squares fit of the power law to (epoch, metric) points (epochs from 1); None when there are
    fewer than 3 finite points or the fit does not converge. `best_possible`: the asymptote is bounded by it
    (from above for a rising metric, from below for a falling one)."""
    from scipy.optimize import curve_fit

    pts = [(float(t), float(v)) for t, v in zip(epochs, values) if t > 0 and math.isfinite(v)]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    sign = -1.0 if rising else 1.0

    def model(tt: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return a + sign * b * np.power(tt, -c)

    span = float(np.ptp(y)) or max(abs(float(y[-1])), 1e-6)
    a_low, a_high = -np.inf, np.inf
    if best_possible is not None:
        a_low, a_high = (a_low, float(best_possible)) if rising else (float(best_possible), a_high)
    p0 = (float(np.clip(y[-1], a_low, a_high)), span, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (a, b, c), _ = curve_fit(model, t, y, p0=p0, bounds=([a_low, 0.0, 1e-3], [a_high, np.inf, 5.0]),
                                     maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    rmse = float(np.sqrt(np.mean((model(t, a, b, c) - y) ** 2)))
    at_bound = best_possible is not None and abs(a - best_possible) <= 1e-6 * max(span, 1.0)
    return CurveFit(float(a), float(b), float(c), rising, len(pts), rmse, at_bound)
