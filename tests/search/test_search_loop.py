"""The search loop in process: evaluator order and the expensive-evaluator gate, constraints, the measurement
store's claims, storage URLs, the table evaluator, and exact trial totals with several workers on SQLite."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from plugin_evaluators import pythonpath_env
from search_helpers import EDGENAS, tiny_space

from edgenas.errors import ConfigError
from edgenas.hardware.profile import load_profile_spec
from edgenas.search.evaluators import EvaluationFailed, Evaluator, Stage
from edgenas.search.objectives import Constraint, Objective, Problem, StageResult, parse_constraint
from edgenas.search.storage import (
    Claim,
    MeasurementKey,
    MeasurementStore,
    Record,
    normalise_storage_url,
    open_storage,
    redact,
)
from edgenas.search.study import create_or_load_study, trial_rows
from edgenas.search.worker import run_trials
from edgenas.space.genotype import Genotype

BASE = tiny_space("loop_tiny", "ethos-u55-256:sram_kib=320")


# ---- Problem.evaluate with stand-in evaluators ---------------------------------------------------------------


class Fake(Evaluator):
    type_name = "fake"

    def __init__(self, values: dict[str, Any], cost: str = "cheap", fail: str | None = None) -> None:
        self.values, self.cost, self.fail = values, cost, fail  # type: ignore[assignment]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.values)

    def evaluate(self, genotype: Genotype) -> dict[str, Any]:
        if self.fail:
            raise EvaluationFailed(self.fail)
        return dict(self.values)


def stage(name: str, ev: Fake) -> Stage:
    return Stage(name, ev, ev.cost, "", ev.metrics)  # type: ignore[arg-type]


def measure_log(log: list[str]):
    def measure(st: Stage, g: Genotype, known=None) -> StageResult:
        log.append(st.name)
        try:
            return StageResult(st.evaluator.evaluate(g))
        except EvaluationFailed as e:
            return StageResult(error=str(e))
    return measure


G = Genotype.of({"a": 1})


def problem(stages: list[Stage], constraints: list[Constraint] = (), objectives=None) -> Problem:  # type: ignore[assignment]
    objs = objectives or [Objective("fps", "max"), Objective("acc", "max")]
    ordered = sorted(stages, key=lambda s: s.cost == "expensive")
    return Problem(tuple(objs), tuple(constraints), tuple(ordered))


def test_cheap_first_and_the_expensive_one_only_for_feasible_candidates() -> None:
    train = stage("train", Fake({"acc": 0.9}, cost="expensive"))
    hw = stage("hw", Fake({"fps": 50.0, "sram_kib": 100.0, "over_sram": False}))
    c = Constraint("fps", ">=", 10.0, "fps >= 10")
    log: list[str] = []
    out = problem([train, hw], [c]).evaluate(G, measure_log(log))
    assert log == ["hw", "train"] and out.feasible and out.values == [50.0, 0.9]

    log.clear()
    slow = Constraint("fps", ">=", 60.0, "fps >= 60")
    out = problem([train, hw], [slow]).evaluate(G, measure_log(log))
    assert log == ["hw"] and out.skipped == ["train"] and not out.feasible
    assert out.violated == ["fps >= 60"] and out.values == [50.0, float("-inf")]
    assert out.constraint_values[0] == pytest.approx(10 / 60)


def test_a_design_over_the_memory_always_violates() -> None:
    hw = stage("hw", Fake({"fps": 50.0, "sram_kib": 100.0, "over_sram": True}))
    train = stage("train", Fake({"acc": 0.9}, cost="expensive"))
    log: list[str] = []
    out = problem([hw, train]).evaluate(G, measure_log(log))  # no constraint at all
    assert not out.feasible and out.violated == ["over_sram"] and log == ["hw"]
    assert out.constraint_values[-2] == 1.0


def test_a_failed_evaluation_is_infeasible_and_stops_the_expensive_ones() -> None:
    hw = stage("hw", Fake({"fps": 1.0}, fail="compiler said no"))
    train = stage("train", Fake({"acc": 0.9}, cost="expensive"))
    log: list[str] = []
    out = problem([hw, train]).evaluate(G, measure_log(log))
    assert not out.feasible and log == ["hw"] and "compiler said no" in (out.error or "")
    assert out.values == [float("-inf"), float("-inf")] and out.constraint_values[-1] == 1.0


# ---- constraints --------------------------------------------------------------------------------------------

AVAILABLE = ["fps", "sram_kib", "offchip_flash_kib", "dram_kib", "latency_ms", "a_sram_kib"]


def test_constraint_parsing() -> None:
    p = load_profile_spec("ethos-u55-256")
    c = parse_constraint("sram_kib <= device", p, AVAILABLE)
    assert (c.metric, c.op, c.limit) == ("sram_kib", "<=", 2048.0) and "(device)" in c.text
    assert parse_constraint("offchip_flash_kib<=device", p, AVAILABLE).limit == 8192
    assert parse_constraint("a_sram_kib <= device", p, AVAILABLE).limit == 2048  # prefixed metric
    c = parse_constraint("fps >= 10", p, AVAILABLE)
    assert c.met(10.0) and not c.met(9.9) and c.violation(5.0) == pytest.approx(0.5)
    strict = parse_constraint("latency_ms < 20", p, AVAILABLE)
    assert not strict.met(20.0) and strict.met(19.0)
    for bad, needle in [("fps >= device", "`device` is a limit only"), ("fps is big", "expected 'METRIC"),
                        ("top1 >= 0.5", "available: fps"), ("fps >= ten", "a number or `device`")]:
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
            parse_constraint(bad, p, AVAILABLE)
    with pytest.raises(ConfigError, match="gives no dram_kib"):
        parse_constraint("dram_kib <= device", p, AVAILABLE)


# ---- storage URLs and the measurement store -----------------------------------------------------------------


def test_storage_urls(tmp_path: Path) -> None:
    assert normalise_storage_url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert normalise_storage_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalise_storage_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalise_storage_url(str(tmp_path / "s.db")) == f"sqlite:///{tmp_path / 's.db'}"
    assert redact("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"
    with pytest.raises(ConfigError, match="cannot reach storage"):
        open_storage("postgresql://u@127.0.0.1:1/db")


def _store(tmp_path: Path, **kw: Any) -> MeasurementStore:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}", connect_args={"timeout": 30})
    return MeasurementStore(engine, **kw)


KEY = MeasurementKey("abc", "a=1", "64x96", "hw@1", "ev:1")


def test_a_second_asker_waits_for_the_first_and_reuses(tmp_path: Path) -> None:
    store = _store(tmp_path, heartbeat_interval=0.2, grace_period=5, poll_s=0.05)
    first = store.acquire(KEY)
    assert isinstance(first, Claim)
    got: list[Any] = []
    th = threading.Thread(target=lambda: got.append(store.acquire(KEY)))
    th.start()
    with store.heartbeat(first):
        time.sleep(0.6)  # longer than the heartbeat: the claim stays live
    assert not got
    store.finish(first, "ok", {"fps": 1.5, "inf": float("inf")}, None)
    th.join(5)
    assert isinstance(got[0], Record) and got[0].metrics == {"fps": 1.5, "inf": float("inf")}
    assert store.get(KEY) is not None and store.count_done() == 1


def test_a_stale_claim_is_taken_over_and_the_late_owner_loses(tmp_path: Path) -> None:
    store = _store(tmp_path, heartbeat_interval=0.2, grace_period=1, poll_s=0.05)
    dead = store.acquire(KEY)  # never beats again: its worker "died"
    assert isinstance(dead, Claim)
    t0 = time.monotonic()
    second = store.acquire(KEY)
    assert isinstance(second, Claim) and second.stolen_from == dead.token
    assert time.monotonic() - t0 < 5
    assert store.finish(second, "ok", {"fps": 2.0}, None)
    assert not store.finish(dead, "ok", {"fps": 9.0}, None)  # the late owner does not overwrite
    assert store.get(KEY).metrics == {"fps": 2.0}  # type: ignore[union-attr]
    with store.engine.connect() as c:
        outcomes = sorted(r[0] for r in c.execute(sa.text("SELECT outcome FROM edgenas_evaluations")))
    assert outcomes == ["lost-claim", "ok"]


def test_an_abandoned_claim_is_measured_by_the_next_asker(tmp_path: Path) -> None:
    store = _store(tmp_path)
    c1 = store.acquire(KEY)
    store.abandon(c1, "retryable")  # type: ignore[arg-type]
    assert store.get(KEY) is None
    assert isinstance(store.acquire(KEY), Claim)


# ---- the loop in process ---------------------------------------------------------------------------------------


def _setup(tmp_path: Path, search: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    text = BASE + search
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    from edgenas.search.study import prepare_from_file

    return prepare_from_file(cfg, cache_path=str(tmp_path / "compiler-cache.sqlite"))


def _run(setup: Any, tmp_path: Path, name: str = "s") -> tuple[Any, Any]:
    import optuna

    sec = setup.section
    storage = open_storage(str(tmp_path / "study.db"), heartbeat_interval=sec.heartbeat_interval,
                           grace_period=sec.grace)
    create_or_load_study(setup, storage, name, trials=sec.trials)
    run_trials(setup, name, storage, target=sec.trials, seed=sec.seed)
    return optuna.load_study(study_name=name, storage=storage), storage


def test_expensive_evaluator_sees_only_candidates_that_meet_the_cheap_limits(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls.txt"
    setup = _setup(tmp_path, f"""\
search:
  objectives:
    - {{metric: fps, direction: max}}
    - {{metric: score, direction: max}}
  constraints: [sram_kib <= device, fps >= 210]
  evaluators:   # listed expensive first: the search still runs the compiler first
    - {{type: "plugin_evaluators:fake", name: test-counting, cost: expensive, count_file: {calls}}}
    - compiler
  strategy: random
  trials: 14
  seed: 5
""", monkeypatch)
    assert [s.name for s in setup.problem.stages] == ["compiler", "test-counting"]
    study, _ = _run(setup, tmp_path)
    rows = trial_rows(study)
    assert len(rows) == 14
    called = Counter(line.split()[1] for line in calls.read_text().splitlines())
    feasible = {r.arch_id for r in rows if r.feasible}
    infeasible = {r.arch_id for r in rows if not r.feasible}
    assert infeasible and feasible
    assert set(called) == feasible  # the expensive evaluator saw exactly the feasible designs
    assert set(called.values()) == {1}  # each once, although random proposes some designs twice
    assert len({r.arch_id for r in rows}) < len(rows)
    for r in rows:
        if not r.feasible:
            assert "score" not in r.metrics
    # per design, the compiler's evaluation was logged before the expensive one
    con = sqlite3.connect(tmp_path / "study.db")
    order: dict[str, list[str]] = {}
    for arch, ev in con.execute("SELECT arch_id, evaluator FROM edgenas_evaluations ORDER BY id"):
        order.setdefault(arch, []).append(ev.split(":")[0])
    con.close()
    for arch, evs in order.items():
        assert evs == (["compiler", "test-counting"] if arch in feasible else ["compiler"])


def test_table_evaluator_gives_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["backbone,head1_block,top1"]
    for i, b in enumerate(["shufflenet", "mbconv_e4", "mbconv_e6", "resnet"]):
        for j, h in enumerate(["conv3x3", "dsconv3x3", "mbconv_e4", "mbconv_e6"]):
            lines.append(f"{b},{h},{0.5 + 0.03 * i + 0.01 * j:.3f}")
    (tmp_path / "acc.csv").write_text("\n".join(lines) + "\n")
    setup = _setup(tmp_path, """\
search:
  objectives:
    - {metric: top1, direction: max}
    - {metric: latency_ms, direction: min}
  constraints: [sram_kib <= device]
  evaluators: [compiler, {type: table, path: acc.csv, cost: expensive}]
  strategy: tpe
  trials: 6
""", monkeypatch)
    study, _ = _run(setup, tmp_path)
    for r in trial_rows(study):
        if r.feasible:
            g = r.genotype
            i = ["shufflenet", "mbconv_e4", "mbconv_e6", "resnet"].index(g["backbone"])
            j = ["conv3x3", "dsconv3x3", "mbconv_e4", "mbconv_e6"].index(g["head1_block"])
            assert r.values[0] == pytest.approx(0.5 + 0.03 * i + 0.01 * j)
            assert r.values[1] == pytest.approx(r.metrics["inference_ms"])


def test_a_changed_search_is_not_resumed_into_the_old_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    one = "search:\n  objectives: [{metric: fps, direction: max}]\n  trials: 1\n  strategy: random\n"
    setup = _setup(tmp_path, one, monkeypatch)
    storage = open_storage(str(tmp_path / "study.db"))
    create_or_load_study(setup, storage, "s", trials=1)
    create_or_load_study(setup, storage, "s", trials=3)  # same search, new total: fine
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["edgenas:trials"] == 3
    other = _setup(tmp_path, one.replace("fps, direction: max", "macs, direction: min"), monkeypatch)
    with pytest.raises(ConfigError, match="exists for a different search"):
        create_or_load_study(other, storage, "s", trials=1)


def test_three_workers_on_sqlite_stop_at_exactly_the_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = _setup(tmp_path, """\
search:
  objectives: [{metric: score, direction: max}]
  evaluators: [{type: "plugin_evaluators:fake", name: test, cost: cheap, delay_s: 0.15}]
  strategy: random
  trials: 7
  heartbeat_interval: 1
""", monkeypatch)
    db = tmp_path / "study.db"
    storage = open_storage(str(db), heartbeat_interval=1, grace_period=3)
    create_or_load_study(setup, storage, "par", trials=7)
    env = pythonpath_env({**os.environ, "EDGENAS_CACHE": str(tmp_path / "c.sqlite")})
    procs = [subprocess.Popen([EDGENAS, "worker", "--storage", str(db), "--study", "par", "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    import optuna

    st = optuna.load_study(study_name="par", storage=storage)
    states = Counter(t.state.name for t in st.get_trials())
    assert states["COMPLETE"] == 7 and states["FAIL"] == 0, states
    assert all(t.user_attrs.get("surplus") for t in st.get_trials() if t.state.name == "PRUNED")
    seeds = [int(o.split("seed ")[-1].rstrip(")\n")) for o in outs]
    assert len(set(seeds)) == 3  # every worker samples with its own seed
    con = sqlite3.connect(db)
    per_key = con.execute("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM edgenas_evaluations GROUP BY key)").fetchone()
    con.close()
    assert per_key == (1,)
