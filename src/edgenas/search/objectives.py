"""Objectives, hard limits and the evaluation of one candidate: cheap evaluators first, expensive ones only
for candidates that meet every limit the cheap ones can decide.

Pure logic: measuring (and remembering what was measured) is passed in as a function, so this module does
not know about storage, Optuna or processes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from edgenas.errors import ConfigError
from edgenas.hardware.profile import HardwareProfile
from edgenas.search.evaluators import MetricValue, Stage
from edgenas.search.settings import ObjectiveSpec
from edgenas.space.genotype import Genotype

# A design the cost engine flags with any of these never fits the device, whatever the constraints say.
MEMORY_FLAGS = ("over_sram", "over_flash")
# `METRIC <= device`: the device's size for these metrics (KiB).
_DEVICE_FIELDS = {"sram_kib": "sram_kib", "offchip_flash_kib": "flash_kib", "dram_kib": "dram_kib"}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|<|>|=<|=>)\s*(\S.*?)\s*$")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Literal["max", "min"]

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "max" else "minimize"

    @property
    def worst(self) -> float:
        """The value reported for a candidate that has no figure for this metric (failed or skipped)."""
        return -math.inf if self.direction == "max" else math.inf


@dataclass(frozen=True)
class Constraint:
    """A hard limit `metric op limit`. `violation` is what Optuna's constraints_func wants: <= 0 when met,
    else how far off, relative to the limit (so limits of different units add up sensibly)."""

    metric: str
    op: Literal["<=", "<", ">=", ">"]
    limit: float
    text: str  # as written, with `device` resolved: "sram_kib <= 2048 (device)"

    def violation(self, value: float) -> float:
        scale = abs(self.limit) or 1.0
        d = (value - self.limit) / scale if self.op in ("<=", "<") else (self.limit - value) / scale
        if self.op in ("<", ">") and d == 0.0:
            return 1e-9
        return d

    def met(self, value: float) -> bool:
        return self.violation(value) <= 0.0


def parse_constraint(text: str, profile: HardwareProfile, available: Sequence[str], *, source: str | None = None,
                     field_name: str = "search.constraints") -> Constraint:
    m = _CONSTRAINT_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ConfigError(f"expected 'METRIC <= LIMIT' (or <, >=, >; LIMIT a number or `device`), got {text!r}",
                          source=source, field=field_name)
    metric, op, rhs = m.group(1), m.group(2), m.group(3)
    op = {"=<": "<=", "=>": ">="}.get(op, op)
    if metric not in available:
        raise ConfigError(f"no configured evaluator produces metric {metric!r}; available: {', '.join(available)}",
                          source=source, field=field_name)
    if rhs.lower() == "device":
        base = next((k for k in _DEVICE_FIELDS if metric.endswith(k)), None)
        if base is None:
            raise ConfigError(f"`device` is a limit only for {', '.join(_DEVICE_FIELDS)}; give a number for {metric}",
                              source=source, field=field_name)
        limit = getattr(profile, _DEVICE_FIELDS[base])
        if limit is None:
            raise ConfigError(f"hardware profile {profile.name} gives no {_DEVICE_FIELDS[base]}; give a number",
                              source=source, field=field_name)
        return Constraint(metric, op, float(limit), f"{metric} {op} {limit:g} (device)")  # type: ignore[arg-type]
    try:
        limit = float(rhs)
    except ValueError:
        raise ConfigError(f"limit must be a number or `device`, got {rhs!r}", source=source,
                          field=field_name) from None
    if math.isnan(limit):
        raise ConfigError("limit must be a number", source=source, field=field_name)
    return Constraint(metric, op, limit, f"{metric} {op} {limit:g}")  # type: ignore[arg-type]


def check_objectives(specs: Sequence[ObjectiveSpec], available: Sequence[str], *,
                     source: str | None = None) -> list[Objective]:
    out: list[Objective] = []
    for i, spec in enumerate(specs):
        if spec.metric not in available:
            raise ConfigError(f"no configured evaluator produces metric {spec.metric!r}; available: "
                              f"{', '.join(available)}", source=source, field=f"search.objectives[{i}].metric")
        if any(o.metric == spec.metric for o in out):
            raise ConfigError(f"metric {spec.metric!r} is an objective twice", source=source,
                              field=f"search.objectives[{i}].metric")
        out.append(Objective(spec.metric, spec.direction))
    return out


@dataclass(frozen=True)
class StageResult:
    """What one evaluator gave for one candidate: metrics, or an error; `reused` when it came from storage."""

    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    error: str | None = None
    reused: bool = False


@dataclass(frozen=True)
class Outcome:
    values: list[float]  # one per objective, in order; the worst value where the metric is missing
    constraint_values: list[float]  # per constraint, then memory flags, then failure: <= 0 means met
    feasible: bool
    metrics: dict[str, MetricValue]
    violated: list[str]  # constraint texts (and "over_sram", "failed: ...") that the candidate breaks
    measured: list[str]  # stage names run for this candidate
    reused: list[str]  # stage names served from storage
    skipped: list[str]  # expensive stage names not run because the candidate already broke a limit
    error: str | None = None


# (stage, candidate, the candidate's metrics from the stages before it) -> result
Measure = Callable[[Stage, Genotype, Mapping[str, MetricValue]], StageResult]


@dataclass(frozen=True)
class Problem:
    """Objectives + hard limits + evaluators (cheap first), joined by `evaluate`."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    stages: tuple[Stage, ...]

    @property
    def constraint_names(self) -> list[str]:
        return [c.text for c in self.constraints] + ["fits device memory", "evaluated"]

    def _violations(self, metrics: Mapping[str, MetricValue], errors: list[str]) -> tuple[list[float], list[str]]:
        values, broken = [], []
        for c in self.constraints:
            v = metrics.get(c.metric)
            d = c.violation(float(v)) if v is not None else 0.0  # unknown yet: decided when measured
            values.append(d)
            if d > 0:
                broken.append(c.text)
        flags = [f for f in MEMORY_FLAGS if bool(metrics.get(f, False))]
        values.append(float(len(flags)))
        broken.extend(flags)
        values.append(1.0 if errors else 0.0)
        broken.extend(f"failed: {e}" for e in errors)
        return values, broken

    def evaluate(self, genotype: Genotype, measure: Measure) -> Outcome:
        metrics: dict[str, MetricValue] = {}
        errors: list[str] = []
        measured, reused, skipped = [], [], []
        for stage in self.stages:
            if stage.cost == "expensive" and self._violations(metrics, errors)[1]:
                skipped.append(stage.name)
                continue
            res = measure(stage, genotype, dict(metrics))
            (reused if res.reused else measured).append(stage.name)
            if res.error is not None:
                errors.append(f"{stage.name}: {res.error}")
            else:
                metrics.update(stage.rename(res.metrics))
        if not errors:
            needed = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
            lost = [m for m in dict.fromkeys(needed) if m not in metrics and not skipped]
            if lost:
                errors.append(f"no value for {', '.join(lost)}")
        cvalues, broken = self._violations(metrics, errors)
        values = []
        for o in self.objectives:
            v = metrics.get(o.metric)
            values.append(float(v) if v is not None and not math.isnan(float(v)) else o.worst)
        return Outcome(values=values, constraint_values=cvalues, feasible=not broken, metrics=metrics,
                       violated=broken, measured=measured, reused=reused, skipped=skipped,
                       error="; ".join(errors) or None)

    def available_metrics(self) -> list[str]:
        return [m for s in self.stages for m in s.metrics]
