"""Low-level TFLite flatbuffer assembly: buffers, tensors, operators -> bytes.

Kept apart from the IR mapping so the writer stays a table of op rules, and so tests can write odd models
(a float model for the reader) through the same code path.

Speed: the generated per-field builder API costs about 20 us per table (a flow network has ~250 tables),
so tables are packed here in one `struct.pack_into` each, into the same `flatbuffers.Builder` that writes
strings, vectors and the file header. Field slots, types and defaults are not hand-copied: they are read
from the generated schema setters (`Conv2DOptionsAddStrideW` etc.) by calling them on a recorder, so the
layout is the one the schema modules would write. Constant data goes in with one memcpy per buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import flatbuffers
import numpy as np
from ethosu.vela.tflite import Buffer, Model, Operator, OperatorCode, QuantizationParameters, SubGraph, Tensor

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
_BUFFER_ALIGNMENT = 16  # what the TFLite converter uses, so int32 bias reads are aligned

# flatbuffers scalar kind (from the generated `Prepend<Kind>Slot` call) -> struct code, size
_KINDS: dict[str, tuple[str, int]] = {
    "Bool": ("?", 1), "Uint8": ("B", 1), "Int8": ("b", 1), "Uint16": ("H", 2), "Int16": ("h", 2),
    "Uint32": ("I", 4), "Int32": ("i", 4), "Float32": ("f", 4), "Uint64": ("Q", 8), "Int64": ("q", 8),
    "Float64": ("d", 8), "UOffsetTRelative": ("I", 4),
}  # fmt: skip


class _Recorder:
    """Stands in for a Builder so a generated setter reveals its (kind, slot, default)."""

    def __getattr__(self, name: str) -> Any:
        def record(slot: int, value: Any, default: Any) -> None:
            self.seen = (name[len("Prepend") : -len("Slot")], slot, default)

        return record


@cache
def _field(module: ModuleType, table: str, field: str) -> tuple[str, int, Any]:
    rec = _Recorder()
    getattr(module, f"{table}Add{field}")(rec, 0)
    return rec.seen


@cache
def _specs(module: ModuleType, table: str, keys: tuple[str, ...]) -> tuple[tuple[bool, Any], ...]:
    """(is offset, default) per field, to decide which fields are written."""
    return tuple((_field(module, table, k)[0] == "UOffsetTRelative", _field(module, table, k)[2]) for k in keys)


@dataclass(frozen=True)
class _Layout:
    """How one table shape is packed: body struct (soffset first), size, alignment, vtable bytes, and per
    written field (index into the call's values, position in the table, is an offset)."""

    body: struct.Struct
    size: int
    align: int
    vtable: bytes
    fields: tuple[tuple[int, int, bool], ...]


@cache
def _layout(module: ModuleType, table: str, keys: tuple[str, ...], present: tuple[bool, ...]) -> _Layout:
    """Fields largest first (no padding between them in practice), each aligned to its size."""
    items = []
    for i, (key, keep) in enumerate(zip(keys, present)):
        if keep:
            kind, slot, _ = _field(module, table, key)
            code, size = _KINDS[kind]
            items.append((size, slot, code, i, kind == "UOffsetTRelative"))
    items.sort(key=lambda it: (-it[0], it[1]))
    align = max([4] + [it[0] for it in items])
    fmt, pos, fields = "<i", 4, []
    nslots = 1 + max((it[1] for it in items), default=-1)
    voffsets = [0] * nslots
    for size, slot, code, i, is_off in items:
        pad = (-pos) % size
        fmt += "x" * pad + code
        pos += pad
        voffsets[slot] = pos
        fields.append((i, pos, is_off))
        pos += size
    tsize = pos + (-pos) % align
    fmt += "x" * (tsize - pos)
    vtable = struct.pack(f"<{2 + nslots}H", 4 + 2 * nslots, tsize, *voffsets)
    return _Layout(struct.Struct(fmt), tsize, align, vtable, tuple(fields))


@dataclass(frozen=True)
class Quant:
    """Quantisation of one tensor: one scale/zero point (per tensor) or one per slice of `axis`."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0


class Assembler:
    """Collects one subgraph's tensors and operators and serialises a schema-3 TFLite model."""

    def __init__(self, size_hint: int = 1024, description: str = "") -> None:
        self.b = flatbuffers.Builder(max(1024, size_hint))
        self._vtables: dict[bytes, int] = {}
        self._buffers: list[int] = []
        self._tensors: list[int] = []
        self._operators: list[int] = []
        self._opcodes: dict[tuple[int, int], int] = {}
        self._quant_cache: dict[Quant, int] = {}
        self._shape_cache: dict[tuple[int, ...], int] = {}
        self._description = self.string(description) if description else 0
        # Buffer 0 is the conventional empty buffer that every activation tensor points at.
        self._buffers.append(self.table(Buffer, "Buffer"))

    # ---- flatbuffer primitives -------------------------------------------------------------------
    def table(self, module: ModuleType, name: str, **fields: Any) -> int:
        """Write table `name` (e.g. "Conv2DOptions") of generated schema module `module`; fields by their
        generated setter names (StrideW=1); offsets (strings, vectors, tables) as builder offsets.
        Values equal to the schema default are left out, as the generated builder does."""
        specs = _specs(module, name, tuple(fields))
        values = tuple(fields.values())
        present = tuple(is_off or v != d for (is_off, d), v in zip(specs, values))
        lay = _layout(module, name, tuple(fields), present)
        b = self.b
        b.Prep(lay.align, lay.size)
        table_off = b.Offset() + lay.size  # distance of the table start from the buffer end
        vt_off = self._vtables.get(lay.vtable)
        if vt_off is None:  # written right below the table (table start is 4-aligned, vtable even-sized)
            vt_off = table_off + len(lay.vtable)
        args = [vt_off - table_off]  # soffset: table position minus vtable position
        for i, pos, is_off in lay.fields:
            args.append(table_off - pos - values[i] if is_off else values[i])
        b.head -= lay.size
        lay.body.pack_into(b.Bytes, b.head, *args)
        if lay.vtable not in self._vtables:
            b.Prep(2, len(lay.vtable))
            b.head -= len(lay.vtable)
            b.Bytes[b.head : b.head + len(lay.vtable)] = lay.vtable
            assert b.Offset() == vt_off
            self._vtables[lay.vtable] = vt_off
        return table_off

    def _raw_vector(self, raw: bytes, count: int, alignment: int) -> int:
        """A vector of `count` elements from little-endian bytes (what StartVector/EndVector write)."""
        b = self.b
        b.Prep(4, len(raw))
        if alignment > 4:
            b.Prep(alignment, len(raw))
        b.head -= len(raw)
        b.Bytes[b.head : b.head + len(raw)] = raw
        b.head -= 4
        struct.pack_into("<I", b.Bytes, b.head, count)
        return b.Offset()

    def string(self, text: str) -> int:
        raw = text.encode()
        return self._raw_vector(raw + b"\0", len(raw), 4)

    def int32_vector(self, values: Sequence[int]) -> int:
        return self._raw_vector(struct.pack(f"<{len(values)}i", *values), len(values), 4)

    def offset_vector(self, offsets: Sequence[int]) -> int:
        """Vector of table offsets, packed at once (element i sits 4*(n-i) bytes above the data start)."""
        b, n = self.b, len(offsets)
        b.Prep(4, 4 * n)
        base = b.Offset()
        rel = [base + 4 * (n - i) - off for i, off in enumerate(offsets)]
        return self._raw_vector(struct.pack(f"<{n}I", *rel), n, 4)

    # ---- model pieces ----------------------------------------------------------------------------
    def add_buffer(self, data: np.ndarray) -> int:
        """Constant data (any dtype, little endian) as a 16-byte-aligned byte vector; returns its index."""
        raw = np.ascontiguousarray(data).tobytes()
        vec = self._raw_vector(raw, len(raw), _BUFFER_ALIGNMENT)
        self._buffers.append(self.table(Buffer, "Buffer", Data=vec))
        return len(self._buffers) - 1

    def _quant(self, q: Quant) -> int:
        off = self._quant_cache.get(q)
        if off is None:
            n = len(q.scales)
            scales = self._raw_vector(struct.pack(f"<{n}f", *q.scales), n, 4)
            zps = self._raw_vector(struct.pack(f"<{n}q", *q.zero_points), n, 8)
            off = self.table(
                QuantizationParameters, "QuantizationParameters", Scale=scales, ZeroPoint=zps, QuantizedDimension=q.axis
            )
            if len(q.scales) == 1:  # per-channel tables are never shared; do not keep them
                self._quant_cache[q] = off
        return off

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        ttype: int,
        quant: Quant | None = None,
        data: np.ndarray | None = None,
    ) -> int:
        """A tensor (constant when `data` is given); returns its index in the subgraph."""
        buf = 0 if data is None else self.add_buffer(data)
        name_off = self.string(name)
        key = tuple(shape)
        shape_off = self._shape_cache.get(key)
        if shape_off is None:
            shape_off = self._shape_cache[key] = self.int32_vector(key)
        fields: dict[str, Any] = {"Shape": shape_off, "Type": ttype, "Buffer": buf, "Name": name_off}
        if quant is not None:
            fields["Quantization"] = self._quant(quant)
        self._tensors.append(self.table(Tensor, "Tensor", **fields))
        return len(self._tensors) - 1

    def add_operator(
        self,
        builtin: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options: tuple[int, ModuleType, str, dict[str, Any]] | None = None,
        version: int = 1,
    ) -> None:
        """An operator; `options` is (BuiltinOptions type, schema module, table name, fields)."""
        fields: dict[str, Any] = {
            "OpcodeIndex": self._opcodes.setdefault((builtin, version), len(self._opcodes)),
            "Inputs": self.int32_vector(inputs),
            "Outputs": self.int32_vector(outputs),
        }
        if options is not None:
            opt_type, module, table, opt_fields = options
            fields["BuiltinOptionsType"] = opt_type
            fields["BuiltinOptions"] = self.table(module, table, **opt_fields)
        self._operators.append(self.table(Operator, "Operator", **fields))

    def finish(self, inputs: Sequence[int], outputs: Sequence[int], name: str = "main") -> bytes:
        codes = [
            self.table(
                OperatorCode,
                "OperatorCode",
                DeprecatedBuiltinCode=min(builtin, 127),
                BuiltinCode=builtin,
                Version=version,
            )
            for builtin, version in self._opcodes
        ]
        subgraph = self.table(
            SubGraph,
            "SubGraph",
            Tensors=self.offset_vector(self._tensors),
            Inputs=self.int32_vector(inputs),
            Outputs=self.int32_vector(outputs),
            Operators=self.offset_vector(self._operators),
            Name=self.string(name),
        )
        model_fields: dict[str, Any] = {
            "Version": SCHEMA_VERSION,
            "OperatorCodes": self.offset_vector(codes),
            "Subgraphs": self.offset_vector([subgraph]),
            "Buffers": self.offset_vector(self._buffers),
        }
        if self._description:
            model_fields["Description"] = self._description
        self.b.Finish(self.table(Model, "Model", **model_fields), file_identifier=FILE_IDENTIFIER)
        return bytes(self.b.Output())
