"""Key results, matrices, cycle breakdown and the smallest SRAM per design on hand-made tables."""

from __future__ import annotations

import pytest
from analysis_tables import HW, RESOLUTIONS, grid, layer, layer_table, profile, row, table

from edgenas.analysis import StudySettings, analyse
from edgenas.space.space import load_space

BB = {"r0": {}, "r1": {"fps": 0.8}}
BLK = {"k3": {}, "k5": {"fps": 1.25, "sram": 1.1}, "k7": {"fps": 0.5}}


def test_key_results() -> None:
    t, lt = grid(BB, BLK)
    s = analyse(t, lt, StudySettings())
    kr = s.key_results
    assert (kr.resolution, kr.hardware) == (RESOLUTIONS[1], HW)
    assert kr.baseline_fps == pytest.approx(100.0) and kr.baseline_sram_kib == pytest.approx(900.0)
    fps = [r.fps for r in kr.rows]
    assert fps == sorted(fps, reverse=True)
    top = kr.rows[0]
    assert top.fastest and top.design.as_dict() == {"backbone": "r0", "stage0_block": "k5"} and top.rank == 1
    assert top.fps_change == pytest.approx(0.25) and top.sram_change == pytest.approx(0.1)
    assert top.changed == ("stage0_block",)
    assert kr.rows[-1].slowest and kr.slowest == kr.rows[-1].design
    assert sum(r.fastest for r in kr.rows) == 1 and sum(r.slowest for r in kr.rows) == 1
    base = next(r for r in kr.rows if r.is_baseline)
    assert base.fps_change == 0.0 and base.changed == ()
    assert kr.n_fitting == 6 and kr.fastest_fitting == top.design


def test_matrices_follow_key_results_order() -> None:
    t, lt = grid(BB, BLK)
    s = analyse(t, lt, StudySettings())
    assert s.fps.designs == tuple(r.design for r in s.key_results.rows) == s.designs
    assert s.fps.resolutions == RESOLUTIONS
    for d, fps_row, sram_row in zip(s.fps.designs, s.fps.values, s.sram.values):
        for res, f, m in zip(RESOLUTIONS, fps_row, sram_row):
            r = next(r for r in t.rows if r["resolution"] == res and r["backbone"] == d.value("backbone")
                     and r["stage0_block"] == d.value("stage0_block"))
            assert (f, m) == (r["fps"], r["sram_kib"])
    assert all(all(row) for row in s.fps.fits)


def test_breakdown_shares() -> None:
    t, lt = grid(BB, BLK)
    s = analyse(t, lt, StudySettings(dominant_op_share=0.99))
    assert len(s.breakdowns) == 6
    for b in s.breakdowns:
        assert [p.name for p in b.parts] == ["stem", "backbone", "head"]
        assert [p.share for p in b.parts] == pytest.approx([0.1, 0.4, 0.5])
        assert sum(p.share for p in b.op_types) == pytest.approx(1.0)
        assert b.layer_cycles == pytest.approx(b.network_cycles)
        (conv,) = b.dominant  # all Conv2D
        assert conv.op_type == "Conv2D" and conv.share == pytest.approx(1.0)
    fastest = s.breakdowns[0]
    assert fastest.dominant[0].cheaper == ()  # nothing measured is cheaper than the fastest design
    slowest = s.breakdowns[-1]
    (cv,) = slowest.dominant[0].cheaper
    assert cv.code == "choice_in_sweep" and (cv.parameter, cv.current, cv.alternative) == ("stage0_block", "k7", "k5")
    assert cv.saving == pytest.approx(1 - 0.5 / 1.25) and cv.alternative_fits


def test_dominant_resize_names_the_lowering_and_the_cheaper_variants(tmp_path) -> None:
    cfg = tmp_path / "hpc.yaml"
    cfg.write_text("name: hpc\nnetwork: flow\nresolutions: [96x128]\nfixed: {upsample: bilinear_hpc}\n"
                   "choices: {head1_block: [conv3x3, dsconv3x3]}\ntied: {head2_block: head1_block}\n")
    space = load_space(cfg)
    rows, layers = [], []
    for blk, fps in (("conv3x3", 100.0), ("dsconv3x3", 125.0)):
        r = row({"head1_block": blk}, "96x128", fps=fps, sram=500.0)
        total = r["cycles_total"]
        resize = 0.6 * 5e6 if blk == "conv3x3" else 0.5 * 5e6 * 0.8
        layers.append(layer(r, "head1.skip", "ResizeBilinear", resize * 0.3, nng_op="DepthwiseConv2D"))
        layers += [layer(r, "head2.up.resize", "ResizeBilinear", resize * 0.7 / 4, nng_op="DepthwiseConv2D")
                   for _ in range(4)]
        layers.append(layer(r, "head0.block.conv", "ResizeBilinear", 0.0, nng_op="MemoryCopy"))  # no cycles
        layers.append(layer(r, "head2.block.conv", "Conv2D", total - resize))
        rows.append(r)
    s = analyse(table(rows, ["head1_block"]), layer_table(layers), StudySettings(), space=space)
    b = next(b for b in s.breakdowns if b.design.value("head1_block") == "conv3x3")
    (d,) = b.dominant
    assert d.op_type == "ResizeBilinear" and d.share == pytest.approx(0.6)
    assert (d.npu_ops, d.ir_ops, d.nng_ops) == (5, 2, ("DepthwiseConv2D",))  # two resizes became 5 NPU ops
    assert [p.name for p in d.parts] == ["head2", "head1"] and d.parts[0].share == pytest.approx(0.7)
    measured, lowering = d.cheaper
    assert (measured.code, measured.parameter, measured.alternative) == ("choice_in_sweep", "head1_block", "dsconv3x3")
    assert measured.alternative_op_cycles == pytest.approx(0.4 * 5e6)
    assert (lowering.code, lowering.parameter, lowering.current, lowering.alternative) == (
        "space_lowering", "upsample", "bilinear_hpc", "bilinear")


def test_min_sram_over_profiles() -> None:
    small, mid = "npu:sram_kib=1024", HW
    t1, _ = grid(BB, BLK, hw=mid)
    rows = [dict(r) for r in t1.rows]
    for r in t1.rows:  # the same designs on a 1 MiB part: fits up to 1024 KiB
        r2 = dict(r, hardware=small, over_sram=r["sram_kib"] > 1024)
        rows.append(r2)
    t = table(rows, t1.choices)
    profiles = {small: profile(small, 1024), mid: profile(mid, 2048)}
    s = analyse(t, None, StudySettings(device_hardware=mid), profiles=profiles)
    ms = s.min_sram
    assert [p.name for p in ms.profiles] == [small, mid] and not ms.profiles[0].inferred
    by = {(e.design.value("backbone"), e.design.value("stage0_block"), e.resolution): e for e in ms.entries}
    assert by[("r0", "k3", RESOLUTIONS[1])].hardware == small  # 900 KiB
    assert by[("r0", "k5", RESOLUTIONS[1])].hardware == small  # 990 KiB
    assert by[("r0", "k5", RESOLUTIONS[2])].hardware == mid  # 1320 KiB
    assert by[("r0", "k3", RESOLUTIONS[2])].hardware == mid  # 1200 KiB
    big = by[("r0", "k3", RESOLUTIONS[2])]
    assert big.profile_sram_kib == 2048 and big.fitting_profiles == 1 and big.sram_used_kib == pytest.approx(1200)
    # without the profiles the order comes from the rows' own verdicts
    s2 = analyse(t, None, StudySettings(device_hardware=mid))
    assert [p.name for p in s2.min_sram.profiles] == [small, mid] and s2.min_sram.profiles[0].inferred
    assert analyse(t1, None, StudySettings()).min_sram is None  # one profile: nothing to compare
