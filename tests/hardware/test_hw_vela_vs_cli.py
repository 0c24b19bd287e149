"""The in-process evaluator must report what the `vela` CLI reports for the same bytes and profile.

The CLI (a separate process, writing its CSVs) is the independent truth: `vela_cli_args(profile)` is
what a user would type to check a figure edgenas shows them.
"""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pytest
from ethosu.vela import vela as vela_cli  # first: vela's own modules import each other in this order
from ethosu.vela.nn_graph import TensorAllocator
from ethosu.vela.tensor import Tensor
from hw_models import DRAM_INI, VELA_EXE

from edgenas.hardware import HardwareProfile, Measurement, VelaEvaluator, load_profile, vela_cli_args
from edgenas.hardware.vela import compile_to_vela_tflite, compiler_options_text

REL = 1e-4  # the compiler is not bit-deterministic across processes (~1e-5 seen)



def _profiles(tmp: Path) -> dict[str, HardwareProfile]:
    ini = tmp / "dram.ini"
    ini.write_text(DRAM_INI)
    return {
        "u55-256": load_profile("ethos-u55-256"),
        "u55-256-arena128": load_profile("ethos-u55-256", {"arena_cache_kib": 128}),
        "u55-128-sram-only": load_profile("ethos-u55-128", {"memory_mode": "Sram_Only"}),
        "u55-custom-ini-dram": load_profile(
            "ethos-u55-256",
            {"system_config": "U55_With_Dram", "memory_mode": "Dedicated_Sram", "vela_config": str(ini),
             "sram_kib": 256, "flash_kib": None},
        ),
        "u65-256": load_profile("ethos-u65-256"),
        "u65-512": load_profile("ethos-u65-512"),
        "u85-256": load_profile("ethos-u85-256"),
    }


def run_cli(model: bytes, profile: HardwareProfile, out: Path) -> tuple[dict[str, str], list[dict[str, str]], str]:
    """(summary CSV row, per-layer CSV rows, stdout) of `vela model.tflite <vela_cli_args> --verbose-performance`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.tflite"
    path.write_bytes(model)
    cmd = [VELA_EXE, str(path), *vela_cli_args(profile), "--output-dir", str(out), "--verbose-performance"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    with open(out / f"model_summary_{profile.system_config}.csv") as f:
        header, row = list(csv.reader(f))
    with open(out / "model_per-layer.csv") as f:
        layers = list(csv.DictReader(f))
    return dict(zip(header, row)), layers, proc.stdout


def _ops(stdout: str, kind: str) -> int:
    return int(re.search(rf"^{kind} operators = (\d+)", stdout, re.MULTILINE).group(1))  # type: ignore[union-attr]


def assert_same(m: Measurement, summary: dict[str, str], layers: list[dict[str, str]], stdout: str) -> None:
    assert m.ok, m.error
    x = m.metrics
    pairs = {
        "fps": "inferences_per_second",
        "cycles_total": "cycles_total",
        "cycles_npu": "cycles_npu",
        "cycles_sram_access": "cycles_sram_access",
        "cycles_dram_access": "cycles_dram_access",
        "cycles_onchip_flash_access": "cycles_on_chip_flash_access",
        "cycles_offchip_flash_access": "cycles_off_chip_flash_access",
        "sram_kib": "sram_memory_used",
        "dram_kib": "dram_memory_used",
        "onchip_flash_kib": "on_chip_flash_memory_used",
        "offchip_flash_kib": "off_chip_flash_memory_used",
        "sram_total_bytes": "sram_total_bytes",
        "dram_total_bytes": "dram_total_bytes",
        "offchip_flash_total_bytes": "off_chip_flash_total_bytes",
        "original_weight_bytes": "total_original_weights",
        "macs": "nn_macs",
    }
    for ours, theirs in pairs.items():
        assert x[ours] == pytest.approx(float(summary[theirs]), rel=REL, abs=1e-9), ours
    assert x["inference_ms"] == pytest.approx(float(summary["inference_time"]) * 1000, rel=REL)
    assert x["encoded_weight_bytes"] == pytest.approx(float(summary["total_npu_encoded_weights"]), abs=64)
    assert x["npu_ops"] == _ops(stdout, "NPU") and x["cpu_ops"] == _ops(stdout, "CPU")
    assert x["npu_ops"] + x["cpu_ops"] == int(summary["passes_before_fusing"])
    assert len(m.layers) == len(layers)
    for ours, row in zip(m.layers, layers):
        assert (ours.original_op, ours.nng_op, ours.target, ours.name) == (
            row["Original Operator"], row["NNG Operator"], row["Target"], row["Name"],
        )  # fmt: skip
        for field, col in (("cycles", "Op Cycles"), ("npu_cycles", "NPU"), ("sram_ac", "SRAM AC"),
                           ("dram_ac", "DRAM AC"), ("offflash_ac", "OffFlash AC"), ("macs", "MAC Count"),
                           ("staging_usage", "Staging Usage")):  # fmt: skip
            assert getattr(ours, field) == pytest.approx(float(row[col]), rel=REL, abs=1), (ours.name, field)
        assert ours.util_pct == pytest.approx(float(row["Util% (MAC)"]), rel=REL, abs=1e-6)


PROFILE_NAMES = [
    "u55-256", "u55-256-arena128", "u55-128-sram-only", "u55-custom-ini-dram", "u65-256", "u65-512", "u85-256",
]  # fmt: skip


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_in_process_equals_cli(name: str, medium_model: bytes, tmp_path: Path) -> None:
    profile = _profiles(tmp_path)[name]
    summary, layers, stdout = run_cli(medium_model, profile, tmp_path / "cli")
    ev = VelaEvaluator(profile)
    assert_same(ev.evaluate_bytes(medium_model), summary, layers, stdout)
    # Without the per-layer database the summary figures are the same.
    m = ev.evaluate_bytes(medium_model, per_layer=False)
    assert m.layers == () and m.metrics["cycles_total"] == pytest.approx(float(summary["cycles_total"]), rel=REL)


@pytest.mark.parametrize("name", ["ethos-u55-256", "ethos-u65-256", "ethos-u85-256"])
def test_flow_network_equals_cli(name: str, big_model: bytes, tmp_path: Path) -> None:
    """The seed study's 1 GMAC flow network (bilinear upsampling lowered to many NPU ops)."""
    profile = load_profile(name)
    summary, layers, stdout = run_cli(big_model, profile, tmp_path / "cli")
    m = VelaEvaluator(profile).evaluate_bytes(big_model)
    assert_same(m, summary, layers, stdout)
    assert m.metrics["macs"] > 1e9


def test_oversized_model_equals_cli(oversized_model: bytes, tmp_path: Path) -> None:
    """SRAM far over the arena target (Shared_Sram does not enforce it): still the CLI's figures."""
    profile = load_profile()
    summary, layers, stdout = run_cli(oversized_model, profile, tmp_path / "cli")
    m = VelaEvaluator(profile).evaluate_bytes(oversized_model)
    assert_same(m, summary, layers, stdout)
    assert m.metrics["sram_kib"] > profile.sram_kib


def test_figures_cover_the_interesting_cases(medium_model: bytes, tmp_path: Path) -> None:
    """The comparison above is only meaningful if the cases really differ: spill, split, CPU fallback."""
    p = _profiles(tmp_path)
    u65 = VelaEvaluator(p["u65-256"]).evaluate_bytes(medium_model).metrics
    assert u65["dram_kib"] > 0 and u65["cycles_dram_access"] > 0 and u65["sram_kib"] <= 384
    only = VelaEvaluator(p["u55-128-sram-only"]).evaluate_bytes(medium_model).metrics
    assert only["onchip_flash_kib"] > 0 and only["offchip_flash_kib"] == 0
    u55 = VelaEvaluator(p["u55-256"]).evaluate_bytes(medium_model)
    assert u55.metrics["cpu_ops"] == 1 and [r.target for r in u55.layers].count("CPU") == 1
    assert sum(r.cycles for r in u55.layers) == u55.metrics["cycles_total"]
    small = VelaEvaluator(p["u55-256-arena128"]).evaluate_bytes(medium_model).metrics
    assert small["sram_kib"] < u55.metrics["sram_kib"]


@pytest.mark.parametrize("per_layer", [True, False])
def test_options_text_is_the_clis(per_layer: bool) -> None:
    """Our options text equals vela.py's get_compiler_config() with the CLI's defaults."""
    p = load_profile()
    expected = vela_cli.get_compiler_config(
        False, False, False, False, vela_cli.scheduler.OptimizationStrategy.Performance, p.arena_cache_bytes,
        False, False, False, False, False, per_layer, False, "tflite", False, False, False, False, False,
        "COP1", False, Tensor.AllocationQuantum, TensorAllocator.HillClimb, 10.0, "",
    )  # fmt: skip
    assert compiler_options_text(p, per_layer=per_layer) == expected


def test_optimised_model_matches_cli(medium_model: bytes, tmp_path: Path) -> None:
    profile = load_profile()
    run_cli(medium_model, profile, tmp_path / "cli")
    ours = compile_to_vela_tflite(medium_model, profile)
    theirs = (tmp_path / "cli" / "model_vela.tflite").read_bytes()
    assert ours[4:8] == b"TFL3"
    assert len(ours) == pytest.approx(len(theirs), abs=64)
