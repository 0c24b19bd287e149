"""Search strategies: the registry, reproducibility of every strategy, regularized-evolution semantics, the
MnasNet reward, our default sampler's rules, and the small kernels under them (against brute force)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import moocore
import numpy as np
import optuna
import pytest
from scipy.optimize import approx_fprime

from edgenas.errors import ConfigError
from edgenas.search.strategies import (
    DEFAULT_STRATEGY,
    PARENT_ATTR,
    MnasReward,
    RegularizedEvolutionSampler,
    gp_available,
    make_sampler,
    make_strategy,
    strategy_names,
    suggest_genotype,
)
from edgenas.search.strategies._gp import CategoricalGP, OneHot, PoolPosterior, Warp
from edgenas.search.strategies._mo import crowding_distance, hv_improvement, nondominated_rank, sigma_gap

optuna.logging.set_verbosity(optuna.logging.WARNING)

# a small space (4 x 3 x 5 x 2 = 120 architectures) with a synthetic, deterministic accuracy / latency trade-off
CHOICES: dict[str, list[Any]] = {"op": ["conv3", "conv5", "dw", "skip"], "width": [16, 32, 64],
                                 "depth": [1, 2, 3, 4, 5], "se": [False, True]}
DIRECTIONS = ["maximize", "minimize"]


def metrics(p: dict[str, Any]) -> tuple[float, float]:
    op = {"conv3": 2.0, "conv5": 2.5, "dw": 1.5, "skip": 0.0}[p["op"]]
    acc = 60 + 8 * math.log2(p["width"]) / 6 + op * p["depth"] + (1.5 if p["se"] else 0) - 0.3 * p["depth"] ** 1.5
    lat = 0.1 * p["width"] / 16 * (1 + op) * p["depth"] + (0.2 if p["se"] else 0) + 0.05
    return acc, lat


def proposals(name: str, seed: int, n: int, **options: Any) -> list[tuple]:
    strat = make_strategy(name, seed=seed, choices=CHOICES, directions=DIRECTIONS, **options)
    study = optuna.create_study(directions=list(strat.directions), sampler=strat.sampler)
    out = []
    for _ in range(n):
        t = study.ask()
        p = suggest_genotype(t, CHOICES)
        out.append(tuple(p.values()))
        study.tell(t, strat.study_values(metrics(p)))
    return out


# ---- registry ----------------------------------------------------------------------------------------------
def test_registry_names_and_errors() -> None:
    names = strategy_names()
    assert DEFAULT_STRATEGY == "frontier"
    assert set(names) >= {"random", "nsga2", "nsga3", "tpe", "gp", "evolution", "mnas", "frontier"}
    with pytest.raises(ConfigError, match="unknown strategy 'annealing'; allowed: .*random"):
        make_sampler("annealing", seed=0, choices=CHOICES, directions=DIRECTIONS)
    with pytest.raises(ConfigError, match="has no option.*population"):
        make_sampler("tpe", seed=0, choices=CHOICES, directions=DIRECTIONS, population=3)
    with pytest.raises(ConfigError, match="sample_size"):
        make_sampler("evolution", seed=0, choices=CHOICES, directions=DIRECTIONS, population_size=4, sample_size=9)
    with pytest.raises(ConfigError, match="no options"):
        make_sampler("random", seed=0, choices={"a": []}, directions=DIRECTIONS)
    assert isinstance(make_sampler("nsga2", seed=0, choices=CHOICES, directions=DIRECTIONS, population_size="8"),
                      optuna.samplers.NSGAIISampler)  # command-line strings are coerced


def test_gp_needs_torch() -> None:
    if gp_available():
        assert isinstance(make_sampler("gp", seed=0, choices=CHOICES, directions=DIRECTIONS),
                          optuna.samplers.GPSampler)
    else:
        with pytest.raises(ConfigError, match="needs torch and scipy"):
            make_sampler("gp", seed=0, choices=CHOICES, directions=DIRECTIONS)


REPRODUCIBLE = [("random", {}, 25), ("nsga2", {"population_size": 8}, 25), ("nsga3", {"population_size": 8}, 25),
                ("tpe", {}, 25), ("evolution", {"population_size": 8, "sample_size": 3}, 25),
                ("frontier", {}, 25), ("mnas", {"target": 0.5}, 25),
                ("mnas", {"target": 0.5, "sampler": "evolution"}, 25)]
if gp_available():
    REPRODUCIBLE.append(("gp", {}, 14))


@pytest.mark.parametrize("name,options,n", REPRODUCIBLE, ids=[f"{r[0]}-{i}" for i, r in enumerate(REPRODUCIBLE)])
def test_same_seed_same_proposals(name: str, options: dict, n: int) -> None:
    a = proposals(name, 7, n, **options)
    assert a == proposals(name, 7, n, **options)
    assert a != proposals(name, 8, n, **options)


# ---- regularized evolution -----------------------------------------------------------------------------------
def test_evolution_population_is_the_latest_completed_and_children_differ_in_one_choice() -> None:
    sampler = RegularizedEvolutionSampler(CHOICES, population_size=6, sample_size=3, seed=1)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    for i in range(40):
        t = study.ask()
        p = suggest_genotype(t, CHOICES)
        study.tell(t, metrics(p))
        pop = sampler.population(study)
        done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(pop) == min(i + 1, 6)  # bounded
        assert [t.number for t in pop] == [t.number for t in done][-6:]  # the oldest left first
    trials = study.get_trials()
    children = [t for t in trials if PARENT_ATTR in t.system_attrs]
    assert [t.number for t in children] == list(range(6, 40))  # random until the population is full
    for child in children:
        parent = trials[child.system_attrs[PARENT_ATTR]]
        assert child.number - 6 <= parent.number < child.number  # a member of the population at the time
        assert sum(parent.params[k] != child.params[k] for k in CHOICES) == 1


def test_evolution_tournament_prefers_the_non_dominated() -> None:
    sampler = RegularizedEvolutionSampler(CHOICES, population_size=4, sample_size=4, seed=0)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    values = [(70, 2.0), (80, 1.0), (60, 3.0), (75, 1.5)]  # (80, 1.0) dominates every other member
    for v in values:
        study.add_trial(optuna.trial.create_trial(params={k: o[0] for k, o in CHOICES.items()},
                                                  distributions=sampler.infer_relative_search_space(study, None),
                                                  values=list(v)))
    t = study.ask()
    suggest_genotype(t, CHOICES)
    assert study.trials[-1].system_attrs[PARENT_ATTR] == 1


# ---- MnasNet reward -------------------------------------------------------------------------------------------
def test_mnas_reward_methods() -> None:
    soft = MnasReward(target=10.0)
    assert soft([80, 10]) == pytest.approx(80)
    assert soft([80, 20]) == pytest.approx(80 * 2 ** -0.07)
    assert soft([80, 5]) == pytest.approx(80 * 0.5 ** -0.07)
    hard = MnasReward(target=10.0, method="hard")
    assert hard([80, 5]) == 80 and hard([80, 20]) == pytest.approx(40)
    pen = MnasReward(target=10.0, method="penalty", penalty=2.0)
    assert pen([80, 5]) == pytest.approx(80 * 0.5 ** -0.07)
    assert pen([80, 15]) == pytest.approx(80 * (1.5 ** -0.07 - 2.0 * 0.25))
    # ACC / LAT found from the directions, whatever their order
    r = MnasReward.for_directions(["minimize", "maximize"], target=10)
    assert (r.accuracy, r.latency) == (1, 0) and r([20, 80]) == pytest.approx(80 * 2 ** -0.07)
    with pytest.raises(ConfigError, match="needs the option target"):
        MnasReward.for_directions(DIRECTIONS)
    with pytest.raises(ConfigError, match="unknown method"):
        MnasReward(target=1.0, method="linear")
    with pytest.raises(ConfigError, match="not a single-objective strategy"):
        make_strategy("mnas", seed=0, choices=CHOICES, directions=DIRECTIONS, target=1, sampler="frontier")


def test_mnas_study_is_single_objective_on_the_reward() -> None:
    s = make_strategy("mnas", seed=0, choices=CHOICES, directions=DIRECTIONS, target=0.5, w=-0.1)
    assert s.directions == ("maximize",)
    assert s.study_values([80.0, 1.0]) == [pytest.approx(80 * 2 ** -0.1)]
    assert isinstance(s.sampler, optuna.samplers.TPESampler)


# ---- our default ------------------------------------------------------------------------------------------------
def test_frontier_never_repeats_and_uses_known_objectives_and_reference() -> None:
    size = math.prod(len(v) for v in CHOICES.values())
    seen_known: list[dict] = []

    def known(params: dict) -> list[float | None]:
        seen_known.append(params)
        return [None, metrics(params)[1]]

    for opts in ({}, {"known": known, "reference": [70.0, None]}):
        got = proposals("frontier", 0, 60, **opts)
        assert len(set(got)) == 60  # never proposes an architecture twice while unseen ones remain
    assert len({tuple(p.values()) for p in seen_known}) == size  # asked once per architecture, cached
    # once everything was proposed it repeats (the caller's cache answers) instead of failing
    assert len(proposals("frontier", 0, size + 3, n_startup=5)) == size + 3


def test_frontier_finds_the_front_of_a_smooth_problem() -> None:
    rows = [dict(zip(CHOICES, combo)) for combo in itertools.product(*CHOICES.values())]
    y = np.array([metrics(p) for p in rows]) * np.array([-1, 1])
    ref = y.max(axis=0) + 1
    best = moocore.hypervolume(y, ref=ref)
    hv = {}
    for name in ("frontier", "random"):
        got = set(proposals(name, 0, 30))
        pts = np.array([metrics(dict(zip(CHOICES, g))) for g in got]) * np.array([-1, 1])
        hv[name] = moocore.hypervolume(pts, ref=ref) / best
    assert hv["frontier"] > 0.97 and hv["frontier"] > hv["random"]


# ---- kernels ------------------------------------------------------------------------------------------------------
def brute_hv(points: np.ndarray, ref: np.ndarray) -> float:
    pts = points[np.all(points < ref, axis=1)]
    return float(moocore.hypervolume(pts, ref=ref)) if len(pts) else 0.0


@pytest.mark.parametrize("m", [2, 3])
def test_hv_improvement_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(5):
        front = moocore.filter_dominated(rng.random((8, m)))
        ref = np.full(m, 1.1)
        pts = rng.random((40, m)) * 1.3 - 0.1
        got = hv_improvement(pts, front, ref)
        want = [brute_hv(np.vstack([front, p]), ref) - brute_hv(front, ref) for p in pts]
        assert np.allclose(got, want, atol=1e-12)
    assert np.allclose(hv_improvement(np.array([[0.5, 0.5]]), np.zeros((0, 2)), np.ones(2)), [0.25])


def test_rank_crowding_and_sigma_gap() -> None:
    y = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [1, 4]], dtype=float)
    rank = nondominated_rank(y)
    assert list(rank) == [0, 0, 0, 1, 0]  # equal points share a rank
    cd = crowding_distance(y, rank)
    assert np.isinf(cd[2]) and np.isinf(cd[3]) and np.isfinite(cd[1])
    front = np.array([[1.0, 1.0]])
    mean, sd = np.array([[2.0, 0.5], [2.0, 2.0], [3.0, 3.0]]), np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    k = sigma_gap(mean, sd, front, np.array([10.0, 10.0]))
    assert k[0] == pytest.approx(-8.0)  # not dominated at any k (exact objective better): only the box binds
    assert k[1] == pytest.approx(1.0) and k[2] == np.inf


def test_gp_gradient_and_incremental_posterior() -> None:
    rng = np.random.RandomState(0)
    enc = OneHot([4, 3, 5])
    x = np.column_stack([rng.randint(n, size=30) for n in enc.n_options])
    u = rng.randn(30, 1)
    y = x[:, 0] + np.sin(x[:, 2]) + 0.5 * u[:, 0] + 0.05 * rng.randn(30)
    gp = CategoricalGP(enc, 1).fit(x, y, u)
    ham = (x[:, None, :] != x[None, :, :]).astype(float)
    gp._diff = np.concatenate([ham, (u[:, None, :] - u[None, :, :]) ** 2], axis=2)
    gp._same = np.concatenate([1 - ham, u[:, None, :] * u[None, :, :]], axis=2)
    p = gp._pack() + 0.2 * rng.randn(len(gp._pack()))
    num = approx_fprime(p, lambda q: gp._nll(q)[0], 1e-6)
    assert np.allclose(num, gp._nll(p)[1], rtol=1e-3, atol=1e-3)
    pool = np.column_stack([rng.randint(n, size=50) for n in enc.n_options])
    pool_u = rng.randn(50, 1)
    m1, s1 = gp.predict(pool, pool_u)
    post = PoolPosterior(gp, pool, pool_u, x[:10], u[:10])
    post.add(x[10:], u[10:])
    m2, s2 = post.predict(y)
    assert np.allclose(m1, m2) and np.allclose(s1, s2)


def test_warp_is_monotone_and_exactly_invertible() -> None:
    y = np.r_[np.linspace(-94, -85, 50), -10.0, -20.0]
    w = Warp(y)
    t = w(y)
    assert np.all(np.diff(w(np.sort(y))) > 0)
    assert np.allclose(w.inverse(t), y)
    good = y[y <= np.median(y)]
    assert np.allclose(w(good), good)  # the better half keeps its units


def test_values_to_params_inverts_params_to_values() -> None:
    from edgenas.search.strategies._params import distributions, params_to_values, values_to_params

    choices = {"block": ["conv3x3", "dsconv3x3"], "width": [8, 16], "shape": [(1, 2), (3, 4)]}
    values = {"block": "dsconv3x3", "width": 16, "shape": (3, 4)}
    params = values_to_params(values, choices)
    assert params == {"block": "dsconv3x3", "width": 16, "shape": "(3, 4)"}
    assert all(params[k] in distributions(choices)[k].choices for k in choices)  # what Optuna accepts
    assert params_to_values(params, choices) == values
