"""The written quantisation means what it says: an int8 reference computed in numpy from the weights,
biases, scales and zero points read back out of the file matches the TFLite interpreter (off by one at
most, from fixed-point rounding), and the outputs are neither all clamped nor all saturated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from edgenas.graph.ir import Graph
from edgenas.tflite import graph_to_tflite


def _details(it: Any) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in it.get_tensor_details()}


def _q(d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    qp = d["quantization_parameters"]
    return qp["scales"].astype(np.float64), qp["zero_points"].astype(np.int64)


def reference_conv(it: Any, op: str, x_name: str, stride: int, act: str, depthwise: bool) -> np.ndarray:
    """int8 SAME-padded (depthwise) convolution from the file's tensors, in float64 with one rounding."""
    d = _details(it)
    x = it.get_tensor(d[x_name]["index"]).astype(np.int64)
    w = it.get_tensor(d[f"{op}.weights"]["index"]).astype(np.int64)
    bias = it.get_tensor(d[f"{op}.bias"]["index"]).astype(np.int64)
    (s_in,), (zp_in,) = _q(d[x_name])
    s_w, zp_w = _q(d[f"{op}.weights"])
    (s_out,), (zp_out,) = _q(d[op])
    assert not zp_w.any()
    if len(s_w) > 1:
        assert d[f"{op}.weights"]["quantization_parameters"]["quantized_dimension"] == (3 if depthwise else 0)
    np.testing.assert_allclose(_q(d[f"{op}.bias"])[0], s_in * s_w, rtol=1e-6)
    _, h, wd, _ = x.shape
    k = w.shape[1]
    oh, ow = -(-h // stride), -(-wd // stride)
    pads = []
    for n, o in ((h, oh), (wd, ow)):
        total = max((o - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x[0] - zp_in, (pads[0], pads[1], (0, 0)))  # zero in real terms
    win = sliding_window_view(xp, (k, k), axis=(0, 1))[::stride, ::stride]  # oh, ow, c, k, k
    if depthwise:
        acc = np.einsum("hwcij,ijc->hwc", win, w[0])
    else:
        acc = np.einsum("hwcij,oijc->hwo", win, w)
    acc = acc + bias
    out = np.rint(acc * (s_in * s_w / s_out)) + zp_out
    lo = zp_out if act in ("relu", "relu6") else -128
    hi = min(127, zp_out + round(6.0 / s_out)) if act == "relu6" else 127
    return np.clip(out, lo, hi)[None].astype(np.int64)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize(
    "kind,k,stride,act",
    [("conv2d", 3, 1, "relu"), ("conv2d", 5, 2, "none"), ("conv2d", 1, 1, "relu6"),
     ("depthwise_conv2d", 3, 1, "none"), ("depthwise_conv2d", 5, 2, "relu")],
)  # fmt: skip
def test_conv_matches_numpy_reference(kind: str, k: int, stride: int, act: str, per_channel: bool, run_tflite) -> None:
    g = Graph("t")
    x = g.add_input("input", (1, 16, 24, 16))
    extra = {"out_channels": 24} if kind == "conv2d" else {}
    y = g.add(kind, "op", [x], kernel=k, stride=stride, act=act, **extra)
    g.mark_output(y)
    it, (out,) = run_tflite(graph_to_tflite(g, seed=5, per_channel=per_channel), g, seed=1)
    ref = reference_conv(it, "op", "input", stride, act, kind == "depthwise_conv2d")
    diff = np.abs(out.astype(np.int64) - ref)
    assert diff.max() <= 1, f"max diff {diff.max()}, {np.mean(diff > 0):.1%} differ"
    # Plausible quantisation: outputs spread over the range and rarely saturate (relu clamps half at zero).
    saturated = (out == 127) if act != "none" else (out == 127) | (out == -128)
    assert np.mean(saturated) < 0.05
    assert out.std() > 5
