"""Top-k figures of the fidelity table against brute force: every tie-break order enumerated."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgenas.analysis.fidelity import fidelity, top_k_membership, top_k_overlap


def _brute(est: list[float], ref: list[float], k: int) -> tuple[float, float]:
    """Mean overlap / k and mean P(ref's best in est's top k) over all tie-breaking orders of both arrays
    (an order = a permutation used as the tie-breaker: among equal values, the earlier in the permutation wins)."""
    n = len(est)

    def top(values: list[float], order: tuple[int, ...], m: int) -> set[int]:
        rank = {i: p for p, i in enumerate(order)}
        return set(sorted(range(n), key=lambda i: (-values[i], rank[i]))[:m])

    overlaps, hits = [], []
    for oe in itertools.permutations(range(n)):
        te = top(est, oe, k)
        for orr in itertools.permutations(range(n)):
            tr = top(ref, orr, k)
            overlaps.append(len(te & tr) / k)
            hits.append(float(next(iter(top(ref, orr, 1))) in te))
    return float(np.mean(overlaps)), float(np.mean(hits))


CASES = [
    ([5, 4, 3, 2, 1], [1, 2, 3, 4, 5], 2),     # reversed: no overlap, best missed
    ([5, 4, 3, 2, 1], [5, 4, 3, 2, 1], 2),     # identical
    ([1, 1, 1, 1, 1], [3, 1, 2, 5, 4], 2),     # a constant estimate: chance level
    ([2, 2, 1, 3, 0], [0, 4, 4, 1, 2], 2),     # ties in both, straddling the boundary
    ([2, 2, 2, 3, 0, 1], [1, 1, 5, 0, 5, 2], 3),
]


@pytest.mark.parametrize(("est", "ref", "k"), CASES)
def test_top_k_overlap_equals_brute_force_over_tie_breaks(est: list[float], ref: list[float], k: int) -> None:
    overlap, hit = _brute(est, ref, k)
    got = top_k_overlap(est, ref, k)
    assert got["k"] == k
    assert math.isclose(got["overlap"], overlap, abs_tol=1e-12)
    assert math.isclose(got["best_in_top_k"], hit, abs_tol=1e-12)


def test_membership_sums_to_k_and_constant_is_chance() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = rng.integers(0, 4, size=9).astype(float)
        k = int(rng.integers(1, 10))
        assert math.isclose(top_k_membership(v, k).sum(), k)
    # a constant estimate keeps each of 10 genotypes with probability k / n: overlap k / n, hit k / n
    got = top_k_overlap(np.zeros(10), np.arange(10.0), 5)
    assert math.isclose(got["overlap"], 0.5) and math.isclose(got["best_in_top_k"], 0.5)


def test_fidelity_reports_top_k_per_estimate() -> None:
    ref = np.arange(12.0)
    out = fidelity(ref, {"same": ref, "reversed": -ref}, resamples=50, top_k=5)
    assert out["estimates"]["same"]["top_k"] == {"k": 5, "overlap": 1.0, "best_in_top_k": 1.0}
    assert out["estimates"]["reversed"]["top_k"] == {"k": 5, "overlap": 0.0, "best_in_top_k": 0.0}
