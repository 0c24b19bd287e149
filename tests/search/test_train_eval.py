"""The training evaluator's early stopping, against brute force: a candidate is stopped exactly when its
optimistic vector is dominated by the current front; the curve rule waits for min_epochs and never stops a
candidate whose optimistic end could still reach the front; Optuna's pruner is asked in single-objective
studies."""

from __future__ import annotations

import itertools
import random

from edgenas.search.evaluators import Hints
from edgenas.search.train_eval import cannot_reach_front, dominates, stop_rule

OBJ = (("epe", "min"), ("fps", "max"))


def brute_dominated(v, front, directions):
    def at_least(a, b, d):
        return a <= b if d == "min" else a >= b

    return any(all(at_least(p[i], v[i], d) for i, d in enumerate(directions)) and tuple(p) != tuple(v)
               for p in front)


def test_dominates_matches_brute_force_on_random_points() -> None:
    rng = random.Random(0)
    directions = ["min", "max"]
    pts = [(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(40)]
    for a, b in itertools.product(pts, pts):
        assert dominates(a, b, directions) == brute_dominated(b, [a], directions)


def test_cannot_reach_front_uses_known_hardware_and_optimistic_accuracy() -> None:
    front = [(2.0, 30.0), (3.0, 60.0)]
    hints = Hints(known={"fps": 40.0}, objectives=OBJ, front=lambda: front)
    assert cannot_reach_front("epe", 3.5, hints)  # (3.5, 40) is dominated by (3.0, 60)
    assert not cannot_reach_front("epe", 2.5, hints)  # (2.5, 40): neither front point is better in both
    assert not cannot_reach_front("epe", 1.9, hints)


def test_unknown_objective_never_stops() -> None:
    hints = Hints(known={}, objectives=OBJ, front=lambda: [(0.1, 1000.0)])
    assert not cannot_reach_front("epe", 50.0, hints)


def history(values):
    return [{"epoch": i + 1, "epe": v} for i, v in enumerate(values)]


def test_curve_rule_waits_and_stops_only_hopeless_candidates() -> None:
    front = [(1.0, 50.0)]
    hints = Hints(known={"fps": 40.0}, objectives=OBJ, front=lambda: front)
    rule = stop_rule("epe", False, hints, min_epochs=3)
    slow = [8.0, 6.5, 6.0, 5.8, 5.7]  # levels off near 5.5: could never reach EPE 1.0 at lower FPS
    assert rule(history(slow[:2])) is None  # too few points to extrapolate
    assert rule(history(slow)) is not None
    fast_fps = Hints(known={"fps": 60.0}, objectives=OBJ, front=lambda: front)  # faster than the front: keep
    assert stop_rule("epe", False, fast_fps, min_epochs=3)(history(slow)) is None
    assert stop_rule("epe", False, hints, stop_early=False)(history(slow)) is None


def test_single_objective_asks_the_pruner() -> None:
    asked = []

    def should_prune(step, value):
        asked.append((step, value))
        return step >= 2

    rule = stop_rule("epe", False, Hints(objectives=(("epe", "min"),), should_prune=should_prune))
    assert rule(history([5.0])) is None
    assert rule(history([5.0, 4.0])) == "pruned by the study's pruner"
    assert asked == [(1, 5.0), (2, 4.0)]
