"""examples/flow_search.yaml end to end at a tiny budget: a variant that `extends:` the example (its space,
report.recommended, supernet and search sections) with a 24-network space at 16x16/32x32, a supernet trained
for a few steps and 6 search trials runs the README's command chain: supernet train -> search (front table and
CSV with the recommended designs marked) -> pareto -> stand-alone training of the top front design and of a
seed pick -> evaluate both at the search's resolution -> the verdict's figures (stand-alone EPE, FPS from the
study's compiler measurements). Marks are checked against the recommended sets the example declares (read
from its YAML here); the real budget is not run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from search_helpers import EDGENAS

from edgenas.analysis.marks import dominated_by, is_recommended
from edgenas.space.space import load_space

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flow_search.yaml"

TINY = f"""\
extends: {EXAMPLE}
name: flow_search_tiny
resolutions: [16x16]
widths: {{stem: 8, encoder: 16, encoder_units: 2, head0: 16, head1: 8, head2: 8}}
choices:
  backbone: [shufflenet, resnet]
  head1_block: [conv3x3, dsconv3x3, mbconv_e6]
  head2_block: [conv3x3, conv5x5]
  predict_kernel: [7]
  widths.head1: [8]
  widths.head2: [8, 12]
default: {{backbone: shufflenet, head1_block: conv3x3, head2_block: conv3x3, predict_kernel: 7, widths.head1: 8,
           widths.head2: 8}}
task: {{train_samples: 24, val_samples: 8}}
train: {{resolution: 16x16, epochs: 1, batch_size: 8, threads: 1, checkpoint_every: 2}}
supernet: {{random: 1, bn_samples: 16, bn_batch_size: 8}}
report: {{key_resolution: 32x32}}
search:
  resolution: 32x32
  evaluators: [compiler, {{type: supernet, checkpoint: sn}}]
  enqueue: [head1_block=conv3x3,head2_block=conv3x3]
  trials: 6
"""
SEED_PICK = "head1_block=conv3x3,head2_block=conv3x3"  # the seed's tied conv3x3 heads on its defaults


def run(args: list[str], cwd: Path, timeout: int = 300) -> str:
    r = subprocess.run([EDGENAS, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                       env={**os.environ, "EDGENAS_DATA_CACHE": str(cwd / "cache"),
                            "EDGENAS_CACHE": str(cwd / "compiler-cache.sqlite")})
    assert r.returncode == 0, f"edgenas {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_example_declares_the_flow_search() -> None:
    from edgenas.search.study import _raw_config

    raw = _raw_config(EXAMPLE)
    s = raw["search"]
    assert [o["metric"] for o in s["objectives"]] == ["epe", "fps"] and "sram_kib <= device" in s["constraints"]
    assert s["evaluators"][0] == "compiler" and s["evaluators"][1]["type"] == "supernet"
    seed_picks = [f"head1_block={h},head2_block={h}" for h in ("conv3x3", "dsconv3x3", "conv5x5")]
    assert s["enqueue"] == seed_picks  # the seed's tied heads, evaluated first
    assert s["resolution"] == raw["report"]["key_resolution"] == "192x256"  # flow_accuracy.yaml's deployment
    bench = yaml.safe_load((ROOT / "benchmarks" / "flow_space.yaml").read_text())
    assert raw["choices"] == bench["choices"] and raw["tied"] == {}  # the benchmark's space as it is
    assert {"head1_block", "head2_block", "predict_kernel", "widths.head1", "widths.head2"} <= set(raw["choices"])
    acc = yaml.safe_load((ROOT / "examples" / "flow_accuracy.yaml").read_text())
    assert raw["report"]["recommended"]["head1_block"] == acc["report"]["recommended"]["head1_block"]
    assert raw["report"]["recommended"]["head2_block"] == acc["report"]["recommended"]["head1_block"]


def test_marks_against_brute_force() -> None:
    rec = {"h1": ("a", "b"), "h2": ("a",)}
    assert is_recommended({"h1": "b", "h2": "a", "x": 3}, rec) and not is_recommended({"h1": "c", "h2": "a"}, rec)
    assert not is_recommended({"h1": "a"}, {})

    class R:
        def __init__(self, values, feasible=True):
            self.values, self.feasible = values, feasible

    front = [R((1.0, 10.0)), R((2.0, 20.0))]
    rows = [R((1.5, 9.0)), R((1.5, 15.0)), R((3.0, 30.0)), R((0.0, 0.0), feasible=False)]
    got = [(r.values, by.values if by else None) for r, by in dominated_by(rows, front, ["min", "max"])]
    assert got == [((1.5, 9.0), (1.0, 10.0)), ((1.5, 15.0), None), ((3.0, 30.0), None)]


def test_verdict_trains_front_designs_as_fast_as_each_pick() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from flow_search_verdict import front_designs_to_train

    front = [{"arch_id": a, "fps": fps, "epe": epe} for a, fps, epe in
             [("slow1", "40", "1.50"), ("slow2", "45", "1.52"), ("mid", "60", "1.53"), ("fast1", "80", "1.60"),
              ("fast2", "90", "1.55"), ("fast3", "140", "1.70"), ("pickA", "46", "1.58")]]
    picks = {"pickA": {"fps": 46.0}, "pickB": {"fps": 78.0}}
    # pick A (46 FPS): mid, fast2 are the two lowest EPEs as fast (slow1/slow2 are slower); pick B (78 FPS):
    # fast2, fast1. A pick is never its own rival.
    got = [r["arch_id"] for r in front_designs_to_train(front, picks, 2)]
    assert got == ["mid", "fast1", "fast2"]
    assert [r["arch_id"] for r in front_designs_to_train(front, {"pickB": {"fps": 200.0}}, 3)] == []


def test_tiny_flow_search_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    run(["supernet", "train", "tiny.yaml", "--out", "sn", "--no-progress"], tmp_path)
    out = run(["search", "tiny.yaml", "--storage", "sqlite:///study.db", "--study", "t", "--no-progress",
               "--out", "front.csv"], tmp_path)
    rec = {k: tuple(v) for k, v in yaml.safe_load(EXAMPLE.read_text())["report"]["recommended"].items()}
    assert "recommended" in out and "* recommended (report.recommended: head1_block conv3x3/dsconv3x3/conv5x5; " \
                                      "head2_block conv3x3/dsconv3x3/conv5x5)" in out
    with open(tmp_path / "front.csv", newline="") as f:
        front = list(csv.DictReader(f))
    assert front and all(float(r["epe"]) > 0 for r in front)
    for r in front:  # marked exactly where both heads are among the seed's
        assert (r["recommended"] == "true") == (r["head1_block"] in rec["head1_block"]
                                                 and r["head2_block"] in rec["head2_block"])
    # the seed pick was evaluated first (search.enqueue) and is placed: on the front, or dominated by a front design
    from search_helpers import trials_of

    first = trials_of(tmp_path / "study.db", "t")[0]
    seed_text = str(load_space(str(tmp_path / "tiny.yaml")).parse_genotype(SEED_PICK))
    assert first["attrs"]["edgenas"]["genotype"] == seed_text
    seed_on_front = first["attrs"]["arch_id"] in {r["arch_id"] for r in front}
    assert seed_on_front or "recommended trial 0 (" in out
    listed = list(csv.DictReader(io.StringIO(run(["pareto", "front.csv", "--min", "epe", "--max", "fps"], tmp_path))))
    assert {r["arch_id"] for r in listed} == {r["arch_id"] for r in front}  # the front is its own front

    # verdict step: the best-EPE front design and a seed pick trained stand-alone, evaluated at 32x32
    top = min(front, key=lambda r: float(r["epe"]))
    choices = ("backbone", "head1_block", "head2_block", "predict_kernel", "widths.head1", "widths.head2")
    genotype = ",".join(f"{c}={top[c]}" for c in choices)
    epe = {}
    for name, g in (("top", genotype), ("seed", SEED_PICK)):
        run(["train", "tiny.yaml", "-g", g, "--out", f"train/{name}", "--no-progress"], tmp_path)
        record = json.loads((tmp_path / "train" / name / "run.json").read_text())
        assert record["status"] == "done"
        res = json.loads(run(["evaluate", "tiny.yaml", "-c", f"train/{name}/best.pt", "-r", "32x32", "--json"],
                             tmp_path))
        epe[name] = res["epe"]
    assert all(v > 0 for v in epe.values())
    # the seed pick's FPS and SRAM: the study compiled every network before the search
    con = sqlite3.connect(tmp_path / "study.db")
    meas = {a: json.loads(m) for a, g, ev, m in con.execute(
        "SELECT arch_id, genotype, evaluator, metrics FROM edgenas_measurements") if ev.startswith("compiler:")}
    con.close()
    assert len(meas) == 24
    space = load_space(str(tmp_path / "tiny.yaml"))
    seed = space.parse_genotype(SEED_PICK)
    assert is_recommended(seed.as_dict(), rec)
    assert meas[seed.arch_id]["fps"] > 0 and meas[top["arch_id"]]["fps"] == pytest.approx(float(top["fps"]))


def test_verdict_script_runs_the_chain_and_resumes(tmp_path: Path) -> None:
    """benchmarks/flow_search_verdict.py on the tiny variant: search, stand-alone training of the seed pick
    and of front designs, evaluation at both resolutions; run again, it trains nothing more and its verdict
    column is what the recorded figures say (lower stand-alone EPE at equal or better FPS)."""
    # a slow "pick" (an MBConv e6 Head1), so that faster front designs exist to be trained and judged
    slow_pick = "head1_block=mbconv_e6,head2_block=conv5x5"
    (tmp_path / "tiny.yaml").write_text(TINY.replace(f"enqueue: [{SEED_PICK}]", f'enqueue: ["{slow_pick}"]'))
    run(["supernet", "train", "tiny.yaml", "--out", "sn", "--no-progress"], tmp_path)
    env = {**os.environ, "EDGENAS_DATA_CACHE": str(tmp_path / "cache"),
           "EDGENAS_CACHE": str(tmp_path / "compiler-cache.sqlite")}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "flow_search_verdict.py"), "--config", "tiny.yaml",
           "--supernet", "sn", "--top", "2", "--jobs", "1", "--out-dir", str(tmp_path / "out")]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    train_dir = tmp_path / "out" / "train"
    runs = {p: p.stat().st_mtime_ns for p in [*train_dir.rglob("run.json"), *train_dir.rglob("verdict_eval.json")]}
    assert len(runs) >= 4
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in runs} == runs  # nothing trained or evaluated again
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    designs = verdict["designs"]
    seed_arch = load_space(str(tmp_path / "tiny.yaml")).parse_genotype(slow_pick).arch_id
    assert designs[seed_arch]["name"].startswith("seed pick")
    for arch, d in designs.items():
        assert (tmp_path / "out" / "train" / arch / "best.pt").exists()
        assert set(d["epe"]) == {"16x16", "32x32"} and all(v > 0 for v in d["epe"].values())
    # the kept evaluation is what `edgenas evaluate` measures on the checkpoint now
    arch, d = next(iter(designs.items()))
    fresh = json.loads(run(["evaluate", "tiny.yaml", "-c", str(train_dir / arch / "best.pt"), "-r", "32x32",
                            "--json"], tmp_path))
    assert fresh["epe"] == pytest.approx(d["epe"]["32x32"], rel=1e-6)
    pick = designs[seed_arch]
    for arch, d in designs.items():
        if arch == seed_arch:
            continue
        wins = d["epe"]["16x16"] < pick["epe"]["16x16"] and d["fps"] >= pick["fps"]
        row = next(line for line in again.stdout.splitlines() if f"`{d['genotype']}`" in line)
        assert row.rstrip(" |").endswith("mbconv_e6") == wins, row
    assert len(designs) > 1  # front designs were trained, not only the pick
