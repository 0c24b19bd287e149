"""`edgenas search` end to end with the real compiler on SQLite: the front, resume, infeasible designs,
reproducible proposals, and bad input (one line, exit code 2)."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from search_helpers import EDGENAS, tiny_space, trials_of

# 16 networks at 64x96 on an Ethos-U55-256 given 320 KiB of SRAM: the four with MBConv-e6 heads need 372 KiB
# (flagged over_sram), and resnet + MBConv-e4 heads runs at ~206 FPS, under the FPS floor.
SPACE = tiny_space("tiny_search", "ethos-u55-256:sram_kib=320") + """\
search:
  objectives:
    - {metric: fps, direction: max}
    - {metric: sram_kib, direction: min}
  constraints:
    - sram_kib <= device
    - fps >= 210
  trials: 10
  seed: 3
"""


def run(*args: str, env: dict[str, str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([EDGENAS, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"edgenas {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("search")
    (d / "space.yaml").write_text(SPACE)
    env = {**os.environ, "EDGENAS_CACHE": str(d / "compiler-cache.sqlite"), "COLUMNS": "200"}
    return {"dir": d, "env": env}


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """fps max, sram min."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


@pytest.fixture(scope="module")
def searched(work: dict) -> dict[str, object]:
    d: Path = work["dir"]  # type: ignore[assignment]
    r = run("search", "space.yaml", "--out", "front.csv", env=work["env"], cwd=d)  # type: ignore[arg-type]
    return {**work, "first": r, "db": d / "runs" / "tiny_search" / "study.db"}


def test_search_completes_and_prints_a_non_dominated_front(searched: dict) -> None:
    r = searched["first"]
    assert "Pareto front of study tiny_search" in r.stdout
    assert "10 trials complete" in r.stdout
    trials = trials_of(searched["db"], "tiny_search")
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(done) == 10
    feasible = {t["attrs"]["arch_id"]: tuple(t["attrs"]["edgenas"]["values"]) for t in done
                if t["attrs"]["edgenas"]["feasible"]}
    with open(searched["dir"] / "front.csv", newline="") as f:
        front = list(csv.DictReader(f))
    assert front
    front_pts = {row["arch_id"]: (float(row["fps"]), float(row["sram_kib"])) for row in front}
    for arch, p in front_pts.items():  # every front point is feasible and nobody among the trials dominates it
        assert arch in feasible
        assert p == pytest.approx(feasible[arch], rel=1e-5)  # the CSV has 6 significant digits
        assert not any(dominates(q, feasible[arch]) for q in feasible.values())
    for arch, q in feasible.items():  # and every non-dominated feasible design is on the front
        if not any(dominates(o, q) for o in feasible.values()):
            assert arch in front_pts
    for arch in front_pts:  # the table lists the same designs
        assert arch in r.stdout


def test_infeasible_designs_are_flagged(searched: dict) -> None:
    done = [t for t in trials_of(searched["db"], "tiny_search") if t["state"] == "COMPLETE"]
    n_bad = 0
    for t in done:
        rec = t["attrs"]["edgenas"]
        m = rec["metrics"]
        fits = m["sram_kib"] <= 320 and not m["over_sram"] and not m["over_flash"]
        assert rec["feasible"] == (fits and m["fps"] >= 210), rec
        if not rec["feasible"]:
            n_bad += 1
            assert rec["violated"]
            if m["over_sram"]:
                assert "over_sram" in rec["violated"]
                assert any(v.startswith("sram_kib <= 320") for v in rec["violated"])
    assert n_bad > 0, "the seed was chosen so that the first 10 trials include infeasible designs"
    for t in done:  # the constraint values Optuna sees agree with the flag
        assert (max(t["attrs"]["edgenas"]["constraints"]) <= 0) == t["attrs"]["edgenas"]["feasible"]


def test_each_genotype_measured_once(searched: dict) -> None:
    con = sqlite3.connect(searched["db"])
    rows = con.execute("SELECT key, COUNT(*) FROM edgenas_evaluations GROUP BY key").fetchall()
    done = con.execute("SELECT COUNT(*), COUNT(DISTINCT arch_id) FROM edgenas_measurements "
                       "WHERE state = 'done'").fetchone()
    con.close()
    assert rows and all(n == 1 for _, n in rows)
    archs = {t["attrs"]["arch_id"] for t in trials_of(searched["db"], "tiny_search") if t["state"] == "COMPLETE"}
    assert done == (len(archs), len(archs))


def test_resume_adds_trials_up_to_the_new_total(searched: dict) -> None:
    before = [(t["number"], t["params"], t["attrs"]["edgenas"]["values"])
              for t in trials_of(searched["db"], "tiny_search") if t["state"] == "COMPLETE"]
    r = run("search", "space.yaml", "--trials", "14", "--no-progress", env=searched["env"], cwd=searched["dir"])
    assert "14 trials complete" in r.stdout
    after = [t for t in trials_of(searched["db"], "tiny_search") if t["state"] == "COMPLETE"]
    assert len(after) == 14
    assert [(t["number"], t["params"], t["attrs"]["edgenas"]["values"]) for t in after[:10]] == before
    # the same total again: nothing to do
    run("search", "space.yaml", "--trials", "14", "--no-progress", env=searched["env"], cwd=searched["dir"])
    assert len([t for t in trials_of(searched["db"], "tiny_search") if t["state"] == "COMPLETE"]) == 14


@pytest.mark.parametrize("strategy", [None, "nsga2"])
def test_same_seed_same_proposals(work: dict, strategy: str | None) -> None:
    d: Path = work["dir"]  # type: ignore[assignment]
    seqs = []
    for name in ("repro_a", "repro_b"):
        db = d / f"{name}-{strategy}.db"
        extra = ["--strategy", strategy] if strategy else []
        run("search", "space.yaml", "--storage", str(db), "--study", name, "--trials", "8", "--seed", "11",
            "--no-progress", *extra, env=work["env"], cwd=d)  # type: ignore[arg-type]
        seqs.append([t["params"] for t in trials_of(db, name)])
    assert len(seqs[0]) == 8
    assert seqs[0] == seqs[1]


BAD_CASES = {
    "unknown objective metric": (
        "objectives:\n    - {metric: accuracy, direction: max}\n",
        ["no configured evaluator produces metric 'accuracy'", "available: fps, latency_ms"]),
    "unknown constraint metric": (
        "objectives:\n    - {metric: fps, direction: max}\n  constraints: [top1 >= 0.7]\n",
        ["search.constraints[0]", "'top1'"]),
    "unknown strategy": (
        "objectives:\n    - {metric: fps, direction: max}\n  strategy: hillclimb\n",
        ["unknown strategy 'hillclimb'", "random", "nsga2", "tpe"]),
    "table missing its columns": (
        "objectives:\n    - {metric: accuracy, direction: max}\n"
        "  evaluators: [compiler, {type: table, path: acc.csv, columns: [accuracy]}]\n",
        ["missing the column(s) accuracy", "it has: backbone, head1_block, top1"]),
    "bad direction": (
        "objectives:\n    - {metric: fps, direction: up}\n",
        ["search.objectives[0].direction", "max or min"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_config_is_one_line_exit_2(work: dict, case: str) -> None:
    d: Path = work["dir"]  # type: ignore[assignment]
    body, needles = BAD_CASES[case]
    (d / "acc.csv").write_text("backbone,head1_block,top1\nshufflenet,conv3x3,0.5\n")
    cfg = d / f"bad_{case.replace(' ', '_')}.yaml"
    cfg.write_text("extends: space.yaml\nname: bad\nsearch:\n  " + body)
    # `extends` merges `search` key by key: drop the base's constraints unless the case sets its own
    if "constraints" not in body:
        cfg.write_text(cfg.read_text() + "  constraints: []\n")
    r = run("search", str(cfg), "--no-progress", env=work["env"], cwd=d, check=False)  # type: ignore[arg-type]
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unreachable_storage_is_one_line_exit_2(work: dict) -> None:
    r = run("search", "space.yaml", "--storage", "postgresql://edgenas:secret@127.0.0.1:1/nowhere", "--no-progress",
            env=work["env"], cwd=work["dir"], check=False)  # type: ignore[arg-type]
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "cannot reach storage postgresql+psycopg://edgenas:***@127.0.0.1:1/nowhere" in lines[0]
    assert "secret" not in r.stderr


def test_strategy_option_unknown_on_the_command_line(work: dict) -> None:
    r = run("search", "space.yaml", "--strategy", "nope", "--no-progress", env=work["env"], cwd=work["dir"],
            check=False)  # type: ignore[arg-type]
    assert r.returncode == 2 and "unknown strategy 'nope'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_worker_on_a_missing_study(work: dict) -> None:
    d: Path = work["dir"]  # type: ignore[assignment]
    r = run("worker", "--storage", str(d / "empty.db"), "--study", "nothing", "--no-progress", env=work["env"],
            cwd=d, check=False)
    assert r.returncode == 2
    assert "no study 'nothing'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_explains(work: dict) -> None:
    r = run("search", "--help", env=work["env"], cwd=work["dir"])  # type: ignore[arg-type]
    for s in ("objectives", "constraints", "sram_kib <= device", "--storage", "--trials", "--seed", "--strategy",
              "resumes"):
        assert s in r.stdout
    r = run("worker", "--help", env=work["env"], cwd=work["dir"])  # type: ignore[arg-type]
    assert "heartbeat" in r.stdout and "--study" in r.stdout


def test_a_space_without_a_search_section(work: dict) -> None:
    r = run("search", "flow_head_upsample", "--no-progress", env=work["env"], cwd=work["dir"],
            check=False)  # type: ignore[arg-type]
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no `search:` section" in r.stderr
