"""With several hardware profiles in one sweep (e.g. the same NPU with 1, 2 and 4 MiB of SRAM): the
smallest SRAM each design runs on, at each resolution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgenas.analysis.designs import Design, SweepIndex, fits, num

if TYPE_CHECKING:  # types only: keeps `import edgenas.analysis` free of the compiler
    from edgenas.hardware.profile import HardwareProfile


@dataclass(frozen=True)
class ProfileSram:
    """A profile of the sweep and its SRAM. `inferred`: the profile was not given, so `sram_kib` is the
    most SRAM any fitting row used on it (a lower bound of its size), which orders the profiles."""

    name: str
    sram_kib: float | None
    inferred: bool


@dataclass(frozen=True)
class MinSramEntry:
    """The smallest-SRAM profile `design` fits at `resolution` (hardware None: fits none of them)."""

    design: Design
    resolution: str
    hardware: str | None
    profile_sram_kib: float | None
    sram_used_kib: float | None  # what the design used on that profile
    fps: float | None  # on that profile
    fitting_profiles: int


@dataclass(frozen=True)
class MinSram:
    profiles: tuple[ProfileSram, ...]  # smallest SRAM first
    entries: tuple[MinSramEntry, ...]  # designs in sweep order, resolutions increasing


def min_sram(index: SweepIndex, profiles: Mapping[str, HardwareProfile] | None = None) -> MinSram | None:
    """None when the sweep has a single profile (nothing to compare)."""
    if len(index.hardware) < 2:
        return None
    profiles = profiles or {}
    sizes = []
    for hw in index.hardware:
        if hw in profiles:
            sizes.append(ProfileSram(hw, float(profiles[hw].sram_kib), False))
            continue
        used = [num(r, "sram_kib") or 0.0 for r in index.table.rows if r["hardware"] == hw and fits(r)]
        sizes.append(ProfileSram(hw, max(used) if used else None, True))
    sizes.sort(key=lambda p: (p.sram_kib is None, p.sram_kib or 0.0))
    entries = []
    for d in index.designs:
        for res in index.resolutions:
            rows = [(p, index.row(d, res, p.name)) for p in sizes]
            if all(r is None for _, r in rows):
                continue
            ok = [(p, r) for p, r in rows if fits(r)]
            if ok:
                p, r = ok[0]
                entries.append(MinSramEntry(d, res, p.name, p.sram_kib, num(r, "sram_kib"), num(r, "fps"), len(ok)))
            else:
                entries.append(MinSramEntry(d, res, None, None, None, None, 0))
    return MinSram(tuple(sizes), tuple(entries))
