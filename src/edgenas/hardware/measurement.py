"""Measurement: what one evaluation of one model on one hardware profile produced.

A failure is a value too (status="failed" with the message), so a sweep never stops on one bad
candidate; `retryable` marks failures that say nothing about the model (a timeout, a killed worker)
and must therefore not be cached.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NamedTuple

Status = Literal["ok", "failed"]
SCHEMA_VERSION = 1

# Names of the figures a Vela measurement carries (an analytic one carries a subset plus its own).
METRICS: tuple[str, ...] = (
    "fps",  # core clock / cycles_total
    "inference_ms",
    "cycles_total",  # NPU + CPU-boundary cycles, sum of per-layer op cycles
    "cycles_npu",
    "cycles_sram_access",
    "cycles_dram_access",
    "cycles_onchip_flash_access",
    "cycles_offchip_flash_access",
    "sram_kib",  # peak usage per memory, KiB
    "dram_kib",
    "onchip_flash_kib",
    "offchip_flash_kib",
    "sram_total_bytes",  # bytes moved per inference per memory (reads + writes, all purposes)
    "dram_total_bytes",
    "onchip_flash_total_bytes",
    "offchip_flash_total_bytes",
    "npu_ops",
    "cpu_ops",
    "cascades",
    "cascaded_ops",
    "encoded_weight_bytes",
    "original_weight_bytes",
    "macs",  # the compiler's MAC count
)


class LayerRow(NamedTuple):
    """One row of the compiler's per-layer table (`vela --verbose-performance`). A named tuple, not a
    dataclass: a cached sweep decodes tens of thousands of them, and a tuple is built several times faster."""

    original_op: str
    nng_op: str
    target: str  # "NPU" or "CPU"
    name: str  # output tensor name
    cycles: int
    npu_cycles: int
    sram_ac: int
    dram_ac: int
    onflash_ac: int
    offflash_ac: int
    macs: int
    util_pct: float
    staging_usage: int


@dataclass(frozen=True)
class Measurement:
    """Named metrics (see METRICS), per-layer rows and provenance (compiler version, profile, evaluator)."""

    status: Status
    error: str = ""
    metrics: Mapping[str, float | int] = field(default_factory=dict)
    layers: tuple[LayerRow, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    retryable: bool = False  # a failure that is not a property of the model (timeout, crash): never cached
    log: str = ""  # what the compiler printed (warnings, CPU fallback reasons)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(
        cls, error: str, *, retryable: bool = False, provenance: Mapping[str, Any] | None = None, log: str = ""
    ) -> Measurement:
        return cls(status="failed", error=error, provenance=dict(provenance or {}), retryable=retryable, log=log)

    def get(self, name: str, default: float = math.nan) -> float:
        """A metric, or `default` (NaN) when absent, e.g. on a failed measurement."""
        return self.metrics.get(name, default)

    def to_json(self) -> str:
        d = {f: getattr(self, f) for f in _FIELDS}
        d["layers"] = [list(r) for r in self.layers]  # rows as arrays: 3x smaller
        d["schema"] = SCHEMA_VERSION
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        d = json.loads(text)
        if d.pop("schema", None) != SCHEMA_VERSION:
            raise ValueError("measurement schema version differs")
        d["layers"] = tuple(map(LayerRow._make, d["layers"]))
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})


_FIELDS = tuple(f.name for f in fields(Measurement))
_LAYER_FIELDS = LayerRow._fields
