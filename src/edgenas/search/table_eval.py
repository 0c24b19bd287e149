"""A CSV of known metrics acting as an evaluator: arch key -> metrics, with a count of what was looked up.

Exhaustive tables (NAS-Bench-201 with measured latencies, `../shared/benchmarks/`) let search strategies
be judged against the true Pareto front; the number of distinct architectures looked up is the budget a
strategy spent. Duplicated keys: rows that repeat a key with the same metric values are kept once; a key
whose rows disagree is a ConfigError (a table that says two things about one architecture is no ground
truth).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.hardware.measurement import Measurement


class TableEvaluator:
    """`lookup(arch)` returns the row's metrics (or None for an arch not in the table) and counts it."""

    def __init__(self, path: str | Path, arch_col: str, metrics: Sequence[str],
                 key: Callable[[Any], str] | None = None) -> None:
        self.path = Path(path)
        self.arch_col = arch_col
        self.metrics = list(dict.fromkeys(metrics))
        self._key = key  # genotype -> arch key (e.g. edgenas.space.nb201.arch_string) for evaluate()
        src = str(self.path)
        if not self.metrics:
            raise ConfigError("no metric columns asked for", source=src)
        try:
            with self.path.open(newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is None:
                    raise ConfigError("empty file: no header row", source=src)
                header = [h.strip() for h in header]
                missing = [c for c in [arch_col, *self.metrics] if c not in header]
                if missing:
                    raise ConfigError(f"missing column(s) {', '.join(missing)}; the table has: "
                                      f"{', '.join(header)}", source=src)
                ia = header.index(arch_col)
                im = [header.index(m) for m in self.metrics]
                rows: dict[str, tuple[float, ...]] = {}
                first_line: dict[str, int] = {}
                for line, rec in enumerate(reader, start=2):
                    if not any(c.strip() for c in rec):
                        continue
                    if len(rec) != len(header):
                        raise ConfigError(f"line {line}: {len(rec)} fields, the header has {len(header)}",
                                          source=src)
                    arch = rec[ia].strip()
                    vals = tuple(self._number(rec[i], line, header[i]) for i in im)
                    if arch in rows:
                        if rows[arch] != vals:
                            raise ConfigError(f"line {line}: {arch_col} {arch!r} repeats line {first_line[arch]} "
                                              "with other values; a table must give one row per architecture",
                                              source=src)
                        continue
                    rows[arch] = vals
                    first_line[arch] = line
        except OSError as e:
            raise ConfigError(f"cannot read the table: {e.strerror or e}", source=src) from None
        except UnicodeDecodeError:
            raise ConfigError("not a UTF-8 text (CSV) file", source=src) from None
        except csv.Error as e:
            raise ConfigError(f"not a CSV file: {e}", source=src) from None
        if not rows:
            raise ConfigError("the table has a header but no rows", source=src)
        self._rows = rows
        self._seen: set[str] = set()

    def _number(self, text: str, line: int, col: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise ConfigError(f"line {line}: column {col} is {text!r}, not a number", source=str(self.path)) from None
        if math.isnan(v):
            raise ConfigError(f"line {line}: column {col} is NaN", source=str(self.path))
        return v

    # ---- the table ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, arch: object) -> bool:
        return arch in self._rows

    def archs(self) -> list[str]:
        """Every key, in file order."""
        return list(self._rows)

    def column(self, metric: str) -> dict[str, float]:
        """A whole column without spending budget: for metrics that are cheap (hardware cost) or for
        computing the ground truth."""
        i = self._metric_index(metric)
        return {a: v[i] for a, v in self._rows.items()}

    def peek(self, arch: str) -> dict[str, float] | None:
        """The row, without counting it (ground truth, tests)."""
        v = self._rows.get(arch)
        return None if v is None else dict(zip(self.metrics, v))

    def _metric_index(self, metric: str) -> int:
        try:
            return self.metrics.index(metric)
        except ValueError:
            raise ConfigError(f"metric {metric!r} was not loaded; loaded: {', '.join(self.metrics)}",
                              source=str(self.path)) from None

    # ---- the evaluator -----------------------------------------------------------------------------
    def lookup(self, arch: str) -> dict[str, float] | None:
        """The metrics of `arch`, or None when the table does not have it. A found arch counts once."""
        v = self._rows.get(arch)
        if v is None:
            return None
        self._seen.add(arch)
        return dict(zip(self.metrics, v))

    @property
    def lookups(self) -> int:
        """Distinct architectures looked up (and found): the budget spent."""
        return len(self._seen)

    def looked_up(self) -> set[str]:
        return set(self._seen)

    def reset(self) -> None:
        self._seen.clear()

    def evaluate(self, arch: Any) -> Measurement:
        """Evaluator interface: an arch key or a genotype (converted by `key`) -> Measurement; an
        architecture the table lacks is a failed Measurement, not an exception."""
        if isinstance(arch, str):
            key = arch
        elif self._key is not None:
            key = self._key(arch)
        else:
            raise ConfigError("this table evaluator was made without a genotype -> key function",
                              source=str(self.path))
        m = self.lookup(key)
        prov = {"evaluator": "table", "table": str(self.path), "arch": key}
        if m is None:
            return Measurement(status="failed", error=f"{key!r} is not in {self.path}", provenance=prov)
        return Measurement(status="ok", metrics=m, provenance=prov)


def check_columns(evaluator: TableEvaluator, names: Iterable[str], field: str) -> None:
    """A one-line error for a metric the evaluator did not load."""
    for n in names:
        if n not in evaluator.metrics:
            raise ConfigError(f"{n!r} is not a loaded metric; loaded: {', '.join(evaluator.metrics)}",
                              source=str(evaluator.path), field=field)


def rows_matrix(evaluator: TableEvaluator, metrics: Sequence[str]) -> tuple[list[str], list[tuple[float, ...]]]:
    """All keys and their values for `metrics`, in file order (ground truth for benchmarks)."""
    idx = [evaluator._metric_index(m) for m in metrics]
    keys = list(evaluator._rows)
    return keys, [tuple(evaluator._rows[k][i] for i in idx) for k in keys]


def as_mapping(evaluator: TableEvaluator) -> Mapping[str, dict[str, float]]:
    return {k: dict(zip(evaluator.metrics, v)) for k, v in evaluator._rows.items()}
