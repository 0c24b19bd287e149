"""Measure a user's own int8 TFLite file on a profile: the same figures as a sweep row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.hardware.fit import fit_flags
from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile
from edgenas.tflite.reader import TfliteInfo, inspect_tflite


@dataclass(frozen=True)
class FileMeasurement:
    path: str
    profile: HardwareProfile
    info: TfliteInfo
    measurement: Measurement
    flags: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "model": self.path,
            "hardware": self.profile.name,
            "status": m.status,
            "error": m.error,
            "metrics": dict(m.metrics),
            **self.flags,
            "fps_complete": m.ok and int(m.metrics.get("cpu_ops", 0)) == 0,
            "compiler": m.provenance.get("compiler", ""),
            "layers": [row._asdict() for row in m.layers],
        }


def read_model(path: str | Path) -> tuple[bytes, TfliteInfo]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read model ({e.strerror})", source=str(p)) from None
    return data, inspect_tflite(data, source=str(p))


def measure_file(path: str | Path, profile: HardwareProfile) -> FileMeasurement:
    """Refuses non-TFLite and float models (ModelFileError, exit 2); a compiler failure is a failed
    Measurement. The compile runs in a child process: the compiler can crash on models it was not
    written for, and that must not take edgenas down."""
    if profile.evaluator != "vela":
        raise ConfigError(f"profile {profile.name!r} uses the {profile.evaluator} evaluator, which works on "
                          "edgenas networks only; measure a .tflite with a compiler profile (e.g. ethos-u55-256)",
                          field="--hardware")
    from edgenas.hardware.vela import VelaEvaluator

    data, info = read_model(path)
    m = VelaEvaluator(profile).evaluate_isolated(data)
    return FileMeasurement(str(path), profile, info, m, fit_flags(m, profile))
