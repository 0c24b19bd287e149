"""bench-proxies: the statistics against independent truths (scipy, a planted correlation, hand-computed
within-group averages), the orientation of a lower-is-better metric, resume after an interruption (no
finished run redone, the same JSON), a training run resumed from its checkpoint, and a tiny end to end on
digits-hard. No timing is asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from edgenas.analysis.fidelity import (
    MIN_GROUP,
    bootstrap_indices,
    ceiling,
    fidelity,
    finite_for_ranking,
    kendall_tau_b,
    oriented,
    rank_correlations,
    spearman_rho,
    within_groups,
)
from edgenas.errors import ConfigError
from edgenas.train.trainer import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = """name: tiny_digits
network: stages
input_channels: 1
resolutions: [16x16]
widths: {stem: 4, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage0_block: [conv3x3, dsconv3x3, resnet]
hardware: [ethos-u55-128]
task: {type: digits-hard, train_samples: 48, val_samples: 32}
train: {epochs: 1, batch_size: 16}
"""


# ---- statistics ----------------------------------------------------------------------------------------


def test_vectorised_tau_and_rho_equal_scipy_with_ties_and_subsets() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (20, 15)).astype(float)  # many ties
    y = np.round(x + rng.normal(0, 1.5, x.shape))
    member = rng.random(x.shape) < 0.6
    tau, rho = kendall_tau_b(x, y), spearman_rho(x, y)
    tau_m, rho_m = kendall_tau_b(x, y, member), spearman_rho(x, y, member)
    for i in range(len(x)):
        assert tau[i] == pytest.approx(kendalltau(x[i], y[i]).statistic, abs=1e-12)
        assert rho[i] == pytest.approx(spearmanr(x[i], y[i]).statistic, abs=1e-12)
        m = member[i]
        assert tau_m[i] == pytest.approx(kendalltau(x[i][m], y[i][m]).statistic, abs=1e-12)
        assert rho_m[i] == pytest.approx(spearmanr(x[i][m], y[i][m]).statistic, abs=1e-12)
    assert rank_correlations(x[0], y[0]) == pytest.approx((kendalltau(x[0], y[0]).statistic,
                                                           spearmanr(x[0], y[0]).statistic))
    assert all(math.isnan(v) for v in rank_correlations([1, 1, 1], [1, 2, 3]))


def test_bootstrap_interval_contains_the_planted_correlation() -> None:
    # bivariate normal with Pearson r: Kendall tau = 2/pi asin(r), Spearman = 6/pi asin(r/2) (Greiner, Pearson)
    r, n = 0.7, 150
    rng = np.random.default_rng(42)
    z = rng.multivariate_normal([0, 0], [[1, r], [r, 1]], size=n)
    out = fidelity(z[:, 0], {"x": z[:, 1]}, resamples=1000, seed=1)["estimates"]["x"]
    true_tau, true_rho = 2 / math.pi * math.asin(r), 6 / math.pi * math.asin(r / 2)
    assert out["tau_ci"][0] < true_tau < out["tau_ci"][1]
    assert out["spearman_ci"][0] < true_rho < out["spearman_ci"][1]
    assert out["tau_ci"][0] > 0.3 and out["tau_ci"][1] - out["tau_ci"][0] < 0.3  # informative, not [-1, 1]
    assert out["tau"] == pytest.approx(kendalltau(z[:, 1], z[:, 0]).statistic)


def test_paired_bootstrap_uses_the_same_resamples_for_every_estimate() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=30)
    x = ref + rng.normal(size=30)
    out = fidelity(ref, {"a": x, "b": x.copy()}, resamples=200, seed=5)["estimates"]
    assert out["a"]["tau_ci"] == out["b"]["tau_ci"] and out["a"]["spearman_ci"] == out["b"]["spearman_ci"]


def test_difference_interval_is_that_of_the_paired_resamples_by_scipy() -> None:
    """The interval of tau(a) - tau(b): scipy's tau of each estimate on each resample (the same genotypes
    drawn for both), differenced, then the percentiles; an estimate against itself differs by exactly 0."""
    rng = np.random.default_rng(11)
    ref = rng.normal(size=14)
    a, b = ref + rng.normal(scale=0.5, size=14), ref + rng.normal(scale=1.5, size=14)
    out = fidelity(ref, {"a": a, "b": b}, resamples=300, seed=4, differences=[("a", "b"), ("a", "a")])
    idx = bootstrap_indices(14, 300, 4)
    by_hand = []
    for rows in idx:
        ta = kendalltau(a[rows], ref[rows]).statistic
        tb = kendalltau(b[rows], ref[rows]).statistic
        by_hand.append(ta - tb)
    by_hand = np.asarray(by_hand)
    by_hand = by_hand[~np.isnan(by_hand)]
    d, same = out["differences"]
    assert (d["a"], d["b"]) == ("a", "b")
    assert d["tau"] == pytest.approx(kendalltau(a, ref).statistic - kendalltau(b, ref).statistic)
    assert d["tau_ci"] == pytest.approx([np.quantile(by_hand, 0.025), np.quantile(by_hand, 0.975)], abs=1e-9)
    assert same["tau"] == 0 and same["tau_ci"] == [0.0, 0.0] and same["spearman_ci"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="unknown estimate 'c'"):
        fidelity(ref, {"a": a}, resamples=10, differences=[("a", "c")])


def test_orientation_of_a_lower_is_better_metric() -> None:
    epe = np.array([3.0, 1.0, 2.0, 5.0, 4.0])
    agrees = -epe * 10  # an estimate that ranks the low-EPE networks highest
    ref = oriented(epe, higher_is_better=False)
    est = fidelity(ref, {"agrees": agrees, "reversed": epe, "bigger_is_better": oriented(epe + 0.1, False)},
                   resamples=0)["estimates"]
    assert est["agrees"]["tau"] == pytest.approx(1.0) and est["bigger_is_better"]["tau"] == pytest.approx(1.0)
    assert est["reversed"]["tau"] == pytest.approx(-1.0)
    assert list(oriented([1.0, 2.0], True)) == [1.0, 2.0]


def test_within_group_average_by_hand() -> None:
    x = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    y = [1, 3, 2, 4, 6, 5, 9, 1, 2]
    groups = ["a", "a", "a", "a", "b", "b", "b", "c", "c"]  # c has 2 members: below MIN_GROUP, skipped
    assert MIN_GROUP == 3
    ta = kendalltau(x[:4], y[:4]).statistic
    tb = kendalltau(x[4:7], y[4:7]).statistic
    ra = spearmanr(x[:4], y[:4]).statistic
    rb = spearmanr(x[4:7], y[4:7]).statistic
    w = within_groups(x, y, groups)
    assert w["tau"] == pytest.approx((4 * ta + 3 * tb) / 7)
    assert w["spearman"] == pytest.approx((4 * ra + 3 * rb) / 7)
    assert w["groups"]["c"]["n"] == 2 and math.isnan(w["groups"]["c"]["tau"])
    # the bootstrap's vectorised within-group figure, on the identity resample, is the same number
    out = fidelity(np.array(y, float), {"x": np.array(x, float)}, groups=groups, resamples=0)
    assert out["estimates"]["x"]["within"]["tau"] == pytest.approx(w["tau"])


def test_ceiling_formulas_and_unrankable_scores() -> None:
    c = ceiling(0.64)
    assert c["ceiling_one_seed"] == pytest.approx(0.8)
    assert c["reliability_two_seed_mean"] == pytest.approx(2 * 0.64 / 1.64)
    assert ceiling(-0.2)["ceiling_one_seed"] == 0.0
    assert list(finite_for_ranking([1.0, -math.inf, math.nan, math.inf])) == [1.0, 0.0, 0.0, 2.0]


# ---- the benchmark -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    d = tmp_path_factory.mktemp("bench")
    os.environ["EDGENAS_DATA_CACHE"] = str(d / "cache")  # inherited by the forked workers
    cfg = d / "tiny.yaml"
    cfg.write_text(TINY)
    return cfg


def _figures(summary: dict) -> dict:
    """What must not change between runs: everything but timings."""
    drop = ("seconds", "cpu_seconds", "seconds_total", "seconds_per_genotype", "cpu_seconds_total",
            "cpu_seconds_per_genotype", "a_seconds", "b_seconds", "short_seconds", "proxy_seconds",
            "a_cpu_seconds", "b_cpu_seconds", "short_cpu_seconds", "proxy_cpu_seconds")

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in drop}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return strip({k: summary[k] for k in ("estimates", "ceiling", "rows", "genotypes", "status", "reference")})


@pytest.fixture(scope="module")
def whole(tiny: Path) -> dict:
    """An uninterrupted run of 3 genotypes (12 units: proxies, seeds A and B, short training)."""
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    run = bp.run_bench(bp.make_settings(str(tiny)), bp.read_genotypes(load_space(tiny), "3"),
                       tiny.parent / "whole.json", resamples=50)
    assert run.summary["status"] == "complete" and run.done_now == 12
    return run.summary


def test_interrupted_run_resumes_without_redoing_and_gives_the_same_json(tiny: Path, whole: dict,
                                                                         tmp_path: Path) -> None:
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    settings = bp.make_settings(str(tiny))
    genotypes = bp.read_genotypes(load_space(tiny), "3")

    out = tmp_path / "part.json"
    seen: list[str] = []

    def stop_after_three(item, record, done, total):
        seen.append(item.key)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bp.run_bench(settings, genotypes, out, resamples=50, on_record=stop_after_three)
    kept = {p.name: p.stat().st_mtime_ns for p in bp.runs_dir(out).glob("*-s*.json")}
    assert len(kept) >= 3 and not out.exists()

    again: list[str] = []
    run = bp.run_bench(settings, genotypes, out, resamples=50, on_record=lambda it, *a: again.append(it.key))
    assert run.done_before == len(kept) and not set(again) & {k.removesuffix(".json") for k in kept}
    assert {p.name: p.stat().st_mtime_ns for p in bp.runs_dir(out).glob("*-s*.json") if p.name in kept} == kept
    assert _figures(run.summary) == _figures(whole)
    assert json.loads(out.read_text())["estimates"] == run.summary["estimates"]
    # a third run trains nothing and writes the same figures
    third = bp.run_bench(settings, genotypes, out, resamples=50)
    assert third.done_now == 0 and _figures(third.summary) == _figures(whole)


def test_a_training_run_resumes_from_its_checkpoint(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp
    from edgenas.train.trainer import Trainer

    settings = bp.make_settings(str(tiny))
    g = load_space(tiny).default
    item = bp.Item(str(g), g.arch_id, "ref", 0, epochs=2)
    runs = tmp_path / "x.runs"
    runs.mkdir()
    bp._init_worker(settings, str(tiny), str(runs), 1)
    whole = bp._work(item)
    (runs / f"{item.key}.json").unlink()

    end_epoch = Trainer._end_epoch

    def stop_after_epoch(self):
        end_epoch(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_end_epoch", stop_after_epoch)
    c0 = time.process_time()
    with pytest.raises(KeyboardInterrupt):
        bp._work(item)
    first_session = time.process_time() - c0
    monkeypatch.setattr(Trainer, "_end_epoch", end_epoch)
    assert (runs / f"{item.key}.partial" / "checkpoint.pt").exists() and not (runs / f"{item.key}.json").exists()
    carried = load_checkpoint(runs / f"{item.key}.partial" / "checkpoint.pt")["cpu_seconds"]
    c0 = time.process_time()
    resumed = bp._work(item)
    second_session = time.process_time() - c0
    assert resumed["resumed"] and not whole["resumed"]
    assert resumed["metric"] == whole["metric"] and resumed["history"][-1] == whole["history"][-1]
    # the record's CPU time counts the first session's training too, not only the resumed one's
    assert 0 < carried <= first_session
    assert second_session < resumed["cpu_seconds"] <= second_session + carried + 1e-6
    assert not (runs / f"{item.key}.partial").exists()


def test_end_to_end_cli_on_digits(tiny: Path, whole: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgenas.cli import app

    out = tmp_path / "e2e.json"
    res = CliRunner().invoke(app, ["bench-proxies", str(tiny), "--genotypes", "3", "--out", str(out),
                                   "--resamples", "50", "--jobs", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "seed B" in res.output and "ceiling" in res.output
    s = json.loads(out.read_text())
    assert s["schema"] == "edgenas.bench-proxies/1" and s["status"] == "complete"
    assert s["genotypes"] == {"listed": 3, "complete": 3, "runs_done": 12, "runs_total": 12}
    assert set(s["estimates"]) == {"seed_b", "short_training", "synflow", "naswot", "jacob_cov", "snip",
                                   "grad_norm", "params", "macs"}
    assert s["group_by"] is None and "within" not in s["estimates"]["synflow"]
    assert s["settings"]["seeds"] == {"a": 0, "b": 1, "short": 2, "proxy": 3}
    assert all(r["complete"] and 0 <= r["a"] <= 100 for r in s["rows"])
    assert _figures(s) == _figures(whole)  # two processes give what one gave
    # --table-on: the same runs, also summarised on a part of the list (nothing trained for it)
    part_file = tmp_path / "part.txt"
    part_file.write_text("\n".join(r["genotype"] for r in s["rows"][1:]) + "\n")
    res = CliRunner().invoke(app, ["bench-proxies", str(tiny), "--genotypes", "3", "--out", str(out),
                                   "--resamples", "50", "--report-only", "--table-on", str(part_file)])
    assert res.exit_code == 0, res.output
    assert f"the same on {part_file}" in " ".join(res.output.split())
    p = json.loads(out.read_text())["part"]
    assert p["part_file"] == str(part_file) and p["genotypes"] == {"listed": 2, "complete": 2, "runs_done": 8,
                                                                  "runs_total": 8}
    assert p["rows"] == s["rows"][1:]
    a, b = [r["a"] for r in s["rows"][1:]], [r["b"] for r in s["rows"][1:]]
    assert p["estimates"]["seed_b"]["tau"] == pytest.approx(kendalltau(b, a).statistic, nan_ok=True)
    # a second part of the same list, from the same runs, with nothing written (the benchmark script's third table)
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    written = out.read_bytes()
    space = load_space(tiny)
    listed = bp.read_genotypes(space, "3")
    other = [space.parse_genotype(r["genotype"]) for r in s["rows"][:2]]
    q = bp.summarise_part(bp.make_settings(str(tiny)), listed, out, ("other.txt", other), resamples=50)
    assert out.read_bytes() == written
    assert q["part_file"] == "other.txt" and q["rows"] == s["rows"][:2]
    a, b = [r["a"] for r in s["rows"][:2]], [r["b"] for r in s["rows"][:2]]
    tau, expected = q["estimates"]["seed_b"]["tau"], kendalltau(b, a).statistic
    assert tau == pytest.approx(expected) if tau is not None else np.isnan(expected)  # None: tied, undefined
    part_file.write_text("stage0_block=conv7x7\n")
    res = CliRunner().invoke(app, ["bench-proxies", str(tiny), "--genotypes", "3", "--out", str(out),
                                   "--report-only", "--table-on", str(part_file)])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError) and res.exception.field == "--table-on"
    # another preset into the same folder is refused, naming the folder
    res = CliRunner().invoke(app, ["bench-proxies", str(tiny), "--genotypes", "3", "--out", str(out),
                                   "--preset", "smoke"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError) and "other settings" in str(res.exception)


def test_summary_orients_epe_and_groups_by_backbone(tmp_path: Path) -> None:
    """Planted records on the flow space (no training): an estimate that follows -EPE gets tau +1."""
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    cfg = ROOT / "benchmarks" / "flow_space.yaml"
    space = load_space(cfg)
    settings = bp.make_settings(str(cfg), preset="smoke")
    genotypes = bp.read_genotypes(space, "12", sample_seed=1)
    items = bp.plan(settings, genotypes)
    epe = {g.arch_id: 1.0 + i * 0.1 for i, g in enumerate(genotypes)}
    records = {}
    for it in items:
        e = epe[it.arch_id]
        if it.kind == "proxy":
            body = {"scores": {"synflow": -e, "naswot": e, "jacob_cov": 1.0, "snip": -e, "grad_norm": -e,
                               "params": e, "macs": -e}, "seconds": {}}
        else:
            body = {"metric": e + (0.05 if it.kind == "short" else 0.0), "seconds": 1.0}
        records[it.key] = {"status": "done", **body}
    s = bp.summarise(settings, space, genotypes, items, records, resamples=20)
    est = s["estimates"]
    assert s["higher_is_better"] is False and "-metric" in s["orientation"]
    assert est["seed_b"]["tau"] == pytest.approx(1.0) and est["short_training"]["tau"] == pytest.approx(1.0)
    assert est["synflow"]["tau"] == pytest.approx(1.0) and est["naswot"]["tau"] == pytest.approx(-1.0)
    assert est["jacob_cov"]["tau"] is None  # constant: undefined, written as null
    assert s["group_by"] == "backbone" and est["synflow"]["within"]["tau"] == pytest.approx(1.0)
    assert s["ceiling"]["ceiling_one_seed"] == pytest.approx(1.0) and s["ranking"][0] in ("short_training", "synflow")


def test_summary_gives_the_best_estimates_lead_over_each_other_by_scipy(tmp_path: Path) -> None:
    """Planted noisy records: the `lead` names the best estimate first, covers every other cheap estimate in
    ranking order, and its tau difference and interval equal scipy's taus on the same paired resamples."""
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp
    from edgenas.train.bench_tables import headline

    cfg = ROOT / "benchmarks" / "flow_space.yaml"
    space = load_space(cfg)
    settings = bp.make_settings(str(cfg), preset="smoke")
    genotypes = bp.read_genotypes(space, "16", sample_seed=2)
    items = bp.plan(settings, genotypes)
    rng = np.random.default_rng(5)
    epe = {g.arch_id: float(x) for g, x in zip(genotypes, rng.uniform(1.2, 1.6, len(genotypes)))}
    noise = {name: {g.arch_id: float(x) for g, x in zip(genotypes, rng.normal(scale=sd, size=len(genotypes)))}
             for name, sd in (("synflow", 0.05), ("snip", 0.2), ("short", 0.4), ("b", 0.02))}
    records = {}
    for it in items:
        e, a = epe[it.arch_id], it.arch_id
        if it.kind == "proxy":  # proxies: higher = better, so -EPE plus noise ranks like the reference
            body = {"scores": {"synflow": -e + noise["synflow"][a], "snip": -e + noise["snip"][a], "naswot": 1.0,
                               "jacob_cov": 0.0, "grad_norm": e, "params": 2.0, "macs": 3.0}, "seconds": {}}
        elif it.kind == "short":
            body = {"metric": e + noise["short"][a], "seconds": 1.0}
        else:
            body = {"metric": e + (noise["b"][a] if it.seed == settings.seeds["b"] else 0.0), "seconds": 1.0}
        records[it.key] = {"status": "done", **body}
    s = bp.summarise(settings, space, genotypes, items, records, resamples=200)
    lead = s["lead"]
    assert s["ranking"][0] == "synflow" and all(d["a"] == "synflow" for d in lead)
    assert [d["b"] for d in lead] == s["ranking"][1:] and "seed_b" not in s["ranking"]
    ref = -np.array([epe[g.arch_id] for g in genotypes])
    syn = np.array([-epe[g.arch_id] + noise["synflow"][g.arch_id] for g in genotypes])
    snip = np.array([-epe[g.arch_id] + noise["snip"][g.arch_id] for g in genotypes])
    d = next(x for x in lead if x["b"] == "snip")
    assert d["tau"] == pytest.approx(kendalltau(syn, ref).statistic - kendalltau(snip, ref).statistic)
    by_hand = np.array([kendalltau(syn[r], ref[r]).statistic - kendalltau(snip[r], ref[r]).statistic
                        for r in bootstrap_indices(len(ref), 200, 0)])
    by_hand = by_hand[~np.isnan(by_hand)]
    assert d["tau_ci"] == pytest.approx([np.quantile(by_hand, 0.025), np.quantile(by_hand, 0.975)], abs=1e-9)
    above = sum(1 for x in lead if x["tau_ci"][0] is not None and x["tau_ci"][0] > 0)
    assert f"above {above} of the {len([x for x in lead if x['tau'] is not None])} others" in headline(s)


def test_genotype_files_and_bad_input(tmp_path: Path) -> None:
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    space = load_space(ROOT / "benchmarks" / "flow_space.yaml")
    f = tmp_path / "g.txt"
    f.write_text("# two\nbackbone=resnet,head1_block=conv5x5\n\nbackbone=shufflenet  # a comment\n")
    gs = bp.read_genotypes(space, str(f))
    assert [g["backbone"] for g in gs] == ["resnet", "shufflenet"] and gs[0]["head2_block"] == "conv3x3"
    f.write_text("backbone=resnet\nbackbone=vgg\n")
    with pytest.raises(ConfigError, match="line 2: .*'vgg' is not an option"):
        bp.read_genotypes(space, str(f))
    with pytest.raises(ConfigError, match="no such file"):
        bp.read_genotypes(space, str(tmp_path / "nothing.txt"))
    with pytest.raises(ConfigError, match="unknown preset"):
        bp.make_settings(str(ROOT / "benchmarks" / "flow_space.yaml"), preset="huge")
    assert bp.runs_dir(Path("a/b.json")) == Path("a/b.runs")


def test_committed_genotype_lists_are_what_the_script_writes() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "genotypes" / "make_lists.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    flow = [line for line in (ROOT / "benchmarks" / "genotypes" / "flow.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert len(flow) >= 68 and len(set(flow)) == len(flow)
    drawn = [line for line in (ROOT / "benchmarks" / "genotypes" / "flow_random.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert len(drawn) >= 40 and drawn == flow[-len(drawn):]  # the random part of flow.txt, in its order
    seed = [line for line in (ROOT / "benchmarks" / "genotypes" / "flow_seed.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert len(seed) == 28 and seed == flow[:-len(drawn)]  # the rest of flow.txt: the seed study's networks
    pairs = {(d["backbone"], d["head1_block"]) for d in (dict(kv.split("=") for kv in g.split(",")) for g in seed)
             if d["head2_block"] == d["head1_block"] and d["predict_kernel"] == "7"}
    assert len(pairs) == 28  # 4 backbones x 7 head blocks, Head2 = Head1, the 7x7 predict conv


def test_first_genotypes_come_first_and_keep_the_seeded_order(tmp_path: Path) -> None:
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    cfg = ROOT / "benchmarks" / "flow_space.yaml"
    space = load_space(cfg)
    settings = bp.make_settings(str(cfg), preset="smoke")
    genotypes = bp.read_genotypes(space, "10", sample_seed=3)
    f = tmp_path / "first.txt"
    f.write_text("\n".join(str(g) for g in genotypes[6:]) + "\n")
    first = {g.arch_id for g in bp.read_part(space, str(f), genotypes, field="--first")}
    assert first == {g.arch_id for g in genotypes[6:]}

    def order(items: list) -> list[str]:
        return list(dict.fromkeys(it.arch_id for it in items))

    plain, firsted = order(bp.plan(settings, genotypes)), order(bp.plan(settings, genotypes, first=first))
    assert set(firsted[:4]) == first and sorted(firsted) == sorted(plain)
    # within each part the order is the plain plan's (a partial run is a random subset of each part)
    assert firsted[:4] == [a for a in plain if a in first] and firsted[4:] == [a for a in plain if a not in first]
    assert [len(bp.plan(settings, genotypes, first=first))] == [len(bp.plan(settings, genotypes))]

    stray = space.genotype({**space.default.as_dict(), "backbone": "resnet", "head1_block": "shuffle"})
    assert stray.arch_id not in {g.arch_id for g in genotypes}
    f.write_text(f"{genotypes[0]}\n{stray}\n")
    with pytest.raises(ConfigError, match="not in the --genotypes list"):
        bp.read_part(space, str(f), genotypes, field="--first")
    # the command: one line naming the option, exit 2, nothing written
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(str(g) for g in genotypes) + "\n")
    out = tmp_path / "b.json"
    proc = subprocess.run([str(Path(sys.executable).with_name("edgenas")), "bench-proxies", str(cfg), "--genotypes",
                           str(lst), "--first", str(f), "--preset", "smoke", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--first" in proc.stderr and "not in the --genotypes list" in proc.stderr
    assert not out.exists() and not bp.runs_dir(out).exists()


def test_flow_space_searches_head2_and_the_predict_kernel(tmp_path: Path) -> None:
    """benchmarks/flow_space.yaml extends the seed space: a choice in the extending file takes the parameter
    out of the base's `fixed` (space/config.py), `tied: {}` unties Head2."""
    from edgenas.space.space import load_space

    space = load_space(ROOT / "benchmarks" / "flow_space.yaml")
    assert space.size() == 4 * 7 * 7 * 3 * 3 * 3 and space.config.tied == {}  # blocks, kernel, two widths
    assert "predict_kernel" not in space.config.fixed and space.config.fixed["upsample"] == "bilinear"
    g = space.genotype({"head1_block": "conv5x5", "head2_block": "dsconv3x3", "predict_kernel": 3})
    names = {op.name for op in space.build(g, (48, 64)).ops}
    assert any(n.startswith("head2.block") for n in names)
    both = tmp_path / "both.yaml"  # fixed AND searched in the same file stays an error
    both.write_text(f"extends: {ROOT / 'benchmarks' / 'flow_space.yaml'}\nname: both\nfixed: {{predict_kernel: 7}}\n"
                    "choices: {predict_kernel: [3, 5]}\n")
    with pytest.raises(ConfigError, match="also in fixed"):
        load_space(both)
