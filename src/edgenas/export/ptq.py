"""Post-training quantisation: a trained GraphModule -> int8 TFLite through the cost engine's writer.

Steps: BatchNorm folded into the preceding conv; one torchao observer per graph tensor watches the
calibration batches (`observer=`: "minmax", "moving_average" or "histogram", torchao's MinMaxObserver,
MovingAverageMinMaxObserver and HistogramObserver, the last searching the clipping range that minimises
the quantisation error of the histogram); TFLite's same-scale ops (resize, pooling, split, reshape, ...,
and concat unless `concat="per_input"`) share one range per class (`tflite.quant.assign_activation_quant`);
weights per-channel symmetric int8 in [-127, 127] with scales from torchao's PerChannelMinMaxObserver
(max |w| / 127, floored at float32 eps so an all-zero channel keeps a usable bias scale); int32 biases with
scale = input scale x weight scale. The same writer as the sweep emits the file, so the deployed ops are the
ones the compiler measured. The observers are torchao's, not ours: only the glue (which tensor, which
class) is written here.

A tensor's calibrated range is the real interval its torchao int8 parameters represent,
[(-128 - zp) * scale, (127 - zp) * scale]: for a tensor alone in its class that gives back exactly torchao's
(scale, zero point), and for a class the union of its members' intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgenas.errors import ConfigError
from edgenas.graph.ir import WEIGHTED_OPS, Graph
from edgenas.tflite.quant import CONCAT_MODES, QuantParams, assign_activation_quant
from edgenas.tflite.writer import FloatWeights, GivenWeights, graph_to_tflite
from edgenas.train.builder import GraphModule

__all__ = [
    "CALIBRATION_SEED",
    "CONCAT_MODES",
    "OBSERVERS",
    "calibrate_ranges",
    "calibration_batches",
    "folded_weights",
    "make_observer",
    "quantize_weights",
    "to_float_tflite",
    "to_int8_tflite",
    "weight_scales",
]

OBSERVERS = ("minmax", "moving_average", "histogram")
CALIBRATION_SEED = 0  # which training samples calibrate: the same ones for every export of a network
_QMIN, _QMAX = -128, 127


def _observer_module() -> Any:
    """torchao's observers, imported on first use (torchao is an optional extra; its import is slow and
    prints warnings about CUDA kernels this CPU build does not have)."""
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            from torchao.quantization.pt2e import observer
        finally:
            logging.disable(level)
    return observer


def make_observer(kind: str) -> Any:
    """A fresh torchao per-tensor observer for int8 activations (asymmetric, [-128, 127])."""
    if kind not in OBSERVERS:
        raise ConfigError(f"unknown observer {kind!r}; allowed: {', '.join(OBSERVERS)}", field="observer")
    obs = _observer_module()
    cls = {"minmax": obs.MinMaxObserver, "moving_average": obs.MovingAverageMinMaxObserver,
           "histogram": obs.HistogramObserver}[kind]
    return cls(dtype=torch.qint8, qscheme=torch.per_tensor_affine, quant_min=_QMIN, quant_max=_QMAX)


def _observed_range(observer: Any) -> tuple[float, float]:
    """The real interval the observer's int8 (scale, zero point) represents."""
    scale, zp = observer.calculate_qparams()
    s, z = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0])
    return ((_QMIN - z) * s, (_QMAX - z) * s)


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
def calibrate_ranges(module: GraphModule, batches: Iterable[Tensor | tuple[Tensor, ...]], *,
                     observer: str = "minmax") -> dict[str, tuple[float, float]]:
    """The calibrated range of every tensor of the graph over the calibration batches (eval mode): one
    torchao observer of kind `observer` per tensor, fed batch by batch (see the module docstring)."""
    make_observer(observer)  # an unknown kind fails before any batch is run
    was_training = module.training
    module.eval()
    observers: dict[str, Any] = {}
    try:
        for batch in batches:
            inputs = batch if isinstance(batch, tuple) else (batch,)
            kept, _ = module.run(*inputs, keep=True)
            for name, v in kept.items():
                if name not in observers:
                    observers[name] = make_observer(observer)
                observers[name](v.detach().float())
    finally:
        module.train(was_training)
    return {name: _observed_range(o) for name, o in observers.items()}


def weight_scales(w: np.ndarray, axis: int) -> np.ndarray:
    """Per-channel symmetric int8 scales along `axis` from torchao's PerChannelMinMaxObserver."""
    obs = _observer_module().PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8,
                                                       qscheme=torch.per_channel_symmetric,
                                                       quant_min=-127, quant_max=127)
    obs(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))
    scale, _ = obs.calculate_qparams()
    return scale.numpy().astype(np.float32)


def quantize_weights(graph: Graph, weights: Mapping[str, FloatWeights],
                     act_quant: Mapping[str, QuantParams]) -> dict[str, GivenWeights]:
    """Per-channel symmetric int8 weights in [-127, 127] and int32 biases (scale = input x weight scale)."""
    out: dict[str, GivenWeights] = {}
    for op in graph.ops:
        if op.kind not in WEIGHTED_OPS:
            continue
        w, b = weights[op.name]
        axis = 3 if op.kind == "depthwise_conv2d" else 0
        scales = weight_scales(w, axis)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
        s_in = np.float32(act_quant[op.inputs[0]][0])
        bias = np.clip(np.rint(b / (s_in * scales)), -(2**31), 2**31 - 1).astype(np.int32)
        out[op.name] = GivenWeights(q, bias, scales)
    return out


def calibration_batches(ds: Any, n: int, progress: Callable[[int, int], None] | None = None,
                        batch: int = 32) -> Iterator[Tensor]:
    """The inputs of `n` training samples (a permutation seeded CALIBRATION_SEED), in batches."""
    order = np.random.default_rng(CALIBRATION_SEED).permutation(len(ds))[:n]
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        yield torch.stack([ds[int(i)][0] for i in idx])
        if progress is not None:
            progress(min(start + batch, len(order)), len(order))


def to_int8_tflite(module: GraphModule, calibration: Iterable[Tensor | tuple[Tensor, ...]], *,
                   observer: str = "minmax", concat: str = "shared") -> tuple[bytes, dict[str, QuantParams]]:
    """The int8 TFLite file of a trained module and the activation quantisation it uses (tensor ->
    (scale, zero point); with concat="per_input" a concat input's entry is its own params, and the file
    requantises it where they differ from the concat output's, see `tflite.quant`)."""
    if concat not in CONCAT_MODES:
        raise ConfigError(f"unknown concat mode {concat!r}; allowed: {', '.join(CONCAT_MODES)}", field="concat")
    graph = module.graph
    ranges = calibrate_ranges(module, calibration, observer=observer)
    act_quant = assign_activation_quant(graph, ranges=ranges, concat=concat)
    given = quantize_weights(graph, folded_weights(module), act_quant)
    return graph_to_tflite(graph, seed=0, weights=given, activation_quant=act_quant), act_quant


def to_float_tflite(module: GraphModule) -> bytes:
    """The float32 TFLite file of the module's eval-mode function (BatchNorm folded)."""
    from edgenas.tflite.writer import graph_to_float_tflite

    return graph_to_float_tflite(module.graph, folded_weights(module))
