"""Activation quantisation (scale, zero point) for every IR tensor, without calibration data.

Why classes: TFLite converters give CONCATENATION, SPLIT, RESIZE, MAX_POOL, RESHAPE, TRANSPOSE and
DEPTH_TO_SPACE the same quantisation on inputs and outputs, so the kernels (and Vela) move bytes without
rescaling. A file that broke this would make the compiler insert rescale work a real model does not have.
So tensors joined by such ops form one class (union-find) and share one (scale, zero point). Each class
takes the union of the real-value ranges its producers can emit: a relu output is [0, R], relu6 [0, 6],
hard_swish [-0.375, R], anything linear [-R, R], a graph input [-1, 1]; R = ACT_RANGE.

Concatenation has two modes (`concat=`). "shared" (the default, what the cost sweep writes): a concat's
inputs and output are one class, so one scale chains through everything a concat touches (in a ShuffleNet
backbone, with its split/concat channel shuffle, the whole backbone). "per_input": a concat does not join
classes; each input keeps its own (scale, zero point) and the output gets its own (its calibrated range, or
without calibration the union of its inputs' class ranges). TFLite's int8 CONCATENATION kernel refuses inputs
whose params differ from the output's (tensorflow/lite/kernels/concatenation.cc, Prepare: TF_LITE_ENSURE_EQ
on scale and zero_point), so the writer puts TFLite's int8->int8 QUANTIZE op (a requantise: real value kept,
params changed) in front of every input whose params differ from the output's, and concatenates the
requantised tensors. The representation is only the per-tensor map: a concat input's entry holds its own
params, the output's entry the output's; `requantized_concat_inputs` says which inputs get a QUANTIZE. The IR
Graph is the same in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping

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
CONCAT_MODES = ("shared", "per_input")


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
                            ranges: Mapping[str, tuple[float, float]] | None = None, *,
                            concat: str = "shared") -> dict[str, QuantParams]:
    """(scale, zero point) per activation tensor. `ranges` (tensor -> observed (min, max), e.g. from
    calibration data) replaces the assumed range of each tensor it names; same-quant classes still share
    one range, the union of their members'. `concat` ("shared" or "per_input", see the module docstring)
    says whether a concat joins its inputs' classes. `overrides` (tensor -> params) wins over everything;
    keeping same-quant classes consistent is then the caller's job (a concat input that differs from the
    output is requantised by the writer)."""
    if concat not in CONCAT_MODES:
        raise ValueError(f"concat={concat!r}: expected one of {', '.join(CONCAT_MODES)}")
    joins = SAME_QUANT_OPS if concat == "shared" else SAME_QUANT_OPS - {"concat"}
    parent = {t: t for t in graph.tensors}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    observed: dict[str, tuple[float, float]] = {t: INPUT_RANGE for t in graph.inputs}
    own_concats: list[Op] = []  # per_input concats whose output range comes from their inputs
    for op in graph.ops:
        if op.kind in joins:
            root = find(op.inputs[0])
            for t in (*op.inputs[1:], *op.outputs):
                r = find(t)
                if r != root:
                    parent[r] = root
        elif op.kind == "concat":
            own_concats.append(op)
        else:
            for t in op.outputs:
                observed[t] = _range_of(op)
    if ranges is not None:
        for t in graph.tensors:
            if t in ranges:
                observed[t] = ranges[t]

    def class_ranges() -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for t, (lo, hi) in observed.items():
            r = find(t)
            clo, chi = out.get(r, (lo, hi))
            out[r] = (min(clo, lo), max(chi, hi))
        return out

    # A per_input concat's output heads its own class (only single-input same-quant ops join below it), and
    # its inputs' classes are upstream of it, so in graph order each input range is final when it is read.
    for op in own_concats:
        if op.outputs[0] not in observed:
            cr = class_ranges()
            in_ranges = [cr[find(t)] for t in op.inputs]
            observed[op.outputs[0]] = (min(r[0] for r in in_ranges), max(r[1] for r in in_ranges))
    params = {r: quant_from_range(*rng) for r, rng in class_ranges().items()}
    out = {t: params[find(t)] for t in graph.tensors}
    if overrides:
        out.update(overrides)
    return out


def requantized_concat_inputs(graph: Graph, act_quant: Mapping[str, QuantParams]) -> dict[str, tuple[int, ...]]:
    """concat op name -> positions of its inputs whose (scale, zero point), as stored in the file (float32
    scale), differ from its output's: the inputs that are requantised (TFLite QUANTIZE int8->int8) before
    the concatenation. Empty for files written with shared concat scales."""
    def stored(t: str) -> tuple[float, int]:  # as the file holds it: float32 scale, integer zero point
        scale, zp = act_quant[t]
        return float(np.float32(scale)), int(zp)

    out: dict[str, tuple[int, ...]] = {}
    for op in graph.ops:
        if op.kind == "concat":
            want = stored(op.outputs[0])
            differ = tuple(i for i, t in enumerate(op.inputs) if stored(t) != want)
            if differ:
                out[op.name] = differ
    return out
