"""Designs (one genotype of a sweep) and an index over a sweep's rows, shared by every analysis.

Choice values are compared as strings: a sweep read back from CSV has `"3"` where the in-memory sweep has
`3`, and a baseline from YAML may be either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: keeps `import edgenas.analysis` free of the compiler
    from edgenas.sweep.table import LayerTable, SweepTable



@dataclass(frozen=True)
class Design:
    """One genotype of the sweep: its arch id and choice values (as strings, in the sweep's choice order)."""

    arch_id: str
    choices: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, str]:
        return dict(self.choices)

    def value(self, choice: str) -> str:
        """The value of one choice (as a string)."""
        for k, v in self.choices:
            if k == choice:
                return v
        raise KeyError(choice)

    def differs_from(self, other: Design) -> tuple[str, ...]:
        """Choice names whose value differs from `other`'s."""
        o = other.as_dict()
        return tuple(k for k, v in self.choices if o.get(k) != v)


Row = Mapping[str, Any]


def pixels(resolution: str) -> int:
    """H*W of `HxW`: resolutions are ordered by it."""
    h, w = resolution.lower().split("x")
    return int(h) * int(w)


def num(row: Row | None, col: str) -> float | None:
    """A numeric cell as float; None when absent, empty or not a number."""
    if row is None:
        return None
    v = row.get(col)
    if v is None or isinstance(v, bool) or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def is_ok(row: Row | None) -> bool:
    """Compiled, with an FPS: a failed row carries no figures to compare."""
    return row is not None and row.get("status") == "ok" and num(row, "fps") is not None


def fits(row: Row | None) -> bool:
    """Compiled and within the device's SRAM and flash: the only designs a recommendation may name."""
    if row is None or not is_ok(row):
        return False
    return row.get("over_sram") is not True and row.get("over_flash") is not True


def offchip_cycles(row: Row) -> float:
    return (num(row, "offchip_flash_access_cycles") or 0.0) + (num(row, "dram_access_cycles") or 0.0)


def offchip_share_of(row: Row) -> float | None:
    """Off-chip (flash + DRAM) access cycles as a share of the network's cycles."""
    total = num(row, "cycles_total")
    if not total:
        return None
    return offchip_cycles(row) / total


def part_of(layer_name: str) -> str:
    """Network part of a layer: the first path component of its output tensor (`head2.block.dw` -> head2)."""
    return layer_name.split(":")[0].split(".")[0]


class SweepIndex:
    """Fast lookups over a SweepTable (and its LayerTable): rows by design x resolution x hardware."""

    def __init__(self, table: SweepTable, layers: LayerTable | None = None,
                 choice_order: Mapping[str, Sequence[Any]] | None = None) -> None:
        self.table = table
        self.choices: tuple[str, ...] = tuple(table.choices)
        self.resolutions: list[str] = table.resolutions
        self.hardware: list[str] = table.hardware
        self._designs: dict[tuple[str, ...], Design] = {}
        self._rows: dict[tuple[tuple[str, ...], str, str], Row] = {}
        for r in table.rows:
            key = tuple(str(r.get(c)) for c in self.choices)
            if key not in self._designs:
                self._designs[key] = Design(str(r.get("arch_id", "")), tuple(zip(self.choices, key)))
            self._rows.setdefault((key, r["resolution"], r["hardware"]), r)
        self.designs: list[Design] = list(self._designs.values())
        self.values: dict[str, list[str]] = {}
        for c in self.choices:
            seen = list(dict.fromkeys(d.value(c) for d in self.designs))
            if choice_order and c in choice_order:
                order = [str(v) for v in choice_order[c]]
                seen = [v for v in order if v in seen] + [v for v in seen if v not in order]
            self.values[c] = seen
        self._layers: dict[tuple[str, str, str], list[Row]] = {}
        if layers is not None:
            for lr in layers.rows:
                self._layers.setdefault((str(lr["arch_id"]), lr["resolution"], lr["hardware"]), []).append(lr)

    @property
    def has_layers(self) -> bool:
        return bool(self._layers)

    def key(self, design: Design) -> tuple[str, ...]:
        return tuple(v for _, v in design.choices)

    def row(self, design: Design, resolution: str, hardware: str) -> Row | None:
        return self._rows.get((self.key(design), resolution, hardware))

    def rows_of(self, design: Design, hardware: str) -> list[tuple[str, Row]]:
        """(resolution, row) in increasing resolution, for the resolutions the design was measured at."""
        out = []
        for res in self.resolutions:
            r = self.row(design, res, hardware)
            if r is not None:
                out.append((res, r))
        return out

    def layers(self, design: Design, resolution: str, hardware: str) -> list[Row]:
        row = self.row(design, resolution, hardware)
        arch = str(row.get("arch_id")) if row is not None else design.arch_id
        return self._layers.get((arch, resolution, hardware), [])

    def find(self, values: Mapping[str, Any]) -> Design | None:
        """The design with exactly these values (every choice given)."""
        return self._designs.get(tuple(str(values.get(c)) for c in self.choices))

    def with_value(self, design: Design, choice: str, value: str) -> Design | None:
        """`design` with one choice changed (None when the sweep did not measure that genotype)."""
        d = design.as_dict()
        d[choice] = value
        return self.find(d)

    def designs_with(self, choice: str, value: str) -> Iterable[Design]:
        return (d for d in self.designs if d.value(choice) == value)
