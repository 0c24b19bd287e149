"""The analysis of a real (small) sweep, compiled in-process: everything it says must agree with itself
and with the rows it came from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgenas.analysis import Study, StudySettings, analyse
from edgenas.hardware.profile import load_profile_spec
from edgenas.space.space import SearchSpace, load_space
from edgenas.sweep.driver import layer_rows
from edgenas.sweep.runner import plan_jobs, run_sweep
from edgenas.sweep.table import LayerTable, SweepTable, rows_as_table

SPACES = {
    "flow": """
name: small_flow
network: flow
resolutions: [32x48, 48x64, 64x96]
widths: {stem: 8, encoder: 16, encoder_units: 2, head0: 16, head1: 8, head2: 8}
choices:
  backbone: [shufflenet, resnet]
  head1_block: [conv3x3, dsconv3x3, mbconv_e6]
tied: {head2_block: head1_block}
""",
    "stages": """
name: small_stages
network: stages
resolutions: [32x48, 48x64, 64x96]
widths: {stem: 8, stages: 2, units_per_stage: 1}
choices:
  stage0_block: [mbconv_e3_k3, mbconv_e4_k5, mbconv_e6_k7]
  stage1_block: [dsconv3x3, mbconv_e6_k3]
default: {stage0_block: mbconv_e4_k5}
""",
}
HARDWARE = ("ethos-u55-256:sram_kib=64", "ethos-u55-256:sram_kib=32")


def sweep(tmp_path: Path, text: str) -> tuple[SearchSpace, SweepTable, LayerTable, dict]:
    cfg = tmp_path / "space.yaml"
    cfg.write_text(text)
    space = load_space(cfg)
    profiles = [load_profile_spec(h) for h in HARDWARE]
    results = run_sweep(space, profiles, plan_jobs(space), n_jobs=1)
    table = rows_as_table([row for r in results for row in r.rows], space.choices)
    return space, table, LayerTable(tuple(layer_rows(results))), {p.name: p for p in profiles}


@pytest.fixture(scope="module", params=sorted(SPACES))
def real(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Study, SweepTable]:
    space, table, layers, profiles = sweep(tmp_path_factory.mktemp(request.param), SPACES[request.param])
    return analyse(table, layers, StudySettings(), space=space, profiles=profiles), table


def _row(table: SweepTable, design, res: str, hw: str):
    return next(r for r in table.rows if r["resolution"] == res and r["hardware"] == hw
                and all(str(r[c]) == v for c, v in design.choices))


def test_settings_and_key_results_agree_with_the_rows(real: tuple[Study, SweepTable]) -> None:
    s, table = real
    assert s.settings.key_resolution == "48x64" and s.settings.device_hardware == HARDWARE[0]
    kr = s.key_results
    ok = [r for r in table.rows if r["resolution"] == "48x64" and r["hardware"] == HARDWARE[0] and r["status"] == "ok"]
    fastest = max(ok, key=lambda r: r["fps"])
    assert kr.rows[0].fastest and kr.rows[0].fps == fastest["fps"] and kr.fastest == kr.rows[0].design
    assert kr.rows[-1].slowest and kr.rows[-1].fps == min(r["fps"] for r in ok)
    assert [r.fps for r in kr.rows] == sorted((r.fps for r in kr.rows), reverse=True)
    for r in kr.rows:
        src = _row(table, r.design, "48x64", HARDWARE[0])
        assert (r.sram_kib, r.fits) == (src["sram_kib"], not src["over_sram"] and not src["over_flash"])
        assert r.fps_change == pytest.approx(r.fps / kr.baseline_fps - 1)
    assert next(r for r in kr.rows if r.is_baseline).fps_change == 0.0
    for d, vals in zip(s.fps.designs, s.fps.values):
        assert vals == tuple(_row(table, d, res, HARDWARE[0])["fps"] for res in s.fps.resolutions)


def test_shares_sum_to_one(real: tuple[Study, SweepTable]) -> None:
    s, _ = real
    assert len(s.breakdowns) == len(s.designs)
    for b in s.breakdowns:
        assert math.fsum(p.share for p in b.parts) == pytest.approx(1.0)
        assert math.fsum(p.share for p in b.op_types) == pytest.approx(1.0)
        assert b.layer_cycles == pytest.approx(b.network_cycles, rel=1e-6)  # per-layer cycles add up
        for d in b.dominant:
            assert d.share > s.settings.dominant_op_share
            assert math.fsum(p.share for p in d.parts) == pytest.approx(1.0)
            for cv in d.cheaper:
                if cv.code == "choice_in_sweep":
                    assert cv.alternative_total_cycles < cv.total_cycles


def test_anomalies_hold_their_evidence(real: tuple[Study, SweepTable]) -> None:
    s, table = real
    st = s.settings
    for c in s.anomalies.fps_cliffs:
        assert c.larger_fps > c.fps * (1 + st.cliff_tolerance)
    for a in s.anomalies.offchip_bound:
        for lr in a.layers:
            assert lr.offchip_share >= st.offchip_share and lr.network_share >= st.min_offchip_layer_share
    over = {(o.design, o.resolution) for o in s.anomalies.over_memory}
    for r in table.rows:
        if r["hardware"] == HARDWARE[0] and (r["over_sram"] or r["over_flash"]):
            assert any(d.arch_id == r["arch_id"] and res == r["resolution"] for d, res in over)
    for o in s.anomalies.over_memory:
        if o.memory == "sram":
            assert o.tensors and o.ir_peak_kib == pytest.approx(sum(t.bytes for t in o.tensors) / 1024)
    for o in s.sram_overheads:
        assert o.flagged == (o.max_ratio > st.sram_overhead_limit)


def test_recommendations_are_consistent(real: tuple[Study, SweepTable]) -> None:
    s, table = real
    rec = s.recommendation
    for cs in rec.reduced_space.choices:
        values = list(dict.fromkeys(str(r[cs.choice]) for r in table.rows))
        assert sorted(cs.kept + tuple(e.value for e in cs.excluded)) == sorted(values)
        assert all(e.reasons for e in cs.excluded)
    assert rec.reduced_space.size_after == math.prod(len(c.kept) for c in rec.reduced_space.choices)
    fits = {r.design for r in s.key_results.rows if r.fits}
    for sc in rec.scenarios:
        assert sc.design in fits
    speed = rec.scenario("speed_priority")
    safe = rec.scenario("safe_baseline")
    if speed is not None:
        assert speed.fps >= safe.fps and speed.fps_loss_vs_fastest == 0.0
    for rk in rec.rankings:
        fps = [e.fps for e in rk.entries if e.fps is not None]
        assert fps == sorted(fps, reverse=True)
        assert sum(e.is_baseline for e in rk.entries) == 1
        top = next(e for e in rk.entries if e.value == rk.most_expensive) if rk.most_expensive else None
        assert top is None or top.part_cycles_saved == 0.0
        assert rk.parts  # every choice changes some part of the network


def test_min_sram_is_the_smallest_that_fits(real: tuple[Study, SweepTable]) -> None:
    s, table = real
    ms = s.min_sram
    assert [p.name for p in ms.profiles] == [HARDWARE[1], HARDWARE[0]]
    for e in ms.entries:
        rows = {h: _row(table, e.design, e.resolution, h) for h in HARDWARE}
        fit = {h: r["status"] == "ok" and not r["over_sram"] and not r["over_flash"] for h, r in rows.items()}
        expect = HARDWARE[1] if fit[HARDWARE[1]] else HARDWARE[0] if fit[HARDWARE[0]] else None
        assert e.hardware == expect
