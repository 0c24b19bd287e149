"""Graph (IR) -> int8 TFLite flatbuffer, written directly with the flatbuffers builder.

Why direct: the compiler only needs a valid int8 file, and writing one here takes milliseconds per
candidate, against seconds (and gigabytes of dependencies) for a framework converter. The layout follows
what the TFLite converter emits (SAME padding, per-channel int8 weights, int32 bias with scale = input
scale x weight scale, converter op versions), so the compiler sees the model a real export would give.

Tensor names are the IR names (the op's block path, e.g. `head2.block.dw`), so the compiler's per-layer
rows can be read back to blocks; constants are `<op>.weights`, `<op>.bias`, `<op>.size`, ...
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from ethosu.vela.tflite import (
    ActivationFunctionType,
    AddOptions,
    BuiltinOperator,
    BuiltinOptions,
    ConcatenationOptions,
    Conv2DOptions,
    DepthToSpaceOptions,
    DepthwiseConv2DOptions,
    FullyConnectedOptions,
    Padding,
    Pool2DOptions,
    ReducerOptions,
    ResizeBilinearOptions,
    ResizeNearestNeighborOptions,
    SplitOptions,
    SplitVOptions,
    TensorType,
    TransposeConvOptions,
)

from edgenas.errors import GraphError
from edgenas.graph.ir import OP_ATTRS, WEIGHTED_OPS, Graph, Op
from edgenas.tflite._fb import Assembler, Quant
from edgenas.tflite.quant import QuantParams, assign_activation_quant, requantized_concat_inputs
from edgenas.tflite.weights import WEIGHTS_DESCRIPTION, trained_like_weights

__all__ = ["WEIGHTS_DESCRIPTION", "FloatWeights", "GivenWeights", "graph_to_float_tflite", "graph_to_tflite"]

_OP = BuiltinOperator.BuiltinOperator
_OPT = BuiltinOptions.BuiltinOptions
_ACT = {
    "none": ActivationFunctionType.ActivationFunctionType.NONE,
    "relu": ActivationFunctionType.ActivationFunctionType.RELU,
    "relu6": ActivationFunctionType.ActivationFunctionType.RELU6,
}
_SAME = Padding.Padding.SAME
_INT8 = TensorType.TensorType.INT8
_INT32 = TensorType.TensorType.INT32
_FLOAT32 = TensorType.TensorType.FLOAT32


def _opts(module: ModuleType, **fields: Any) -> tuple[int, ModuleType, str, dict[str, Any]]:
    """Builtin options for Assembler.add_operator: the table is named like its schema module."""
    name = module.__name__.rsplit(".", 1)[1]
    return getattr(_OPT, name), module, name, fields


class GivenWeights(NamedTuple):
    """Quantised weights supplied by the caller (e.g. from training) instead of generated ones.

    `weights`: int8 in TFLite layout ([cout,kh,kw,cin]; depthwise [1,kh,kw,c]); `bias`: int32 per output
    channel, already quantised with scale = input scale x weight scale; `scales`: one per output channel
    (or one for per-tensor weights)."""

    weights: np.ndarray
    bias: np.ndarray
    scales: np.ndarray


class FloatWeights(NamedTuple):
    """float32 weights in TFLite layout and bias, for the float32 file (`graph_to_float_tflite`)."""

    weights: np.ndarray
    bias: np.ndarray


def _weight_layout(op: Op, cin: int) -> tuple[tuple[int, ...], int, int]:
    """TFLite weight shape, quantised (output-channel) axis and fan-in of a weighted op (for a fully
    connected op, `cin` is the flattened input size)."""
    if op.kind == "fully_connected":
        return (op.attr("units"), cin), 0, cin
    k = op.attr("kernel")
    if op.kind == "depthwise_conv2d":
        return (1, k, k, cin), 3, k * k
    cout = op.attr("out_channels")
    fan_in = k * k * cin
    if op.kind == "transpose_conv2d":
        # Each output pixel sees (k / stride)^2 taps per input channel.
        fan_in = max(1, fan_in // (op.attr("stride") ** 2))
    return (cout, k, k, cin), 0, fan_in


class _Writer:
    """One graph's conversion: tensor indices, activation quantisation and the op rules."""

    def __init__(
        self,
        graph: Graph,
        seed: int,
        per_channel: bool,
        given: Mapping[str, GivenWeights],
        overrides: Mapping[str, QuantParams] | None,
        float_weights: Mapping[str, FloatWeights] | None = None,
    ) -> None:
        self.g = graph
        self.seed = seed
        self.per_channel = per_channel
        self.given = given
        self.float_weights = float_weights  # set: a float32 file (tests only), no quantisation anywhere
        self.quant = assign_activation_quant(graph, overrides)
        # Concat inputs whose params differ from the output's (per-input concat scales): TFLite's int8
        # CONCATENATION needs equal params, so each gets a QUANTIZE (requantise) first. None by default.
        self.requantized = {} if float_weights is not None else requantized_concat_inputs(graph, self.quant)
        if float_weights is None:
            desc = f"edgenas {graph.name}; weights={WEIGHTS_DESCRIPTION} seed={seed} per_channel={per_channel}"
        else:
            desc = f"edgenas {graph.name}; float32 reference"
        self.asm = Assembler(1 << 16, description=desc)  # the builder doubles its buffer as needed
        self.index: dict[str, int] = {}
        for name, t in graph.tensors.items():
            if float_weights is not None:
                self.index[name] = self.asm.add_tensor(name, t.shape, _FLOAT32)
                continue
            scale, zp = self.quant[name]
            self.index[name] = self.asm.add_tensor(name, t.shape, _INT8, Quant((scale,), (zp,)))

    # ---- helpers ---------------------------------------------------------------------------------
    def _const_i32(self, name: str, values: tuple[int, ...] | int) -> int:
        arr = np.asarray(values, dtype="<i4")
        return self.asm.add_tensor(name, arr.shape, _INT32, data=arr)

    def _float_weights(self, op: Op, shape: tuple[int, ...], axis: int) -> tuple[int, int]:
        fw = self.float_weights[op.name]  # type: ignore[index]
        w = np.asarray(fw.weights, dtype="<f4")
        b = np.asarray(fw.bias, dtype="<f4")
        if w.shape != shape or b.shape != (shape[axis],):
            raise GraphError(f"op {op.name}: float weights {w.shape} / bias {b.shape} do not fit {shape}")
        return (self.asm.add_tensor(f"{op.name}.weights", shape, _FLOAT32, data=w),
                self.asm.add_tensor(f"{op.name}.bias", b.shape, _FLOAT32, data=b))

    def _weights(self, op: Op) -> tuple[int, int]:
        """Add `<op>.weights` (int8) and `<op>.bias` (int32); return their tensor indices."""
        x = op.inputs[0]
        x_shape = self.g.shape(x)
        cin = math.prod(x_shape[1:]) if op.kind == "fully_connected" else x_shape[3]
        shape, axis, fan_in = _weight_layout(op, cin)
        if self.float_weights is not None:
            return self._float_weights(op, shape, axis)
        s_in = np.float32(self.quant[x][0])
        if op.name in self.given:
            gw = self.given[op.name]
            values = np.asarray(gw.weights, dtype=np.int8)
            scales = np.asarray(gw.scales, dtype=np.float32).reshape(-1)
            bias = np.asarray(gw.bias, dtype=np.int32)
            if values.shape != shape or bias.shape != (shape[axis],) or scales.size not in (1, shape[axis]):
                raise GraphError(
                    f"op {op.name}: given weights {values.shape}, bias {bias.shape}, {scales.size} scales do not "
                    f"fit weights {shape} with {shape[axis]} output channels"
                )
        else:
            w = trained_like_weights(self.seed, op.name, shape, axis, fan_in, self.per_channel)
            values, scales = w.values, w.scales
            bias_scale = s_in * scales
            bias = np.clip(np.rint(w.bias / bias_scale), -(2**31), 2**31 - 1).astype(np.int32)
        zeros = (0,) * scales.size
        q_axis = axis if scales.size > 1 else 0
        w_idx = self.asm.add_tensor(
            f"{op.name}.weights", shape, _INT8, Quant(tuple(scales.tolist()), zeros, q_axis), data=values
        )
        b_quant = Quant(tuple((s_in * scales).astype(np.float32).tolist()), zeros, 0)
        b_idx = self.asm.add_tensor(f"{op.name}.bias", (shape[axis],), _INT32, b_quant, data=bias.astype("<i4"))
        return w_idx, b_idx

    def _io(self, op: Op) -> tuple[list[int], list[int]]:
        return [self.index[t] for t in op.inputs], [self.index[t] for t in op.outputs]

    # ---- op rules --------------------------------------------------------------------------------
    def conv2d(self, op: Op) -> None:
        (x,), outs = self._io(op)
        w, b = self._weights(op)
        s = op.attr("stride")
        act = _ACT[op.attr("act")]
        opts = _opts(Conv2DOptions, Padding=_SAME, StrideW=s, StrideH=s, FusedActivationFunction=act)
        self.asm.add_operator(_OP.CONV_2D, [x, w, b], outs, opts, version=3)

    def depthwise_conv2d(self, op: Op) -> None:
        (x,), outs = self._io(op)
        w, b = self._weights(op)
        s = op.attr("stride")
        act = _ACT[op.attr("act")]
        opts = _opts(
            DepthwiseConv2DOptions, Padding=_SAME, StrideW=s, StrideH=s, DepthMultiplier=1, FusedActivationFunction=act
        )
        self.asm.add_operator(_OP.DEPTHWISE_CONV_2D, [x, w, b], outs, opts, version=3)

    def transpose_conv2d(self, op: Op) -> None:
        (x,), outs = self._io(op)
        w, b = self._weights(op)
        out_shape = self._const_i32(f"{op.name}.output_shape", self.g.shape(op.outputs[0]))
        s = op.attr("stride")
        act = op.attr("act")
        opts = _opts(TransposeConvOptions, Padding=_SAME, StrideW=s, StrideH=s, FusedActivationFunction=_ACT[act])
        version = 4 if act != "none" else 3
        self.asm.add_operator(_OP.TRANSPOSE_CONV, [out_shape, w, x, b], outs, opts, version)

    def max_pool2d(self, op: Op) -> None:
        ins, outs = self._io(op)
        k, s = op.attr("kernel"), op.attr("stride")
        opts = _opts(Pool2DOptions, Padding=_SAME, StrideW=s, StrideH=s, FilterWidth=k, FilterHeight=k)
        self.asm.add_operator(_OP.MAX_POOL_2D, ins, outs, opts, version=2)

    def add(self, op: Op) -> None:
        ins, outs = self._io(op)
        opts = _opts(AddOptions, FusedActivationFunction=_ACT[op.attr("act")])
        self.asm.add_operator(_OP.ADD, ins, outs, opts, version=2)

    def concat(self, op: Op) -> None:
        ins, outs = self._io(op)
        if op.name in self.requantized:
            scale, zp = self.quant[op.outputs[0]]
            for i in self.requantized[op.name]:
                t = op.inputs[i]
                requant = self.asm.add_tensor(f"{op.name}.requant{i}", self.g.shape(t), _INT8, Quant((scale,), (zp,)))
                self.asm.add_operator(_OP.QUANTIZE, [ins[i]], [requant])  # version 1: int8 -> int8, per tensor
                ins[i] = requant
        axis = len(self.g.shape(op.outputs[0])) - 1
        opts = _opts(ConcatenationOptions, Axis=axis)
        self.asm.add_operator(_OP.CONCATENATION, ins, outs, opts, version=2)

    def split(self, op: Op) -> None:
        (x,), outs = self._io(op)
        sizes = tuple(op.attr("sizes"))
        axis_value = len(self.g.shape(op.inputs[0])) - 1
        axis = self._const_i32(f"{op.name}.axis", axis_value)
        if len(set(sizes)) == 1:
            opts = _opts(SplitOptions, NumSplits=len(sizes))
            self.asm.add_operator(_OP.SPLIT, [axis, x], outs, opts, version=2)
        else:
            size_splits = self._const_i32(f"{op.name}.size_splits", sizes)
            opts = _opts(SplitVOptions, NumSplits=len(sizes))
            self.asm.add_operator(_OP.SPLIT_V, [x, size_splits, axis], outs, opts, version=2)

    def _size(self, op: Op) -> int:
        _, h, w, _ = self.g.shape(op.outputs[0])
        return self._const_i32(f"{op.name}.size", (h, w))

    def resize_bilinear(self, op: Op) -> None:
        (x,), outs = self._io(op)
        hpc = bool(op.attr("half_pixel_centers"))
        opts = _opts(ResizeBilinearOptions, AlignCorners=False, HalfPixelCenters=hpc)
        self.asm.add_operator(_OP.RESIZE_BILINEAR, [x, self._size(op)], outs, opts, 3 if hpc else 2)

    def resize_nearest(self, op: Op) -> None:
        (x,), outs = self._io(op)
        opts = _opts(ResizeNearestNeighborOptions, AlignCorners=False, HalfPixelCenters=False)
        self.asm.add_operator(_OP.RESIZE_NEAREST_NEIGHBOR, [x, self._size(op)], outs, opts, 2)

    def depth_to_space(self, op: Op) -> None:
        ins, outs = self._io(op)
        b = op.attr("block")
        if op.attr("lowering") == "op":
            opts = _opts(DepthToSpaceOptions, BlockSize=b)
            version = 1 if self.float_weights is not None else 2  # version 2 is the int8 kernel
            self.asm.add_operator(_OP.DEPTH_TO_SPACE, ins, outs, opts, version=version)
            return
        # TRANSPOSE_CONV kernel b, stride b: out[b*i+dy, b*j+dx, c] = sum_k in[i, j, k] * W[c, dy, dx, k], and
        # with W[c, dy, dx, (dy*b + dx)*C + c] = 1 (TFLite's DCR order) that is exactly DEPTH_TO_SPACE.
        # Weights 127 at scale 1/127 and equal input/output quantisation make it bit-exact in int8.
        cin = self.g.shape(op.inputs[0])[3]
        cout = cin // (b * b)
        w = np.zeros((cout, b, b, cin), dtype=np.int8)
        for dy in range(b):
            for dx in range(b):
                w[np.arange(cout), dy, dx, (dy * b + dx) * cout + np.arange(cout)] = 127
        if self.float_weights is not None:
            w_idx = self.asm.add_tensor(f"{op.name}.weights", w.shape, _FLOAT32, data=(w / 127).astype("<f4"))
            b_idx = self.asm.add_tensor(f"{op.name}.bias", (cout,), _FLOAT32, data=np.zeros(cout, dtype="<f4"))
        else:
            s_w = np.float32(1.0 / 127.0)
            s_in = np.float32(self.quant[op.inputs[0]][0])
            zeros = (0,) * cout
            w_idx = self.asm.add_tensor(f"{op.name}.weights", w.shape, _INT8,
                                        Quant((float(s_w),) * cout, zeros, 0), data=w)
            b_idx = self.asm.add_tensor(f"{op.name}.bias", (cout,), _INT32,
                                        Quant((float(s_in * s_w),) * cout, zeros, 0), data=np.zeros(cout, dtype="<i4"))
        out_shape = self._const_i32(f"{op.name}.output_shape", self.g.shape(op.outputs[0]))
        opts = _opts(TransposeConvOptions, Padding=_SAME, StrideW=b, StrideH=b,
                     FusedActivationFunction=_ACT["none"])
        self.asm.add_operator(_OP.TRANSPOSE_CONV, [out_shape, w_idx, ins[0], b_idx], outs, opts, 3)

    def hard_swish(self, op: Op) -> None:
        self.asm.add_operator(_OP.HARD_SWISH, *self._io(op))

    def relu(self, op: Op) -> None:
        self.asm.add_operator(_OP.RELU, *self._io(op), version=2)

    def relu6(self, op: Op) -> None:
        self.asm.add_operator(_OP.RELU6, *self._io(op), version=2)

    def global_avg_pool(self, op: Op) -> None:
        (x,), outs = self._io(op)
        axes = self._const_i32(f"{op.name}.axes", (1, 2))
        self.asm.add_operator(_OP.MEAN, [x, axes], outs, _opts(ReducerOptions, KeepDims=True), version=2)

    def fully_connected(self, op: Op) -> None:
        (x,), outs = self._io(op)
        w, b = self._weights(op)
        opts = _opts(FullyConnectedOptions, FusedActivationFunction=_ACT[op.attr("act")], KeepNumDims=False)
        self.asm.add_operator(_OP.FULLY_CONNECTED, [x, w, b], outs, opts, version=4)

    def reshape(self, op: Op) -> None:
        (x,), outs = self._io(op)
        shape = self._const_i32(f"{op.name}.shape", tuple(op.attr("shape")))
        self.asm.add_operator(_OP.RESHAPE, [x, shape], outs)

    def transpose(self, op: Op) -> None:
        (x,), outs = self._io(op)
        perm = tuple(op.attr("perm"))
        p = self._const_i32(f"{op.name}.perm", perm)
        self.asm.add_operator(_OP.TRANSPOSE, [x, p], outs, version=4 if len(perm) > 4 else 2)

    # ---- driver ----------------------------------------------------------------------------------
    def write(self) -> bytes:
        for op in self.g.ops:
            # Rules are the methods named like the IR op kinds.
            rule: Callable[[Op], None] | None = getattr(self, op.kind, None) if op.kind in OP_ATTRS else None
            if rule is None:
                raise GraphError(f"op {op.name}: the TFLite writer has no rule for {op.kind!r}")
            rule(op)
        return self.asm.finish(
            [self.index[t] for t in self.g.inputs], [self.index[t] for t in self.g.outputs], name=self.g.name
        )


def graph_to_tflite(
    graph: Graph,
    *,
    seed: int,
    per_channel: bool = True,
    weights: Mapping[str, GivenWeights] | None = None,
    activation_quant: Mapping[str, QuantParams] | None = None,
) -> bytes:
    """An int8 TFLite model (schema 3, one subgraph) of `graph`.

    Weights are generated trained-like from `seed` (see `weights.py`; same graph and seed give identical
    bytes), except for ops named in `weights`, whose quantised values are used as given. Activation
    quantisation is fixed per tensor class (see `quant.py`); `activation_quant` (tensor -> (scale, zero
    point)) overrides it, for calibrated exports. A concat input whose params differ from the concat
    output's (per-input concat scales) goes through an int8->int8 QUANTIZE `<concat>.requant<i>` first,
    as TFLite's int8 CONCATENATION requires equal params; with the default classes there is none.
    """
    if not graph.outputs:
        raise GraphError(f"graph {graph.name}: no outputs marked")
    return _Writer(graph, seed, per_channel, weights or {}, activation_quant).write()


def graph_to_float_tflite(graph: Graph, weights: Mapping[str, FloatWeights]) -> bytes:
    """A float32 TFLite model of `graph` with the given weights (every weighted op), the same ops and
    options as the int8 file. For tests only: the TFLite interpreter runs it as the independent truth of
    what each op computes, to check another back end (the torch builder) against."""
    if not graph.outputs:
        raise GraphError(f"graph {graph.name}: no outputs marked")
    missing = [op.name for op in graph.ops if op.kind in WEIGHTED_OPS and op.name not in weights]
    if missing:
        raise GraphError(f"graph {graph.name}: no float weights for {', '.join(missing)}")
    return _Writer(graph, 0, True, {}, None, float_weights=weights).write()


@functools.lru_cache(maxsize=1)
def writer_version() -> str:
    """What decides the bytes besides the graph and the seed: this package's source (the writer, the
    weight recipe, the activation quantisation, the flatbuffer assembler) and the libraries it calls.
    Derived, not a number to bump by hand, so an edit to the writer can never serve a stale model key."""
    h = hashlib.sha256(b"edgenas-tflite-writer\0")
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    for dist in ("numpy", "flatbuffers", "ethos-u-vela"):
        h.update(f"\0{dist}={metadata.version(dist)}".encode())
    return h.hexdigest()


def model_fingerprint(graph: Graph, *, seed: int, per_channel: bool = True) -> str:
    """A key for the bytes `graph_to_tflite(graph, seed=seed, per_channel=per_channel)` would return (with
    generated weights), found without writing them: the graph's fingerprint, the weight recipe and seed,
    and the writer's version."""
    text = f"{graph.fingerprint()}\0{WEIGHTS_DESCRIPTION}\0seed={seed}\0per_channel={per_channel}\0{writer_version()}"
    return hashlib.sha256(text.encode()).hexdigest()
