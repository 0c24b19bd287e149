"""`edgenas search` on the built-in NAS-Bench-201 space against a table of known metrics (`space: nb201`):
every trial's metrics are the table's row for its cell, the front is the brute-force non-dominated set of
the feasible trials, and a table-only space refuses evaluators that need a network (one line, exit 2)."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess

import pytest
from search_helpers import EDGENAS, trials_of

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = ["e01", "e02", "e12", "e03", "e13", "e23"]  # the order of the NB201 string: node 1, node 2, node 3


def nb201_string(cell: dict[str, str]) -> str:
    """Written out here, not taken from edgenas: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""
    return (f"|{cell['e01']}~0|+|{cell['e02']}~0|{cell['e12']}~1|+"
            f"|{cell['e03']}~0|{cell['e13']}~1|{cell['e23']}~2|")


def metrics(cell: dict[str, str]) -> tuple[float, float]:
    """A synthetic smooth trade-off: convolutions raise accuracy and latency, `none` on the path to the output
    costs accuracy."""
    gain = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}
    cost = {"none": 0.0, "skip_connect": 0.05, "nor_conv_1x1": 0.4, "nor_conv_3x3": 1.1, "avg_pool_3x3": 0.2}
    weight = {"e01": 1.0, "e02": 0.8, "e12": 1.2, "e03": 0.6, "e13": 0.9, "e23": 1.5}
    acc = 70 + sum(weight[e] * gain[cell[e]] for e in EDGES) - (4.0 if cell["e23"] == "none" else 0.0)
    lat = 1 + sum(cost[cell[e]] for e in EDGES)
    return round(acc, 4), round(lat, 4)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("nb201")
    table = {}
    with open(d / "cells.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "arch", "acc", "lat_ms"])
        for i, combo in enumerate(itertools.product(OPS, repeat=6)):
            cell = dict(zip(EDGES, combo))
            table[nb201_string(cell)] = metrics(cell)
            w.writerow([i, nb201_string(cell), *metrics(cell)])
    (d / "search.yaml").write_text("""\
space: nb201
name: nb201_synthetic
search:
  objectives:
    - {metric: acc, direction: max}
    - {metric: lat_ms, direction: min}
  constraints: ["acc >= 76"]
  evaluators:
    - {type: table, path: cells.csv, key_column: arch}
  trials: 30
  seed: 1
""")
    env = {**os.environ, "EDGENAS_CACHE": str(d / "cache.sqlite")}
    r = subprocess.run([EDGENAS, "search", "search.yaml", "--out", "front.csv", "--no-progress"], cwd=d, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return {"dir": d, "env": env, "table": table, "stdout": r.stdout}


def test_trials_are_table_rows_and_the_front_is_non_dominated(work: dict) -> None:
    d = work["dir"]
    trials = [t for t in trials_of(d / "runs" / "nb201_synthetic" / "study.db", "nb201_synthetic")
              if t["state"] == "COMPLETE"]
    assert len(trials) == 30
    seen = {}
    for t in trials:
        # Optuna stores categorical params as the choice index: map back through the ops list
        cell = {e: OPS[int(t["params"][e])] for e in EDGES}
        want = work["table"][nb201_string(cell)]
        rec = t["attrs"]["edgenas"]
        assert (rec["metrics"]["acc"], rec["metrics"]["lat_ms"]) == pytest.approx(want)
        assert rec["feasible"] == (want[0] >= 76)
        seen[nb201_string(cell)] = want
    assert len(seen) == 30  # never the same cell twice
    feasible = {a: v for a, v in seen.items() if v[0] >= 76}
    truth = {a for a, v in feasible.items()
             if not any(o[0] >= v[0] and o[1] <= v[1] and o != v for o in feasible.values())}
    with open(d / "front.csv", newline="") as f:
        front = list(csv.DictReader(f))
    got = {nb201_string({e: row[e] for e in EDGES}) for row in front}
    assert truth and got == truth


@pytest.mark.parametrize("case,needle", [
    ("evaluators: [compiler]", "known only through tables"),
    ("evaluators: [{type: table, path: cells.csv, key_column: index_of_arch}]", "has no column 'index_of_arch'"),
    ("resolution: 32x32\n  evaluators: [{type: table, path: cells.csv, key_column: arch}]",
     "not built at a resolution"),
])
def test_table_only_space_bad_input(work: dict, case: str, needle: str) -> None:
    d = work["dir"]
    (d / "bad.yaml").write_text(f"space: nb201\nsearch:\n  objectives: [{{metric: acc, direction: max}}]\n  {case}\n")
    r = subprocess.run([EDGENAS, "search", "bad.yaml"], cwd=d, env=work["env"], capture_output=True, text=True)
    assert r.returncode == 2 and needle in r.stderr and "bad.yaml" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_table_space(work: dict) -> None:
    d = work["dir"]
    (d / "bad.yaml").write_text("space: nb301\nsearch:\n  objectives: [{metric: acc, direction: max}]\n")
    r = subprocess.run([EDGENAS, "search", "bad.yaml"], cwd=d, env=work["env"], capture_output=True, text=True)
    assert r.returncode == 2 and "allowed: nb201" in r.stderr and "space" in r.stderr, r.stderr


def test_limits_on_objectives_become_the_reference_point(work: dict) -> None:
    from edgenas.search.study import objective_limits, prepare_from_file

    d = work["dir"]
    (d / "limits.yaml").write_text((d / "search.yaml").read_text().replace(
        'constraints: ["acc >= 76"]', 'constraints: ["acc >= 76", "acc > 78", "acc <= 95", "lat_ms < 3"]'))
    setup = prepare_from_file(d / "limits.yaml")
    # the tightest limit on each objective's worse side: acc > 78 (not the upper bound 95), lat_ms < 3
    assert objective_limits(setup.problem) == [78.0, 3.0]
    assert objective_limits(prepare_from_file(d / "search.yaml").problem) == [76.0, None]
