"""The `task:` section of a config -> a Task: one registry of task types, each with a pydantic model of its
settings (unknown keys rejected) and a factory. Every failure is one ConfigError line naming the config
file and the field (`task.type`, `task.train_samples`, ...) and, where there is a closed set, the allowed
values."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgenas.errors import ConfigError
from edgenas.sections import field_path
from edgenas.train.tasks.base import Task

Factory = Callable[[Any, "TaskContext"], Task]


@dataclass(frozen=True)
class TaskContext:
    """What a factory may need besides its settings."""

    source: str | None  # the config file (for messages)
    base_dir: Path  # relative paths in the section are relative to this (the config file's folder)
    input_channels: int

    def path(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


@dataclass(frozen=True)
class TaskType:
    settings: type[BaseModel]
    factory: Factory
    doc: str


_TYPES: dict[str, TaskType] = {}


def register_task(type_name: str, settings: type[BaseModel], factory: Factory, doc: str = "") -> None:
    """Make `task: {type: <type_name>, ...}` usable: `settings` validates the section (its `type` field
    included), `factory(settings, context)` returns the Task."""
    _TYPES[type_name] = TaskType(settings, factory, doc)


def _registered() -> dict[str, Any]:
    """Task types installed packages register (entry-point group `edgenas.tasks`), not shadowing built-ins."""
    from edgenas.plugins import TASKS, registered

    return {name: ep for name, ep in registered(TASKS).items() if name not in _TYPES}


def task_types() -> list[str]:
    """Built-in types and those installed packages register under the `edgenas.tasks` entry-point group."""
    return sorted({*_TYPES, *_registered()})


def _validate(model: type[BaseModel], raw: Mapping[str, Any], source: str | None) -> BaseModel:
    try:
        return model.model_validate(dict(raw))
    except ValidationError as e:
        err = e.errors()[0]
        field = field_path("task", tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field for task type {raw.get('type')!r}; allowed: {', '.join(model.model_fields)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        raise ConfigError(msg, source=source, field=field) from None


def make_task(section: Mapping[str, Any], *, source: str | None, input_channels: int) -> Task:
    """The Task a config's `task:` section declares, checked against the space's `input_channels`."""
    if not section:
        raise ConfigError(f"the config has no `task:` section; add one, e.g. `task: {{type: flow}}` "
                          f"(types: {', '.join(task_types())})", source=source, field="task")
    if not isinstance(section, Mapping):
        raise ConfigError(f"must be a mapping with a `type:` ({', '.join(task_types())})", source=source,
                          field="task")
    type_name = section.get("type")
    if type_name is None:
        raise ConfigError(f"required field is missing; allowed: {', '.join(task_types())}", source=source,
                          field="task.type")
    registered = _registered() if isinstance(type_name, str) and type_name not in _TYPES else {}
    if not isinstance(type_name, str) or (type_name not in _TYPES and type_name not in registered):
        raise ConfigError(f"unknown task type {type_name!r}; allowed: {', '.join(task_types())}", source=source,
                          field="task.type")
    base = Path(source).parent if source else Path.cwd()
    ctx = TaskContext(source, base, input_channels)
    if type_name in registered:  # an installed package's task: its function gets the other keys
        from edgenas.train.tasks.plugin import load_plugin_task

        settings = {k: v for k, v in section.items() if k != "type"}
        task = load_plugin_task(registered[type_name].value, settings, ctx, field="task.type")
    else:
        kind = _TYPES[type_name]
        task = kind.factory(_validate(kind.settings, section, source), ctx)
    want = getattr(task, "input_channels", None)
    if want is not None and want != input_channels:
        raise ConfigError(f"the space's networks take {input_channels} input channel(s) but task type "
                          f"{type_name!r} gives {want}{_CHANNEL_HINT.get(type_name, '')}; set "
                          f"input_channels: {want} in the space", source=source, field="input_channels")
    return task


_CHANNEL_HINT = {
    "flow": " (two RGB frames stacked)",
    "digits": " (grey 8x8 digits)",
    "digits-hard": " (grey digits on a cluttered canvas)",
    "npz": " (from the shape of x)",
    "folder": " (1 when every image is grey, else RGB)",
}


def _reraise_at(field: str | Callable[[ConfigError], str], ctx: TaskContext, fn: Callable[[], Any]) -> Any:
    """Run `fn`; a ConfigError about a data file comes back naming the config file and field too."""
    try:
        return fn()
    except ConfigError as e:
        if e.source == ctx.source:
            raise
        name = field if isinstance(field, str) else field(e)
        raise ConfigError(str(e), source=ctx.source, field=name) from None


# ---- settings and factories of the built-in types ------------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowSettings(_Settings):
    type: Literal["flow"]
    train_data: str = "synthetic"  # "synthetic" or a list file of `frame1 frame2 flow` lines
    val_data: str = "synthetic"
    train_samples: int = Field(2000, gt=0)  # synthetic only
    val_samples: int = Field(200, gt=0)
    data_seed: int | None = 0  # None: the run's seed draws the synthetic data
    fit: Literal["resize", "crop"] = "resize"
    loss_weights: list[float] | None = None  # one per network output (graph order); None: equal
    layers: tuple[int, int] = (2, 5)
    max_translation: float = Field(0.08, ge=0, le=0.5)
    background_translation: float = Field(0.03, ge=0, le=0.5)
    max_rotation: float = Field(10.0, ge=0, le=90)
    max_scale: float = Field(0.1, ge=0, lt=0.9)
    noise: float = Field(0.02, ge=0, le=0.5)
    blur: float = Field(0.8, ge=0, le=10)
    brightness: float = Field(0.05, ge=0, lt=1)

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] <= v[1] <= 20:
            raise ValueError(f"must be [min, max] foreground layers with 0 <= min <= max <= 20, got {list(v)}")
        return v

    @field_validator("loss_weights")
    @classmethod
    def _weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not math.isfinite(x) or x < 0 for x in v) or not any(v)):
            raise ValueError("must be non-negative numbers, one per network output, not all zero")
        return v


def _make_flow(s: FlowSettings, ctx: TaskContext) -> Task:
    from edgenas.train.tasks.flow import FlowTask
    from edgenas.train.tasks.flow_formats import read_pair_list
    from edgenas.train.tasks.flow_synthetic import SynthSettings

    data = {}
    for key in ("train_data", "val_data"):
        value = getattr(s, key)
        if value != "synthetic":
            path = ctx.path(value)
            _reraise_at(f"task.{key}", ctx, lambda p=path: read_pair_list(p))
            value = str(path)
        data[key] = value
    synth = SynthSettings(layers=tuple(s.layers), max_translation=s.max_translation,
                          background_translation=s.background_translation, max_rotation=s.max_rotation,
                          max_scale=s.max_scale, noise=s.noise, blur=s.blur, brightness=s.brightness)
    return FlowTask(train_samples=s.train_samples, val_samples=s.val_samples, data_seed=s.data_seed, fit=s.fit,
                    loss_weights=s.loss_weights, synthetic=synth, **data)


class DigitsSettings(_Settings):
    type: Literal["digits"]
    val_fraction: float = Field(0.2, gt=0, lt=1)
    data_seed: int | None = 0


def _make_digits(s: DigitsSettings, ctx: TaskContext) -> Task:
    from edgenas.train.tasks.classification import DigitsTask

    return DigitsTask(data_seed=s.data_seed, val_fraction=s.val_fraction)


class DigitsHardSettings(_Settings):
    type: Literal["digits-hard"]
    train_samples: int = Field(4000, gt=0)
    val_samples: int = Field(1000, gt=0)
    val_fraction: float = Field(0.2, gt=0, lt=1)  # share of the 1797 digit images kept for validation
    data_seed: int | None = 0
    clutter: int = Field(3, ge=0, le=20)  # most clutter items (strokes, digit pieces) per image
    noise: float = Field(0.05, ge=0, le=1)


def _make_digits_hard(s: DigitsHardSettings, ctx: TaskContext) -> Task:
    from edgenas.train.tasks.classification import DigitsHardTask

    return DigitsHardTask(train_samples=s.train_samples, val_samples=s.val_samples, data_seed=s.data_seed,
                          val_fraction=s.val_fraction, clutter=s.clutter, noise=s.noise)


class NpzSettings(_Settings):
    type: Literal["npz"]
    path: str
    val_fraction: float = Field(0.2, gt=0, lt=1)
    data_seed: int | None = 0


def _make_npz(s: NpzSettings, ctx: TaskContext) -> Task:
    from edgenas.train.tasks.classification import NpzTask

    return _reraise_at("task.path", ctx, lambda: NpzTask(path=ctx.path(s.path), data_seed=s.data_seed,
                                                         val_fraction=s.val_fraction))


class FolderSettings(_Settings):
    type: Literal["folder"]
    path: str
    val_path: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1)
    data_seed: int | None = 0


def _make_folder(s: FolderSettings, ctx: TaskContext) -> Task:
    from edgenas.train.tasks.classification import FolderTask

    val = None if s.val_path is None else ctx.path(s.val_path)
    def field(e: ConfigError) -> str:
        return "task.val_path" if val is not None and Path(str(e.source)).is_relative_to(val) else "task.path"

    return _reraise_at(field, ctx, lambda: FolderTask(path=ctx.path(s.path), val_path=val, data_seed=s.data_seed,
                                          val_fraction=s.val_fraction))


class PluginSettings(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # the rest goes to the plug-in

    type: Literal["plugin"]
    entry: str

    @field_validator("entry")
    @classmethod
    def _entry_form(cls, v: str) -> str:
        module, _, attr = v.partition(":")
        if not module.strip() or not attr.strip():
            raise ValueError(f"must look like 'module:function', got {v!r}")
        return v.strip()


def _make_plugin(s: PluginSettings, ctx: TaskContext) -> Task:
    from edgenas.train.tasks.plugin import load_plugin_task

    return load_plugin_task(s.entry, dict(s.model_extra or {}), ctx)


register_task("flow", FlowSettings, _make_flow, "optical flow: synthetic (FlyingChairs-like) or .flo / KITTI files")
register_task("digits", DigitsSettings, _make_digits, "scikit-learn's 8x8 digits, resized")
register_task("digits-hard", DigitsHardSettings, _make_digits_hard, "digits at random scale and place with clutter")
register_task("npz", NpzSettings, _make_npz, "a user's .npz arrays x [N,H,W(,C)], y [N]")
register_task("folder", FolderSettings, _make_folder, "a user's image folder, one sub-folder per class")
register_task("plugin", PluginSettings, _make_plugin, "a user's Python function module:function returning a Task")
