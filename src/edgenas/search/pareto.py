"""Pareto tools over numpy arrays: non-dominated set, non-dominated sorting, crowding distance, hypervolume.

Every function takes `points` (n x m, one row per candidate, one column per objective) and `directions`
(m strings, "min" or "max"), so callers never negate columns by hand: a sign slip there silently turns the
best designs into the worst. The kernels are moocore's (it minimises unless told `maximise`); this module
adds the validation and the conventions edgenas relies on: equal points are all kept, and points outside
the hypervolume reference box count for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import moocore
import numpy as np
from numpy.typing import ArrayLike

Direction = Literal["min", "max"]
DIRECTIONS: tuple[str, ...] = ("min", "max")


def maximise_mask(directions: Sequence[str]) -> np.ndarray:
    """Directions as moocore's `maximise` vector (True where an objective is maximised)."""
    if isinstance(directions, str):  # "max" would otherwise read as three objectives
        raise TypeError(f"directions must be a sequence of 'min'/'max', not the string {directions!r}")
    dirs = list(directions)
    if not dirs:
        raise ValueError("at least one objective direction is needed")
    bad = [d for d in dirs if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"directions must be 'min' or 'max', got {bad[0]!r}")
    return np.array([d == "max" for d in dirs], dtype=bool)


def _prepare(points: ArrayLike, directions: Sequence[str], what: str = "points") -> tuple[np.ndarray, np.ndarray]:
    """Checked float copy of `points` (n x m, finite) and the maximise mask."""
    maximise = maximise_mask(directions)
    pts = np.asarray(points, dtype=float)
    m = len(maximise)
    if pts.ndim == 1 and pts.size == 0:
        pts = pts.reshape(0, m)
    if pts.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n points x m objectives), got shape {pts.shape}")
    if pts.shape[1] != m:
        raise ValueError(f"{what} have {pts.shape[1]} objectives but {m} directions were given")
    if not np.isfinite(pts).all():
        raise ValueError(f"{what} contain NaN or infinite values; drop those rows first")
    return pts, maximise


def nondominated_mask(points: ArrayLike, directions: Sequence[str], keep_duplicates: bool = True) -> np.ndarray:
    """True for every point that no other point dominates.

    Dominance is strict (at least as good everywhere, strictly better somewhere), so equal points never
    dominate each other: with `keep_duplicates` all copies of a non-dominated point are kept (a tie between
    two architectures is not a reason to hide one); without it only the first copy in row order is.
    """
    pts, maximise = _prepare(points, directions)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(pts, maximise=maximise, keep_weakly=keep_duplicates), dtype=bool)


def nondominated_sort(points: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Front index of each point (0 = non-dominated, 1 = non-dominated once front 0 is removed, ...).

    Equal points share a front. Fronts are numbered 0..k-1 without gaps.
    """
    pts, maximise = _prepare(points, directions)
    if len(pts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(moocore.pareto_rank(pts, maximise=maximise), dtype=np.int64)


def crowding_distance(points: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """NSGA-II crowding distance of each point within the given set (pass one front at a time).

    For each objective the points are sorted by value (ties in row order); the first and last get inf and
    every other point adds (next - previous) / (max - min). An objective on which all points are equal
    adds nothing, as in Optuna and pymoo. Sets of one or two points are all boundary: inf.
    The distance does not depend on the directions; they are checked so that every function here takes
    the same arguments. For NSGA-II's per-front distances, call this on each front of `nondominated_sort`.
    """
    pts, _ = _prepare(points, directions)
    n, m = pts.shape
    if n <= 2:
        return np.full(n, np.inf)
    distance = np.zeros(n)
    for j in range(m):
        order = np.argsort(pts[:, j], kind="stable")
        values = pts[order, j]
        width = values[-1] - values[0]
        if width == 0:
            continue
        distance[order[1:-1]] += (values[2:] - values[:-2]) / width
        distance[order[0]] = np.inf
        distance[order[-1]] = np.inf
    return distance


def hypervolume(points: ArrayLike, directions: Sequence[str], reference: ArrayLike) -> float:
    """Volume of objective space dominated by `points` and bounded by `reference`.

    `reference` is in the objectives' own units and directions (e.g. accuracy floor 90 for a maximised
    accuracy, 20 ms for a minimised latency). A point that is not strictly better than the reference in
    every objective adds nothing, so a front can be scored inside a region of interest without filtering it
    first. Any number of objectives (moocore: exact algorithms for 2, 3, 4 and more).
    """
    pts, maximise = _prepare(points, directions)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (len(maximise),):
        raise ValueError(f"reference must have one value per objective ({len(maximise)}), got shape {ref.shape}")
    if not np.isfinite(ref).all():
        raise ValueError("reference contains NaN or infinite values")
    inside = np.where(maximise, pts > ref, pts < ref).all(axis=1)
    pts = pts[inside]
    if len(pts) == 0:
        return 0.0
    return float(moocore.hypervolume(pts, ref=ref, maximise=maximise))


def hv_ratio(found: ArrayLike, true_front: ArrayLike, directions: Sequence[str], reference: ArrayLike) -> float:
    """Hypervolume of `found` over that of `true_front` (1.0 = the whole front recovered).

    `found` may hold dominated points and points outside the reference box: only what a search actually
    contributes inside the box counts. Raises ValueError when the true front has no volume in the box,
    where the ratio means nothing.
    """
    denominator = hypervolume(true_front, directions, reference)
    if denominator <= 0:
        raise ValueError("the true front has zero hypervolume inside the reference box; check the reference point")
    return hypervolume(found, directions, reference) / denominator
