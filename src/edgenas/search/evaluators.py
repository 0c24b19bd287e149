"""Evaluators: what turns a genotype into metrics during a search.

An evaluator is either cheap (the compiler, the analytic model, a table lookup: milliseconds to a second)
or expensive (training, a task evaluation: minutes to hours). The search runs every cheap one first and
hands a candidate to an expensive one only when it meets every hard limit the cheap ones could decide.

Built-in types: `compiler` (the profile's own evaluator through the sweep machinery and the measurement
cache), `analytic` (the roofline / calibrated model, no compiler), `table` (a CSV of known metrics), and
`proxy` / `train` (accuracy on the config's task, `train_eval.py`), `supernet` (a trained
supernet's estimate, `supernet_eval.py`). A user's own: `type: MODULE:FUNCTION`,
or a name an installed package registers under the `edgenas.evaluators` entry-point group (`plugins.py`);
FUNCTION(ctx, options, field) returns an Evaluator.
"""

from __future__ import annotations

import abc
import csv
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edgenas.errors import ConfigError, EdgeNasError
from edgenas.hardware.profile import HardwareProfile
from edgenas.space.config import format_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.nb201 import NB201Space
from edgenas.space.space import SearchSpace

Cost = Literal["cheap", "expensive"]
MetricValue = float | int | bool


class EvaluationFailed(EdgeNasError):
    """An evaluator could not produce metrics for a candidate. `retryable`: not a property of the candidate
    (timeout, crashed tool), so the failure is not stored and a later proposal measures it again."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class EvalContext:
    """What every evaluator of one search shares: the space, the resolution and the device."""

    space: SearchSpace | NB201Space
    resolution: tuple[int, int] | None  # None for a table-only space (nothing is built)
    profile: HardwareProfile
    cache_path: str | None = None  # the compiler's measurement cache (SQLite, keyed on model bytes)
    base_dir: str = "."  # relative paths in evaluator options are relative to the config file


@dataclass(frozen=True)
class Hints:
    """What the search knows when an evaluator starts on a candidate, for evaluators that can stop early
    (training): the candidate's metrics from the stages before (its FPS and SRAM, say), the objectives
    (metric, "max"/"min") with the evaluator's `prefix` on its own metric names, the feasible front so far
    (objective vectors; a function, since other workers add to it while this one trains), and in a
    single-objective study Optuna's pruner (`should_prune(step, value)`), and the rung records of successive
    halving."""

    known: Mapping[str, MetricValue] = field(default_factory=dict)
    objectives: tuple[tuple[str, str], ...] = ()
    front: Callable[[], list[tuple[float, ...]]] = field(default=list)
    prefix: str = ""
    should_prune: Callable[[int, float], bool] | None = None
    # Successive halving: record this candidate's value at a rung (a budget step), and read what the other
    # candidates of the study recorded there (their value and known metrics), across workers.
    record_rung: Callable[[int, float], None] | None = None
    rung_peers: Callable[[int], list[dict[str, float]]] | None = None


class Evaluator(abc.ABC):
    """Genotype -> metrics. Subclasses set `type_name`, `cost` and `metrics`, and implement `evaluate`."""

    type_name: ClassVar[str] = ""
    cost: Cost = "cheap"

    @property
    @abc.abstractmethod
    def metrics(self) -> tuple[str, ...]:
        """Names of the metrics `evaluate` may return (known before any evaluation, to validate configs)."""

    @abc.abstractmethod
    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        """Metrics of one candidate at the context's resolution on its device; raise EvaluationFailed."""

    def fingerprint(self) -> str:
        """Everything a stored result depends on besides (arch, resolution, device): tool versions, options.
        Change it and earlier results are not reused."""
        return self.type_name

    def evaluate_with(self, genotype: Genotype, hints: Hints) -> dict[str, MetricValue]:
        """`evaluate` with what the search knows; evaluators that can use it (to stop early) override this."""
        return self.evaluate(genotype)


@dataclass(frozen=True)
class Stage:
    """One configured evaluator: its unique name, cost and the prefix added to its metric names."""

    name: str
    evaluator: Evaluator
    cost: Cost
    prefix: str = ""
    metrics: tuple[str, ...] = field(default=())

    def rename(self, values: Mapping[str, MetricValue]) -> dict[str, MetricValue]:
        return {self.prefix + k: v for k, v in values.items()}

    @property
    def key(self) -> str:
        """The evaluator part of a measurement key."""
        return f"{self.name}:{self.evaluator.fingerprint()}"


EvaluatorFactory = Callable[[EvalContext, dict[str, Any], str], Evaluator]  # (context, options, field)
_REGISTRY: dict[str, EvaluatorFactory] = {}


def register_evaluator(type_name: str, factory: EvaluatorFactory) -> None:
    """Make `type: <type_name>` usable under `search.evaluators`."""
    _REGISTRY[type_name] = factory


def evaluator_types() -> list[str]:
    """Built-in types and those installed packages register (entry-point group `edgenas.evaluators`)."""
    from edgenas.plugins import EVALUATORS, registered

    _register_training_evaluators()
    return sorted({*_REGISTRY, *registered(EVALUATORS)})


def _factory(type_name: str, *, source: str | None, fld: str) -> EvaluatorFactory:
    """A built-in type, `module:function` (a plug-in factory), or a name an installed package registered."""
    from edgenas.plugins import EVALUATORS, is_entry_spec, load_entry, load_registered

    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    if is_entry_spec(type_name):
        factory = load_entry(type_name, source=source, field=f"{fld}.type")
    else:
        factory = load_registered(EVALUATORS, type_name, source=source, field=f"{fld}.type")
        if factory is None:
            raise ConfigError(f"unknown evaluator type {type_name!r}; available: {', '.join(evaluator_types())} "
                              "(or MODULE:FUNCTION for a plug-in)", source=source, field=f"{fld}.type")
    if not callable(factory):
        raise ConfigError(f"plug-in {type_name!r} is not a function (ctx, options, field) -> Evaluator",
                          source=source, field=f"{fld}.type")
    return factory


def _register_training_evaluators() -> None:
    """`proxy` and `train` live in their own module (they need the training extra only when used)."""
    import edgenas.search.supernet_eval
    import edgenas.search.train_eval  # noqa: F401  (registers them)


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    name: str | None = None
    prefix: str = ""
    cost: Cost | None = None


def _options(model: type[BaseModel], raw: dict[str, Any], field_name: str, source: str | None) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown option; allowed: {', '.join(model.model_fields)}"
        elif err["type"] == "missing":
            msg = "required option is missing"
        raise ConfigError(msg, source=source, field=f"{field_name}.{loc}" if loc else field_name) from None


def build_stages(specs: list[str | dict[str, Any]], ctx: EvalContext, *, source: str | None = None) -> list[Stage]:
    """The configured evaluators, cheap ones first (config order kept within each cost)."""
    _register_training_evaluators()
    stages: list[Stage] = []
    produced: dict[str, str] = {}
    for i, spec in enumerate(specs):
        fld = f"search.evaluators[{i}]"
        raw = {"type": spec} if isinstance(spec, str) else dict(spec)
        common = _options(_Common, raw, fld, source)
        factory = _factory(common.type, source=source, fld=fld)
        opts = {k: v for k, v in raw.items() if k not in _Common.model_fields}
        try:
            ev = factory(ctx, opts, fld)
        except ConfigError as e:
            if e.source or not source:
                raise
            raise ConfigError(e.message, source=source, field=e.field) from None
        name = common.name or common.type
        if any(s.name == name for s in stages):
            raise ConfigError(f"two evaluators are named {name!r}; give one a `name:`", source=source, field=fld)
        stage = Stage(name, ev, common.cost or ev.cost, common.prefix, tuple(common.prefix + m for m in ev.metrics))
        for m in stage.metrics:
            if m in produced:
                raise ConfigError(f"metric {m!r} is produced by both {produced[m]!r} and {name!r}; give one of them "
                                  "a `prefix:`", source=source, field=fld)
            produced[m] = name
        stages.append(stage)
    return sorted(stages, key=lambda s: s.cost == "expensive")


# ---- compiler and analytic model ------------------------------------------------------------------------

_ROW_METRICS_VELA = ("fps", "latency_ms", "inference_ms", "cycles_total", "cycles_npu", "sram_kib",
                     "offchip_flash_kib", "dram_kib", "offchip_flash_access_cycles", "dram_access_cycles",
                     "sram_access_cycles", "npu_ops", "cpu_ops", "encoded_weight_bytes")
_ROW_METRICS_ANALYTIC = ("fps", "latency_ms", "inference_ms", "cycles_total", "cycles_npu", "sram_kib",
                         "offchip_flash_kib", "dram_kib", "npu_ops", "cpu_ops", "encoded_weight_bytes")
_IR_METRICS = ("macs", "params", "weight_bytes", "peak_activation_kib", "receptive_field")
_VERDICTS = ("over_sram", "over_flash", "over_dram", "fps_end_to_end")


def _row_metrics(row: Mapping[str, Any]) -> dict[str, MetricValue]:
    """The numeric and boolean figures of a sweep row, plus latency_ms (= inference_ms)."""
    out: dict[str, MetricValue] = {}
    for k, v in row.items():
        if isinstance(v, bool) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            if isinstance(v, float) and math.isnan(v):
                continue
            out[k] = v
    if "inference_ms" in out:
        out["latency_ms"] = out["inference_ms"]
    return out


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompilerEvaluator(Evaluator):
    """The device profile's own evaluator (Vela for an NPU profile, the analytic model for an `evaluator:
    analytic` profile) exactly as `edgenas sweep` runs it, through the measurement cache."""

    type_name = "compiler"
    cost: Cost = "cheap"

    def __init__(self, ctx: EvalContext, *, force_analytic: bool = False) -> None:
        self.ctx = ctx
        self.analytic = force_analytic or ctx.profile.evaluator == "analytic"
        self._impl: Any = None
        self._cache: Any = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return (*(_ROW_METRICS_ANALYTIC if self.analytic else _ROW_METRICS_VELA), *_IR_METRICS, *_VERDICTS)

    def fingerprint(self) -> str:
        p = self.ctx.profile
        if self.analytic:
            cal = _file_digest(p.calibration) if p.calibration else "roofline"
            return f"analytic:{cal}"
        from edgenas.hardware.vela import compiler_version

        return f"{compiler_version()}:{_file_digest(p.vela_config) if p.vela_config else 'builtin-ini'}"

    def _evaluator(self) -> Any:
        if self._impl is None:
            if self.analytic:
                from edgenas.hardware.analytic import AnalyticEvaluator, Calibration

                p = self.ctx.profile
                self._impl = AnalyticEvaluator(p, Calibration.load(p.calibration) if p.calibration else None)
            else:
                from edgenas.sweep.runner import make_evaluator

                self._impl = make_evaluator(self.ctx.profile)
        return self._impl

    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        from edgenas.sweep.rows import measurement_row
        from edgenas.sweep.runner import weight_seed
        from edgenas.tflite.writer import WEIGHTS_DESCRIPTION, graph_to_tflite

        ctx = self.ctx
        try:
            graph = ctx.space.build(genotype, ctx.resolution)
        except ConfigError as e:  # a combination of choices that does not make a network: this candidate only
            raise EvaluationFailed(f"cannot build the network: {e.message}") from None
        seed = weight_seed(genotype.arch_id)
        if self.analytic:
            m = self._evaluator().evaluate_graph(graph)
        else:
            from edgenas.hardware.cache import MeasurementCache, cache_key

            data = graph_to_tflite(graph, seed=seed)
            key = cache_key(data, ctx.profile)
            if self._cache is None and ctx.cache_path:
                Path(ctx.cache_path).parent.mkdir(parents=True, exist_ok=True)
                self._cache = MeasurementCache(ctx.cache_path)
            m = self._cache.get(key) if self._cache is not None else None
            if m is None:
                m = self._evaluator().evaluate_bytes(data)
                if self._cache is not None:
                    self._cache.put(key, m)
        if not m.ok:
            raise EvaluationFailed(m.error or "the evaluator failed", retryable=m.retryable)
        row = measurement_row(ctx.space, genotype, ctx.resolution, graph, ctx.profile, m,
                              weights=f"{WEIGHTS_DESCRIPTION} seed={seed}")
        return _row_metrics(row)


def _needs_network(ctx: EvalContext, kind: str, fld: str) -> None:
    if getattr(ctx.space, "table_only", False):
        raise ConfigError(f"the {ctx.space.name} space is known only through tables (it has no network to "
                          f"{kind}); use a `table` evaluator", field=f"{fld}.type")


def _compiler_factory(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    _options(_NoOptions, opts, fld, None)
    _needs_network(ctx, "compile", fld)
    return CompilerEvaluator(ctx)


class AnalyticModelEvaluator(CompilerEvaluator):
    """The analytic cost model (roofline, or calibrated when the profile names a calibration) on any
    profile, without the compiler: microseconds, for ranking before compiling."""

    type_name = "analytic"

    def __init__(self, ctx: EvalContext) -> None:
        super().__init__(ctx, force_analytic=True)


def _analytic_factory(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    _options(_NoOptions, opts, fld, None)
    _needs_network(ctx, "model", fld)
    return AnalyticModelEvaluator(ctx)


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"


# ---- table lookup -----------------------------------------------------------------------------------------


class _TableOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    columns: list[str] | None = None  # metrics to take; default: every numeric column that is not a key
    key_column: str | None = None  # the column naming the architecture; default: match on the choice columns
    key: str | None = None  # how a genotype is written in key_column: a format string over the choices,
    # plus {genotype} (name=value,...), {arch_id} and, in a space with its own notation, {arch} (NB201's
    # `|op~0|+|...|`); default: {arch} where the space has one, else {genotype}


class TableEvaluator(Evaluator):
    """A CSV of known metrics (a sweep CSV, a benchmark table) as an evaluator: one row per architecture.

    Rows are found by `key_column` (formatted from the genotype with `key`), or, without one, by the
    columns named after the space's choices (plus `resolution` and `hardware` when the table has them,
    so a sweep CSV works as it is)."""

    type_name = "table"
    cost: Cost = "cheap"

    def __init__(self, ctx: EvalContext, opts: _TableOptions, fld: str) -> None:
        self.ctx = ctx
        path = Path(opts.path)
        if not path.is_absolute():
            path = Path(ctx.base_dir) / path
        self.path = path.resolve()
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
                header = list(rows[0]) if rows else []
        except OSError as e:
            raise ConfigError(f"cannot read table {opts.path} ({e.strerror})", field=f"{fld}.path") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise ConfigError(f"table {opts.path} is not a readable CSV ({e})", field=f"{fld}.path") from None
        if not rows:
            raise ConfigError(f"table {opts.path} has no rows", field=f"{fld}.path")
        choices = list(ctx.space.choices)
        self._arch = getattr(ctx.space, "arch_string", None)  # the space's own architecture notation, if any
        key_format = opts.key or ("{arch}" if self._arch else "{genotype}")
        if opts.key_column is not None:
            if opts.key_column not in header:
                raise ConfigError(f"table {opts.path} has no column {opts.key_column!r}; it has: {', '.join(header)}",
                                  field=f"{fld}.key_column")
            try:
                key_format.format(**self._key_fields(None, {c: "" for c in choices}))
            except (KeyError, IndexError, ValueError) as e:
                arch = ", {arch}" if self._arch else ""
                raise ConfigError(f"bad key format {key_format!r} ({e}); use {{genotype}}, {{arch_id}}{arch} or choice "
                                  f"names ({', '.join(choices)})", field=f"{fld}.key") from None
            self.match = [opts.key_column]
        else:
            missing = [c for c in choices if c not in header]
            if missing:
                raise ConfigError(f"table {opts.path} is missing the choice column(s) {', '.join(missing)} (or give "
                                  f"`key_column:`); it has: {', '.join(header)}", field=f"{fld}.path")
            context = ("hardware",) if ctx.resolution is None else ("resolution", "hardware")
            self.match = choices + [c for c in context if c in header]
        if opts.columns is not None:
            missing = [c for c in opts.columns if c not in header]
            if missing:
                raise ConfigError(f"table {opts.path} is missing the column(s) {', '.join(missing)}; it has: "
                                  f"{', '.join(header)}", field=f"{fld}.columns")
            cols = list(opts.columns)
        else:
            cols = [c for c in header if c not in self.match and c not in choices and _numeric(rows[0].get(c))]
        if not cols:
            raise ConfigError(f"table {opts.path} has no numeric metric columns", field=f"{fld}.columns")
        self.columns = tuple(cols)
        self.key_format = key_format
        self.key_column = opts.key_column
        self.rows: dict[tuple[str, ...], dict[str, str]] = {}
        for r in rows:
            self.rows.setdefault(tuple((r.get(c) or "").strip() for c in self.match), r)
        self._digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.columns

    def fingerprint(self) -> str:
        return f"table:{self._digest}:{','.join(self.columns)}:{self.key_column}:{self.key_format}"

    def _key_fields(self, g: Genotype | None, values: Mapping[str, Any]) -> dict[str, Any]:
        fields = {**values, "genotype": "" if g is None else str(g), "arch_id": "" if g is None else g.arch_id}
        if self._arch is not None:
            fields["arch"] = "" if g is None else self._arch(g)
        return fields

    def _lookup_key(self, g: Genotype) -> tuple[str, ...]:
        values = g.as_dict()
        if self.key_column is not None:
            return (self.key_format.format(**self._key_fields(g, values)),)
        extra = {"resolution": format_resolution(self.ctx.resolution) if self.ctx.resolution else "",
                 "hardware": self.ctx.profile.name}
        return tuple(str(values[c]) if c in values else extra[c] for c in self.match)

    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        key = self._lookup_key(genotype)
        row = self.rows.get(key)
        if row is None:
            where = ", ".join(f"{c}={v}" for c, v in zip(self.match, key))
            raise EvaluationFailed(f"no row of {self.path.name} matches {where}")
        out: dict[str, MetricValue] = {}
        for c in self.columns:
            v = _numeric(row.get(c))
            if v is None:
                raise EvaluationFailed(f"{self.path.name}: column {c!r} is not a number ({row.get(c)!r})")
            out[c] = v
        return out


def _numeric(text: str | None) -> MetricValue | None:
    if text is None:
        return None
    t = text.strip().lower()
    if t in ("true", "false"):
        return t == "true"
    try:
        v = float(t)
    except ValueError:
        return None
    return None if math.isnan(v) else v


def _table_factory(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    return TableEvaluator(ctx, _options(_TableOptions, opts, fld, None), fld)


register_evaluator("compiler", _compiler_factory)
register_evaluator("analytic", _analytic_factory)
register_evaluator("table", _table_factory)
