"""The `search:` section of a space YAML: what to optimise, under which hard limits, with which evaluators.

Validation here is only about the shape of the section; whether a metric exists, a table has its columns
or a strategy is known is checked when the pieces are put together (`edgenas.search.study.prepare`),
where the evaluators are known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgenas.errors import ConfigError
from edgenas.sections import field_path

Direction = Literal["max", "min"]
_DIRECTION_ALIASES = {"max": "max", "maximize": "max", "maximise": "max", "min": "min", "minimize": "min",
                      "minimise": "min"}


class ObjectiveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    direction: Direction

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, v: Any) -> str:
        if isinstance(v, str) and v.lower() in _DIRECTION_ALIASES:
            return _DIRECTION_ALIASES[v.lower()]
        raise ValueError(f"direction must be max or min, got {v!r}")


class SearchSection(BaseModel):
    """What a user writes under `search:`. Every field has a default except `objectives`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objectives: list[ObjectiveSpec] = Field(min_length=1)
    constraints: list[str] = Field(default_factory=list)  # "sram_kib <= device", "fps >= 10"
    resolution: str | None = None  # HxW; default: report.key_resolution, else the space's first
    hardware: str | None = None  # a profile spec; default: the space's first `hardware`, else the default profile
    evaluators: list[str | dict[str, Any]] = Field(default_factory=lambda: ["compiler"])
    strategy: str | None = None  # default: the strategy registry's default
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    trials: int = Field(50, ge=0)
    seed: int = 0
    # Genotypes (NAME=VALUE,..., unnamed choices at the space's default) a new study evaluates first, before
    # the strategy proposes anything: e.g. the seed's picks, so the front can be judged against them.
    enqueue: list[str] = Field(default_factory=list)
    # Worker liveness: a trial whose worker has not written a heartbeat for `grace_period` seconds is failed
    # and queued again (at most `max_retry` times). Optuna wants whole seconds.
    heartbeat_interval: int = Field(10, ge=1)
    grace_period: int | None = Field(None, ge=1)  # default: 3 x heartbeat_interval
    max_retry: int = Field(3, ge=0)

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [v]
        return v

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return f"{v[0]}x{v[1]}"
        return v

    @property
    def grace(self) -> int:
        return self.grace_period or 3 * self.heartbeat_interval


def parse_search_section(data: Any, source: str) -> SearchSection:
    """Validate the raw mapping; every failure is one ConfigError naming the file and field."""
    if not data:
        raise ConfigError("the config has no `search:` section; add one with at least `objectives:` "
                          "(e.g. [{metric: fps, direction: max}, {metric: sram_kib, direction: min}])",
                          source=source, field="search")
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping (objectives, constraints, strategy, trials, ...)", source=source,
                          field="search")
    try:
        return SearchSection.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = field_path("search", tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent = SearchSection if len(err["loc"]) == 1 else ObjectiveSpec
            msg = f"unknown field; allowed: {', '.join(parent.model_fields)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        raise ConfigError(msg, source=source, field=field) from None
