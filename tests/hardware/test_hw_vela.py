"""VelaEvaluator behaviour beyond the figures: failures as values, captured output, isolation, keys."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
import tiny_tflite
from hw_models import residual_net

from edgenas.errors import CompileError
from edgenas.graph.ir import Graph
from edgenas.hardware import (
    Measurement,
    VelaEvaluator,
    compile_to_vela_tflite,
    compiler_options_key,
    compiler_version,
    load_profile,
)
from edgenas.hardware.vela import system_config_text
from edgenas.tflite import graph_to_tflite


@pytest.fixture(scope="module")
def evaluator() -> VelaEvaluator:
    return VelaEvaluator(load_profile())


def test_ok_measurement(evaluator: VelaEvaluator, small_model: bytes) -> None:
    m = evaluator.evaluate_bytes(small_model)
    assert m.ok and m.error == ""
    x = m.metrics
    assert x["fps"] == pytest.approx(500e6 / x["cycles_total"])
    assert x["inference_ms"] == pytest.approx(1000 / x["fps"])
    assert (x["npu_ops"], x["cpu_ops"]) == (6, 1)  # DEPTH_TO_SPACE falls back to the CPU on U55
    assert sum(r.cycles for r in m.layers) == x["cycles_total"]
    assert m.provenance["compiler"] == compiler_version() == "ethos-u-vela 5.2.0"
    assert m.provenance["profile"] == "ethos-u55-256"
    assert m.provenance["profile_options"]["sram_kib"] == 2048
    assert m.provenance["evaluator"] == "vela"


def test_compiler_output_is_captured(
    evaluator: VelaEvaluator, small_model: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    m = evaluator.evaluate_bytes(small_model)
    out, err = capfd.readouterr()
    assert "DEPTH_TO_SPACE" in m.log and "DEPTH_TO_SPACE" not in out + err


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\0" * 64, "not a TFLite flatbuffer"),
        (b"", "not a TFLite flatbuffer"),
        (None, "malformed TFLite"),  # truncated: segfaults the compiler if passed on
    ],
)
def test_bad_bytes_fail_without_crashing(
    evaluator: VelaEvaluator, small_model: bytes, data: bytes | None, words: str
) -> None:
    m = evaluator.evaluate_bytes(small_model[: len(small_model) // 3] if data is None else data)
    assert m.status == "failed" and words in m.error and not m.retryable and m.metrics == {}
    assert math.isnan(m.get("fps"))


def _bad_opcode_model() -> bytes:
    """Passes the structural check but crashes the C++ core (an op code with the wrong options table)."""
    t = tiny_tflite.TinyModel()
    x = t.input(16, 16, 8)
    y = t.conv(x, 16)
    t.ops[0].code = 200
    return t.to_bytes([y])


def test_isolated_evaluation_survives_a_compiler_crash(evaluator: VelaEvaluator, small_model: bytes) -> None:
    m = evaluator.evaluate_isolated(_bad_opcode_model(), timeout_s=60)
    assert m.status == "failed" and "crashed" in m.error and not m.retryable
    ok = evaluator.evaluate_isolated(small_model, timeout_s=60)
    assert ok.ok and ok.metrics == evaluator.evaluate_bytes(small_model).metrics


def test_isolated_timeout_is_retryable(evaluator: VelaEvaluator, big_model: bytes) -> None:
    m = evaluator.evaluate_isolated(big_model, timeout_s=0.001)
    assert m.status == "failed" and "took over" in m.error and m.retryable


def test_unchecked_input_still_rejects_non_tflite(small_model: bytes) -> None:
    fast = VelaEvaluator(load_profile(), check_input=False)
    assert "not a TFLite" in fast.evaluate_bytes(b"\0" * 64).error
    assert fast.evaluate_bytes(small_model).metrics == VelaEvaluator(load_profile()).evaluate_bytes(small_model).metrics


def test_evaluate_graph(evaluator: VelaEvaluator) -> None:
    g = residual_net(48, 64, cpu_op=True)
    m = evaluator.evaluate(g, seed=5)
    assert m.ok and m.metrics == evaluator.evaluate_bytes(graph_to_tflite(g, seed=5)).metrics
    assert m.provenance["model_sha256"] == hashlib.sha256(graph_to_tflite(g, seed=5)).hexdigest()
    bad = evaluator.evaluate(Graph("no-outputs"))
    assert bad.status == "failed" and "writing TFLite" in bad.error


def test_compile_to_vela_tflite(small_model: bytes) -> None:
    out = compile_to_vela_tflite(small_model, load_profile("ethos-u85-256"))
    assert out[4:8] == b"TFL3" and b"ethos-u" in out
    with pytest.raises(CompileError, match="TFLite"):
        compile_to_vela_tflite(b"junk", load_profile())


def test_options_key_changes_with_every_compiler_input() -> None:
    base = load_profile()
    key = compiler_options_key(base)
    assert "ethos-u-vela 5.2.0" in key and "arena_size_limit=2097152" in key and "[System_Config." in key
    assert compiler_options_key(base, per_layer=False) != key
    for change in (
        {"accelerator_config": "ethos-u55-128"},
        {"system_config": "Ethos_U55_Deep_Embedded"},
        {"memory_mode": "Sram_Only"},
        {"arena_cache_kib": 1024},
    ):
        assert compiler_options_key(load_profile(base.name, change)) != key, change
    # Fields the compiler never sees do not change what it is given.
    assert compiler_options_key(dataclasses.replace(base, flash_kib=1)) == key


def test_system_config_text_names_architecture() -> None:
    text = system_config_text(load_profile("ethos-u65-512"))
    assert text.startswith("[architecture]\nmacs=256\ncores=2\n[vela]\nsystem_config_name=Ethos_U65_Client_Server\n")


def test_measurement_is_deterministic_enough(evaluator: VelaEvaluator, big_model: bytes) -> None:
    a = evaluator.evaluate_bytes(big_model).metrics
    b = evaluator.evaluate_bytes(big_model).metrics
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4), k


def test_failed_measurement_factory() -> None:
    m = Measurement.failed("timeout", retryable=True)
    assert not m.ok and m.retryable and m.layers == ()
