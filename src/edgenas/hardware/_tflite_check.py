"""A structural check of TFLite bytes before they reach the compiler.

The compiler's C++ core segfaults (killing the whole Python process) on truncated or garbage
flatbuffers instead of raising, so the tables and vectors it reads (op codes, buffers, tensors,
operators, subgraph inputs/outputs) are walked here first in Python, where a bad offset or index is an
exception we turn into a failed Measurement. It is not a full verifier: a model that passes can still
crash the core (e.g. an op code whose options table does not match); `evaluate_isolated` covers that.
"""

from __future__ import annotations

import struct

import numpy as np
from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
from ethosu.vela.tflite.Model import Model

_MAGIC = b"TFL3"
_MAX_BUILTIN = max(v for k, v in vars(BuiltinOperator).items() if not k.startswith("_"))


def _vector_in_bounds(tab: object, slot: int, elem_size: int, size: int) -> None:
    o = tab.Offset(slot)  # type: ignore[attr-defined]
    if o:
        start = tab.Vector(o)  # type: ignore[attr-defined]
        n = tab.VectorLen(o)  # type: ignore[attr-defined]
        if start < 0 or start + n * elem_size > size:
            raise ValueError(f"vector at {start} with {n} elements runs past the end of the {size}-byte file")


def _indices_in_range(values: object, low: int, n: int, what: str) -> None:
    """Tensor indices (a numpy view, or 0 when the vector is absent) must lie in [low, n)."""
    if isinstance(values, np.ndarray) and values.size and (values.min() < low or values.max() >= n):
        raise ValueError(f"{what} refers to a tensor outside 0..{n - 1}")


def check_identifier(data: bytes) -> str | None:
    """The cheap part: is it a TFLite flatbuffer at all?"""
    if len(data) < 8 or data[4:8] != _MAGIC:
        return "not a TFLite flatbuffer (no 'TFL3' file identifier)"
    return None


def check_tflite(data: bytes) -> str | None:
    """None if `data` is a well-formed TFLite flatbuffer as far as the compiler will read it, else why not."""
    if (problem := check_identifier(data)) is not None:
        return problem
    size = len(data)
    try:
        model = Model.GetRootAs(data, 0)
        n_codes = model.OperatorCodesLength()
        for i in range(n_codes):
            code = model.OperatorCodes(i)
            code.CustomCode(), code.Version()
            if not 0 <= max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) <= _MAX_BUILTIN:
                raise ValueError(f"operator code {i} is not a TFLite builtin operator this compiler knows")
        n_buffers = model.BuffersLength()
        for i in range(n_buffers):
            buf = model.Buffers(i)
            _vector_in_bounds(buf._tab, 4, 1, size)
            if buf.Offset() > 1 and buf.Offset() + buf.Size() > size:
                raise ValueError(f"buffer {i} points outside the file")
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            n_t = sg.TensorsLength()
            for i in range(n_t):
                t = sg.Tensors(i)
                _vector_in_bounds(t._tab, 4, 4, size)  # shape
                t.Type(), t.Name()
                if not 0 <= t.Buffer() < max(n_buffers, 1):
                    raise ValueError(f"tensor {i} refers to buffer {t.Buffer()} of {n_buffers}")
                q = t.Quantization()
                if q is not None:
                    _vector_in_bounds(q._tab, 6, 4, size)  # scale
                    _vector_in_bounds(q._tab, 8, 8, size)  # zero_point
            for i in range(sg.OperatorsLength()):
                op = sg.Operators(i)
                if not 0 <= op.OpcodeIndex() < n_codes:
                    raise ValueError(f"operator {i} has opcode index {op.OpcodeIndex()} of {n_codes}")
                _vector_in_bounds(op._tab, 6, 4, size)
                _vector_in_bounds(op._tab, 8, 4, size)
                _indices_in_range(op.InputsAsNumpy(), -1, n_t, f"operator {i} input")
                _indices_in_range(op.OutputsAsNumpy(), 0, n_t, f"operator {i} output")
                op.BuiltinOptionsType()
                if op.BuiltinOptions() is not None:
                    op.BuiltinOptions().Pos  # noqa: B018 - resolves the union offset
            _indices_in_range(sg.InputsAsNumpy(), 0, n_t, "subgraph input")
            _indices_in_range(sg.OutputsAsNumpy(), 0, n_t, "subgraph output")
    except (struct.error, IndexError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:
        return f"malformed TFLite flatbuffer: {e}"
    return None
