"""Which designs of a search front are the recommended ones (`report.recommended`: per choice, the values a
study or a seed recommended, e.g. the seed's heads conv3x3 / dsconv3x3 / conv5x5), so a front table can mark
them and say where the recommended designs stand against what the search found. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_recommended(genotype: Mapping[str, Any], recommended: Mapping[str, Sequence[str]]) -> bool:
    """Every choice `recommended` names has one of its recommended values (choices it does not name are free).
    False when nothing is recommended."""
    if not recommended:
        return False
    return all(str(genotype.get(k)) in {str(v) for v in vs} for k, vs in recommended.items())


def recommended_from_config(config: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """`report.recommended` of a config mapping, as {choice: values}; empty when there is none."""
    report = (config or {}).get("report") or {}
    rec = report.get("recommended") if isinstance(report, Mapping) else None
    if not isinstance(rec, Mapping):
        return {}
    out = {}
    for k, v in rec.items():
        vs = v if isinstance(v, (list, tuple)) else [v]
        out[str(k)] = tuple(str(x) for x in vs)
    return out


def dominated_by(rows: Sequence[Any], front: Sequence[Any], directions: Sequence[str]) -> list[tuple[Any, Any]]:
    """(row, the first front row that dominates it, or None) for every feasible row (rows and front rows have
    `.values` and `.feasible`): where a recommended design stands against the designs the search found."""
    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        at_least = all((x >= y) if d == "max" else (x <= y) for x, y, d in zip(a, b, directions))
        return at_least and any(x != y for x, y in zip(a, b))

    return [(r, next((f for f in front if dominates(f.values, r.values)), None)) for r in rows if r.feasible]
