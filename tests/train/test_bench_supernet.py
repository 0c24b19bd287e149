"""bench-supernet: the supernet rows' correlations against scipy on the same vectors, a supernet set against a
reference fabricated from its own ranking (tau +1, bench-proxies' folder read and never retrained), resume
after an interruption (finished work kept, the same figures), and bad input as one line with exit code 2.
The reference runs are planted in bench-proxies' record format, so no stand-alone training runs here; the
supernets are real (tiny digits-hard at 16x16, a few steps). No timing is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import kendalltau, spearmanr
from supernet_helpers import cli

from edgenas.errors import ConfigError
from edgenas.space.space import load_space
from edgenas.train import bench_proxies as bp
from edgenas.train import bench_supernet as bs
from edgenas.train.bench_tables import markdown_table

ROOT = Path(__file__).resolve().parents[2]
TINY = """name: tiny_digits
network: stages
input_channels: 1
resolutions: [16x16]
widths: {stem: 4, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage0_block: [conv3x3, dsconv3x3, resnet]
  stage1_block: [conv3x3, dsconv3x3]
hardware: [ethos-u55-128]
task: {type: digits-hard, train_samples: 48, val_samples: 32}
train: {epochs: 2, batch_size: 16}
supernet: {bn_samples: 32, bn_batch_size: 16}
"""
PROXIES = (*bp.PROXY_NAMES, *bp.BASELINE_NAMES)


def plant_reference(settings: bp.BenchSettings, genotypes, runs: Path, metric: dict[str, float]) -> None:
    """bench-proxies' records of every unit, as its workers write them: seed A = `metric`, seed B and short
    training a fixed perturbation of it, proxies arbitrary."""
    runs.mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(bp.plan(settings, genotypes)):
        m = metric[it.arch_id]
        if it.kind == "proxy":
            body = {"scores": {p: float((i * 7 + k) % 5) for k, p in enumerate(PROXIES)},
                    "seconds": {p: 0.01 for p in PROXIES}, "cpu": {p: 0.01 for p in PROXIES}}
        else:
            shift = 0.0 if it.seed == settings.seeds["a"] else (1.0 if it.kind == "ref" else -1.0) * (i % 3)
            body = {"metric": m + shift, "seconds": 1.0, "cpu_seconds": 1.0}
        (runs / f"{it.key}.json").write_text(json.dumps({"status": "done", "planted": True, **body}))


def plant_supernet(folder: Path, scores: dict[str, float], seconds: float = 10.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps({"status": "done", "seconds": seconds, "cpu_seconds": seconds,
                                                   "epochs": 3}))
    (folder / "scores.json").write_text(json.dumps({
        "setup_seconds": 1.0, "setup_cpu_seconds": 1.0,
        "scores": {a: {"metric": v, "recalibration_seconds": 0.5, "score_seconds": 0.25, "cpu_seconds": 0.75}
                   for a, v in scores.items()}}))


# ---- statistics on planted records (no training) ---------------------------------------------------------


def test_supernet_rows_equal_scipy_and_cost_counts_everything(tmp_path: Path) -> None:
    """On the flow space (EPE, lower is better): the supernet rows' tau and rho are scipy's on the same
    vectors (-EPE of seed A, -supernet EPE), within-backbone figures are present, the cost is training +
    preparation + recalibration + scoring of every genotype."""
    cfg = str(ROOT / "benchmarks" / "flow_space.yaml")
    space = load_space(cfg)
    gs = bp.read_genotypes(space, "10", sample_seed=3)
    s = bs.make_settings(cfg, len(gs), preset="smoke")
    rng = __import__("random").Random(5)
    ref = {g.arch_id: 1.0 + rng.random() for g in gs}
    plant_reference(s.reference, gs, tmp_path / "ref.runs", ref)
    est = {"spos": {a: v + rng.gauss(0, 0.3) for a, v in ref.items()},
           "sandwich": {a: rng.random() for a in ref},
           "sandwich-labels": {a: v + rng.gauss(0, 1.0) for a, v in ref.items()}}
    for st, sc in est.items():
        plant_supernet(tmp_path / "out.runs" / st, sc)
    summary = bs.summarise(s, space, gs, tmp_path / "out.json", tmp_path / "ref.json", resamples=50)
    a = [-ref[g.arch_id] for g in gs]
    for st, sc in est.items():
        e = summary["estimates"][f"supernet_{st}"]
        x = [-sc[g.arch_id] for g in gs]
        assert e["tau"] == pytest.approx(kendalltau(x, a).statistic, abs=1e-12)
        assert e["spearman"] == pytest.approx(spearmanr(x, a).statistic, abs=1e-12)
        assert e["tau_ci"][0] <= e["tau_ci"][1] and e["spearman_ci"][0] <= e["spearman_ci"][1]
        assert "within" in e and e["top_k"]["k"] == 5
        assert e["seconds_total"] == pytest.approx(10.0 + 1.0 + len(gs) * 0.75)
        assert e["cpu_seconds_total"] == pytest.approx(10.0 + 1.0 + len(gs) * 0.75)
        # per genotype: training and preparation shared over the list, plus one genotype's scoring; against
        # short training's planted 1.0 CPU s per genotype
        assert e["cpu_seconds_per_genotype"] == pytest.approx((10.0 + 1.0) / len(gs) + 0.75)
        assert e["cost_vs_short_training"]["ratio"] == pytest.approx(((10.0 + 1.0) / len(gs) + 0.75) / 1.0)
    # the other rows are still bench-proxies' own, against the same seed A
    assert summary["estimates"]["seed_b"]["tau"] is not None and summary["ceiling"] is not None
    assert summary["schema"] == bs.SCHEMA and summary["status"] == "complete"
    assert summary["genotypes"]["complete"] == len(gs)
    table = markdown_table(summary)
    assert "supernet, SPOS (3 ep)" in table and "supernet, sandwich (3 ep)" in table and "seed B" in table
    assert "supernet, sandwich (labels) (3 ep)" in table
    # each supernet against each cheap estimate: the difference of the two taus, with its paired interval
    diffs = {(d["a"], d["b"]): d for d in summary["differences"]}
    assert len(diffs) == 3 * (1 + len(bp.PROXY_NAMES) + len(bp.BASELINE_NAMES))
    for (x, y), d in diffs.items():
        assert d["tau"] == pytest.approx(summary["estimates"][x]["tau"] - summary["estimates"][y]["tau"], abs=1e-12)
        assert d["tau_ci"][0] <= d["tau_ci"][1] and d["b"] != "seed_b"
    best = next(k for k in summary["ranking"] if not k.startswith("supernet_"))
    assert f"tau minus {best}'s (paired bootstrap): supernet, SPOS (3 ep) " in bs.headline(summary)
    # the issue's "above every cheap estimate": how many differences' intervals lie above 0, per supernet
    above = sum(1 for (x, _), d in diffs.items() if x == "supernet_spos" and d["tau_ci"][0] > 0)
    spos = next(x for x in bs.headline(summary).split("; ") if x.startswith("supernet, SPOS (3 ep):"))
    assert spos.endswith(f", above {above} of the {len(diffs) // 3} cheap estimates beyond the paired interval")


def test_table_on_a_part_of_the_list_uses_the_same_supernets(tmp_path: Path) -> None:
    """--table-on (e.g. the randomly drawn part of a list that also names hand-chosen networks): with the
    reference and supernets planted (--report-only: nothing trained), the second table's figures are scipy's
    on the part alone, its cost is the same training plus the part's scoring, and a genotype outside the list
    is one line, exit 2."""
    cfg = str(ROOT / "benchmarks" / "flow_space.yaml")
    space = load_space(cfg)
    gs = bp.read_genotypes(space, "10", sample_seed=4)
    part = gs[3:9]
    (tmp_path / "list.txt").write_text("\n".join(map(str, gs)) + "\n")
    (tmp_path / "part.txt").write_text("\n".join(map(str, part)) + "\n")
    s = bs.make_settings(cfg, len(gs), preset="smoke")
    rng = __import__("random").Random(8)
    ref = {g.arch_id: 1.0 + rng.random() for g in gs}
    plant_reference(s.reference, gs, tmp_path / "ref.runs", ref)
    sc = {a: v + rng.gauss(0, 0.4) for a, v in ref.items()}
    for st in ("spos", "sandwich", "sandwich-labels"):
        plant_supernet(tmp_path / "out.runs" / st, sc)
    args = ["bench-supernet", cfg, "--genotypes", "list.txt", "--preset", "smoke", "--reference", "ref.json",
            "--out", "out.json", "--resamples", "30", "--report-only", "--no-progress"]
    code, out, err = cli(*args, "--table-on", "part.txt", cwd=tmp_path)
    assert code == 0, err
    summary = json.loads((tmp_path / "out.json").read_text())
    whole, sub = summary["estimates"]["supernet_spos"], summary["part"]["estimates"]["supernet_spos"]
    a, x = [-ref[g.arch_id] for g in part], [-sc[g.arch_id] for g in part]
    assert sub["tau"] == pytest.approx(kendalltau(x, a).statistic, abs=1e-12)
    assert summary["part"]["genotypes"]["listed"] == len(part) and summary["genotypes"]["listed"] == len(gs)
    assert whole["seconds_total"] == pytest.approx(10.0 + 1.0 + len(gs) * 0.75)
    assert sub["seconds_total"] == pytest.approx(10.0 + 1.0 + len(part) * 0.75)
    # the part's per-genotype cost shares the training over the whole list it was trained for, as the whole's
    assert sub["cpu_seconds_per_genotype"] == pytest.approx((10.0 + 1.0) / len(gs) + 0.75)
    assert whole["cpu_seconds_per_genotype"] == pytest.approx(sub["cpu_seconds_per_genotype"])
    md = (tmp_path / "out.md").read_text()
    assert "## The same on the genotypes of part.txt (6 listed)" in md and md.count("| seed B") == 2
    assert md.count(bs.COST_NOTE) == 2  # each table says how its supernet costs were shared out
    assert f"training shared over the {len(gs)} genotypes it serves), 1.85x short training's" in md
    assert "the same on part.txt" in out

    stray = space.genotype({**space.default.as_dict(), "backbone": "resnet", "head1_block": "shuffle"})
    assert stray.arch_id not in ref
    (tmp_path / "part.txt").write_text(f"{part[0]}\n{stray}\n")
    code, _, err = cli(*[("bad.json" if a == "out.json" else a) for a in args], "--table-on", "part.txt", cwd=tmp_path)
    assert code == 2 and "--table-on" in err and "not in the --genotypes list" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bad.json").exists()
    assert not (tmp_path / "bad.runs").exists()


def test_budget_and_the_config_each_supernet_trains(tmp_path: Path) -> None:
    """The budget is set by short training's sub-network passes; the config written for a strategy's supernet is the
    same space (same arch ids as the reference's), with the reference's task and recipe and its own seed."""
    cfg = str(ROOT / "benchmarks" / "flow_space.yaml")
    s = bs.make_settings(cfg, 68, preset="full")
    assert s.reference.short_epochs == 1
    # sandwich: largest + smallest + 2 random per step; SPOS: 3/4 of the passes (its steps cost more)
    assert s.epochs == {"spos": math.ceil(0.75 * 68), "sandwich": math.ceil(68 / 4),
                        "sandwich-labels": math.ceil(68 / 4)}
    assert s.recipe["seed"] == s.reference.recipe["seed"] + 4
    assert s.recipe["seed"] not in s.reference.seeds.values()
    space = load_space(cfg)
    bs._prepare_folder(s, "sandwich", tmp_path / "sandwich", space.space_key)
    derived = load_space(tmp_path / "sandwich" / "config.yaml")
    assert derived.space_key == space.space_key and derived.size() == space.size()
    assert derived.config.task == dict(s.reference.task) and derived.config.train["epochs"] == 17
    assert derived.config.supernet["strategy"] == "sandwich" and derived.config.supernet["seed"] == s.recipe["seed"]
    assert derived.config.train["lr"] == s.reference.recipe["lr"]
    # another learning rate for the supernets: their config and fingerprint change, the reference's do not
    slow = bs.make_settings(cfg, 68, preset="full", supernet_lr=0.002)
    assert slow.recipe["lr"] == 0.002 and slow.reference == s.reference
    assert slow.strategy_fingerprint("spos", space.space_key) != s.strategy_fingerprint("spos", space.space_key)
    assert bs._lr_note(slow) == ", lr 0.002" and bs._lr_note(s) == ""
    with pytest.raises(ConfigError, match="must be > 0"):
        bs.make_settings(cfg, 68, preset="full", supernet_lr=0.0)


# ---- real supernets ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with the tiny config and one finished run (`a.json`, both strategies) on a planted reference."""
    d = tmp_path_factory.mktemp("bsn")
    (d / "cfg.yaml").write_text(TINY)
    space = load_space(d / "cfg.yaml")
    gs = bp.read_genotypes(space, "6")
    s = bs.make_settings(str(d / "cfg.yaml"), len(gs))
    plant_reference(s.reference, gs, d / "ref.runs", {g.arch_id: 10.0 * i for i, g in enumerate(gs)})
    code, _, err = cli(*_args("a.json", "ref.json"), cwd=d)
    assert code == 0, err
    return d


def _args(out: str, ref: str, *extra: str) -> list[str]:
    return ["bench-supernet", "cfg.yaml", "--genotypes", "6", "--out", out, "--reference", ref, "--resamples", "30",
            "--no-progress", *extra]


def test_tau_one_against_its_own_ranking_and_reference_never_retrained(work: Path) -> None:
    """The fixture's run had a planted reference (nothing trained for it) and trained both supernets. Then
    seed A is replaced by the SPOS supernet's own figures (a known ranking, in bench-proxies' format): the
    same command trains nothing and reports tau = +1 for that strategy."""
    space = load_space(work / "cfg.yaml")
    gs = bp.read_genotypes(space, "6")
    s = bs.make_settings(str(work / "cfg.yaml"), len(gs))
    spos = json.loads((work / "a.runs" / "spos" / "scores.json").read_text())["scores"]
    assert set(spos) == {g.arch_id for g in gs}
    for it in bp.plan(s.reference, gs):  # bench-proxies' records read, not rewritten
        assert json.loads((work / "ref.runs" / f"{it.key}.json").read_text())["planted"] is True
    # seed A := the SPOS supernet's own top-1 figures (tau-b of a vector with itself is 1, ties or not)
    own = {g.arch_id: spos[g.arch_id]["metric"] for g in gs}
    assert len(set(own.values())) > 1, "the tiny supernet scored every genotype the same: nothing to rank"
    plant_reference(s.reference, gs, work / "ref.runs", own)
    mtimes = {p: p.stat().st_mtime_ns for p in (work / "a.runs").rglob("*") if p.is_file()}
    code, out, err = cli(*_args("a.json", "ref.json"), cwd=work)
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing trained or scored again
    summary = json.loads((work / "a.json").read_text())
    e = summary["estimates"]["supernet_spos"]
    assert e["tau"] == pytest.approx(1.0) and e["spearman"] == pytest.approx(1.0)
    assert e["top_k"]["best_in_top_k"] == pytest.approx(1.0)
    assert summary["supernet"]["spos"]["status"] == "complete" and summary["genotypes"]["complete"] == 6
    assert "supernet, SPOS" in out and "supernet, sandwich" in out
    md = (work / "a.md").read_text()
    assert "| supernet, SPOS (5 ep) | +1.00" in md and "| seed B (2nd full training) |" in md  # ceil(0.75 x 6)


def test_resume_after_interruption_keeps_finished_work(work: Path) -> None:
    """The same run as the fixture's (SPOS), interrupted twice over: once after the supernet's last
    checkpoint but before its record (train.json missing: resumed, no step more), once halfway through
    scoring (scores.json holding half the list). The same command finishes it: the kept scores are untouched
    and every score equals the uninterrupted run's."""
    whole = json.loads((work / "a.runs" / "spos" / "scores.json").read_text())["scores"]
    code, _, err = cli(*_args("cut.json", "ref.json", "--strategies", "spos"), cwd=work)
    assert code == 0, err
    folder = work / "cut.runs" / "spos"
    first_cpu = json.loads((folder / "train.json").read_text())["cpu_seconds"]
    (folder / "train.json").unlink()
    kept = json.loads((folder / "scores.json").read_text())
    half = dict(list(kept["scores"].items())[:3])
    kept["scores"] = {a: {**r, "marker": 1} for a, r in half.items()}
    (folder / "scores.json").write_text(json.dumps(kept))
    code, _, err = cli(*_args("cut.json", "ref.json", "--strategies", "spos"), cwd=work)
    assert code == 0, err
    again = json.loads((folder / "scores.json").read_text())["scores"]
    assert all(again[a].get("marker") == 1 for a in half)  # kept, not rescored
    assert sum(1 for r in again.values() if "marker" not in r) == 3
    assert {a: r["metric"] for a, r in again.items()} == {a: r["metric"] for a, r in whole.items()}
    record = json.loads((folder / "train.json").read_text())
    # resumed with no step left: the training's CPU time is the one its checkpoint carried, not this session's
    assert record["resumed"] is True and first_cpu > 0 and record["cpu_seconds"] == first_cpu


@pytest.mark.parametrize("extra, needle", [
    (("--preset", "huge"), "unknown preset 'huge'"),
    (("--strategies", "spos,fairnas"), "unknown strategy 'fairnas'; allowed: spos, sandwich, sandwich-labels"),
    (("--supernet-epochs", "0"), "--supernet-epochs"),
    (("--split", "stage9_block"), "--split: 'stage9_block' is not a choice with two or more options; allowed: "
                                  "stage0_block, stage1_block"),
])
def test_bad_options_exit_2_with_one_line(work: Path, extra: tuple[str, ...], needle: str) -> None:
    code, _, err = cli(*_args("bad.json", "badref.json", *extra), cwd=work)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (work / "bad.json").exists() and not (work / "bad.runs").exists()


def test_genotype_list_outside_the_space_exits_2(work: Path) -> None:
    (work / "list.txt").write_text("stage0_block=conv3x3,stage1_block=conv3x3\nstage0_block=vgg\n")
    code, _, err = cli("bench-supernet", "cfg.yaml", "--genotypes", "list.txt", "--out", "bad.json",
                       "--no-progress", cwd=work)
    assert code == 2 and "list.txt" in err and "line 2" in err and len(err.strip().splitlines()) == 1, err
    assert not (work / "bad.json").exists() and not (work / "bad.runs").exists()


def test_reference_folder_of_other_settings_exits_2_before_anything_is_written(work: Path) -> None:
    """The fixture's reference folder holds bench-proxies runs of the full preset: a smoke run against it is
    refused (one line naming the folder) before any supernet folder is made."""
    code, _, err = cli(*_args("other.json", "ref.json", "--preset", "smoke"), cwd=work)
    assert code == 2 and "ref.runs" in err and "other settings" in err and len(err.strip().splitlines()) == 1, err
    assert not (work / "other.runs").exists() and not (work / "other.json").exists()


def test_supernets_train_beside_an_unfinished_reference_without_training_it(work: Path) -> None:
    """--no-reference-training (bench-proxies trains the reference meanwhile in another process): a reference
    missing two genotypes' runs is read as it stands, nothing is added to its folder, the supernet is trained
    and scores every listed genotype (the same scores as the fixture's run on the whole reference), and the
    table covers the four finished genotypes, marked partial."""
    space = load_space(work / "cfg.yaml")
    gs = bp.read_genotypes(space, "6")
    s = bs.make_settings(str(work / "cfg.yaml"), len(gs))
    plant_reference(s.reference, gs, work / "part.runs", {g.arch_id: 10.0 * i for i, g in enumerate(gs)})
    missing = {gs[1].arch_id, gs[4].arch_id}
    for it in bp.plan(s.reference, gs):
        if it.arch_id in missing and it.kind == "ref":
            (work / "part.runs" / f"{it.key}.json").unlink()
    before = sorted(p.name for p in (work / "part.runs").iterdir())
    code, _, err = cli(*_args("p.json", "part.json", "--strategies", "sandwich", "--no-reference-training"),
                       cwd=work)
    assert code == 0, err
    assert sorted(p.name for p in (work / "part.runs").iterdir() if p.name != "settings.json") == \
        [n for n in before if n != "settings.json"]
    scores = json.loads((work / "p.runs" / "sandwich" / "scores.json").read_text())["scores"]
    whole = json.loads((work / "a.runs" / "sandwich" / "scores.json").read_text())["scores"]
    assert {a: r["metric"] for a, r in scores.items()} == {a: r["metric"] for a, r in whole.items()}
    summary = json.loads((work / "p.json").read_text())
    assert summary["status"] == "partial" and summary["genotypes"]["complete"] == 4
    assert summary["genotypes"]["listed"] == 6


def test_few_shot_supernets_rows_are_their_parts_scores(work: Path) -> None:
    """--split: the few-shot supernet's row (labelled so, in its own folder) holds, for every genotype, the score
    of the part holding its stage0_block, loaded on its own; the one-shot runs' fingerprints are unchanged."""
    from edgenas.train.supernet import evaluate_subnets, load_supernet

    code, out, err = cli(*_args("split.json", "ref.json", "--strategies", "spos", "--split", "stage0_block"), cwd=work)
    assert code == 0, err
    folder = work / "split.runs" / "spos"
    scores = json.loads((folder / "scores.json").read_text())["scores"]
    parts = sorted(p.name for p in (folder / "supernet").iterdir() if p.is_dir())
    assert parts == ["stage0_block=conv3x3", "stage0_block=dsconv3x3", "stage0_block=resnet"]
    for r in scores.values():
        part = load_supernet(folder / "supernet" / r["genotype"].split(",")[0])
        assert evaluate_subnets(part, [r["genotype"]])[0].metrics["top1"] == r["metric"]
    one_shot = json.loads((work / "a.runs" / "spos" / "scores.json").read_text())["scores"]
    assert {a: r["metric"] for a, r in scores.items()} != {a: r["metric"] for a, r in one_shot.items()}
    record = json.loads((folder / "train.json").read_text())
    assert record["epochs"] == 5 and set(record["parts"]) == set(parts)  # 5 epochs: 3 parts of ceil(5 / 3) = 2
    assert all(len(p["train_loss"]) == 2 for p in record["parts"].values())
    assert "supernet, SPOS, few-shot by stage0_block (5 ep in 3 parts of 2)" in out


def test_compare_script_differences_runs_on_the_same_resamples(tmp_path: Path) -> None:
    """benchmarks/compare_supernets.py on two runs' JSON (planted supernets, one reference): every supernet
    row's tau is scipy's, the difference against --base is the difference of the two taus, and a run on
    another genotype list is refused."""
    import subprocess
    import sys

    cfg = str(ROOT / "benchmarks" / "flow_space.yaml")
    space = load_space(cfg)
    gs = bp.read_genotypes(space, "12", sample_seed=4)
    s = bs.make_settings(cfg, len(gs), preset="smoke", strategies=("spos",))
    rng = __import__("random").Random(8)
    ref = {g.arch_id: 1.0 + rng.random() for g in gs}
    plant_reference(s.reference, gs, tmp_path / "ref.runs", ref)
    near = {a: v + rng.gauss(0, 0.2) for a, v in ref.items()}
    far = {a: v + rng.gauss(0, 1.0) for a, v in ref.items()}
    best = min(ref, key=ref.get)
    near[best] = math.nan  # a sub-network the supernet could not score: kept, ranked worst, as in the table
    for name, scores, lr in (("one", near, None), ("two", far, 0.002)):
        sx = bs.make_settings(cfg, len(gs), preset="smoke", strategies=("spos",), supernet_lr=lr)
        plant_supernet(tmp_path / f"{name}.runs" / "spos", scores)
        summary = bs.summarise(sx, space, gs, tmp_path / f"{name}.json", tmp_path / "ref.json", resamples=20)
        (tmp_path / f"{name}.json").write_text(json.dumps(summary))
    script = ROOT / "benchmarks" / "compare_supernets.py"
    r = subprocess.run([sys.executable, str(script), "one.json", "two.json", "--resamples", "200"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    a = [-ref[g.arch_id] for g in gs]
    t_near = json.loads((tmp_path / "one.json").read_text())["estimates"]["supernet_spos"]["tau"]
    x = [-math.inf if math.isnan(near[g.arch_id]) else -near[g.arch_id] for g in gs]
    assert t_near == pytest.approx(kendalltau(x, a).statistic, abs=1e-12)
    t_far = kendalltau([-far[g.arch_id] for g in gs], a).statistic
    row = next(line for line in r.stdout.splitlines() if line.startswith("| supernet, SPOS (3 ep, lr 0.002) |"))
    assert f"{t_far:+.2f} [" in row.split("|")[2] and row.split("|")[4].strip().startswith(f"{t_far - t_near:+.2f} [")
    assert f"| supernet, SPOS (3 ep) | {t_near:+.2f} [" in r.stdout and "(base)" in r.stdout
    assert "12 genotypes complete in every file" in r.stdout
    other = json.loads((tmp_path / "two.json").read_text())
    other["rows"] = other["rows"][::-1]
    (tmp_path / "two.json").write_text(json.dumps(other))
    r = subprocess.run([sys.executable, str(script), "one.json", "two.json"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "another genotype list" in r.stderr
