"""A minimal hand-made int8 TFLite writer (CONV_2D only) for models edgenas's writer must never produce.

The hardware tests need deliberately malformed models (e.g. an op code that does not match its options
table, which crashes the compiler's C++ core) to check that such input cannot take a sweep down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from ethosu.vela.tflite import (
    Buffer,
    Conv2DOptions,
    Model,
    Operator,
    OperatorCode,
    QuantizationParameters,
    SubGraph,
    Tensor,
)
from ethosu.vela.tflite.ActivationFunctionType import ActivationFunctionType
from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
from ethosu.vela.tflite.BuiltinOptions import BuiltinOptions
from ethosu.vela.tflite.Padding import Padding
from ethosu.vela.tflite.TensorType import TensorType

ACT_SCALE = 0.05
W_SCALE = 0.01


@dataclass
class _T:
    name: str
    shape: tuple[int, ...]
    dtype: int
    buffer: int
    scale: list[float]
    zero_point: list[int]
    qdim: int = 0


@dataclass
class _Op:
    code: int
    inputs: list[int]
    outputs: list[int]
    opt_type: int
    opt: tuple


@dataclass
class TinyModel:
    """Build a small int8 NHWC graph op by op; `to_bytes()` returns the flatbuffer."""

    seed: int = 0
    tensors: list[_T] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])
    ops: list[_Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def _tensor(self, name: str, shape: tuple[int, ...], dtype: int, data: bytes | None,
                scale: list[float], zp: list[int], qdim: int = 0) -> int:
        self.buffers.append(data if data is not None else b"")
        self.tensors.append(_T(name, tuple(shape), dtype, len(self.buffers) - 1, scale, zp, qdim))
        return len(self.tensors) - 1

    def _act(self, name: str, shape: tuple[int, ...]) -> int:
        return self._tensor(name, shape, TensorType.INT8, None, [ACT_SCALE], [0])

    def input(self, h: int, w: int, c: int, name: str = "input") -> int:
        t = self._act(name, (1, h, w, c))
        self.inputs.append(t)
        return t

    def _weights(self, name: str, shape: tuple[int, ...], qdim: int) -> int:
        w = self._rng.normal(0.0, 30.0, size=shape).clip(-127, 127).astype(np.int8)
        n = shape[qdim]
        return self._tensor(name, shape, TensorType.INT8, w.tobytes(), [W_SCALE] * n, [0] * n, qdim)

    def _bias(self, name: str, n: int) -> int:
        b = self._rng.integers(-1000, 1000, size=n).astype(np.int32)
        return self._tensor(name, (n,), TensorType.INT32, b.tobytes(), [ACT_SCALE * W_SCALE] * n, [0] * n)

    @staticmethod
    def _out_hw(h: int, w: int, stride: int) -> tuple[int, int]:
        return (h + stride - 1) // stride, (w + stride - 1) // stride

    def conv(self, x: int, cout: int, k: int = 3, stride: int = 1, name: str | None = None) -> int:
        _, h, w, cin = self.shape(x)
        name = name or f"conv{len(self.ops)}"
        wt = self._weights(name + "/w", (cout, k, k, cin), 0)
        bs = self._bias(name + "/b", cout)
        oh, ow = self._out_hw(h, w, stride)
        y = self._act(name, (1, oh, ow, cout))
        self.ops.append(_Op(BuiltinOperator.CONV_2D, [x, wt, bs], [y], BuiltinOptions.Conv2DOptions,
                            ("conv", stride)))
        return y

    # -- serialisation ---------------------------------------------------------------------------------
    def to_bytes(self, outputs: list[int]) -> bytes:
        b = flatbuffers.Builder(1024)
        codes = sorted({op.code for op in self.ops})
        code_idx = {c: i for i, c in enumerate(codes)}

        buf_offs = []
        for data in self.buffers:
            if data:
                b.StartVector(1, len(data), 16)
                b.head = b.head - len(data)
                b.Bytes[b.head : b.head + len(data)] = data
                vec = b.EndVector()
                Buffer.BufferStart(b)
                Buffer.BufferAddData(b, vec)
            else:
                Buffer.BufferStart(b)
            buf_offs.append(Buffer.BufferEnd(b))

        def ivec(start, vals: list[int]) -> int:
            start(b, len(vals))
            for v in reversed(vals):
                b.PrependInt32(v)
            return b.EndVector()

        t_offs = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = ivec(Tensor.TensorStartShapeVector, list(t.shape))
            QuantizationParameters.QuantizationParametersStartScaleVector(b, len(t.scale))
            for s in reversed(t.scale):
                b.PrependFloat32(s)
            sc = b.EndVector()
            QuantizationParameters.QuantizationParametersStartZeroPointVector(b, len(t.zero_point))
            for z in reversed(t.zero_point):
                b.PrependInt64(z)
            zp = b.EndVector()
            QuantizationParameters.QuantizationParametersStart(b)
            QuantizationParameters.QuantizationParametersAddScale(b, sc)
            QuantizationParameters.QuantizationParametersAddZeroPoint(b, zp)
            QuantizationParameters.QuantizationParametersAddQuantizedDimension(b, t.qdim)
            q = QuantizationParameters.QuantizationParametersEnd(b)
            Tensor.TensorStart(b)
            Tensor.TensorAddShape(b, shape)
            Tensor.TensorAddType(b, t.dtype)
            Tensor.TensorAddBuffer(b, t.buffer)
            Tensor.TensorAddName(b, name)
            Tensor.TensorAddQuantization(b, q)
            t_offs.append(Tensor.TensorEnd(b))

        op_offs = []
        for op in self.ops:
            opt = self._options(b, op)
            ins = ivec(Operator.OperatorStartInputsVector, op.inputs)
            outs = ivec(Operator.OperatorStartOutputsVector, op.outputs)
            Operator.OperatorStart(b)
            Operator.OperatorAddOpcodeIndex(b, code_idx[op.code])
            Operator.OperatorAddInputs(b, ins)
            Operator.OperatorAddOutputs(b, outs)
            Operator.OperatorAddBuiltinOptionsType(b, op.opt_type)
            Operator.OperatorAddBuiltinOptions(b, opt)
            op_offs.append(Operator.OperatorEnd(b))

        def ovec(start, offs: list[int]) -> int:
            start(b, len(offs))
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        tensors = ovec(SubGraph.SubGraphStartTensorsVector, t_offs)
        operators = ovec(SubGraph.SubGraphStartOperatorsVector, op_offs)
        sg_in = ivec(SubGraph.SubGraphStartInputsVector, self.inputs)
        sg_out = ivec(SubGraph.SubGraphStartOutputsVector, outputs)
        sg_name = b.CreateString("main")
        SubGraph.SubGraphStart(b)
        SubGraph.SubGraphAddTensors(b, tensors)
        SubGraph.SubGraphAddInputs(b, sg_in)
        SubGraph.SubGraphAddOutputs(b, sg_out)
        SubGraph.SubGraphAddOperators(b, operators)
        SubGraph.SubGraphAddName(b, sg_name)
        sg = SubGraph.SubGraphEnd(b)

        oc_offs = []
        for c in codes:
            OperatorCode.OperatorCodeStart(b)
            OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(c, 127))
            OperatorCode.OperatorCodeAddBuiltinCode(b, c)
            OperatorCode.OperatorCodeAddVersion(b, 1)
            oc_offs.append(OperatorCode.OperatorCodeEnd(b))

        opcodes = ovec(Model.ModelStartOperatorCodesVector, oc_offs)
        subgraphs = ovec(Model.ModelStartSubgraphsVector, [sg])
        buffers = ovec(Model.ModelStartBuffersVector, buf_offs)
        desc = b.CreateString("edgenas hardware test model")
        Model.ModelStart(b)
        Model.ModelAddVersion(b, 3)
        Model.ModelAddOperatorCodes(b, opcodes)
        Model.ModelAddSubgraphs(b, subgraphs)
        Model.ModelAddDescription(b, desc)
        Model.ModelAddBuffers(b, buffers)
        b.Finish(Model.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _options(b: flatbuffers.Builder, op: _Op) -> int:
        kind = op.opt[0]
        if kind == "conv":
            Conv2DOptions.Conv2DOptionsStart(b)
            Conv2DOptions.Conv2DOptionsAddPadding(b, Padding.SAME)
            Conv2DOptions.Conv2DOptionsAddStrideW(b, op.opt[1])
            Conv2DOptions.Conv2DOptionsAddStrideH(b, op.opt[1])
            Conv2DOptions.Conv2DOptionsAddFusedActivationFunction(b, ActivationFunctionType.RELU)
            Conv2DOptions.Conv2DOptionsAddDilationWFactor(b, 1)
            Conv2DOptions.Conv2DOptionsAddDilationHFactor(b, 1)
            return Conv2DOptions.Conv2DOptionsEnd(b)
        raise ValueError(kind)
