"""Read back what a TFLite file contains, and refuse files edgenas cannot measure.

Why refuse: the NPU compiler runs float operators on the CPU (or not at all), so a float model would be
"measured" as something nobody deploys. A user's `edgenas measure MODEL.tflite` must fail on one clear
line instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ethosu.vela.tflite import BuiltinOperator, Model, TensorType

from edgenas.errors import ModelFileError
from edgenas.tflite._fb import FILE_IDENTIFIER

_OP_NAMES = {v: k for k, v in vars(BuiltinOperator.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(TensorType.TensorType).items() if not k.startswith("_")}
_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})
_QUANTISED_TYPES = frozenset({"INT8", "INT16"})


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # TFLite type name: INT8, INT16, FLOAT32, ...
    shape: tuple[int, ...]
    scale: float | None  # first scale, None when not quantised
    zero_point: int | None


@dataclass(frozen=True)
class TfliteInfo:
    version: int
    op_codes: tuple[str, ...]  # builtin operator names used, in opcode-table order
    op_count: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    description: str


def _tensor_info(t: Any) -> TensorInfo:
    """From a generated `Tensor` accessor."""
    q = t.Quantization()
    scale = zp = None
    if q is not None and q.ScaleLength() > 0:
        scale = float(q.Scale(0))
        zp = int(q.ZeroPoint(0)) if q.ZeroPointLength() > 0 else 0
    name = t.Name()
    return TensorInfo(
        name.decode("utf-8", "replace") if name else "",
        _TYPE_NAMES.get(t.Type(), f"TYPE_{t.Type()}"),
        tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
        scale,
        zp,
    )


def _op_name(code: Any) -> str:
    """From a generated `OperatorCode` accessor; builtin codes >= 127 live in the newer field."""
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == BuiltinOperator.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def inspect_tflite(data: bytes, *, source: str = "model") -> TfliteInfo:
    """Op codes and input/output tensors of a TFLite model, checked to be integer-quantised.

    Raises ModelFileError when `data` is not a TFLite flatbuffer or when an input, output or operator
    output tensor is float or an int8/int16 tensor lacks quantisation parameters.
    """
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = bytes(data[4:8]) if len(data) >= 8 else b""
        raise ModelFileError(
            f"not a TFLite flatbuffer (file identifier {found!r}, expected {FILE_IDENTIFIER!r})", source=source
        )
    try:
        model = Model.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ModelFileError("TFLite model has no subgraph", source=source)
        sg = model.Subgraphs(0)
        limit = len(data) // 4  # every element takes at least 4 bytes: larger counts are garbage
        if max(sg.TensorsLength(), sg.OperatorsLength(), model.OperatorCodesLength()) > limit:
            raise ValueError("element count larger than the file")
        tensors = [sg.Tensors(i) for i in range(sg.TensorsLength())]
        ops = [sg.Operators(i) for i in range(sg.OperatorsLength())]
        codes = tuple(_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength()))
        ins = tuple(_tensor_info(tensors[i]) for i in sg.InputsAsNumpy()) if sg.InputsLength() else ()
        outs = tuple(_tensor_info(tensors[i]) for i in sg.OutputsAsNumpy()) if sg.OutputsLength() else ()
        activations = [
            (codes[op.OpcodeIndex()], _tensor_info(tensors[i]))
            for op in ops
            for i in (op.OutputsAsNumpy() if op.OutputsLength() else ())
            if i >= 0
        ]
        version = int(model.Version())
        desc = model.Description()
    except ModelFileError:
        raise
    except Exception as e:  # a corrupt flatbuffer surfaces as IndexError/struct.error/...
        why = " ".join(str(e).split())
        raise ModelFileError(f"corrupt TFLite flatbuffer ({type(e).__name__}: {why})", source=source) from None
    checks = [("input", t) for t in ins] + [("output", t) for t in outs] + [(f"{c} output", t) for c, t in activations]
    for role, t in checks:
        if t.dtype in _FLOAT_TYPES:
            raise ModelFileError(
                f"{role} tensor {t.name!r} is {t.dtype}; edgenas measures int8/int16-quantised models only "
                "(export with full-integer quantisation)",
                source=source,
            )
        if t.dtype in _QUANTISED_TYPES and t.scale is None:
            raise ModelFileError(
                f"{role} tensor {t.name!r} is {t.dtype} without quantisation parameters", source=source
            )
    return TfliteInfo(version, codes, len(ops), ins, outs, desc.decode("utf-8", "replace") if desc else "")
