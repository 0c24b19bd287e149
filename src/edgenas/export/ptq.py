"""A minimal post-training quantiser: a trained GraphModule -> int8 TFLite through the cost engine's writer.

Steps: BatchNorm folded into the preceding conv; activation ranges observed (min/max) on calibration
batches; TFLite's same-scale ops (resize, pooling, concat, split, reshape, ...) share one range per class
(`tflite.quant.assign_activation_quant`); weights per-channel symmetric int8 in [-127, 127]; int32 biases
with scale = input scale x weight scale. The same writer as the sweep emits the file, so the deployed ops
are the ones the compiler measured. Observers beyond min/max (moving average, histogram) and the
integer-exact fake quantisation come with the export work; this is what the torch builder is checked with.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import Tensor

from edgenas.graph.ir import WEIGHTED_OPS, Graph
from edgenas.tflite.quant import QuantParams, assign_activation_quant
from edgenas.tflite.writer import FloatWeights, GivenWeights, graph_to_tflite
from edgenas.train.builder import GraphModule

__all__ = ["calibrate_ranges", "folded_weights", "quantize_weights", "to_int8_tflite", "to_float_tflite"]


def _fold(w: Tensor, b: Tensor | None, bn: torch.nn.BatchNorm2d | None, out_axis: int) -> tuple[Tensor, Tensor]:
    cout = w.shape[out_axis]
    bias = b.detach().clone() if b is not None else torch.zeros(cout, dtype=w.dtype)
    w = w.detach().clone()
    if bn is not None:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shape = [1] * w.dim()
        shape[out_axis] = cout
        w = w * scale.view(shape)
        bias = (bias - bn.running_mean) * scale + bn.bias.detach()
    return w, bias


def folded_weights(module: GraphModule) -> dict[str, FloatWeights]:
    """Every weighted op's float weights in TFLite layout with its BatchNorm folded in (the module's
    BatchNorm running statistics, i.e. its eval-mode function)."""
    out: dict[str, FloatWeights] = {}
    for op in module.graph.ops:
        if op.kind not in WEIGHTED_OPS:
            continue
        layer = module.layer(op.name)
        if op.kind == "fully_connected":
            w, b = layer.fc.weight.detach(), layer.fc.bias.detach()
            out[op.name] = FloatWeights(w.numpy().astype(np.float32), b.numpy().astype(np.float32))
            continue
        conv, bn = layer.conv, layer.bn
        if op.kind == "transpose_conv2d":  # torch (cin, cout, k, k) -> TFLite (cout, k, k, cin)
            w, b = _fold(conv.weight, conv.bias, bn, 1)
            tfl = w.permute(1, 2, 3, 0)
        elif op.kind == "depthwise_conv2d":  # torch (c, 1, k, k) -> TFLite (1, k, k, c)
            w, b = _fold(conv.weight, conv.bias, bn, 0)
            tfl = w.permute(1, 2, 3, 0)
        else:  # torch (cout, cin, k, k) -> TFLite (cout, k, k, cin)
            w, b = _fold(conv.weight, conv.bias, bn, 0)
            tfl = w.permute(0, 2, 3, 1)
        out[op.name] = FloatWeights(tfl.contiguous().numpy().astype(np.float32), b.numpy().astype(np.float32))
    return out


@torch.no_grad()
def calibrate_ranges(module: GraphModule,
                     batches: Iterable[Tensor | tuple[Tensor, ...]]) -> dict[str, tuple[float, float]]:
    """(min, max) of every tensor of the graph over the calibration batches, in eval mode."""
    was_training = module.training
    module.eval()
    ranges: dict[str, tuple[float, float]] = {}
    try:
        for batch in batches:
            inputs = batch if isinstance(batch, tuple) else (batch,)
            kept, _ = module.run(*inputs, keep=True)
            for name, v in kept.items():
                lo, hi = float(v.min()), float(v.max())
                if name in ranges:
                    lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
                ranges[name] = (lo, hi)
    finally:
        module.train(was_training)
    return ranges


def quantize_weights(graph: Graph, weights: Mapping[str, FloatWeights],
                     act_quant: Mapping[str, QuantParams]) -> dict[str, GivenWeights]:
    """Per-channel symmetric int8 weights in [-127, 127] and int32 biases (scale = input x weight scale)."""
    out: dict[str, GivenWeights] = {}
    for op in graph.ops:
        if op.kind not in WEIGHTED_OPS:
            continue
        w, b = weights[op.name]
        axis = 3 if op.kind == "depthwise_conv2d" else 0
        reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.max(np.abs(w), axis=reduce_axes)
        scales = (np.maximum(amax, 1e-12) / 127.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
        s_in = np.float32(act_quant[op.inputs[0]][0])
        bias = np.clip(np.rint(b / (s_in * scales)), -(2**31), 2**31 - 1).astype(np.int32)
        out[op.name] = GivenWeights(q, bias, scales)
    return out


def to_int8_tflite(module: GraphModule,
                   calibration: Iterable[Tensor | tuple[Tensor, ...]]) -> tuple[bytes, dict[str, QuantParams]]:
    """The int8 TFLite file of a trained module and the activation quantisation it uses."""
    graph = module.graph
    act_quant = assign_activation_quant(graph, ranges=calibrate_ranges(module, calibration))
    given = quantize_weights(graph, folded_weights(module), act_quant)
    return graph_to_tflite(graph, seed=0, weights=given, activation_quant=act_quant), act_quant


def to_float_tflite(module: GraphModule) -> bytes:
    """The float32 TFLite file of the module's eval-mode function (BatchNorm folded)."""
    from edgenas.tflite.writer import graph_to_float_tflite

    return graph_to_float_tflite(module.graph, folded_weights(module))
