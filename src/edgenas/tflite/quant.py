"""Activation quantisation (scale, zero point) for every IR tensor, without calibration data.

Why classes: TFLite converters give CONCATENATION, SPLIT, RESIZE, MAX_POOL, RESHAPE, TRANSPOSE and
DEPTH_TO_SPACE the same quantisation on inputs and outputs, so the kernels (and Vela) move bytes without
rescaling. A file that broke this would make the compiler insert rescale work a real model does not have.
So tensors joined by such ops form one class (union-find) and share one (scale, zero point). Each class
takes the union of the real-value ranges its producers can emit: a relu output is [0, R], relu6 [0, 6],
hard_swish [-0.375, R], anything linear [-R, R], a graph input [-1, 1]; R = ACT_RANGE.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edgenas.graph.ir import Graph, Op

ACT_RANGE = 8.0  # assumed calibrated range of unbounded activations
INPUT_RANGE = (-1.0, 1.0)  # normalised image-like graph inputs

# Ops whose outputs must carry their inputs' quantisation.
SAME_QUANT_OPS = frozenset(
    {"concat", "split", "resize_bilinear", "resize_nearest", "max_pool2d", "depth_to_space", "reshape", "transpose",
     "global_avg_pool"}
)

QuantParams = tuple[float, int]


def _range_of(op: Op) -> tuple[float, float]:
    act = op.attrs.get("act", "none")
    if op.kind == "relu6" or act == "relu6":
        return (0.0, 6.0)
    if op.kind == "relu" or act == "relu":
        return (0.0, ACT_RANGE)
    if op.kind == "hard_swish":
        return (-0.375, ACT_RANGE)
    return (-ACT_RANGE, ACT_RANGE)


def quant_from_range(lo: float, hi: float) -> QuantParams:
    """Asymmetric int8 parameters covering [lo, hi] (widened to include 0, as TFLite requires)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-6) / 255.0  # a tensor that was constant 0 in calibration still needs a scale
    zp = int(np.clip(np.rint(-128.0 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


def assign_activation_quant(graph: Graph, overrides: Mapping[str, QuantParams] | None = None,
                            ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, QuantParams]:
    """(scale, zero point) per activation tensor. `ranges` (tensor -> observed (min, max), e.g. from
    calibration data) replaces the assumed range of each tensor it names; same-quant classes still share
    one range, the union of their members'. `overrides` (tensor -> params) wins over everything; keeping
    same-quant classes consistent is then the caller's job."""
    parent = {t: t for t in graph.tensors}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    observed: dict[str, tuple[float, float]] = {t: INPUT_RANGE for t in graph.inputs}
    for op in graph.ops:
        if op.kind in SAME_QUANT_OPS:
            root = find(op.inputs[0])
            for t in (*op.inputs[1:], *op.outputs):
                r = find(t)
                if r != root:
                    parent[r] = root
        else:
            for t in op.outputs:
                observed[t] = _range_of(op)
    if ranges is not None:
        for t in graph.tensors:
            if t in ranges:
                observed[t] = ranges[t]
    class_range: dict[str, tuple[float, float]] = {}
    for t, (lo, hi) in observed.items():
        r = find(t)
        clo, chi = class_range.get(r, (lo, hi))
        class_range[r] = (min(clo, lo), max(chi, hi))
    params = {r: quant_from_range(*rng) for r, rng in class_range.items()}
    out = {t: params[find(t)] for t in graph.tensors}
    if overrides:
        out.update(overrides)
    return out
