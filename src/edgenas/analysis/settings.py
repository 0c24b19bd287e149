"""Every threshold of the study in one frozen value, read from a config's `report:` section.

The thresholds decide what the report calls an anomaly and what it drops from the search space, so each
one is named, defaulted, range-checked and recorded in the `Study` (a reader can see why a choice went).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgenas.errors import ConfigError
from edgenas.space.config import format_resolution, parse_resolution


@dataclass(frozen=True)
class StudySettings:
    """Thresholds and choices of one study. `None` fields are filled from the sweep by `resolve_settings`."""

    key_resolution: str | None = None
    """Resolution of the key-results table (HxW); default: the middle resolution of the sweep."""
    baseline: Mapping[str, str] | None = None
    """Choice -> value of the genotype every change is measured against; default: the space's default."""
    device_hardware: str | None = None
    """Profile name (the sweep's `hardware` column) the recommendations are for; default: the first one."""
    offchip_share: float = 0.5
    """A layer whose OffFlash or DRAM access cycles are >= this share of its op cycles is off-chip-bound."""
    min_offchip_layer_share: float = 0.05
    """Off-chip-bound layers are only reported when they take at least this share of the network's cycles."""
    cliff_tolerance: float = 0.02
    """FPS must fall as the input grows: a larger resolution whose FPS is not at least this fraction below
    a smaller one's (a plateau or a reversal) is a cliff."""
    cliff_offchip_margin: float = 0.1
    """A cliff is blamed on off-chip traffic when the smaller input's off-chip share of cycles is at least
    this many (absolute) points above the larger input's."""
    arena_full_share: float = 0.97
    """SRAM use at or above this share of the profile's arena limit counts as having hit the limit."""
    sram_overhead_limit: float = 0.3
    """A choice value whose SRAM exceeds the baseline's by more than this fraction at any resolution is
    dropped from the reduced space."""
    fps_loss_limit: float = 0.4
    """A choice value losing more than this fraction of the baseline's FPS at the key resolution is dropped."""
    accuracy_fps_loss: float = 0.3
    """Accuracy-priority pick: largest receptive field among designs within this FPS loss of the fastest."""
    dominant_op_share: float = 0.4
    """An op type taking more than this share of a network's cycles is named as dominating it."""
    recommended: Mapping[str, tuple[str, ...]] | None = None
    """Choice -> values whose accuracy the report weighs against their cycles when trained results exist (e.g.
    the seed's reduced head space); default: the reduced space this study recommends."""


# field -> (low, high, low inclusive, high inclusive)
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "offchip_share": (0.0, 1.0, False, True),
    "min_offchip_layer_share": (0.0, 1.0, True, True),
    "cliff_tolerance": (0.0, math.inf, True, False),
    "cliff_offchip_margin": (0.0, 1.0, True, True),
    "arena_full_share": (0.0, 1.0, False, True),
    "sram_overhead_limit": (0.0, math.inf, True, False),
    "fps_loss_limit": (0.0, 1.0, True, True),
    "accuracy_fps_loss": (0.0, 1.0, True, True),
    "dominant_op_share": (0.0, 1.0, False, True),
}
SETTING_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StudySettings))


def _range_text(lo: float, hi: float, lo_inc: bool, hi_inc: bool) -> str:
    left = ">=" if lo_inc else ">"
    if math.isinf(hi):
        return f"a number {left} {lo:g}"
    return f"a number in {'[' if lo_inc else '('}{lo:g}, {hi:g}{']' if hi_inc else ')'}"


def settings_from_mapping(d: Mapping[str, Any] | None, *, key_resolution: str | None = None,
                          baseline: Mapping[str, Any] | None = None, device_hardware: str | None = None,
                          source: str | None = None, section: str = "report") -> StudySettings:
    """Validate a YAML `report:` section into settings; the keyword arguments are the caller's defaults
    (e.g. the space's default genotype), which the section overrides. Errors name `report.<field>`."""

    def err(field: str | None, msg: str) -> ConfigError:
        return ConfigError(msg, source=source, field=f"{section}.{field}" if field else section)

    if d is None:
        d = {}
    if not isinstance(d, Mapping):
        raise err(None, f"must be a mapping of settings; allowed keys: {', '.join(SETTING_KEYS)}")
    values: dict[str, Any] = {"key_resolution": key_resolution, "baseline": baseline,
                              "device_hardware": device_hardware}
    for key, value in d.items():
        if key not in SETTING_KEYS:
            raise err(str(key), f"unknown setting; allowed keys: {', '.join(SETTING_KEYS)}")
        values[key] = value
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "key_resolution":
            if value is not None:
                try:
                    value = format_resolution(parse_resolution(value))
                except ValueError as e:
                    raise err(key, str(e)) from None
        elif key == "baseline":
            if value is not None:
                if not isinstance(value, Mapping) or not value:
                    raise err(key, "must be a non-empty mapping of choice: value")
                for k, v in value.items():
                    if not isinstance(k, str) or isinstance(v, (Mapping, list, tuple)) or v is None:
                        raise err(f"{key}.{k}", f"must be a single choice value, got {v!r}")
                value = {k: str(v) for k, v in value.items()}
        elif key == "recommended":
            if value is not None:
                if not isinstance(value, Mapping) or not value:
                    raise err(key, "must be a non-empty mapping of choice: [values]")
                rec: dict[str, tuple[str, ...]] = {}
                for k, v in value.items():
                    vs = v if isinstance(v, (list, tuple)) else [v]
                    if not isinstance(k, str) or not vs or any(isinstance(x, (Mapping, list, tuple)) or x is None
                                                               for x in vs):
                        raise err(f"{key}.{k}", f"must be a list of choice values, got {v!r}")
                    rec[k] = tuple(str(x) for x in vs)
                value = rec
        elif key == "device_hardware":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise err(key, f"must be a hardware profile name, got {value!r}")
        else:
            lo, hi, lo_inc, hi_inc = _RANGES[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise err(key, f"must be {_range_text(lo, hi, lo_inc, hi_inc)}, got {value!r}")
            ok_lo = value >= lo if lo_inc else value > lo
            ok_hi = value <= hi if hi_inc else value < hi
            if not (ok_lo and ok_hi):
                raise err(key, f"must be {_range_text(lo, hi, lo_inc, hi_inc)}, got {value!r}")
            value = float(value)
        out[key] = value
    return StudySettings(**out)


def middle_resolution(resolutions: list[str]) -> str:
    """The seed's 192x256 among its six: the lower middle of the resolutions in increasing pixel count."""
    return resolutions[(len(resolutions) - 1) // 2]
