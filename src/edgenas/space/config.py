"""Search-space YAML: schema (pydantic) and loading with one-line errors naming file, field and allowed values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from edgenas.errors import ConfigError
from edgenas.sections import field_path

BUILTIN_DIR = Path(__file__).parent / "builtin"
_RES_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
# The largest tensor dimension (height, width, channels) the compiler maps to the NPU (Vela's
# `tens_dim_range` is 1..65535): the bound for resolutions, input channels and widths, so a typo cannot ask
# for shapes the TFLite writer cannot store (int32). Widths that count repeats have their template's limits.
MAX_DIM = 65535


def parse_resolution(value: Any) -> tuple[int, int]:
    """'192x256' or [192, 256] -> (192, 256); positive integers up to MAX_DIM only."""
    if isinstance(value, str):
        m = _RES_RE.match(value)
        if not m:
            raise ValueError(f"resolution must look like HxW (e.g. 192x256), got {value!r}")
        h, w = int(m.group(1)), int(m.group(2))
    elif (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        h, w = value
    else:
        raise ValueError(f"resolution must be 'HxW' or [H, W], got {value!r}")
    if h <= 0 or w <= 0:
        raise ValueError(f"resolution must be positive, got {h}x{w}")
    if h > MAX_DIM or w > MAX_DIM:
        raise ValueError(f"resolution must be at most {MAX_DIM} per side (the NPU's largest tensor dimension), "
                         f"got {h}x{w}")
    return (h, w)


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):  # YAML `true` would otherwise count as 1
        raise ValueError(f"must be an integer, got {str(v).lower()}")  # noqa: TRY004 (pydantic wants ValueError)
    return v


def format_resolution(res: tuple[int, int]) -> str:
    return f"{res[0]}x{res[1]}"


class SpaceConfig(BaseModel):
    """What a user writes. Template-specific checks (known parameters, allowed values, widths, stride)
    happen in SearchSpace, which knows the template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    extends: str | None = None  # a built-in space name or YAML file this one starts from (already merged)
    description: str = ""
    network: str = "flow"
    input_channels: Annotated[int, BeforeValidator(_no_bool), Field(gt=0, le=MAX_DIM)] = 6
    resolutions: list[tuple[int, int]]
    widths: dict[str, Annotated[int, BeforeValidator(_no_bool)]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    choices: dict[str, list[Any]] = Field(default_factory=dict)
    tied: dict[str, str] = Field(default_factory=dict)
    default: dict[str, Any] = Field(default_factory=dict)
    hardware: list[str] = Field(default_factory=list)
    # Sections read by later stages (study report, search, training); kept as plain mappings here and
    # validated by the package that reads them.
    report: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Any] = Field(default_factory=dict)
    task: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    study: dict[str, Any] = Field(default_factory=dict)
    supernet: dict[str, Any] = Field(default_factory=dict)

    @field_validator("resolutions", mode="before")
    @classmethod
    def _resolutions(cls, v: Any) -> list[tuple[int, int]]:
        if not isinstance(v, list) or not v:
            raise ValueError("must be a non-empty list of HxW resolutions")
        return [parse_resolution(r) for r in v]

    @field_validator("hardware", mode="before")
    @classmethod
    def _hardware(cls, v: Any) -> list[str]:
        return [v] if isinstance(v, str) else v

    @field_validator("choices")
    @classmethod
    def _choices(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for k, opts in v.items():
            if not opts:
                raise ValueError(f"choice {k!r} has no options")
            if len(set(map(repr, opts))) != len(opts):
                raise ValueError(f"choice {k!r} lists an option twice")
        return v


def load_space_config(path: str | Path) -> SpaceConfig:
    """Read and validate a space YAML file; every failure is a ConfigError naming the file."""
    p = Path(path)
    return config_from_dict(read_config_mapping(p), str(p))


def read_config_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping of a config YAML with `extends` merged, not yet validated (for sections other loaders read)."""
    return _read_with_extends(Path(path), ())


# Mappings that `extends` merges key by key; every other field of the extending file replaces the base's.
_MERGED = ("widths", "fixed", "report", "search", "task", "train", "study", "supernet")


def _read_with_extends(p: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    src = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read file ({e.strerror or e})", source=src) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})", source=src) from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError("malformed YAML: nested too deeply", source=src) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"malformed YAML{where}: {problem}", source=src) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of fields (name, network, resolutions, choices, ...)", source=src)
    base_ref = data.get("extends")
    if base_ref is None:
        return data
    if not isinstance(base_ref, str):
        raise ConfigError("must name a built-in space or a YAML file", source=src, field="extends")
    base_path = Path(base_ref) if Path(base_ref).suffix in (".yaml", ".yml") else None
    if base_path is not None and not base_path.is_absolute():
        base_path = p.parent / base_path
    try:
        base_path = resolve_space_path(str(base_path) if base_path else base_ref)
    except ConfigError as e:  # unknown name: its message says so; a path: name it
        raise ConfigError(e.message if e.source is None else str(e), source=src, field="extends") from None
    if base_path.resolve() in seen or base_path.resolve() == p.resolve():
        raise ConfigError(f"{base_ref!r} extends itself", source=src, field="extends")
    try:
        merged = _read_with_extends(base_path, (*seen, p.resolve()))
    except ConfigError as e:  # a bad base: say which file extends it, then what is wrong there
        raise ConfigError(str(e), source=src, field="extends") from None
    for k, v in data.items():
        if k in _MERGED and isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    # A parameter the extending file searches is no longer fixed at the base's value (a base's
    # `fixed: {predict_kernel: 7}` and the extension's `choices: {predict_kernel: [3, 5, 7]}`), unless the
    # extending file fixes it too, which stays the error it is.
    own_fixed = data.get("fixed") if isinstance(data.get("fixed"), dict) else {}
    if isinstance(data.get("choices"), dict) and isinstance(merged.get("fixed"), dict):
        merged["fixed"] = {k: v for k, v in merged["fixed"].items() if k not in data["choices"] or k in own_fixed}
    return merged


def config_from_dict(data: dict[str, Any], source: str) -> SpaceConfig:
    try:
        return SpaceConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = field_path("", tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(SpaceConfig.model_fields)
            msg = f"unknown field; allowed: {allowed}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        msg = msg.removeprefix("Value error, ")
        raise ConfigError(msg, source=source, field=field) from None


def builtin_space_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def resolve_space_path(name_or_path: str) -> Path:
    """A built-in space name or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError("file not found", source=str(p))
        if not p.is_file():
            raise ConfigError("not a file", source=str(p))
        return p
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    if builtin.exists():
        return builtin
    raise ConfigError(
        f"unknown space {name_or_path!r}; give a YAML file or one of: {', '.join(builtin_space_names())}",
        field="space",
    )
