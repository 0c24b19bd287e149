"""bench-search: the measure against an independent brute-force computation (at the budget and on every
prefix of a run), budget accounting (repeats are free, proposals are bounded), what each strategy is told
(the floor as the default's reference point, as the informed anchors' constraint; hardware-free mode), the
JSON schema through the CLI, and bad input (exit 2)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import typer
from search_helpers import EDGENAS
from typer.testing import CliRunner

from edgenas.cli.bench import register
from edgenas.errors import ConfigError
from edgenas.search import bench
from edgenas.search.bench import (
    INFORMED_ANCHORS,
    Objective,
    Problem,
    RunResult,
    evaluations_to_reach,
    parse_floor,
    parse_objective,
    parse_strategy,
    run_bench,
    run_one,
    summarise,
)
from edgenas.search.strategies import ANCHORS, DEFAULT_STRATEGY, Strategy


def synthetic_table(path: Path, seed: int = 0) -> Path:
    """3 x 3 x 3 = 27 architectures as NAME=VALUE keys, random accuracy and latency."""
    rng = np.random.default_rng(seed)
    lines = ["arch,acc,lat,energy"]
    for a, b, c in itertools.product(["x", "y", "z"], [1, 2, 3], ["p", "q", "r"]):
        lines.append(f'"a={a},b={b},c={c}",{rng.uniform(50, 95):.3f},{rng.uniform(1, 20):.3f},{rng.uniform(1, 9):.2f}')
    path.write_text("\n".join(lines) + "\n")
    return path


def problem(table: Path, floor: float = 70.0, **kw: Any) -> Problem:
    return Problem(table=table, arch_col="arch", objectives=(Objective("acc", "max"), Objective("lat", "min")),
                   floors={"acc": floor}, **kw).load()


# ---- the measure against brute force ---------------------------------------------------------------------------
def brute_front(acc: list[float], lat: list[float], floor: float) -> list[int]:
    region = [i for i in range(len(acc)) if acc[i] >= floor]
    return [i for i in region if not any(acc[j] >= acc[i] and lat[j] <= lat[i] and (acc[j] > acc[i] or lat[j] < lat[i])
                                         for j in region)]


def brute_hv(points: list[tuple[float, float]], floor: float, ref_lat: float) -> float:
    """Area of the union of boxes [floor, acc] x [lat, ref_lat], by sweeping the distinct latencies."""
    pts = [(a, t) for a, t in points if a > floor and t < ref_lat]
    xs = sorted({t for _, t in pts} | {ref_lat})
    area = 0.0
    for x0, x1 in itertools.pairwise(xs):
        best = max((a for a, t in pts if t <= x0), default=floor)
        area += (best - floor) * (x1 - x0)
    return area


def test_measure_matches_brute_force(tmp_path: Path) -> None:
    for seed in range(4):
        p = problem(synthetic_table(tmp_path / f"t{seed}.csv", seed), floor=65.0)
        acc, lat = list(p.values[:, 0]), list(p.values[:, 1])
        front = brute_front(acc, lat, 65.0)
        assert sorted(p.true_front) == sorted(front)
        ref_lat = 1.05 * max(lat[i] for i in front)
        assert p.ref[1] == pytest.approx(ref_lat) and p.ref[0] == -65.0
        true_hv = brute_hv([(acc[i], lat[i]) for i in front], 65.0, ref_lat)
        assert p.true_hv == pytest.approx(true_hv)
        rng = np.random.default_rng(seed)
        for _ in range(10):
            rows = list(rng.choice(len(acc), size=rng.integers(1, 15), replace=False))
            ratio, found = p.measure(rows)
            assert ratio == pytest.approx(brute_hv([(acc[i], lat[i]) for i in rows], 65.0, ref_lat) / true_hv)
            assert found == len(set(rows) & set(front))
        assert p.measure(front) == (pytest.approx(1.0), len(front))


def test_measure_of_a_known_set(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    t.write_text("arch,acc,lat\n"
                 '"k=a",95,10\n"k=b",92,4\n"k=c",91,6\n"k=d",89,1\n"k=e",92,4\n"k=f",90,20\n')
    p = problem(t, floor=90.0)
    # region: a b c e f; front: a (95, 10), b and e (92, 4; equal points are all kept); ref = (90, 10.5)
    assert sorted(p.keys[i] for i in p.true_front) == ["k=a", "k=b", "k=e"]
    assert p.ref[1] == pytest.approx(10.5)
    assert p.true_hv == pytest.approx(2 * 6.5 + 3 * 0.5)  # 14.5
    ratio, found = p.measure([p.keys.index("k=c"), p.keys.index("k=d"), p.keys.index("k=f")])
    assert ratio == pytest.approx(1 * 4.5 / 14.5) and found == 0


def test_trajectory_matches_brute_force_on_every_prefix(tmp_path: Path) -> None:
    for seed in range(3):
        p = problem(synthetic_table(tmp_path / f"t{seed}.csv", seed), floor=65.0)
        acc, lat = list(p.values[:, 0]), list(p.values[:, 1])
        ref_lat = 1.05 * max(lat[i] for i in brute_front(acc, lat, 65.0))
        true_hv = brute_hv([(acc[i], lat[i]) for i in brute_front(acc, lat, 65.0)], 65.0, ref_lat)
        order = list(np.random.default_rng(seed).permutation(len(acc)))
        traj = p.trajectory(order)
        assert len(traj) == len(order)
        for n in range(1, len(order) + 1):
            assert traj[n - 1] == pytest.approx(brute_hv([(acc[i], lat[i]) for i in order[:n]], 65.0, ref_lat)
                                                / true_hv)
        assert traj[-1] == pytest.approx(1.0)


def _run(label: str, seed: int, order: list[int], p: Problem) -> RunResult:
    ratio, found = p.measure(order)
    return RunResult(label, seed, ratio, found, len(order), len(order), 0.0, tuple(order))


def test_summary_at_checkpoints_and_evaluations_to_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "CHECKPOINTS", (5, 10))
    p = problem(synthetic_table(tmp_path / "t.csv", 1), floor=65.0)
    acc, lat = list(p.values[:, 0]), list(p.values[:, 1])
    front = brute_front(acc, lat, 65.0)
    ref_lat = 1.05 * max(lat[i] for i in front)
    true_hv = brute_hv([(acc[i], lat[i]) for i in front], 65.0, ref_lat)

    def ratio(rows: list[int]) -> float:
        return brute_hv([(acc[i], lat[i]) for i in rows], 65.0, ref_lat) / true_hv

    rng = np.random.default_rng(7)
    labels = [DEFAULT_STRATEGY, "random", "tpe+floor"]
    specs = [parse_strategy(x) for x in labels]
    orders = {(x, s): list(rng.permutation(len(acc))[:12]) for x in labels for s in range(3)}
    runs = [_run(x, s, o, p) for (x, s), o in orders.items()]
    out = summarise(p, specs, 3, 12, runs)
    for x in labels:
        at = out["strategies"][x]["hv_ratio_median_at"]
        assert list(at) == ["5", "10", "12"]
        for n in (5, 10, 12):
            assert at[str(n)] == pytest.approx(float(np.median([ratio(orders[x, s][:n]) for s in range(3)])), abs=1e-4)
        assert at["12"] == pytest.approx(out["strategies"][x]["hv_ratio_median"], abs=1e-4)
    finals = {x: float(np.median([ratio(orders[x, s]) for s in range(3)])) for x in labels[1:]}
    best = max(finals, key=finals.get)
    need = next((n for n in range(1, 13)
                 if np.median([ratio(orders[DEFAULT_STRATEGY, s][:n]) for s in range(3)]) >= finals[best] - 1e-12),
                None)
    assert out["default_vs_best_anchor"] == {"anchor": best, "hv_ratio_median": pytest.approx(finals[best], abs=1e-4),
                                             "default_evaluations_to_reach": need}
    assert summarise(p, specs[1:], 3, 12, runs)["default_vs_best_anchor"] is None  # no default, nothing to compare


def test_evaluations_to_reach() -> None:
    assert evaluations_to_reach(np.array([0.1, 0.5, 0.5, 0.9]), 0.5) == 2
    assert evaluations_to_reach(np.array([0.1, 0.5, 0.5, 0.9]), 0.9) == 4
    assert evaluations_to_reach(np.array([0.1, 0.5]), 0.6) is None


# ---- budget accounting ------------------------------------------------------------------------------------------
def test_repeats_spend_no_budget(tmp_path: Path) -> None:
    p = problem(synthetic_table(tmp_path / "t.csv"))
    r = run_one(p, parse_strategy("random"), seed=0, budget=27)
    assert r.evaluated == 27 and r.proposals > 27 and len(set(r.order)) == 27  # random repeats itself on 27
    assert r.hv_ratio == pytest.approx(1.0) and r.front_points_found == len(p.true_front)


class _Stuck(optuna.samplers.BaseSampler):
    """Proposes the same architecture forever."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, dist):
        return dist.choices[0]


def test_proposals_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = problem(synthetic_table(tmp_path / "t.csv"))
    monkeypatch.setattr(bench, "make_strategy", lambda name, **kw: Strategy(name, _Stuck(), tuple(kw["directions"])))
    r = run_one(p, parse_strategy("random"), seed=0, budget=5)
    assert r.evaluated == 1 and r.proposals == bench.PROPOSALS_PER_BUDGET * 5


def test_hardware_free_gives_known_latency_to_strategies_that_take_it(tmp_path: Path) -> None:
    p = problem(synthetic_table(tmp_path / "t.csv"), hardware_free=True)
    assert p.free_columns == ("lat",)
    known = p.known_fn()
    row = 5
    params = dict(zip(p.choices, [v for v in p.keys[row].replace(",", "=").split("=")[1::2]]))
    params = {k: type(p.choices[k][0])(v) if not isinstance(p.choices[k][0], str) else v for k, v in params.items()}
    assert known(params) == [None, pytest.approx(p.values[row, 1])]
    opts = p.strategy_options(parse_strategy(DEFAULT_STRATEGY))
    assert "known" in opts and opts["reference"] == [70.0, None]
    assert "known" not in p.strategy_options(parse_strategy("tpe"))  # anchors run as in the normal mode
    assert "reference" not in p.strategy_options(parse_strategy(f"{DEFAULT_STRATEGY}:floor=off"))
    with pytest.raises(ConfigError, match="every objective free"):
        Problem(table=p.table, arch_col="arch", objectives=p.objectives, floors={}, hardware_free=True,
                free=("acc", "lat")).load()


def _graded_table(path: Path) -> Path:
    """4^4 = 256 architectures; accuracy and latency both grow with the choices (a trade-off), so a high
    floor leaves only the slow quarter of the space inside the region of interest."""
    rng = np.random.default_rng(3)
    lines = ["arch,acc,lat"]
    for a, b, c, d in itertools.product(range(4), repeat=4):
        size = a + b + c + d
        lines.append(f'"a={a},b={b},c={c},d={d}",{60 + 2.5 * size + rng.uniform(0, 2):.3f},'
                     f'{1 + size + rng.uniform(0, 0.5):.3f}')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_informed_anchors_are_told_the_floor_as_a_constraint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = synthetic_table(tmp_path / "t.csv")
    acc = {}  # the table read back independently: arch -> accuracy
    for line in t.read_text().splitlines()[1:]:
        key, rest = line[1:].split('",')
        acc[key] = float(rest.split(",")[0])
    p = problem(t, floor=70.0)
    studies: list[optuna.Study] = []
    create = optuna.create_study
    monkeypatch.setattr(optuna, "create_study", lambda **kw: studies.append(create(**kw)) or studies[-1])
    for label in INFORMED_ANCHORS:
        run_one(p, parse_strategy(label), seed=0, budget=12)
        trials = studies[-1].get_trials(states=[optuna.trial.TrialState.COMPLETE])
        assert len(trials) >= 12
        for tr in trials:
            key = ",".join(f"{k}={v}" for k, v in tr.params.items())
            assert tr.constraints == {"floor:acc": pytest.approx(70.0 - acc[key])}
    for label in ANCHORS:  # the plain anchors are told nothing
        run_one(p, parse_strategy(label), seed=0, budget=12)
        assert all(tr.constraints == {} for tr in studies[-1].get_trials())


def test_informed_tpe_spends_more_of_its_budget_above_the_floor(tmp_path: Path) -> None:
    p = problem(_graded_table(tmp_path / "g.csv"), floor=80.0)
    above = (p.values[:, 0] >= 80.0).mean()
    assert 0.1 < above < 0.4

    def share(label: str) -> float:  # share of the evaluations after the first 15 that met the floor
        runs = [run_one(p, parse_strategy(label), seed=s, budget=40) for s in range(3)]
        return float(np.mean([p.values[list(r.order[15:]), 0] >= 80.0 for r in runs]))

    plain, informed = share("tpe"), share("tpe+floor")  # about 0.19 and 0.51 (NSGA-II's first generation
    assert informed > plain + 0.15, (plain, informed)   # is random: its constraint shows only after 50)


def test_who_can_be_told_the_floor(tmp_path: Path) -> None:
    p = problem(synthetic_table(tmp_path / "t.csv"))
    assert INFORMED_ANCHORS == ("nsga2+floor", "tpe+floor")
    s = parse_strategy("tpe+floor")
    assert (s.label, s.name, s.options) == ("tpe+floor", "tpe", (("floor", "on"),))
    assert p.floor_constraints(s) == [("floor:acc", 0, -1.0)] and "floor" not in p.strategy_options(s)
    assert p.floor_constraints(parse_strategy("nsga2:floor=on")) == [("floor:acc", 0, -1.0)]
    assert p.floor_constraints(parse_strategy("tpe")) == []  # plain: off unless asked
    assert p.floor_constraints(parse_strategy(DEFAULT_STRATEGY)) == []  # the default takes it as its reference
    with pytest.raises(ConfigError, match="cannot be told the floor"):
        p.strategy_options(parse_strategy("random+floor"))
    with pytest.raises(ConfigError, match="only suffix is \\+floor"):
        parse_strategy("tpe+known")
    p_min = Problem(table=p.table, arch_col="arch", objectives=(Objective("acc", "max"), Objective("lat", "min")),
                    floors={"lat": 15.0}).load()
    assert p_min.floor_constraints(s) == [("floor:lat", 1, 1.0)]  # a minimised objective: value - limit


def test_parallel_runs_equal_serial_runs(tmp_path: Path) -> None:
    args = dict(table=synthetic_table(tmp_path / "t.csv"), arch_col="arch",
                objectives=(Objective("acc", "max"), Objective("lat", "min")), floors={"acc": 70.0})
    specs = [parse_strategy("random"), parse_strategy("evolution:population_size=4:sample_size=2")]
    serial, rs = run_bench(args, specs, seeds=2, budget=8, jobs=1)
    parallel, rp = run_bench(args, specs, seeds=2, budget=8, jobs=2)
    assert serial == parallel and [r.order for r in rs] == [r.order for r in rp]


# ---- parsing -----------------------------------------------------------------------------------------------------
def test_parsers() -> None:
    assert parse_objective("cifar10_acc:max") == Objective("cifar10_acc", "max")
    assert parse_objective("a:b:MIN") == Objective("a:b", "min")
    assert parse_floor("acc=90.5") == ("acc", 90.5)
    s = parse_strategy("mnas:target=3:w=-0.1")
    assert (s.label, s.name, s.options) == ("mnas:target=3:w=-0.1", "mnas", (("target", "3"), ("w", "-0.1")))
    for bad in ("acc", "acc:maximum", ":max"):
        with pytest.raises(ConfigError, match="COLUMN:max"):
            parse_objective(bad)
    for bad in ("acc", "acc=x", "=3", "acc=inf"):
        with pytest.raises(ConfigError, match="COLUMN=NUMBER"):
            parse_floor(bad)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_strategy("tpe:gamma")
    specs = bench.strategy_list(["tpe", "evolution", "evolution", "tpe+floor"])
    assert [s.label for s in specs] == [DEFAULT_STRATEGY, *ANCHORS, *INFORMED_ANCHORS, "evolution"]


# ---- the CLI ------------------------------------------------------------------------------------------------------
def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, so the command is addressed by name as in `edgenas bench-search`
        pass

    register(app)
    return app


def test_cli_prints_the_json_schema(tmp_path: Path) -> None:
    t = synthetic_table(tmp_path / "t.csv")
    res = CliRunner().invoke(cli_app(), ["bench-search", "--table", str(t), "--objective", "acc:max", "--objective",
                                         "lat:min", "--floor", "acc=70", "--budget", "6", "--seeds", "2",
                                         "--strategies", "evolution", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert list(out) == ["budget", "seeds", "default", "strategies", "true_front_points", "default_vs_best_anchor"]
    assert out["budget"] == 6 and out["seeds"] == 2 and out["default"] == DEFAULT_STRATEGY
    assert list(out["strategies"]) == [DEFAULT_STRATEGY, *ANCHORS, *INFORMED_ANCHORS, "evolution"]
    for v in out["strategies"].values():
        assert list(v) == ["hv_ratio_median", "hv_ratio_min", "front_points_found_median", "hv_ratio_median_at"]
        assert 0 <= v["hv_ratio_min"] <= v["hv_ratio_median"] <= 1
        assert v["hv_ratio_median_at"] == {"6": pytest.approx(v["hv_ratio_median"], abs=1e-4)}  # no earlier one
    assert list(out["default_vs_best_anchor"]) == ["anchor", "hv_ratio_median", "default_evaluations_to_reach"]
    assert out["default_vs_best_anchor"]["anchor"] in (*ANCHORS, *INFORMED_ANCHORS)
    assert out["true_front_points"] == len(problem(t).true_front)


@pytest.mark.parametrize("args,match", [
    (["--strategies", "annealing"], "unknown strategy 'annealing'"),
    (["--objective", "acc:max", "--objective", "watts:min"], "missing column.*watts"),
    (["--objective", "acc:max", "--objective", "lat"], "COLUMN:max or COLUMN:min"),
    (["--floor", "energy=3"], "floor column 'energy' is not an objective"),
    (["--floor", "acc=99.9"], "no row meets the floor"),
    (["--arch-col", "cell"], "missing column.*cell"),
    (["--budget", "0"], "budget must be >= 1"),
    (["--strategies", "mnas"], "needs the option target"),
    (["--free", "lat"], "--free needs --hardware-free"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], match: str) -> None:
    t = synthetic_table(tmp_path / "t.csv")
    base = ["bench-search", "--table", str(t), "--budget", "5", "--seeds", "1", "--jobs", "1"]
    if "--objective" not in args:
        base += ["--objective", "acc:max", "--objective", "lat:min"]
    if "--floor" not in args:
        base += ["--floor", "acc=70"]
    res = CliRunner().invoke(cli_app(), base + args)
    assert res.exit_code == 2, res.output
    import re

    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgenas: error: ") and re.search(match, lines[0])


def test_edgenas_command_is_wired(tmp_path: Path) -> None:
    t = synthetic_table(tmp_path / "t.csv")
    res = subprocess.run([EDGENAS, "bench-search", "--table", str(tmp_path / "absent.csv"), "--objective", "acc:max",
                          "--objective", "lat:min", "--floor", "acc=70"], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot read the table" in res.stderr
    res = subprocess.run([EDGENAS, "bench-search", "--table", str(t), "--objective", "acc:max", "--objective",
                          "lat:min", "--floor", "acc=70", "--budget", "4", "--seeds", "1", "--jobs", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)["strategies"]) == {DEFAULT_STRATEGY, *ANCHORS, *INFORMED_ANCHORS}
