"""Hardware targets and how candidates are measured on them: profiles, evaluators, the measurement cache."""

from edgenas.hardware.cache import MeasurementCache, cache_key, cacheable
from edgenas.hardware.fit import fit_flags, sram_demand_kib
from edgenas.hardware.measurement import METRICS, LayerRow, Measurement
from edgenas.hardware.profile import (
    DEFAULT_PROFILE,
    HardwareProfile,
    list_profiles,
    load_profile,
    memory_layout,
    profile_from_mapping,
    vela_cli_args,
)
from edgenas.hardware.vela import (
    VelaEvaluator,
    compile_to_vela_tflite,
    compiler_options_key,
    compiler_version,
)

__all__ = [
    "DEFAULT_PROFILE",
    "METRICS",
    "HardwareProfile",
    "LayerRow",
    "Measurement",
    "MeasurementCache",
    "VelaEvaluator",
    "cache_key",
    "cacheable",
    "compile_to_vela_tflite",
    "compiler_options_key",
    "compiler_version",
    "fit_flags",
    "list_profiles",
    "load_profile",
    "memory_layout",
    "profile_from_mapping",
    "sram_demand_kib",
    "vela_cli_args",
]
