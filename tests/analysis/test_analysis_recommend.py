"""Recommendations on a hand-made table (stage-style choice names, nothing from the seed): the planted bad
values, and only they, leave the reduced space with the right reason; rankings and scenario picks."""

from __future__ import annotations

import pytest
from analysis_tables import HW, RESOLUTIONS, grid, profile, set_fps

from edgenas.analysis import Study, StudySettings, analyse

BB = {"r0": {}, "r1": {"fps": 0.8, "sram": 1.02, "rf": 60}}
BLK = {
    "mbconv_e3_k3": {},  # the baseline
    "dsconv_k3": {"fps": 1.1, "sram": 1.01, "rf": 18},
    "mbconv_e6_k7": {"fps": 0.5, "rf": 40},  # loses 50% FPS
    "shuffle": {"fps": 1.2, "sram": 1.5},  # fastest of all, but +50% SRAM
    "mbconv_e4_k5": {"fps": 0.9, "rf": 30},  # a cliff at the smallest input (planted)
    "mbconv_e9_k7": {"sram": 5.0},  # never fits a 2 MiB device
}
PROFILES = {HW: profile(sram_kib=2048)}


def plant(r: dict, layers: list[dict]) -> None:
    if r["stage0_block"] == "mbconv_e4_k5" and r["resolution"] == RESOLUTIONS[0]:
        set_fps(r, layers, r["fps"] / 3)  # below the FPS at RESOLUTIONS[1] (which is half of the normal one)
    if r["sram_kib"] > 2048:
        r["over_sram"] = True


def study(**kw: float) -> Study:
    t, lt = grid(BB, BLK, plant=plant)
    return analyse(t, lt, StudySettings(**kw), profiles=PROFILES)


def test_reduced_space_excludes_exactly_the_planted_values() -> None:
    s = study()
    rs = s.recommendation.reduced_space
    assert (rs.hardware, rs.resolution) == (HW, RESOLUTIONS[1])
    bb, blk = rs.choices
    assert (bb.choice, bb.kept, bb.excluded) == ("backbone", ("r0", "r1"), ())
    assert blk.kept == ("mbconv_e3_k3", "dsconv_k3")
    reasons = {e.value: {x.reason: x for x in e.reasons} for e in blk.excluded}
    assert {v: set(r) for v, r in reasons.items()} == {
        "mbconv_e6_k7": {"fps_loss"},
        "shuffle": {"sram_overhead"},
        "mbconv_e4_k5": {"fps_cliff"},
        "mbconv_e9_k7": {"sram_overhead", "never_fits"},
    }
    loss = reasons["mbconv_e6_k7"]["fps_loss"]
    assert (loss.threshold, loss.resolution) == (0.4, RESOLUTIONS[1]) and loss.measured == pytest.approx(0.5)
    assert loss.design is not None and loss.design.as_dict() == {"backbone": "r0", "stage0_block": "mbconv_e6_k7"}
    over = reasons["shuffle"]["sram_overhead"]
    assert over.threshold == 0.3 and over.measured == pytest.approx(0.5)
    cliff = reasons["mbconv_e4_k5"]["fps_cliff"]
    assert cliff.threshold == 0.02 and cliff.resolution == RESOLUTIONS[0]
    assert cliff.measured == pytest.approx(0.5)  # FPS at the larger input is 1.5x the planted one
    assert (cliff.occurrences, cliff.contexts) == (2, 2)  # with both backbones
    never = reasons["mbconv_e9_k7"]["never_fits"]
    assert never.threshold == 2048 and never.measured == pytest.approx(900 * 5.0)
    assert (rs.size_before, rs.size_after) == (12, 4)


def test_limits_come_from_the_settings() -> None:
    blk = {e.value: e for e in study(fps_loss_limit=0.6, sram_overhead_limit=0.6).recommendation
           .reduced_space.choices[1].excluded}
    assert set(blk) == {"mbconv_e4_k5", "mbconv_e9_k7"}  # loss 0.5 and overhead 0.5 are now allowed


def test_scenarios() -> None:
    s = study()
    rec = s.recommendation
    safe, speed, acc = (rec.scenario(x) for x in ("safe_baseline", "speed_priority", "accuracy_priority"))
    assert safe.design.as_dict() == {"backbone": "r0", "stage0_block": "mbconv_e3_k3"}  # the least SRAM
    assert speed.design.as_dict() == {"backbone": "r0", "stage0_block": "dsconv_k3"}  # shuffle is excluded
    assert acc.design.as_dict() == {"backbone": "r1", "stage0_block": "mbconv_e3_k3"}  # receptive field 80
    assert {safe.pool, speed.pool, acc.pool} == {"reduced_space"} and safe.candidates == 4
    assert speed.fps == pytest.approx(110.0) and speed.fps_change == pytest.approx(0.1)
    assert acc.receptive_field == 80 and acc.threshold == 0.3
    assert acc.fps_loss_vs_fastest == pytest.approx(1 - 80 / 110)
    tight = study(accuracy_fps_loss=0.1).recommendation.scenario("accuracy_priority")
    assert tight.design.as_dict() == {"backbone": "r0", "stage0_block": "mbconv_e3_k3"}  # 50 beats 48
    assert tight.candidates == 2


def test_rankings_with_others_at_baseline() -> None:
    bb, blk = study().recommendation.rankings
    assert bb.parts == ("backbone",) and blk.parts == ("head",)
    assert [e.value for e in bb.entries] == ["r0", "r1"]
    r0 = bb.entries[0]
    assert r0.is_baseline and r0.rank == 1 and r0.fps_change == 0.0
    assert r0.part_cycles_saved == pytest.approx(1 - 80 / 100)  # backbone cycles scale with 1/FPS
    assert bb.most_expensive == "r1" and bb.entries[1].part_cycles_saved == 0.0
    assert [e.value for e in blk.entries][:3] == ["shuffle", "dsconv_k3", "mbconv_e3_k3"]
    assert blk.entries[-1].value == "mbconv_e6_k7" and blk.slowest == "mbconv_e6_k7"
    by = {e.value: e for e in blk.entries}
    assert by["mbconv_e3_k3"].cycles_saved == pytest.approx(0.5)
    assert by["mbconv_e3_k3"].part_cycles_saved == pytest.approx(0.5)
    assert by["mbconv_e4_k5"].anomalies == ("fps_cliff",) and not by["mbconv_e4_k5"].kept
    assert not by["mbconv_e9_k7"].fits and by["dsconv_k3"].kept


def test_scenarios_only_among_designs_that_fit() -> None:
    rec = study(sram_overhead_limit=10.0, fps_loss_limit=1.0).recommendation
    for sc in rec.scenarios:
        assert sc.design.value("stage0_block") != "mbconv_e9_k7"
    assert rec.scenario("speed_priority").design.value("stage0_block") == "shuffle"
