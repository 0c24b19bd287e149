"""Small multi-objective kernels the strategies share (everything in minimisation form).

Kept private and numpy-only: non-dominated rank (moocore), crowding distance, the hypervolume a single
new point would add to a set, and the additive epsilon by which a point is dominated.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np

from edgenas.errors import ConfigError


def signs(directions: Sequence[str]) -> np.ndarray:
    """+1 for a minimised objective, -1 for a maximised one (multiply to get minimisation form)."""
    out = []
    for d in directions:
        d = str(getattr(d, "name", d)).lower()
        if d in ("minimize", "minimise", "min"):
            out.append(1.0)
        elif d in ("maximize", "maximise", "max"):
            out.append(-1.0)
        else:
            raise ConfigError(f"unknown direction {d!r}; allowed: minimize, maximize", field="directions")
    return np.array(out)


def nondominated_rank(y: np.ndarray) -> np.ndarray:
    """0 = not dominated by any row; equal rows share a rank."""
    if len(y) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(moocore.pareto_rank(y), dtype=int)


def crowding_distance(y: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance, computed within each rank; boundary points get +inf."""
    cd = np.zeros(len(y))
    for r in np.unique(rank):
        idx = np.flatnonzero(rank == r)
        if len(idx) <= 2:
            cd[idx] = np.inf
            continue
        for m in range(y.shape[1]):
            order = idx[np.argsort(y[idx, m], kind="stable")]
            span = y[order[-1], m] - y[order[0], m]
            cd[order[0]] = cd[order[-1]] = np.inf
            if span > 0:
                cd[order[1:-1]] += (y[order[2:], m] - y[order[:-2], m]) / span
    return cd


def hv_improvement(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume each row of `points` would add to `front` (alone), inside the box below `ref`."""
    points = np.asarray(points, dtype=float)
    front = np.asarray(front, dtype=float).reshape(-1, points.shape[1])
    front = front[np.all(front < ref, axis=1)]
    if points.shape[1] == 2:
        return _hvi_2d(points, front, ref)
    base = float(moocore.hypervolume(front, ref=ref)) if len(front) else 0.0
    out = np.zeros(len(points))
    inside = np.flatnonzero(np.all(points < ref, axis=1))
    for i in inside:
        out[i] = float(moocore.hypervolume(np.vstack([front, points[i]]), ref=ref)) - base
    return np.maximum(out, 0.0)


def _hvi_2d(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact 2-D hypervolume improvement, vectorised over points: the front's staircase is split into
    vertical strips [start, end) of height h (the best f2 reached so far); a point p adds
    sum over strips of overlap([p1, r1], strip) x max(0, h - p2)."""
    if len(front):
        f = front[np.lexsort((front[:, 1], front[:, 0]))]
        best2 = np.minimum.accumulate(f[:, 1])
        keep = np.r_[True, best2[1:] < best2[:-1]]
        f1, f2 = f[keep, 0], best2[keep]
    else:
        f1, f2 = np.zeros(0), np.zeros(0)
    starts = np.r_[-np.inf, f1]
    ends = np.r_[f1, ref[0]]
    heights = np.r_[ref[1], f2]
    p1 = np.minimum(points[:, :1], ref[0])
    p2 = np.minimum(points[:, 1:2], ref[1])
    width = np.clip(ends[None, :] - np.maximum(starts[None, :], p1), 0.0, None)
    height = np.clip(heights[None, :] - p2, 0.0, None)
    return (width * height).sum(axis=1)


def domination_gap(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Smallest amount every objective of a point must improve by to be non-dominated by `front`
    (additive epsilon; <= 0 for points the front does not dominate)."""
    if len(front) == 0:
        return np.zeros(len(points))
    diff = points[:, None, :] - front[None, :, :]
    return diff.min(axis=2).max(axis=1)


def sigma_gap(mean: np.ndarray, sd: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """For points with independent Gaussian objectives (mean, sd; sd = 0 for exact ones): the smallest
    number of deviations k such that mean - k * sd lies inside the reference box and is not weakly
    dominated by `front` (+inf where no k does)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        def need(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
            # k with a - k s < b: (a - b) / s for s > 0; for s = 0 any k if a < b, none otherwise
            return np.where(s > 0, (a - b) / np.where(s > 0, s, 1.0), np.where(a < b, -np.inf, np.inf))

        box = need(mean, ref[None, :], sd).max(axis=1)
        if len(front) == 0:
            return box
        per_front = need(mean[:, None, :], front[None, :, :], sd[:, None, :]).min(axis=2)  # escape one point
        return np.maximum(box, per_front.max(axis=1))
