"""Where ops run (NPU or CPU fallback): the committed table, and known facts checked against the compiler.

The facts in the second half are asserted on the compiler's own verdicts (fresh probes), not on the
committed document, so each of them fails if the compiler changes its mind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgenas.errors import EdgeNasError
from edgenas.graph.blocks import _FIXED_BLOCKS, UPSAMPLERS
from edgenas.hardware import npu_support as ns
from edgenas.hardware.profile import list_profiles, load_profile
from edgenas.hardware.vela import VelaEvaluator
from edgenas.tflite import graph_to_tflite

DOC = Path(__file__).resolve().parents[2] / "docs" / "npu_support.md"
TARGETS = ns.compiler_targets()
U55 = [t for t in TARGETS if t.startswith("ethos-u55-")]
DEFAULT_BLOCKS = [b for b in (*_FIXED_BLOCKS, *ns.EXTRA_BLOCKS) if b != "shuffle"]


@pytest.fixture(scope="module")
def rows() -> list[ns.SupportRow]:
    """The whole table, probed now (about 5 s on 2 cores)."""
    return ns.support_table(cases=ns.support_cases(), workers=2)


def _pick(rows: list[ns.SupportRow], name: str, *, lowering: str = "", scale: int = 1) -> list[ns.SupportRow]:
    found = [r for r in rows if r.case.name == name and r.case.lowering == lowering and r.case.scale == scale]
    assert found, f"no probe of {name} {lowering} x{scale}"
    return found


# ---- the committed document ------------------------------------------------------------------------------


def test_committed_doc_matches_the_compiler(rows: list[ns.SupportRow]) -> None:
    committed = DOC.read_text(encoding="utf-8")
    diffs = ns.diff_cells(committed, rows)
    assert not diffs, "docs/npu_support.md is out of date; run `" + ns.COMMAND + "`:\n" + "\n".join(diffs)
    assert len(ns.parse_cells(committed)) == len(rows) == len(ns.support_cases()) * len(TARGETS)


def test_doc_covers_every_compiler_target() -> None:
    vela = [p for p in list_profiles() if load_profile(p).evaluator == "vela"]
    assert TARGETS == vela and len(vela) >= 7
    header = next(ln for ln in DOC.read_text(encoding="utf-8").splitlines() if ln.startswith("| case |"))
    assert [c.strip() for c in header.strip("|").split("|")][4:] == vela


def test_cases_cover_registry_and_upsamplers() -> None:
    cases = ns.support_cases()
    blocks = {(c.name, c.lowering) for c in cases if c.family == "block"}
    assert {b for b, _ in blocks} == {*_FIXED_BLOCKS, "mbconv_e4_k5"}
    assert {("shuffle", "split_concat"), ("shuffle", "transpose")} <= blocks
    ups = {(c.name, c.scale) for c in cases if c.family == "upsample"}
    assert {(u, 2) for u in UPSAMPLERS} <= ups
    assert {("bilinear", 4), ("bilinear_hpc", 4), ("nearest", 4)} <= ups
    assert {c.name for c in cases if c.family == "head"} == {"classifier"}
    shapes = {c.shape for c in cases}
    assert ns.SMALL in shapes and ns.LARGE in shapes
    assert ns.LARGE[1] * ns.LARGE[2] > 65536  # past the NPU transpose limits
    for c in cases:  # every case is one key, at every size
        assert sum(1 for d in cases if d.key == c.key) == 1


# ---- known facts, against the compiler ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["ethos-u55-256", "ethos-u85-256"])
def test_depth_to_space_falls_back_to_cpu(rows: list[ns.SupportRow], target: str) -> None:
    for r in _pick(rows, "depth_to_space_op", scale=2):
        if r.profile == target:
            assert r.status == "ok" and r.cpu_kinds == ("depth_to_space",), (r.case, r.cell)
            assert [p.target for p in r.ops if p.kind == "conv2d"] == ["NPU"]  # its 1x1 widening conv stays


def test_default_shuffle_runs_on_npu_everywhere(rows: list[ns.SupportRow]) -> None:
    got = _pick(rows, "shuffle", lowering="split_concat")
    assert {r.profile for r in got} == set(TARGETS) and {r.case.shape for r in got} == set(ns.SIZES)
    bad = [(r.profile, r.case.shape_text, r.cell) for r in got if not r.on_npu]
    assert not bad


def test_transpose_shuffle_falls_back_on_u55_at_large_size(rows: list[ns.SupportRow]) -> None:
    large = [r for r in _pick(rows, "shuffle", lowering="transpose") if r.case.shape == ns.LARGE]
    for r in large:
        if r.profile in U55:
            assert r.cpu_kinds == ("transpose",), (r.profile, r.cell)
            assert r.cpu_fallback == ("b.shuffle.t",)  # the reshapes around it stay on the NPU
    assert {r.profile for r in large if r.cpu_fallback} >= set(U55)


def test_transpose_shuffle_limit_depends_on_channels(rows: list[ns.SupportRow]) -> None:
    """The 5-D transpose (1,H,W,2,C/2) is NPU-able while the product of any 3 of its axes is <= 2^16: at
    48x64 that holds with 32 channels (48*64*16) and fails with 128 (48*64*64). U85 has no such limit."""
    by = {(r.case.shape, r.profile): r for r in _pick(rows, "shuffle", lowering="transpose")}
    assert by[(ns.SMALL, "ethos-u55-256")].on_npu
    assert by[(ns.WIDE, "ethos-u55-256")].cpu_kinds == ("transpose",)
    assert all(by[(s, "ethos-u85-256")].on_npu for s in ns.SIZES)


@pytest.mark.parametrize("scale", [2, 4])
def test_bilinear_without_half_pixel_centers_runs_on_npu(rows: list[ns.SupportRow], scale: int) -> None:
    got = _pick(rows, "bilinear", scale=scale)
    assert {r.profile for r in got} == set(TARGETS)
    assert not [(r.profile, r.case.shape_text, r.cell) for r in got if not r.on_npu]


def test_bilinear_half_pixel_x4_falls_back_on_u55(rows: list[ns.SupportRow]) -> None:
    for r in _pick(rows, "bilinear_hpc", scale=4):
        if r.profile in U55:
            assert r.cpu_kinds == ("resize_bilinear",) and "scale-factor" in r.ops[0].reason, r.cell


@pytest.mark.parametrize("block", DEFAULT_BLOCKS)
def test_default_blocks_run_on_npu_everywhere(rows: list[ns.SupportRow], block: str) -> None:
    got = _pick(rows, block)
    assert {r.profile for r in got} == set(TARGETS)
    assert not [(r.profile, r.case.shape_text, r.cell) for r in got if not r.on_npu]


# ---- the attribution rule --------------------------------------------------------------------------------


def test_probe_attributes_the_cpu_op_by_name() -> None:
    case = ns.SupportCase("block", "shuffle", ns.LARGE, "transpose")
    row = ns.probe(case, "ethos-u55-256")
    assert row.status == "ok" and (row.cpu_ops, row.cell) == (1, "CPU: transpose")
    placed = {p.name: p.target for p in row.ops}
    assert placed == {op.name: ("CPU" if op.kind == "transpose" else "NPU") for op in case.build().ops}
    cpu = next(p for p in row.ops if p.target == "CPU")
    assert "out of range" in cpu.reason and "2^16" in cpu.reason
    assert row.cycles_total > 0 and row.npu_ops > 0


def test_attribution_cross_checks_fail_loudly() -> None:
    case = ns.SupportCase("upsample", "depth_to_space_op", ns.SMALL, scale=2)
    graph = case.build()
    m, model = VelaEvaluator(load_profile("ethos-u55-256")).compile(graph_to_tflite(graph, seed=0))
    assert model is not None and m.metrics["cpu_ops"] == 1
    ok = ns.attribute(graph, model, 1, ["u.d2s"])
    assert [p.target for p in ok] == ["NPU", "CPU"]
    with pytest.raises(EdgeNasError, match="cpu_ops=0"):
        ns.attribute(graph, model, 0, [])
    with pytest.raises(EdgeNasError, match="per-layer rows"):
        ns.attribute(graph, model, 1, ["u.expand"])
    graph.tensors.pop("u.d2s")  # a CPU op whose output the IR does not know
    graph.ops[-1] = graph.ops[-1].__class__("u.d2s", "depth_to_space", ("u.expand",), ("renamed",))
    with pytest.raises(EdgeNasError, match="no IR op produces"):
        ns.attribute(graph, model, 1, [])


# ---- the command -------------------------------------------------------------------------------------------


def test_main_writes_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    few = [
        ns.SupportCase("block", "conv3x3", ns.SMALL),
        ns.SupportCase("upsample", "depth_to_space_op", ns.SMALL, scale=2),
    ]
    monkeypatch.setattr(ns, "support_cases", lambda *a, **k: few)
    out = tmp_path / "sub" / "npu.md"
    assert ns.main(["--out", str(out), "--workers", "1"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "| conv3x3 | - | - | 1x48x64x32 | NPU |" in text and "CPU: depth_to_space" in text
    assert ns.COMMAND in text
    assert ns.main(["--out", str(out), "--check", "--workers", "1"]) == 0
    # cycles and version lines are not compared ...
    out.write_text(text.replace("Compiler: ethos-u-vela", "Compiler: other-vela"), encoding="utf-8")
    assert ns.main(["--out", str(out), "--check", "--workers", "1"]) == 0
    # ... NPU/CPU cells are
    tampered = text.replace("| conv3x3 | - | - | 1x48x64x32 | NPU |", "| conv3x3 | - | - | 1x48x64x32 | CPU: conv2d |")
    out.write_text(tampered, encoding="utf-8")
    capsys.readouterr()
    assert ns.main(["--out", str(out), "--check", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "conv3x3" in err and "ethos-u55-32" in err and "'CPU: conv2d'" in err
    assert ns.main(["--out", str(tmp_path / "missing.md"), "--check", "--workers", "1"]) == 1
    assert os.path.exists(out)


def test_parse_cells_round_trip(rows: list[ns.SupportRow]) -> None:
    cells = ns.parse_cells(ns.render_markdown(rows))
    assert cells == {(r.case.key, r.profile): r.cell for r in rows}
    with pytest.raises(EdgeNasError):
        ns.parse_cells("# no table here\n")


def test_classifier_head_runs_on_the_npu() -> None:
    """Global average pool + fully connected (the classifier the stages template ends in) stays on the NPU."""
    row = ns.probe(ns.SupportCase("head", "classifier", ns.SMALL), "ethos-u55-256")
    assert row.status == "ok" and row.on_npu, row
    assert {p.kind for p in row.ops} == {"global_avg_pool", "fully_connected"}
