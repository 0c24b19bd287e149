"""`inspect_tflite` reads what a model holds and refuses files edgenas cannot measure, on one line."""

from __future__ import annotations

import numpy as np
import pytest
from ethosu.vela.tflite import BuiltinOperator, TensorType

from edgenas.errors import ConfigError, ModelFileError
from edgenas.graph.ir import Graph
from edgenas.tflite import graph_to_tflite, inspect_tflite
from edgenas.tflite._fb import Assembler, Quant

_OP = BuiltinOperator.BuiltinOperator
_T = TensorType.TensorType


def _relu_model(ttype: int, quant: Quant | None, out_type: int | None = None) -> bytes:
    asm = Assembler()
    x = asm.add_tensor("x", (1, 8, 8, 4), ttype, quant)
    y = asm.add_tensor("y", (1, 8, 8, 4), ttype if out_type is None else out_type, quant)
    asm.add_operator(_OP.RELU, [x], [y])
    return asm.finish([x], [y])


def test_reads_an_int8_model() -> None:
    g = Graph("t")
    x = g.add_input("input", (1, 16, 24, 16))
    y = g.add("conv2d", "c", [x], kernel=3, stride=2, out_channels=8, act="relu")
    g.mark_output(g.add("resize_bilinear", "up", [y], scale=2))
    info = inspect_tflite(graph_to_tflite(g, seed=0))
    assert info.version == 3
    assert info.op_codes == ("CONV_2D", "RESIZE_BILINEAR")
    assert info.op_count == 2
    (i,), (o,) = info.inputs, info.outputs
    assert (i.name, i.dtype, i.shape) == ("input", "INT8", (1, 16, 24, 16))
    assert (o.name, o.dtype, o.shape) == ("up", "INT8", (1, 16, 24, 8))
    assert o.scale is not None and o.zero_point == -128
    assert "trained_like_v1" in info.description


def test_int16_quantised_model_is_accepted() -> None:
    info = inspect_tflite(_relu_model(_T.INT16, Quant((0.001,), (0,))))
    assert info.inputs[0].dtype == "INT16"


@pytest.mark.parametrize("data", [b"", b"hello", b"\x00" * 64, b"PK\x03\x04 not a model at all"])
def test_not_a_tflite_file(data: bytes) -> None:
    with pytest.raises(ModelFileError, match="not a TFLite flatbuffer") as e:
        inspect_tflite(data, source="model.bin")
    assert isinstance(e.value, ConfigError)
    assert "\n" not in str(e.value) and str(e.value).startswith("model.bin: ")


def test_truncated_file() -> None:
    data = _relu_model(_T.INT8, Quant((0.05,), (0,)))
    with pytest.raises(ModelFileError):
        inspect_tflite(data[:40])


def test_garbage_after_the_identifier() -> None:
    data = bytearray(_relu_model(_T.INT8, Quant((0.05,), (0,))))
    rng = np.random.default_rng(0)
    data[8:] = rng.integers(0, 256, len(data) - 8, dtype="uint8").tobytes()
    with pytest.raises(ModelFileError) as e:
        inspect_tflite(bytes(data))
    assert "\n" not in str(e.value)


def test_float_model_is_refused() -> None:
    with pytest.raises(ModelFileError, match="input tensor 'x' is FLOAT32.*int8/int16") as e:
        inspect_tflite(_relu_model(_T.FLOAT32, None))
    assert "\n" not in str(e.value)


def test_float_activation_inside_is_refused() -> None:
    """int8 at the edges but a float tensor produced inside (e.g. a dequantised branch)."""
    asm = Assembler()
    q = Quant((0.05,), (0,))
    x = asm.add_tensor("x", (1, 4), _T.INT8, q)
    f = asm.add_tensor("x_float", (1, 4), _T.FLOAT32)
    y = asm.add_tensor("y", (1, 4), _T.INT8, q)
    asm.add_operator(_OP.DEQUANTIZE, [x], [f])
    asm.add_operator(_OP.QUANTIZE, [f], [y])
    with pytest.raises(ModelFileError, match="DEQUANTIZE output tensor 'x_float' is FLOAT32"):
        inspect_tflite(asm.finish([x], [y]))


def test_int8_without_quantisation_is_refused() -> None:
    with pytest.raises(ModelFileError, match="without quantisation parameters"):
        inspect_tflite(_relu_model(_T.INT8, None))
