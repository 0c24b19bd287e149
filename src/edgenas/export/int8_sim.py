"""The int8 network of a Graph in torch, with the integer arithmetic of TFLite's reference kernels.

`Int8Graph(graph, weights, act_quant)` takes the same inputs as the TFLite writer (`GivenWeights` per weighted
op, (scale, zero point) per tensor) and computes, op by op, what LiteRT's reference kernels and TFLite
Micro compute on the file the writer makes from them: int8 in, int8 out. `FakeQuantGraph` wraps a float
`GraphModule`: its forward is the exact int8 network (input quantised like QUANTIZE, outputs dequantised
like DEQUANTIZE), its backward a straight-through estimator into the module's float weights, so
quantisation-aware training can train against the numbers the device will produce.

Why hand-written: torch's quantised ops and torchao round half to even in float; TFLite requantises with
gemmlowp's double rounding (see `fixedpoint.py`), has its own integer bilinear resize, an int16 fixed-point
hard-swish and a MEAN that folds 1/N into the multiplier. Kernels followed (tensorflow/tflite-micro, the
shared `tensorflow/lite/kernels/internal/reference/` code, and the kernels' Prepare functions that derive
multipliers; LiteRT's `tensorflow/lite/kernels/*.cc` pick the same reference functions under
BUILTIN_REF):
- conv2d / depthwise / transpose conv: `reference/integer_ops/{conv,depthwise_conv,transpose_conv}.h`,
  multipliers from `kernel_util.cc` PopulateConvolutionQuantizationParams (double(s_in) * double(s_w[c]) /
  double(s_out)), fused clamps from CalculateActivationRangeQuantized (zp + round(f / s) in float32).
- fully connected: the two interpreters differ. LiteRT's reference kernel (google-ai-edge/LiteRT
  `tflite/kernels/internal/reference/integer_ops/fully_connected.h`, the overloads taking float scales,
  which `tflite/kernels/fully_connected.cc` calls under kReference) requantises in double:
  round(double(acc) * double(s_in) * double(s_w) / double(s_out)), ties away from zero, one rounding.
  TFLite Micro's (`micro/kernels/fully_connected.cc` -> the multiplier/shift overload) uses
  MultiplyByQuantizedMultiplier like the convolutions. `kernels="litert"` (default) or "tflm" picks one.
- ADD: `reference/integer_ops/add.h` AddFunc; multipliers from `micro/kernels/add_common.cc` (left_shift 20).
- MEAN: `reference/reduce.h` QuantizedMeanOrSum (int32 sum, 1/N folded into the multiplier).
- RESIZE_BILINEAR: `reference/resize_bilinear.h` ResizeBilinearInteger (Q10 positions, Q20 products).
- RESIZE_NEAREST_NEIGHBOR: `reference/resize_nearest_neighbor.h` GetNearestNeighbor (float32 scale).
- HARD_SWISH: `reference/hard_swish.h`, parameters from `micro/kernels/hard_swish_common.cc`.
- RELU / RELU6: `micro/kernels/activations_common.cc` (ReluX with a float32 s_in / s_out multiplier); LiteRT
  requantises RELU6 the same way, while TFLite Micro's int8 RELU6 (`micro/kernels/activations.cc`) only
  clamps the input bytes to [zp_in, zp_in + round(6 / s_in)] and ignores the output's quantisation
  (`kernels="tflm"` does that too).
- QUANTIZE int8 -> int8 (a concat input whose quantisation differs from the output's): `reference/
  requantize.h`, multiplier double(s_in) / double(s_out) (`micro/kernels/quantize_common.cc`).
- QUANTIZE float -> int8 and DEQUANTIZE: `reference/quantize.h` AffineQuantize, `reference/dequantize.h`.
- MAX_POOL_2D, CONCATENATION, SPLIT, RESHAPE, TRANSPOSE, DEPTH_TO_SPACE: data movement.

Checked (tests/export/test_int8_sim.py) against ai-edge-litert 2.3.0 with BUILTIN_REF and the tflite-micro
wheel: every output value equal, op by op and on whole networks. LiteRT's reference resolver has no int8
DEPTH_TO_SPACE (it registers version 1 only; the file says 2), so that op is checked against TFLite Micro.

Accumulation: convolutions run in float64 on integer-valued tensors (exact below 2^53; a 7x7x1024 conv
stays under 2^31), then wrap to int32 as the kernels' int32 accumulators would.

Tensors are NCHW like `GraphModule` (rank-2 outputs as they are); integer tensors are torch.int8 at the
interface and int64 inside.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgenas.errors import GraphError
from edgenas.export import fixedpoint as fp
from edgenas.graph.ir import Graph, Op
from edgenas.tflite.quant import QuantParams
from edgenas.tflite.writer import GivenWeights
from edgenas.train.builder import GraphModule, depth_to_space_dcr, same_padding

KERNELS = ("litert", "tflm")

__all__ = [
    "KERNELS",
    "FakeQuantGraph",
    "Int8Graph",
    "d2s_one_hot_weights",
    "dequantize",
    "quantize",
    "resize_bilinear_int8",
]

_QMIN, _QMAX = -128, 127


def _f32(v: float) -> float:
    return float(np.float32(v))


def quantize(x: Tensor, qp: QuantParams) -> Tensor:
    """TFLite QUANTIZE float32 -> int8 (AffineQuantize): round(x / scale) in float32, ties away from zero."""
    scale, zp = qp
    v = (x.to(torch.float32) / np.float32(scale)).to(torch.float64)
    r = torch.sign(v) * torch.floor(torch.abs(v) + 0.5)
    return torch.clamp(r + zp, _QMIN, _QMAX).to(torch.int8)


def dequantize(q: Tensor, qp: QuantParams) -> Tensor:
    """TFLite DEQUANTIZE: float(double(scale) * (q - zp))."""
    scale, zp = qp
    return ((q.to(torch.float64) - zp) * _f32(scale)).to(torch.float32)


def _act_range(act: str, qp: QuantParams) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: zp + round(f / scale), f / scale in float32."""
    scale, zp = qp
    if act == "none":
        return _QMIN, _QMAX
    lo = max(_QMIN, zp + fp.round_half_away(float(np.float32(0.0) / np.float32(scale))))
    if act == "relu":
        return lo, _QMAX
    if act == "relu6":
        return lo, min(_QMAX, zp + fp.round_half_away(float(np.float32(6.0) / np.float32(scale))))
    raise GraphError(f"unknown fused activation {act!r}")


def _nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def _nchw(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def _axis_q10(in_size: int, out_size: int, half_pixel_centers: bool) -> tuple[Tensor, Tensor, Tensor]:
    """ComputeInterpolationValuesInteger along one axis: lower index, upper index, Q10 weight of the upper."""
    scale_10 = ((1 << 10) * in_size + out_size // 2) // out_size
    pos = torch.arange(out_size, dtype=torch.int64)
    v = pos * scale_10 + (scale_10 // 2 - (1 << 9) if half_pixel_centers else 0)
    lo = torch.clamp(fp.trunc_div(v, 1 << 10), min=0)
    hi = torch.clamp(fp.trunc_div(v + (1 << 10) - 1, 1 << 10), max=in_size - 1)
    return lo, hi, v - (1 << 10) * lo


def resize_bilinear_int8(x: Tensor, out_h: int, out_w: int, half_pixel_centers: bool, rounding: str) -> Tensor:
    """ResizeBilinearInteger (align_corners False) on raw int8 values (NCHW, int64)."""
    _, _, h, w = x.shape
    y0, y1, wy = _axis_q10(h, out_h, half_pixel_centers)
    x0, x1, wx = _axis_q10(w, out_w, half_pixel_centers)
    wy, wx = wy.view(1, 1, -1, 1), wx.view(1, 1, 1, -1)
    top, bottom = x.index_select(2, y0), x.index_select(2, y1)
    out20 = (top.index_select(3, x0) * ((1 << 10) - wy) * ((1 << 10) - wx)
             + bottom.index_select(3, x0) * wy * ((1 << 10) - wx)
             + top.index_select(3, x1) * ((1 << 10) - wy) * wx
             + bottom.index_select(3, x1) * wy * wx)
    if rounding == "double":
        return fp.trunc_div(out20 + torch.where(out20 > 0, 1 << 19, -(1 << 19)), 1 << 20)
    if rounding == "single":
        return torch.bitwise_right_shift(out20 + (1 << 19), 20)
    return fp.multiply_by_quantized_multiplier(out20, 1 << 30, -19, "half_even")  # out20 / 2^20, ties to even


def _nearest_index(in_size: int, out_size: int) -> Tensor:
    """GetNearestNeighbor (align_corners and half_pixel_centers False): floor(out * float32(in / out))."""
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return torch.from_numpy(np.minimum(idx, in_size - 1))


def d2s_one_hot_weights(cin: int, block: int) -> np.ndarray:
    """The writer's DEPTH_TO_SPACE lowering: a TRANSPOSE_CONV (cout, b, b, cin) with 127 at (dy*b+dx)*C + c."""
    cout = cin // (block * block)
    w = np.zeros((cout, block, block, cin), dtype=np.int8)
    for dy in range(block):
        for dx in range(block):
            w[np.arange(cout), dy, dx, (dy * block + dx) * cout + np.arange(cout)] = 127
    return w


class _Requant:
    """A per-channel (or per-tensor) multiplier/shift pair as broadcastable int64 tensors."""

    def __init__(self, reals: list[float], rounding: str, ndim: int) -> None:
        pairs = [fp.quantize_multiplier(r, rounding) for r in reals]
        shape = (1, -1) + (1,) * (ndim - 2)
        self.mult = torch.tensor([m for m, _ in pairs], dtype=torch.int64).view(shape)
        self.shift = torch.tensor([s for _, s in pairs], dtype=torch.int64).view(shape)
        self.rounding = rounding

    def __call__(self, acc: Tensor) -> Tensor:
        return fp.multiply_by_quantized_multiplier(acc, self.mult, self.shift, self.rounding)


class Int8Graph(nn.Module):
    """The int8 network: forward(*int8 NCHW inputs) -> int8 outputs, as TFLite's reference kernels compute.

    `weights`: every weighted op's `GivenWeights` (int8 TFLite layout, int32 bias, float scales);
    `act_quant`: (scale, zero point) of every tensor, as passed to `graph_to_tflite(activation_quant=...)`.
    `rounding`: "double" (TFLite), "single" or "half_even" (see `fixedpoint.py`); `kernels`: "litert" (LiteRT's
    reference kernels) or "tflm" (TFLite Micro's), which differ in FULLY_CONNECTED and RELU6."""

    def __init__(self, graph: Graph, weights: Mapping[str, GivenWeights], act_quant: Mapping[str, QuantParams],
                 *, rounding: str = "double", kernels: str = "litert") -> None:
        super().__init__()
        if rounding not in fp.ROUNDINGS:
            raise ValueError(f"rounding must be one of {fp.ROUNDINGS}, got {rounding!r}")
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
        self.graph = graph
        self.rounding = rounding
        self.kernels = kernels
        missing = [t for t in graph.tensors if t not in act_quant]
        if missing:
            raise GraphError(f"graph {graph.name}: no activation quantisation for {', '.join(missing[:5])}")
        self.quant: dict[str, QuantParams] = {t: (_f32(s), int(z)) for t, (s, z) in act_quant.items()}
        self._p: dict[str, dict] = {}
        for op in graph.ops:
            self._p[op.name] = self._prepare(op, weights)

    # ---- Prepare: everything derived from the quantisation, once ----------------------------------------
    def _conv_params(self, op: Op, w: np.ndarray, bias: np.ndarray, scales: np.ndarray, act: str) -> dict:
        s_in, zp_in = self.quant[op.inputs[0]]
        s_out, _ = self.quant[op.outputs[0]]
        cout = bias.shape[0]
        scales = np.broadcast_to(np.asarray(scales, dtype=np.float32).reshape(-1), (cout,))
        reals = [s_in * float(s) / s_out for s in scales]
        ndim = len(self.graph.shape(op.outputs[0]))
        return {
            "w": torch.from_numpy(np.asarray(w, dtype=np.float64)),
            "bias": torch.from_numpy(np.asarray(bias, dtype=np.int64)).view((1, -1) + (1,) * (ndim - 2)),
            "requant": _Requant(reals, self.rounding, ndim),
            "real": torch.tensor(reals, dtype=torch.float64).view((1, -1) + (1,) * (ndim - 2)),
            "zp_in": zp_in, "zp_out": self.quant[op.outputs[0]][1],
            "clamp": _act_range(act, self.quant[op.outputs[0]]),
        }  # fmt: skip

    def _prepare(self, op: Op, weights: Mapping[str, GivenWeights]) -> dict:
        q = self.quant
        if op.kind in ("conv2d", "depthwise_conv2d", "transpose_conv2d", "fully_connected"):
            if op.name not in weights:
                raise GraphError(f"op {op.name}: no quantised weights given")
            gw = weights[op.name]
            want = self._weight_shape(op)
            cout = want[3] if op.kind == "depthwise_conv2d" else want[0]
            fits = tuple(np.shape(gw.weights)) == want and np.shape(gw.bias) == (cout,)
            if not fits or np.size(gw.scales) not in (1, cout):
                raise GraphError(f"op {op.name}: weights {np.shape(gw.weights)}, bias {np.shape(gw.bias)}, "
                                 f"{np.size(gw.scales)} scales do not fit weights {want} ({cout} output channels)")
            return self._conv_params(op, gw.weights, gw.bias, gw.scales, op.attr("act"))
        if op.kind == "depth_to_space" and op.attr("lowering") == "transpose_conv":
            cin = self.graph.shape(op.inputs[0])[3]
            b = op.attr("block")
            w = d2s_one_hot_weights(cin, b)
            cout = w.shape[0]
            return self._conv_params(op, w, np.zeros(cout, np.int32), np.full(cout, 1.0 / 127.0, np.float32), "none")
        if op.kind == "add":
            (s1, z1), (s2, z2), (so, zo) = q[op.inputs[0]], q[op.inputs[1]], q[op.outputs[0]]
            twice_max = 2.0 * max(s1, s2)
            left_shift = 20
            return {
                "in": [(z1, fp.quantize_multiplier(s1 / twice_max, self.rounding)),
                       (z2, fp.quantize_multiplier(s2 / twice_max, self.rounding))],
                "out": fp.quantize_multiplier(twice_max / ((1 << left_shift) * so), self.rounding),
                "left_shift": left_shift, "zp_out": zo, "clamp": _act_range(op.attr("act"), q[op.outputs[0]]),
            }  # fmt: skip
        if op.kind == "global_avg_pool":
            (si, zi), (so, zo) = q[op.inputs[0]], q[op.outputs[0]]
            _, h, w, _ = self.graph.shape(op.inputs[0])
            n = h * w
            mult, shift = fp.quantize_multiplier(si / so, self.rounding)
            extra = min(n.bit_length() - 1, 32, 31 + shift)  # QuantizedMeanOrSum folds 1/N into the multiplier
            return {"n": n, "zp_in": zi, "zp_out": zo, "mult": (mult << extra) // n, "shift": shift - extra}
        if op.kind == "relu6" and self.kernels == "tflm":  # clamp in the input's quantisation, no requantise
            si, zi = q[op.inputs[0]]
            six = zi + fp.round_half_away(float(np.float32(6.0) / np.float32(si)))
            return {"clamp_raw": (zi, min(six, _QMAX))}
        if op.kind in ("relu", "relu6"):
            (si, zi), (so, zo) = q[op.inputs[0]], q[op.outputs[0]]
            real = float(np.float32(si) / np.float32(so))  # float32 division, then double
            return {"zp_in": zi, "zp_out": zo, "m": fp.quantize_multiplier(real, self.rounding),
                    "clamp": _act_range(op.kind, (so, zo))}
        if op.kind == "hard_swish":
            return self._hard_swish_params(op)
        if op.kind == "concat":
            out_qp = q[op.outputs[0]]
            return {"requant": [None if q[t] == out_qp else self._requant_params(q[t], out_qp) for t in op.inputs]}
        return {}

    def _weight_shape(self, op: Op) -> tuple[int, ...]:
        """TFLite layout: (cout, k, k, cin); depthwise (1, k, k, c); fully connected (units, flattened input)."""
        x = self.graph.shape(op.inputs[0])
        if op.kind == "fully_connected":
            return (op.attr("units"), int(np.prod(x[1:])))
        k = op.attr("kernel")
        if op.kind == "depthwise_conv2d":
            return (1, k, k, x[3])
        return (op.attr("out_channels"), k, k, x[3])

    def _requant_params(self, in_qp: QuantParams, out_qp: QuantParams) -> dict:
        return {"zp_in": in_qp[1], "zp_out": out_qp[1], "m": fp.quantize_multiplier(in_qp[0] / out_qp[0],
                                                                                     self.rounding)}

    def _hard_swish_params(self, op: Op) -> dict:
        (si, zi), (so, zo) = self.quant[op.inputs[0]], self.quant[op.outputs[0]]
        hires = np.float32(1.0 / 128.0) * np.float32(si)
        reluish_scale = np.float32(3.0) / np.float32(32768.0)
        out_m, out_e = fp.quantize_multiplier(float(hires / np.float32(so)), self.rounding)
        rel_m, rel_e = fp.quantize_multiplier(float(hires / reluish_scale), self.rounding)
        if out_e > 0:
            raise GraphError(f"op {op.name}: hard_swish output scale too small for TFLite (exponent {out_e} > 0)")
        return {"zp_in": zi, "zp_out": zo, "out_m": fp.downscale_multiplier_int16(out_m), "out_e": out_e,
                "rel_m": fp.downscale_multiplier_int16(rel_m), "rel_e": rel_e}

    # ---- Eval ---------------------------------------------------------------------------------------------
    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.run(*inputs)[1]

    def run(self, *inputs: Tensor, keep: bool = False) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """(every tensor by IR name, int8, if `keep`; the outputs)."""
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise GraphError(f"graph {g.name} takes {len(g.inputs)} input(s), got {len(inputs)}")
        env: dict[str, Tensor] = {}
        for t, x in zip(g.inputs, inputs):
            if x.dtype != torch.int8:
                raise GraphError(f"input {t}: expected a torch.int8 tensor, got {x.dtype}")
            env[t] = x.to(torch.int64)
        for op in g.ops:
            outs = getattr(self, "_" + op.kind)(op, [env[t] for t in op.inputs], self._p[op.name])
            for t, v in zip(op.outputs, outs):
                env[t] = v
        kept = {t: v.to(torch.int8) for t, v in env.items()} if keep else {}
        return kept, tuple(env[t].to(torch.int8) for t in g.outputs)

    def _finish(self, acc: Tensor, p: dict) -> Tensor:
        acc = fp.wrap(acc.round().to(torch.int64) + p["bias"], 32)  # int32 accumulator + bias
        return torch.clamp(p["requant"](acc) + p["zp_out"], *p["clamp"])

    def _conv2d(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        x = xs[0].to(torch.float64) - p["zp_in"]  # zero padding in real terms
        k, s = op.attr("kernel"), op.attr("stride")
        (pt, pb), (pl, pr) = same_padding(x.shape[2], k, s), same_padding(x.shape[3], k, s)
        x = F.pad(x, (pl, pr, pt, pb))
        w = p["w"]
        if op.kind == "depthwise_conv2d":  # (1, k, k, c) -> (c, 1, k, k)
            acc = F.conv2d(x, w[0].permute(2, 0, 1).unsqueeze(1), stride=s, groups=x.shape[1])
        else:  # (cout, k, k, cin) -> (cout, cin, k, k)
            acc = F.conv2d(x, w.permute(0, 3, 1, 2), stride=s)
        return [self._finish(acc, p)]

    _depthwise_conv2d = _conv2d

    def _transpose_conv2d(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        if op.kind == "depth_to_space":
            k = s = op.attr("block")
        else:
            k, s = op.attr("kernel"), op.attr("stride")
        _, oh, ow, _ = self.graph.shape(op.outputs[0])
        x = xs[0].to(torch.float64) - p["zp_in"]
        full = F.conv_transpose2d(x, p["w"].permute(3, 0, 1, 2), stride=s)  # (cout,k,k,cin) -> (cin,cout,k,k)
        top, left = same_padding(oh, k, s)[0], same_padding(ow, k, s)[0]
        acc = full[:, :, top:top + oh, left:left + ow]
        if acc.shape[2] < oh or acc.shape[3] < ow:  # kernel smaller than stride: untouched outputs are 0
            acc = F.pad(acc, (0, ow - acc.shape[3], 0, oh - acc.shape[2]))
        return [self._finish(acc, p)]

    def _fully_connected(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        x = _nhwc(xs[0])
        x = x.reshape(x.shape[0], -1).to(torch.float64) - p["zp_in"]
        if self.kernels == "tflm":
            return [self._finish(x @ p["w"].T, p)]
        # LiteRT's reference FULLY_CONNECTED: round(double(acc) * double multiplier), one rounding.
        acc = fp.wrap((x @ p["w"].T).round().to(torch.int64) + p["bias"], 32)
        v = acc.to(torch.float64) * p["real"]
        if self.rounding == "half_even":
            r = torch.round(v)
        else:
            r = torch.floor(torch.abs(v))
            r = torch.sign(v) * (r + (torch.abs(v) - r >= 0.5).to(torch.float64))
        return [torch.clamp(r.to(torch.int64) + p["zp_out"], *p["clamp"])]

    def _depth_to_space(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        if op.attr("lowering") == "transpose_conv":
            return self._transpose_conv2d(op, xs, p)
        return [depth_to_space_dcr(xs[0], op.attr("block"))]

    def _add(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        r = self.rounding
        scaled = []
        for x, (zp, (m, e)) in zip(xs, p["in"]):
            shifted = (x - zp) * (1 << p["left_shift"])
            scaled.append(fp.multiply_by_quantized_multiplier(shifted, m, e, r))
        m, e = p["out"]
        raw = fp.multiply_by_quantized_multiplier(fp.wrap(scaled[0] + scaled[1], 32), m, e, r) + p["zp_out"]
        return [torch.clamp(raw, *p["clamp"])]

    def _requantize(self, x: Tensor, p: dict) -> Tensor:
        m, e = p["m"]
        y = fp.multiply_by_quantized_multiplier(x - p["zp_in"], m, e, self.rounding) + p["zp_out"]
        return torch.clamp(y, _QMIN, _QMAX)

    def _concat(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        parts = [x if rq is None else self._requantize(x, rq) for x, rq in zip(xs, p["requant"])]
        return [torch.cat(parts, dim=1)]

    def _split(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        return list(torch.split(xs[0], list(op.attr("sizes")), dim=1))

    def _max_pool2d(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        k, s = op.attr("kernel"), op.attr("stride")
        x = xs[0].to(torch.float64)
        (pt, pb), (pl, pr) = same_padding(x.shape[2], k, s), same_padding(x.shape[3], k, s)
        x = F.pad(x, (pl, pr, pt, pb), value=float("-inf"))  # outside the image never wins
        return [F.max_pool2d(x, k, s).to(torch.int64)]

    def _resize_bilinear(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        _, oh, ow, _ = self.graph.shape(op.outputs[0])
        return [resize_bilinear_int8(xs[0], oh, ow, bool(op.attr("half_pixel_centers")), self.rounding)]

    def _resize_nearest(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        _, oh, ow, _ = self.graph.shape(op.outputs[0])
        x = xs[0]
        return [x.index_select(2, _nearest_index(x.shape[2], oh)).index_select(3, _nearest_index(x.shape[3], ow))]

    def _hard_swish(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        hires = (xs[0] - p["zp_in"]) * (1 << 7)
        preshift = fp.srdhm_int16(hires, p["out_m"])
        reluish = hires
        if p["rel_e"] > 0:
            reluish = fp.saturating_left_shift_int16(reluish, p["rel_e"] - 1)
        reluish = fp.srdhm_int16(reluish, p["rel_m"])
        if p["rel_e"] > 0:
            reluish = fp.saturating_left_shift_int16(reluish, 1)
        if p["rel_e"] < 0:
            reluish = fp.rounding_divide_by_pot(reluish, -p["rel_e"])
        reluish = torch.bitwise_right_shift(reluish + (1 << 15), 1)  # [-1, 1] in Q15 -> [0, 1]
        out = fp.rounding_divide_by_pot(fp.sdhm_int16(reluish, preshift), -p["out_e"])
        return [torch.clamp(fp.wrap(out + p["zp_out"], 16), _QMIN, _QMAX)]

    def _relu(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        if "clamp_raw" in p:
            return [torch.clamp(xs[0], *p["clamp_raw"])]
        m, e = p["m"]
        y = p["zp_out"] + fp.multiply_by_quantized_multiplier(xs[0] - p["zp_in"], m, e, self.rounding)
        return [torch.clamp(y, *p["clamp"])]

    _relu6 = _relu

    def _global_avg_pool(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        total = fp.wrap(xs[0].sum(dim=(2, 3), keepdim=True), 32) - p["zp_in"] * p["n"]
        y = fp.multiply_by_quantized_multiplier(fp.wrap(total, 32), p["mult"], p["shift"], self.rounding)
        return [torch.clamp(y + p["zp_out"], _QMIN, _QMAX)]

    def _reshape(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        shape = (xs[0].shape[0], *tuple(op.attr("shape"))[1:])
        return [_nchw(_nhwc(xs[0]).reshape(shape))]

    def _transpose(self, op: Op, xs: list[Tensor], p: dict) -> list[Tensor]:
        return [_nchw(_nhwc(xs[0]).permute(tuple(op.attr("perm"))))]


class FakeQuantGraph(nn.Module):
    """A float module whose forward is its exact int8 network and whose backward is a straight-through
    estimator into its float weights.

    Forward: the float inputs are quantised like TFLite's QUANTIZE, the weights are folded (BatchNorm,
    running statistics) and quantised by `export.ptq.quantize_weights` from the module's current float
    weights, the int8 network runs (`Int8Graph`) and its outputs are dequantised like DEQUANTIZE: the
    numbers the deployed file produces. Backward: the gradient of the float module at the quantised input,
    i.e. rounding and clamping treated as identity (the straight-through estimator), so the float weights
    are trained against the integer network's outputs."""

    def __init__(self, module: GraphModule, act_quant: Mapping[str, QuantParams], *,
                 rounding: str = "double") -> None:
        super().__init__()
        self.module = module
        self.act_quant = dict(act_quant)
        self.rounding = rounding

    def int8_graph(self) -> Int8Graph:
        """The integer network of the module's current weights."""
        from edgenas.export.ptq import folded_weights, quantize_weights  # the float-module path only

        graph = self.module.graph
        given = quantize_weights(graph, folded_weights(self.module), self.act_quant)
        return Int8Graph(graph, given, self.act_quant, rounding=self.rounding)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        g = self.module.graph
        q_in = [quantize(x.detach(), self.act_quant[t]) for t, x in zip(g.inputs, inputs)]
        with torch.no_grad():
            q_out = self.int8_graph()(*q_in)
        exact = [dequantize(q, self.act_quant[t]) for t, q in zip(g.outputs, q_out)]
        if not torch.is_grad_enabled():
            return tuple(exact)
        # The float path at the quantised input (straight through the input rounding) carries the gradient.
        x_ste = [x + (dequantize(q, self.act_quant[t]) - x).detach() for t, x, q in zip(g.inputs, inputs, q_in)]
        approx = self.module(*x_ste)
        return tuple(a + (e - a).detach() for a, e in zip(approx, exact))
