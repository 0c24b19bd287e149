"""The non-dominated rows of any CSV, as CSV (what `edgenas pareto FILE.csv --max COL --min COL` prints).

Kept apart from `pareto.py` because it does I/O. Rows are printed unchanged (all columns, the file's own
text and order) so the output can be diffed against the input or fed to any other tool.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from edgenas.errors import ConfigError
from edgenas.search.pareto import nondominated_mask


def _objectives(maximize: Sequence[str], minimize: Sequence[str]) -> list[tuple[str, str, str]]:
    """(column, direction, option) per objective; each column once."""
    objectives = [(c, "max", "--max") for c in maximize] + [(c, "min", "--min") for c in minimize]
    if not objectives:
        raise ConfigError("give at least one objective: --max COL or --min COL")
    seen: set[str] = set()
    for column, _, option in objectives:
        if column in seen:
            raise ConfigError(f"column {column!r} given twice", field=option)
        seen.add(column)
    return objectives


def _number(text: str) -> float | None:
    """A finite float, or None for an empty or non-numeric cell (the row is then skipped)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    source = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
    except FileNotFoundError:
        raise ConfigError("no such file", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a CSV file", source=source) from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"cannot read as CSV: {' '.join(str(e).split())}", source=source) from None
    if not records or not records[0]:
        raise ConfigError("empty file: no header row", source=source)
    return records[0], [r for r in records[1:] if r]  # csv.reader gives [] for blank lines


def pareto_rows(
    csv_path: str | Path,
    maximize: Sequence[str],
    minimize: Sequence[str],
    *,
    stderr: TextIO | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and the non-dominated rows of a CSV, in file order, all columns.

    Equal points are all kept. Rows with an empty or non-numeric value in an objective column cannot be
    ranked: they are left out and counted once on `stderr` (default sys.stderr).
    """
    objectives = _objectives(maximize, minimize)
    path = Path(csv_path)
    header, records = _read_csv(path)
    indices = []
    for column, _, option in objectives:
        hits = [i for i, name in enumerate(header) if name == column]
        if not hits:
            raise ConfigError(f"no column {column!r}; the columns are: {', '.join(header)}",
                              source=str(path), field=option)
        if len(hits) > 1:
            raise ConfigError(f"column {column!r} appears {len(hits)} times in the header", source=str(path),
                              field=option)
        indices.append(hits[0])

    kept: list[list[str]] = []
    values: list[list[float]] = []
    for record in records:
        row = [_number(record[i]) if i < len(record) else None for i in indices]
        if any(v is None for v in row):
            continue
        kept.append(record)
        values.append(row)  # type: ignore[arg-type]  # no None left
    skipped = len(records) - len(kept)
    if skipped:
        names = ", ".join(c for c, _, _ in objectives)
        print(f"edgenas: note: skipped {skipped} of {len(records)} rows with an empty or non-numeric value in "
              f"{names}", file=stderr or sys.stderr)
    if not kept:
        return header, []
    points = np.array(values, dtype=float)
    mask = nondominated_mask(points, [d for _, d, _ in objectives], keep_duplicates=True)
    return header, [r for r, keep in zip(kept, mask) if keep]


def write_pareto_csv(header: Sequence[str], rows: Sequence[Sequence[str]], stream: TextIO) -> None:
    """Write the header and rows as CSV (quoted only where needed, "\\n" line ends)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
