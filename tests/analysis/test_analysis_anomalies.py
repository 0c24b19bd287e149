"""Anomalies on hand-made tables: each planted one is found (and only it); a clean table has none."""

from __future__ import annotations

from typing import Any

import pytest
from analysis_tables import CLOCK, HW, RESOLUTIONS, grid, layer, profile, row, set_fps, table

from edgenas.analysis import StudySettings, analyse
from edgenas.space.space import load_space

BB = {"r0": {}, "r1": {"fps": 0.8, "rf": 40}}
BLK = {"mbconv_e3_k3": {}, "mbconv_e6_k7": {"fps": 0.7, "rf": 30}}
PROFILES = {HW: profile()}


def only(study: Any, kind: str) -> tuple:
    """The anomalies of `kind`, checking there is no anomaly of any other kind."""
    found = [a for a in study.anomalies.all if a.kind == kind]
    assert len(found) == study.anomalies.count, [a.kind for a in study.anomalies.all]
    return tuple(found)


def is_design(d: Any, bb: str, blk: str) -> bool:
    return d.as_dict() == {"backbone": bb, "stage0_block": blk}


def test_clean_table_has_no_anomaly() -> None:
    t, lt = grid(BB, BLK)
    study = analyse(t, lt, StudySettings(), profiles=PROFILES)
    assert study.anomalies.count == 0
    assert all(not o.flagged for o in study.sram_overheads)
    # and without per-layer rows or profiles
    assert analyse(t, None).anomalies.count == 0


def _plant_cliff(r: dict, layers: list[dict], *, sram: float | None = None, offchip: bool = True) -> None:
    if not (r["backbone"] == "r1" and r["stage0_block"] == "mbconv_e6_k7" and r["resolution"] == RESOLUTIONS[0]):
        return
    new_cycles = CLOCK / 40.0  # 40 FPS, against 56 at the larger RESOLUTIONS[1]
    extra = new_cycles - r["cycles_total"]
    r.update(fps=40.0, cycles_total=new_cycles, cycles_npu=new_cycles, fps_end_to_end=40.0)
    bb = next(lr for lr in layers if lr["name"] == "backbone.block.conv")
    bb["cycles"] += extra
    if offchip:
        bb["offflash_ac"] = 0.45 * bb["cycles"]  # below offchip_share: not an off-chip-bound layer
        r["offchip_flash_access_cycles"] = bb["offflash_ac"]
    if sram is not None:
        r["sram_kib"] = sram


def test_planted_cliff_is_found_with_its_cause() -> None:
    t, lt = grid(BB, BLK, plant=_plant_cliff)
    study = analyse(t, lt, StudySettings(), profiles=PROFILES)
    (c,) = only(study, "fps_cliff")
    assert is_design(c.design, "r1", "mbconv_e6_k7")
    assert (c.resolution, c.larger_resolution, c.hardware) == (RESOLUTIONS[0], RESOLUTIONS[1], HW)
    assert c.fps == pytest.approx(40.0) and c.larger_fps == pytest.approx(56.0)
    assert c.excess == pytest.approx(56.0 / 40.0 - 1)
    assert c.expected_fps == pytest.approx(56.0 * (128 * 160) / (96 * 128))
    assert c.baseline_fps == pytest.approx(200.0) and c.fps_vs_baseline == pytest.approx(40.0 / 200.0 - 1)
    assert c.cause == "offchip_traffic" and c.offchip_higher
    assert c.offchip_share > c.larger_offchip_share + c.offchip_margin
    assert c.top_layer is not None and c.top_layer.name == "backbone.block.conv"
    assert c.top_layer.cycles > c.top_layer.expected_cycles


def test_cliff_cause_sram_at_arena_limit_needs_the_profile() -> None:
    t, lt = grid(BB, BLK, plant=lambda r, ls: _plant_cliff(r, ls, sram=2040.0, offchip=False))
    (c,) = only(analyse(t, lt, StudySettings(), profiles=PROFILES), "fps_cliff")
    assert c.cause == "sram_at_arena_limit" and c.sram_at_limit and c.arena_kib == 2048.0
    (c,) = only(analyse(t, lt, StudySettings()), "fps_cliff")
    assert c.cause == "unexplained" and c.arena_kib is None


def test_a_plateau_within_tolerance_is_a_cliff_and_a_real_fall_is_not() -> None:
    def plant(r: dict, layers: list[dict]) -> None:
        if r["backbone"] == "r1" and r["stage0_block"] == "mbconv_e6_k7" and r["resolution"] == RESOLUTIONS[0]:
            set_fps(r, layers, 56.0 / 0.985)  # the larger input is only 1.5% slower: FPS barely falls
    t, lt = grid(BB, BLK, plant=plant)
    (c,) = analyse(t, lt, StudySettings()).anomalies.fps_cliffs  # within the default 2%: a plateau
    assert c.resolution == RESOLUTIONS[0] and c.excess == pytest.approx(-0.015)
    assert analyse(t, lt, StudySettings(cliff_tolerance=0.01)).anomalies.count == 0  # a 1.5% fall is enough


def test_planted_offchip_bound_layers_are_found() -> None:
    def plant(r: dict, layers: list[dict]) -> None:
        if r["backbone"] == "r0" and r["stage0_block"] == "mbconv_e3_k3" and r["resolution"] == RESOLUTIONS[1]:
            by = {lr["name"]: lr for lr in layers}
            by["head.block.conv"]["offflash_ac"] = 0.9 * by["head.block.conv"]["cycles"]
            by["backbone.block.conv"]["dram_ac"] = 0.6 * by["backbone.block.conv"]["cycles"]
            by["stem.block.conv"]["offflash_ac"] = 0.3 * by["stem.block.conv"]["cycles"]  # below the share
            tiny = layer(r, "head.tiny", "Conv2D", 0.01 * r["cycles_total"], offflash=0.01 * r["cycles_total"])
            layers.append(tiny)  # off-chip-bound but 1% of the network: below min_offchip_layer_share
    t, lt = grid(BB, BLK, plant=plant)
    study = analyse(t, lt, StudySettings(), profiles=PROFILES)
    (a,) = only(study, "offchip_bound_layer")
    assert is_design(a.design, "r0", "mbconv_e3_k3") and a.resolution == RESOLUTIONS[1]
    by = {lr.name: lr for lr in a.layers}
    assert set(by) == {"head.block.conv", "backbone.block.conv"}
    head, bb = by["head.block.conv"], by["backbone.block.conv"]
    assert head.bound_by == "offchip_flash" and head.offchip_share == pytest.approx(0.9)
    assert bb.bound_by == "dram" and bb.offchip_share == pytest.approx(0.6)
    assert by["head.block.conv"].network_share == pytest.approx(0.5)
    assert a.cause == "offchip_flash_traffic"  # 50% of cycles flash-bound against 40% DRAM-bound
    assert a.bound_share == pytest.approx(0.9)
    assert (a.threshold, a.min_layer_share) == (0.5, 0.05)
    # a stricter share drops the DRAM-bound layer
    (a,) = analyse(t, lt, StudySettings(offchip_share=0.7)).anomalies.offchip_bound
    assert [lr.name for lr in a.layers] == ["head.block.conv"]


def test_planted_sram_overflow_without_space() -> None:
    def plant(r: dict, layers: list[dict]) -> None:
        if r["backbone"] == "r1" and r["stage0_block"] == "mbconv_e6_k7" and r["resolution"] == RESOLUTIONS[2]:
            r.update(sram_kib=2600.0, over_sram=True)
            layers[0]["offflash_ac"] = layers[0]["cycles"]  # not reported: the design does not fit anyway
    t, lt = grid(BB, BLK, plant=plant)
    (o,) = only(analyse(t, lt, StudySettings(), profiles=PROFILES), "over_memory")
    assert is_design(o.design, "r1", "mbconv_e6_k7") and o.resolution == RESOLUTIONS[2]
    assert (o.memory, o.cause, o.used_kib, o.device_kib, o.excess_kib) == ("sram", "sram_exceeded", 2600.0, 2048.0,
                                                                          552.0)
    assert o.used_ratio == pytest.approx(2600 / 2048)
    assert o.tensors == () and o.ir_peak_kib == pytest.approx(1200.0 * 0.8)  # the row's peak_activation_kib
    (o,) = analyse(t, lt, StudySettings()).anomalies.over_memory
    assert o.device_kib is None and o.excess_kib is None


def test_planted_sram_overflow_names_the_tensor_from_the_ir() -> None:
    space = load_space("flow_head_upsample")
    rows = [row({"backbone": "shufflenet", "head1_block": "conv3x3"}, "192x256", fps=70.0, sram=2000.0),
            row({"backbone": "shufflenet", "head1_block": "mbconv_e6"}, "192x256", fps=20.0, sram=9000.0,
                over_sram=True),
            row({"backbone": "shufflenet", "head1_block": "conv3x3"}, "96x128", fps=200.0, sram=600.0, flash_kib=9000,
                over_flash=True)]
    study = analyse(table(rows, ["backbone", "head1_block"]), None, StudySettings(), space=space, profiles=PROFILES)
    over = study.anomalies.over_memory
    assert len(over) == 2
    sram = next(o for o in over if o.memory == "sram")
    assert sram.design.as_dict() == {"backbone": "shufflenet", "head1_block": "mbconv_e6"}
    # Head2 works at full resolution on the 32-channel upsampled Head1 output; MBConv e6 expands it 6x.
    big = sram.tensors[0]
    assert (big.channels, big.height, big.width) == (32 * 6, 192, 256)
    assert big.name.startswith("head2.block.") and big.bytes == 192 * 192 * 256 and big.alone_exceeds
    assert sram.ir_peak_exceeds and sram.ir_peak_op == "head2.block.dw"
    assert sram.ir_peak_kib == pytest.approx(sum(t.bytes for t in sram.tensors) / 1024)
    flash = next(o for o in over if o.memory == "flash")
    assert (flash.used_kib, flash.device_kib, flash.cause) == (9000.0, 8192.0, "flash_exceeded")
    assert flash.weight_layers and flash.weight_layers[0].bytes == max(w.bytes for w in flash.weight_layers)


def test_planted_cpu_fallback_names_the_layers() -> None:
    def plant(r: dict, layers: list[dict]) -> None:
        if r["backbone"] == "r0" and r["stage0_block"] == "mbconv_e6_k7" and r["resolution"] == RESOLUTIONS[0]:
            r.update(cpu_ops=2, fps_complete=False, fps_end_to_end=r["fps"] / 2)
            layers.append(layer(r, "head.up.d2s", "DepthToSpace", 0.0, target="CPU"))
            layers.append(layer(r, "head.up2.d2s", "DepthToSpace", 0.0, target="CPU"))
    t, lt = grid(BB, BLK, plant=plant)
    (c,) = only(analyse(t, lt, StudySettings()), "cpu_fallback")
    assert is_design(c.design, "r0", "mbconv_e6_k7") and c.resolution == RESOLUTIONS[0]
    assert c.cpu_ops == 2 and [lr.name for lr in c.layers] == ["head.up.d2s", "head.up2.d2s"]
    assert c.fps_end_to_end == pytest.approx(c.fps / 2)


def test_failed_compile_is_reported() -> None:
    t, lt = grid(BB, BLK)
    rows = [dict(r) for r in t.rows]
    rows[0] = row({"backbone": "r0", "stage0_block": "mbconv_e3_k3"}, RESOLUTIONS[0], fps=1.0, sram=1.0,
                  status="failed")
    (f,) = only(analyse(table(rows, t.choices), lt, StudySettings()), "compile_failed")
    assert f.resolution == RESOLUTIONS[0] and f.error == "compiler said no"


def test_sram_overhead_ratio_per_resolution() -> None:
    blk = {"mbconv_e3_k3": {}, "shuffle_like": {"sram": 1.66, "fps": 1.05}, "mbconv_e4_k5": {"sram": 1.1}}
    t, lt = grid(BB, blk)
    study = analyse(t, lt, StudySettings(), profiles={HW: profile(sram_kib=4096)})
    ov = {(o.choice, o.value): o for o in study.sram_overheads}
    assert set(ov) == {("backbone", "r1"), ("stage0_block", "shuffle_like"), ("stage0_block", "mbconv_e4_k5")}
    s = ov[("stage0_block", "shuffle_like")]
    assert s.baseline_value == "mbconv_e3_k3" and [p.resolution for p in s.points] == list(RESOLUTIONS)
    for i, p in enumerate(s.points):
        assert p.baseline_sram_kib == pytest.approx(600 + 300 * i)
        assert p.sram_kib == pytest.approx((600 + 300 * i) * 1.66)
        assert p.ratio == pytest.approx(0.66)
    assert s.flagged and s.max_ratio == pytest.approx(0.66) and s.limit == 0.3
    assert not ov[("stage0_block", "mbconv_e4_k5")].flagged
    assert ov[("stage0_block", "mbconv_e4_k5")].max_ratio == pytest.approx(0.1)
    (a,) = only(study, "sram_overhead")
    assert a is s
