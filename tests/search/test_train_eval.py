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


# ---- successive halving ---------------------------------------------------------------------------------

from edgenas.search.pareto import nondominated_sort
from edgenas.search.train_eval import rungs, survives_rung


def test_rungs() -> None:
    assert rungs(1, 3, 27) == [1, 3, 9]
    assert rungs(2, 2, 9) == [2, 4, 8]
    assert rungs(5, 3, 5) == []


def brute_survives(mine, others, directions, eta):
    """Keep when fewer than ceil(n / eta) candidates sit on strictly better non-domination fronts."""
    pts = [mine, *others]
    if len(pts) < eta:
        return True
    fronts = nondominated_sort(pts, directions)
    return sum(1 for f in fronts[1:] if f < fronts[0]) < -(-len(pts) // eta)


def test_survives_rung_against_brute_force() -> None:
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(0, 8)
        mine = (rng.randint(1, 5), rng.randint(10, 15))
        others = [(rng.randint(1, 5), rng.randint(10, 15)) for _ in range(n)]
        hints = Hints(known={"fps": mine[1]}, objectives=OBJ)
        peers = [{"value": e, "fps": f} for e, f in others]
        eta = rng.choice([2, 3])
        assert survives_rung("epe", mine[0], hints, peers, eta) == brute_survives(mine, others, ["min", "max"], eta)


def test_halving_stops_the_worse_candidates_of_a_rung() -> None:
    """Nine candidates at equal FPS, one after the other, sharing their rung records: at epoch 1 each goes on
    only while it is in the best third of those that reached epoch 1 (the first two always go on)."""
    records: dict[int, list[dict[str, float]]] = {}
    stopped = []
    epe_at_1 = [5.0, 4.0, 6.0, 3.0, 7.0, 8.0, 2.0, 9.0, 4.5]
    for i, e1 in enumerate(epe_at_1):
        mine: list[dict[str, float]] = []
        hints = Hints(known={"fps": 30.0}, objectives=OBJ,
                      record_rung=lambda step, v, mine=mine: mine.append({"value": v, "fps": 30.0, "step": step}),
                      rung_peers=lambda step: [dict(p) for p in records.get(step, [])])
        rule = stop_rule("epe", False, hints, stop_early=False, halving=(3, [1, 3]))
        reason = rule(history([e1]))
        for m in mine:
            records.setdefault(int(m.pop("step")), []).append(m)
        stopped.append(reason is not None)
        n = i + 1
        better = sum(1 for x in epe_at_1[:i] if x < e1)
        assert stopped[-1] == (n >= 3 and better >= -(-n // 3)), (i, e1)
    assert any(stopped) and not all(stopped)
