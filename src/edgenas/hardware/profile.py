"""Hardware profiles: the target device a candidate network must run on, loaded from YAML.

A profile carries two kinds of facts: what the compiler is told (accelerator, system config, memory mode,
arena limit) and what the real device has (SRAM, flash, DRAM sizes). The compiler never enforces the
second kind in Shared_Sram mode, so edgenas checks them itself (`fit_flags`).
"""

from __future__ import annotations

import configparser
import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from ethosu.vela.tensor import MemArea
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from edgenas.errors import ConfigError
from edgenas.hardware import _velaconf as vc

DEFAULT_PROFILE = "ethos-u55-256"
EvaluatorName = Literal["vela", "analytic"]


@dataclass(frozen=True)
class HardwareProfile:
    """One target device. Sizes in KiB (1024 bytes), bandwidths in bytes per core clock cycle."""

    name: str
    description: str
    evaluator: EvaluatorName
    accelerator_config: str | None  # e.g. "ethos-u55-256"; None for a CPU-only (analytic) target
    system_config: str | None  # a System_Config section of the vela.ini
    memory_mode: str | None  # a Memory_Mode section of the vela.ini
    sram_kib: int  # the device's real SRAM available to the network
    flash_kib: int | None
    dram_kib: int | None
    arena_cache_kib: int  # what the compiler is given as arena limit (default: sram_kib)
    core_clock_hz: float
    macs_per_cycle: float  # roofline peak
    sram_bytes_per_cycle: float
    flash_bytes_per_cycle: float | None
    dram_bytes_per_cycle: float | None
    host_cpu_macs_per_s: float | None = None  # to estimate ops that fall back to the CPU
    vela_config: str | None = None  # absolute path of a custom vela.ini; None = the compiler's own
    calibration: str | None = None  # analytic evaluator: absolute path of `edgenas calibrate` output

    @property
    def arena_cache_bytes(self) -> int:
        return self.arena_cache_kib * 1024

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Sizes above this are refused. The compiler gets the arena limit in bytes: with sram_kib=1e20 it silently
# planned as for a 1 KiB arena (the byte count overflowed), while 1e9 KiB behaved (ethos-u-vela 5.2.0,
# measured). 2^32 KiB = 4 TiB is far above any device and far below the overflow.
MAX_KIB = 2**32


def _no_bool(v: Any) -> Any:
    """YAML reads `true` as a boolean and pydantic would take it as 1: a size or a rate is never yes/no."""
    if isinstance(v, bool):
        raise ValueError(f"must be a number, got {str(v).lower()}")  # noqa: TRY004 (pydantic wants ValueError)
    return v


_Size = Annotated[int, BeforeValidator(_no_bool), Field(gt=0, le=MAX_KIB)]
_Rate = Annotated[float, BeforeValidator(_no_bool), Field(gt=0, allow_inf_nan=False)]


class _Spec(BaseModel):
    """The YAML schema; defaults that depend on the target are filled in after validation."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    evaluator: EvaluatorName = "vela"
    accelerator_config: str | None = None
    system_config: str | None = None
    memory_mode: str | None = None
    vela_config: str | None = None
    calibration: str | None = None
    sram_kib: _Size
    flash_kib: _Size | None = None
    dram_kib: _Size | None = None
    arena_cache_kib: _Size | None = None
    core_clock_hz: _Rate | None = None
    host_cpu_macs_per_s: _Rate | None = None
    macs_per_cycle: _Rate | None = None
    sram_bytes_per_cycle: _Rate | None = None
    flash_bytes_per_cycle: _Rate | None = None
    dram_bytes_per_cycle: _Rate | None = None


_FIELDS = tuple(_Spec.model_fields)
# Fields whose value in a spec is text: taken as typed (`name=yes` is the name "yes", not true).
_TEXT_FIELDS = ("name", "description", "evaluator", "accelerator_config", "system_config", "memory_mode",
                "vela_config", "calibration")


def profile_fields() -> tuple[str, ...]:
    """The fields a profile YAML (or a `NAME:field=value` spec) may set."""
    return _FIELDS


def _profiles_dir() -> str:
    return str(resources.files("edgenas.hardware") / "profiles")


def list_profiles() -> list[str]:
    """Names of the built-in profiles."""
    names = [f[: -len(".yaml")] for f in os.listdir(_profiles_dir()) if f.endswith(".yaml")]
    return sorted(names, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])


def load_profile(name_or_path: str | None = None, overrides: Mapping[str, Any] | None = None) -> HardwareProfile:
    """A built-in profile by name, or a YAML file by path; `overrides` replace fields before validation."""
    name_or_path = name_or_path or DEFAULT_PROFILE
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path
    if looks_like_path or os.path.isfile(name_or_path):
        path = os.path.abspath(name_or_path)
        if not os.path.isfile(path):
            raise ConfigError("profile file not found", source=name_or_path)
    else:
        path = os.path.join(_profiles_dir(), name_or_path + ".yaml")
        if not os.path.isfile(path):
            raise ConfigError(
                f"unknown hardware profile {name_or_path!r}; built-in profiles: {', '.join(list_profiles())} "
                "(or give the path of a YAML file)",
                field="hardware",
            )
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read file ({getattr(e, 'strerror', None) or e})", source=path) from None
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError(f"not valid YAML: {_yaml_problem(e)}", source=path) from None
    if not isinstance(data, dict):
        raise ConfigError("a hardware profile must be a YAML mapping of fields", source=path)
    overrides = dict(overrides or {})
    if isinstance(overrides.get("vela_config"), str) and overrides["vela_config"]:
        # a path given next to a profile name is relative to the caller
        overrides["vela_config"] = os.path.abspath(overrides["vela_config"])
    data = {**data, **overrides}
    return profile_from_mapping(data, source=path, base_dir=os.path.dirname(path))


def load_profile_spec(spec: str) -> HardwareProfile:
    """`NAME_OR_FILE` or `NAME_OR_FILE:field=value,field=value`: a profile with some fields changed, named
    after the whole spec unless `name=` is given (so `ethos-u55-256:sram_kib=1024` and the plain profile
    can sit side by side in one sweep). Any error names the spec as typed."""
    try:
        return _load_spec(spec)
    except ConfigError as e:
        if e.source == spec:
            raise
        field = None if e.field == "hardware" else e.field  # the spec is the hardware; its field is news
        raise ConfigError(e.message, source=spec, field=field) from None


def _load_spec(spec: str) -> HardwareProfile:
    if not spec.strip():
        raise ConfigError("empty hardware profile spec; give a built-in name, a YAML file or NAME:field=value",
                          field="hardware")
    base, sep, rest = spec.partition(":")
    if not sep or os.path.isfile(spec):
        return load_profile(spec)
    if not base.strip():
        raise ConfigError("no profile name before ':'; e.g. ethos-u55-256:sram_kib=1024", field="hardware")
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"expected FIELD=VALUE after ':', got {part!r}; e.g. ethos-u55-256:sram_kib=1024",
                              field="hardware")
        key, value = key.strip(), value.strip()
        if key not in _FIELDS:
            raise ConfigError(f"unknown profile field {key!r}; allowed: {', '.join(_FIELDS)}", field="hardware")
        if key in overrides:
            raise ConfigError("given twice", field=key)
        overrides[key] = _spec_value(key, value)
    overrides.setdefault("name", spec)
    return load_profile(base, overrides)


def _spec_value(key: str, text: str) -> Any:
    """A value typed after `field=`: text fields keep it as typed (empty: unset), others are read as YAML
    (`1024`, `1.5e9`, `null`) so the schema checks them as it checks a file's values."""
    if key in _TEXT_FIELDS:
        return text if text or key == "name" else None
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text


def _yaml_problem(e: BaseException) -> str:
    """One line for a YAML error: the problem and where (PyYAML's own text spans several lines)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
    return f"{problem}{where}"


def profile_from_mapping(
    data: Mapping[str, Any], *, source: str = "<profile>", base_dir: str | None = None
) -> HardwareProfile:
    """Validate a mapping (a YAML document or an inline `hardware:` section) into a profile."""
    try:
        spec = _Spec.model_validate(dict(data))
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field; allowed fields: {', '.join(_FIELDS)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "less_than_equal":
            msg = f"must be at most {MAX_KIB} KiB (4 TiB); the compiler cannot take more"
        msg = msg.removeprefix("Value error, ")
        raise ConfigError(msg, source=source, field=field) from None
    return _resolve(spec, source, base_dir)


def _file_field(value: str | None, base_dir: str | None, source: str, field: str, hint: str = "") -> str | None:
    """A file named in a profile: relative to the profile's folder, must exist; absolute path back."""
    if not value:
        return None
    path = value if os.path.isabs(value) or not base_dir else os.path.join(base_dir, value)
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{field.replace('_', ' ')} file {path} not found{hint}", source=source, field=field)
    return path


def _resolve(spec: _Spec, source: str, base_dir: str | None) -> HardwareProfile:
    vela_ini = _file_field(spec.vela_config, base_dir, source, "vela_config")
    calibration = _file_field(spec.calibration, base_dir, source, "calibration",
                              " (make one with `edgenas calibrate`)")
    if calibration and spec.evaluator != "analytic":
        raise ConfigError("calibration only applies to evaluator: analytic", source=source, field="calibration")
    arena = spec.arena_cache_kib or spec.sram_kib
    if arena > spec.sram_kib:
        raise ConfigError(
            f"arena_cache_kib ({arena}) exceeds sram_kib ({spec.sram_kib}): the compiler would plan for SRAM "
            "the device does not have",
            source=source,
            field="arena_cache_kib",
        )
    common = dict(
        name=spec.name,
        description=spec.description.strip(),
        evaluator=spec.evaluator,
        sram_kib=spec.sram_kib,
        flash_kib=spec.flash_kib,
        dram_kib=spec.dram_kib,
        arena_cache_kib=arena,
        host_cpu_macs_per_s=spec.host_cpu_macs_per_s,
        calibration=calibration,
    )
    if spec.accelerator_config is None:
        return _cpu_only(spec, source, common)
    arch = _check_target(spec, vela_ini, source)
    dram = vc.bytes_per_cycle(arch, MemArea.Dram) if MemArea.Dram in (arch.axi0_port, arch.axi1_port) else None
    flash = vc.bytes_per_cycle(arch, MemArea.OffChipFlash) if arch.axi1_port == MemArea.OffChipFlash else None
    return HardwareProfile(
        accelerator_config=spec.accelerator_config,
        system_config=spec.system_config,
        memory_mode=spec.memory_mode,
        core_clock_hz=spec.core_clock_hz or float(arch.core_clock),
        macs_per_cycle=spec.macs_per_cycle or float(arch.num_macs_per_cycle * arch.ncores),
        sram_bytes_per_cycle=spec.sram_bytes_per_cycle or vc.bytes_per_cycle(arch, MemArea.Sram),
        flash_bytes_per_cycle=spec.flash_bytes_per_cycle or flash,
        dram_bytes_per_cycle=spec.dram_bytes_per_cycle or dram,
        vela_config=vela_ini,
        **common,
    )


def _cpu_only(spec: _Spec, source: str, common: dict[str, Any]) -> HardwareProfile:
    if spec.evaluator == "vela":
        raise ConfigError(
            "evaluator 'vela' needs an accelerator_config; allowed: " + ", ".join(vc.ACCELERATORS),
            source=source,
            field="accelerator_config",
        )
    for field in ("system_config", "memory_mode", "vela_config"):
        if getattr(spec, field) is not None:
            raise ConfigError(f"{field} only applies with an accelerator_config", source=source, field=field)
    for field in ("core_clock_hz", "macs_per_cycle", "sram_bytes_per_cycle"):
        if getattr(spec, field) is None:
            raise ConfigError(
                "a CPU-only (analytic) profile must give core_clock_hz, macs_per_cycle and sram_bytes_per_cycle",
                source=source,
                field=field,
            )
    return HardwareProfile(
        accelerator_config=None,
        system_config=None,
        memory_mode=None,
        core_clock_hz=float(spec.core_clock_hz),  # type: ignore[arg-type]
        macs_per_cycle=float(spec.macs_per_cycle),  # type: ignore[arg-type]
        sram_bytes_per_cycle=float(spec.sram_bytes_per_cycle),  # type: ignore[arg-type]
        flash_bytes_per_cycle=spec.flash_bytes_per_cycle,
        dram_bytes_per_cycle=spec.dram_bytes_per_cycle,
        **common,
    )


def _check_target(spec: _Spec, vela_ini: str | None, source: str) -> Any:
    accel = spec.accelerator_config
    if accel not in vc.ACCELERATORS:
        raise ConfigError(
            f"unknown accelerator_config {accel!r}; allowed: {', '.join(vc.ACCELERATORS)}",
            source=source,
            field="accelerator_config",
        )
    path = vc.ini_path(vela_ini)
    try:
        systems, modes = vc.ini_sections(path)
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]  # configparser quotes the offending lines below
        raise ConfigError(f"cannot read vela config {path}: {why}", source=source, field="vela_config") from None
    if spec.system_config not in systems:
        raise ConfigError(
            f"unknown system_config {spec.system_config!r} (in {path}); allowed: {', '.join(systems)}",
            source=source,
            field="system_config",
        )
    if spec.memory_mode not in modes:
        raise ConfigError(
            f"unknown memory_mode {spec.memory_mode!r} (in {path}); allowed: {', '.join(modes)}",
            source=source,
            field="memory_mode",
        )
    try:
        arch = vc.arch_features(path, accel, spec.system_config, spec.memory_mode)
    except Exception as e:  # the compiler's own config check (VelaError subclasses)
        text = str(getattr(e, "data", e)).strip()
        hint = ""
        if "arena_mem_area" in text:
            hint = (
                f" -- memory mode {spec.memory_mode!r} keeps feature maps on AXI1, which is flash in system "
                f"config {spec.system_config!r}; feature maps must live in SRAM or DRAM. Use Shared_Sram or "
                "Sram_Only here, or a system config whose AXI1 is DRAM (or a custom vela_config with axi1_port=Dram)"
            )
        raise ConfigError(f"the compiler rejects this target: {text}{hint}", source=source, field="memory_mode") from e
    return arch


def memory_layout(profile: HardwareProfile) -> vc.MemoryLayout:
    """Where weights, feature maps and the staging cache live for this profile."""
    if profile.accelerator_config is None:
        return vc.MemoryLayout("OffChipFlash" if profile.flash_kib else "Sram", "Sram", "Sram", "Sram", "", False)
    return _memory_layout(profile, vc.ini_text(vc.ini_path(profile.vela_config)))


@functools.lru_cache(maxsize=64)
def _memory_layout(profile: HardwareProfile, ini: str) -> vc.MemoryLayout:
    """Memoised on the profile and the ini file's current text (read afresh by the caller): parsing the
    compiler's configuration took a quarter of a cached sweep row."""
    arch = vc.arch_features(
        vc.ini_path(profile.vela_config), profile.accelerator_config, profile.system_config, profile.memory_mode
    )
    return vc.memory_layout_of(arch)


def vela_cli_args(profile: HardwareProfile) -> list[str]:
    """`vela` options that make the CLI compile exactly what `VelaEvaluator` compiles for this profile."""
    if profile.accelerator_config is None:
        raise ConfigError(f"profile {profile.name!r} has no accelerator; there is no vela command for it")
    args = [
        "--accelerator-config", profile.accelerator_config,
        "--system-config", str(profile.system_config),
        "--memory-mode", str(profile.memory_mode),
        "--arena-cache-size", str(profile.arena_cache_bytes),
        "--optimise", "Performance",
    ]  # fmt: skip
    if profile.vela_config:
        args += ["--config", profile.vela_config]
    return args
