"""DEPTH_TO_SPACE lowered to a one-hot TRANSPOSE_CONV is bit-exact and runs on the NPU."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edgenas.graph.ir import Graph
from edgenas.hardware import VelaEvaluator, load_profile
from edgenas.tflite.writer import graph_to_tflite


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _d2s(lowering: str, block: int, shape: tuple[int, int, int, int]) -> bytes:
    g = Graph()
    x = g.add_input("x", shape)
    g.mark_output(g.add("depth_to_space", "d2s", [x], block=block, lowering=lowering))
    return graph_to_tflite(g, seed=0)


@pytest.mark.parametrize("block,shape", [(2, (1, 6, 8, 32)), (2, (1, 5, 7, 4)), (4, (1, 3, 4, 48))])
def test_lowering_is_bit_exact(block: int, shape: tuple[int, int, int, int]) -> None:
    x = np.random.default_rng(1).integers(-128, 128, shape, dtype=np.int8)
    n, h, w, c = shape
    co = c // (block * block)
    ref = x.reshape(n, h, w, block, block, co).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * block, w * block, co)
    assert np.array_equal(_run(_d2s("transpose_conv", block, shape), x), ref)
    assert np.array_equal(_run(_d2s("op", block, shape), x), ref)


@pytest.mark.parametrize("profile", ["ethos-u55-256", "ethos-u65-256", "ethos-u85-256"])
def test_lowered_form_stays_on_the_npu_and_the_op_does_not(profile: str) -> None:
    ev = VelaEvaluator(load_profile(profile))
    lowered = ev.evaluate_bytes(_d2s("transpose_conv", 2, (1, 24, 32, 64)))
    raw = ev.evaluate_bytes(_d2s("op", 2, (1, 24, 32, 64)))
    assert lowered.ok and lowered.metrics["cpu_ops"] == 0 and lowered.metrics["npu_ops"] >= 1
    assert raw.ok and raw.metrics["cpu_ops"] == 1
