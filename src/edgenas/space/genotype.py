"""Genotype: one point of a search space, a frozen choice -> value map with a stable id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Genotype:
    """The searched choices of one architecture.

    `space_key` fingerprints everything else that shapes the network (template, fixed values, widths,
    input channels), so `arch_id` names the architecture, not just the choices; it does not take part in
    `str()`, which stays a readable block string.
    """

    items: tuple[tuple[str, Any], ...]
    space_key: str = ""

    @classmethod
    def of(cls, values: Mapping[str, Any], space_key: str = "") -> Genotype:
        return cls(tuple(values.items()), space_key)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.items)

    def __getitem__(self, key: str) -> Any:
        for k, v in self.items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def arch_id(self) -> str:
        canonical = json.dumps({"space": self.space_key, "choices": dict(sorted(self.items))}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.items)


def parse_genotype_text(text: str) -> dict[str, str]:
    """`backbone=resnet,head1_block=conv5x5` -> dict; values stay strings (the space coerces them)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"expected NAME=VALUE, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out
