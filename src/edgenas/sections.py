"""Validate one section of a config file (`train:`, `task:`, ...) with a pydantic model, failing with one
ConfigError line that names the file, the field path and, for unknown fields, the allowed ones."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edgenas.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def field_path(section: str, loc: tuple[Any, ...]) -> str:
    out = section
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate_section(model: type[M], data: Any, *, source: str, section: str) -> M:
    """`model` validated from `data` (None or empty: every default), or one ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping; fields: {', '.join(model.model_fields)}", source=source,
                          field=section)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent: Any = model
            for part in loc[:-1]:  # walk to the nested model that rejected the field
                info = getattr(parent, "model_fields", {}).get(part)
                parent = getattr(info, "annotation", None) if info else None
            allowed = getattr(parent, "model_fields", None) or model.model_fields
            msg = f"unknown field; allowed: {', '.join(allowed)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        raise ConfigError(msg, source=source, field=field_path(section, loc)) from None
