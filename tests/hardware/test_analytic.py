"""Analytic evaluator: the roofline by hand, the fit on planted coefficients, and the held-out ranking
against real compiler measurements."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgenas.graph.ir import Graph
from edgenas.hardware.analytic import AnalyticEvaluator, Calibration, fit_calibration, layer_features
from edgenas.hardware.calibrate import calibrate
from edgenas.hardware.measurement import LayerRow, Measurement
from edgenas.hardware.profile import load_profile
from edgenas.space.space import load_space
from edgenas.sweep.runner import plan_jobs, run_sweep


def test_roofline_of_one_conv_by_hand() -> None:
    p = load_profile("generic-mcu")  # 1 MAC/cycle, 8 B/cycle SRAM, 2 B/cycle flash, 480 MHz
    g = Graph()
    x = g.add_input("x", (1, 20, 20, 8))
    g.mark_output(g.add("conv2d", "c", [x], kernel=3, out_channels=16))
    m = AnalyticEvaluator(p).evaluate_graph(g)
    macs = 20 * 20 * 16 * 9 * 8
    act = 20 * 20 * 8 + 20 * 20 * 16
    weights = 9 * 8 * 16 + 4 * 16
    expect = max(macs / 1.0, act / 8.0, weights / 2.0)
    assert m.metrics["cycles_total"] == round(expect)
    assert m.metrics["fps"] == pytest.approx(480e6 / expect)
    assert m.metrics["sram_kib"] == pytest.approx((20 * 20 * 8 + 20 * 20 * 16) / 1024)


def _fake_measurement(graph: Graph, coef: dict[str, np.ndarray]) -> Measurement:
    rows = []
    total = 0
    for f in layer_features(graph):
        c = coef.get(f.kind)
        if c is None:
            continue
        cyc = round(float(np.dot(c, f.vector())))
        total += cyc
        rows.append(LayerRow("op", f.kind, "NPU", f.name, cyc, cyc, 0, 0, 0, 0, f.macs, 0.0, 0))
    return Measurement("ok", metrics={"cycles_total": total}, layers=tuple(rows))


def test_fit_recovers_planted_per_kind_coefficients() -> None:
    space = load_space("flow_head_upsample")
    planted = {"conv2d": np.array([0.01, 0.2, 0.5, 300.0]), "depthwise_conv2d": np.array([0.05, 0.1, 0.0, 50.0])}
    graphs = [space.build(j.genotype, j.resolution) for j in plan_jobs(space, resolutions=[(64, 96), (120, 160)])]
    cal = fit_calibration([(g, _fake_measurement(g, planted)) for g in graphs], load_profile("ethos-u55-256"))
    for kind, c in planted.items():
        assert np.allclose(cal.coefficients[kind], c, rtol=0.02, atol=0.02 * c.max()), (kind, cal.coefficients[kind])


def test_calibration_round_trips(tmp_path) -> None:
    cal = Calibration("p", "ethos-u-vela 5.2.0", {"conv2d": (1.0, 2.0, 3.0, 4.0)})
    cal.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == cal


def test_calibrated_model_ranks_held_out_architectures_like_the_compiler() -> None:
    space = load_space("flow_head_upsample")
    profile = load_profile("ethos-u55-256")
    jobs = plan_jobs(space, resolutions=[(64, 96), (120, 160)])
    results = run_sweep(space, [profile], jobs, n_jobs=2, cache_path=None)
    samples = [(r.job.genotype.arch_id, space.build(r.job.genotype, r.job.resolution), r.measurements[0])
               for r in results]
    rep = calibrate(samples, profile, train_fraction=0.5, seed=1)
    assert rep.test_archs == 14 and rep.test_points == 28
    assert rep.spearman_calibrated >= 0.8
    assert rep.median_abs_rel_error < rep.median_abs_rel_error_roofline


def test_analytic_profile_uses_its_calibration(tmp_path) -> None:
    cal = Calibration("ethos-u55-256", "x", {"conv2d": (0.0, 0.0, 0.0, 1000.0)})
    path = tmp_path / "cal.json"
    cal.save(path)
    base = load_profile("generic-mcu")
    prof = load_profile("generic-mcu", {"calibration": str(path)})
    assert prof.calibration == str(path)
    g = load_space("flow_head_upsample").build(load_space("flow_head_upsample").default, (64, 96))
    n_conv = sum(1 for op in g.ops if op.kind == "conv2d")
    plain = AnalyticEvaluator(base).evaluate_graph(g)
    fitted = AnalyticEvaluator(prof, Calibration.load(path)).evaluate_graph(g)
    conv_cycles = sum(r.cycles for r in fitted.layers if r.nng_op == "conv2d")
    assert conv_cycles == 1000 * n_conv
    assert plain.metrics["cycles_total"] != fitted.metrics["cycles_total"]
    assert dataclasses.replace(base, calibration=str(path)) == prof


def test_classifier_head_ops_are_costed() -> None:
    """global_avg_pool and fully_connected: MACs from the IR (c x units for the FC), a cost for each."""
    g = Graph("cls")
    x = g.add_input("input", (1, 16, 16, 8))
    y = g.add("conv2d", "c", [x], kernel=3, stride=1, out_channels=8, act="relu")
    y = g.add("global_avg_pool", "p", [y])
    g.mark_output(g.add("fully_connected", "fc", [y], units=10))
    m = AnalyticEvaluator(load_profile("generic-mcu")).evaluate_graph(g)
    rows = {r.name: r for r in m.layers}
    assert m.ok and rows["fc"].macs == 8 * 10 and rows["p"].macs == 0
    assert rows["p"].cycles > 0 and rows["fc"].cycles > 0


def test_calibrate_command_defaults_to_the_spaces_profile(tmp_path) -> None:
    """`edgenas calibrate SPACE` without -H calibrates against the space's first `hardware` (as sweep, study
    and export default), here an Ethos-U55-128; -H still chooses."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "s.yaml").write_text(
        "extends: flow_head_upsample\nname: cal_tiny\nresolutions: [32x48]\n"
        "widths: {stem: 4, encoder: 8, encoder_units: 1, head0: 8, head1: 4, head2: 4}\n"
        "choices: {backbone: [shufflenet, resnet], head1_block: [conv3x3, dsconv3x3, conv5x5]}\n"
        "hardware: [ethos-u55-128]\n")
    exe = str(Path(sys.executable).with_name("edgenas"))
    for extra, want in (([], "ethos-u55-128"), (["-H", "ethos-u55-256"], "ethos-u55-256")):
        out = tmp_path / f"cal-{want}.json"
        r = subprocess.run([exe, "calibrate", "s.yaml", "--out", str(out), "--jobs", "1", "--cache",
                            str(tmp_path / "cache.sqlite"), *extra], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr
        assert Calibration.load(out).profile == want
