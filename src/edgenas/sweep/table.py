"""Reading sweep CSVs back: typed rows, the choice columns, and one-line errors for files that are not sweeps."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.sweep.driver import LAYER_COLUMNS
from edgenas.sweep.rows import IR_COLUMNS, METRIC_COLUMNS, TAIL_COLUMNS, VERDICT_COLUMNS

# Columns an analysis cannot do without; the rest are read when present.
REQUIRED_COLUMNS = ("resolution", "hardware", "fps", "sram_kib", "status", "arch_id", "over_sram", "cpu_ops",
                    "cycles_total")
KNOWN_COLUMNS = ("resolution", "hardware", *METRIC_COLUMNS, *IR_COLUMNS, *VERDICT_COLUMNS, *TAIL_COLUMNS)
_TEXT = {"resolution", "hardware", "status", "error", "arch_id", "evaluator", "compiler", "weights"}
_BOOL = {"over_sram", "over_flash", "fps_complete"}
_LAYER_TEXT = {"arch_id", "resolution", "hardware", "original_op", "nng_op", "target", "name"}


@dataclass(frozen=True)
class SweepTable:
    """Rows of a sweep (values typed: floats, ints, bools, None for empty) and which columns are choices."""

    rows: tuple[Mapping[str, Any], ...]
    choices: tuple[str, ...]
    source: str = ""

    @property
    def resolutions(self) -> list[str]:
        """In increasing pixel count."""
        return sorted({r["resolution"] for r in self.rows}, key=_pixels)

    @property
    def hardware(self) -> list[str]:
        return list(dict.fromkeys(r["hardware"] for r in self.rows))

    def genotype(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {c: row[c] for c in self.choices}


@dataclass(frozen=True)
class LayerTable:
    """Per-layer rows of a sweep (`edgenas sweep --layers`), keyed like the sweep rows."""

    rows: tuple[Mapping[str, Any], ...]

    def of(self, arch_id: str, resolution: str, hardware: str) -> list[Mapping[str, Any]]:
        return [r for r in self.rows if r["arch_id"] == arch_id and r["resolution"] == resolution
                and r["hardware"] == hardware]


def _pixels(res: str) -> int:
    h, w = res.lower().split("x")
    return int(h) * int(w)


def _value(col: str, text: str) -> Any:
    if text == "":
        return None
    if col in _BOOL:
        return text.lower() == "true"
    if col in _TEXT:
        return text
    try:
        f = float(text)
    except ValueError:
        return text  # a choice value such as "conv3x3"
    return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except OSError as e:
        raise ConfigError(f"cannot read file ({e.strerror})", source=str(path)) from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"not a CSV file ({e})", source=str(path)) from None


def _require(header: list[str], columns: Iterable[str], what: str, option: str, p: Path) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConfigError(f"not a {what} CSV: missing column(s) {', '.join(missing)} (write one with "
                          f"`edgenas sweep ... {option} FILE`)", source=str(p))


def load_sweep_csv(path: str | Path) -> SweepTable:
    p = Path(path)
    header, raw = _read(p)
    _require(header, REQUIRED_COLUMNS, "sweep", "--out", p)
    if not raw:
        raise ConfigError("the sweep has no rows", source=str(p))
    choices = tuple(header[: header.index("resolution")])
    for i, r in enumerate(raw):
        for col in ("resolution", "hardware", "arch_id"):
            if not r.get(col):
                raise ConfigError(f"row {i + 2}: empty {col}", source=str(p), field=col)
        try:
            _pixels(r["resolution"])
        except ValueError:
            raise ConfigError(f"row {i + 2}: resolution {r['resolution']!r} is not HxW", source=str(p),
                              field="resolution") from None
    rows = tuple({k: (v if k in choices else _value(k, v)) for k, v in r.items()} for r in raw)
    return SweepTable(rows, choices, str(p))


def load_layers_csv(path: str | Path) -> LayerTable:
    p = Path(path)
    header, raw = _read(p)
    _require(header, LAYER_COLUMNS, "per-layer", "--layers", p)
    return LayerTable(tuple({k: (v if k in _LAYER_TEXT else _value(k, v)) for k, v in r.items()} for r in raw))


def rows_as_table(rows: Iterable[Mapping[str, Any]], choices: Iterable[str]) -> SweepTable:
    """Typed rows built in memory (tests, `edgenas study`), checked like a file."""
    rows = tuple(rows)
    if not rows:
        raise ConfigError("the sweep has no rows")
    return SweepTable(rows, tuple(choices))
