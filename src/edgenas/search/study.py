"""A search study: the config resolved into a Problem, the Optuna study that holds it, and its Pareto front.

The study keeps its own config (the space YAML with `extends` merged and the `search:` section as run) in
a study user attribute, so `edgenas worker --storage URL --study NAME` needs nothing else, and resuming
checks that the search has not changed underneath the trials already there.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgenas.errors import ConfigError
from edgenas.hardware.profile import DEFAULT_PROFILE, HardwareProfile, load_profile_spec
from edgenas.search.evaluators import EvalContext, build_stages
from edgenas.search.objectives import Objective, Problem, check_objectives, parse_constraint
from edgenas.search.settings import SearchSection, parse_search_section
from edgenas.space.config import SpaceConfig, config_from_dict, format_resolution, parse_resolution
from edgenas.space.nb201 import NB201, NB201Space
from edgenas.space.space import SearchSpace

# Spaces known only through tables of measured metrics (no network to build): `space: NAME` in a search YAML.
TABLE_SPACES: dict[str, NB201Space] = {"nb201": NB201}
_TABLE_CONFIG_FIELDS = ("space", "name", "description", "search")

CONFIG_ATTR = "edgenas:config"  # the space YAML as run (text)
PROFILE_ATTR = "edgenas:profile"  # the hardware profile's fields (so workers need no profile file)
FINGERPRINT_ATTR = "edgenas:fingerprint"  # what must not change when a study is resumed
TARGET_ATTR = "edgenas:trials"  # the requested number of COMPLETE trials
OBJECTIVES_ATTR = "edgenas:objectives"  # [[metric, direction], ...]
RECORD_ATTR = "edgenas"  # per trial: genotype, real objective values, feasibility, metrics, what was reused


@dataclass(frozen=True)
class SearchSetup:
    """Everything a worker needs, resolved and validated."""

    space: SearchSpace | NB201Space
    section: SearchSection
    resolution: tuple[int, int] | None  # None for a table-only space
    profile: HardwareProfile
    problem: Problem
    strategy: str
    config_text: str
    source: str
    cache_path: str | None = None
    name: str = ""  # the config's name: the default study name

    @property
    def resolution_text(self) -> str:
        return format_resolution(self.resolution) if self.resolution else "-"

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self.problem.objectives

    def fingerprint(self) -> str:
        """Space, resolution, device, objectives, constraints and evaluators: change any and the trials
        already in a study no longer mean the same thing."""
        blob = {
            "space": self.space.space_key,
            "choices": {k: list(map(str, v)) for k, v in self.space.choices.items()},
            "resolution": self.resolution_text,
            "profile": self.profile.to_dict(),
            "objectives": [[o.metric, o.direction] for o in self.objectives],
            "constraints": [c.text for c in self.problem.constraints],
            "evaluators": [s.key for s in self.problem.stages],
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _raw_config(path: Path) -> dict[str, Any]:
    """The merged mapping of a space YAML (extends resolved), as the space loader reads it."""
    from edgenas.space.config import read_config_mapping  # the loader's own merge, so both agree

    return read_config_mapping(path)


def prepare_from_file(config: str | Path, *, trials: int | None = None, seed: int | None = None,
                      strategy: str | None = None, cache_path: str | None = None) -> SearchSetup:
    """Load a space YAML with a `search:` section; command-line values override the section's."""
    from edgenas.space.config import resolve_space_path

    path = resolve_space_path(str(config))
    raw = _raw_config(path)
    if "space" not in raw:
        config_from_dict(raw, str(path))  # full validation with the space loader's messages first
    raw.pop("extends", None)
    search = dict(raw.get("search") or {})
    if trials is not None:
        search["trials"] = trials
    if seed is not None:
        search["seed"] = seed
    if strategy is not None:
        search["strategy"] = strategy
    base_dir = path.parent.resolve()
    # Paths in evaluator options become absolute, so the stored config works from any folder.
    evs = []
    for spec in search.get("evaluators") or []:
        for key in ("path", "checkpoint"):  # a table's CSV, a supernet's folder
            if isinstance(spec, dict) and isinstance(spec.get(key), str) and not Path(spec[key]).is_absolute():
                spec = {**spec, key: str(base_dir / spec[key])}
        evs.append(spec)
    if "evaluators" in search:
        search["evaluators"] = evs
    raw["search"] = search
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    return prepare_from_text(text, str(path), base_dir=str(base_dir), cache_path=cache_path)


def prepare_from_text(text: str, source: str, *, base_dir: str = ".", cache_path: str | None = None,
                      profile: HardwareProfile | None = None) -> SearchSetup:
    """Build a SearchSetup from the config text (a file's content, or the text stored in a study)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed YAML: {e}", source=source) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of fields", source=source)
    if "space" in raw:
        return _prepare_table_space(raw, text, source, base_dir=base_dir, cache_path=cache_path, profile=profile)
    cfg: SpaceConfig = config_from_dict(raw, source)
    space = SearchSpace(cfg, source)
    section = parse_search_section(cfg.search, source)

    # resolution: the section's, else the report's key resolution, else the space's first
    res_text = section.resolution or cfg.report.get("key_resolution")
    if res_text:
        try:
            resolution = parse_resolution(res_text)
        except ValueError as e:
            raise ConfigError(str(e), source=source, field="search.resolution") from None
    else:
        resolution = cfg.resolutions[0]
    if resolution[0] % space.stride or resolution[1] % space.stride:
        raise ConfigError(f"{format_resolution(resolution)} is not divisible by the network's total stride "
                          f"{space.stride}", source=source, field="search.resolution")

    if profile is None:
        spec = section.hardware or (cfg.hardware[0] if cfg.hardware else DEFAULT_PROFILE)
        try:
            profile = load_profile_spec(spec)
        except ConfigError as e:  # its text names the spec as typed and the field that is wrong
            raise ConfigError(str(e), source=source, field="search.hardware") from None

    ctx = EvalContext(space, resolution, profile, cache_path=cache_path, base_dir=base_dir)
    return _setup(ctx, section, text, source, cfg.name)


def _prepare_table_space(raw: dict[str, Any], text: str, source: str, *, base_dir: str, cache_path: str | None,
                         profile: HardwareProfile | None) -> SearchSetup:
    """`space: nb201`: a built-in space known only through tables; evaluators must be tables."""
    unknown = [k for k in raw if k not in _TABLE_CONFIG_FIELDS]
    if unknown:
        raise ConfigError(f"unknown field for a table-only space; allowed: {', '.join(_TABLE_CONFIG_FIELDS)}",
                          source=source, field=str(unknown[0]))
    space = TABLE_SPACES.get(str(raw["space"]))
    if space is None:
        raise ConfigError(f"unknown table-only space {raw['space']!r}; allowed: {', '.join(TABLE_SPACES)} (a space "
                          "of networks is declared with its own fields instead, see `edgenas sweep --help`)",
                          source=source, field="space")
    search = raw.get("search")
    if not isinstance(search, dict):
        raise ConfigError("a table-only space needs a `search:` section with objectives and a table evaluator",
                          source=source, field="search")
    if "evaluators" not in search:
        raise ConfigError(f"the {space.name} space is known only through tables: give `evaluators: [{{type: table, "
                          "path: FILE.csv, key_column: arch}]`", source=source, field="search.evaluators")
    section = parse_search_section(search, source)
    if section.resolution is not None:
        raise ConfigError(f"the {space.name} space is not built at a resolution; remove it", source=source,
                          field="search.resolution")
    if profile is None:
        try:
            profile = load_profile_spec(section.hardware or DEFAULT_PROFILE)
        except ConfigError as e:
            raise ConfigError(str(e), source=source, field="search.hardware") from None
    ctx = EvalContext(space, None, profile, cache_path=cache_path, base_dir=base_dir)
    return _setup(ctx, section, text, source, str(raw.get("name") or space.name))


def _setup(ctx: EvalContext, section: SearchSection, text: str, source: str, name: str) -> SearchSetup:
    """Evaluators, objectives, constraints and strategy, checked against each other."""
    stages = build_stages(list(section.evaluators), ctx, source=source)
    available = [m for s in stages for m in s.metrics]
    objectives = check_objectives(section.objectives, available, source=source)
    constraints = [parse_constraint(c, ctx.profile, available, source=source, field_name=f"search.constraints[{i}]")
                   for i, c in enumerate(section.constraints)]
    problem = Problem(tuple(objectives), tuple(constraints), tuple(stages))
    enqueued_genotypes(ctx.space, section, source)  # checked before anything runs
    strategy = _check_strategy(section.strategy, len(objectives), source)
    return SearchSetup(ctx.space, section, ctx.resolution, ctx.profile, problem, strategy, text, source,
                       ctx.cache_path, name)


def enqueued_genotypes(space: Any, section: SearchSection, source: str) -> list[Any]:
    """`search.enqueue` as genotypes of the space (a one-line error naming the entry otherwise)."""
    out = []
    for i, text in enumerate(section.enqueue):
        try:
            out.append(space.parse_genotype(text))
        except ConfigError as e:
            raise ConfigError(e.message, source=source, field=f"search.enqueue[{i}]") from None
    return out


def _check_strategy(name: str | None, n_objectives: int, source: str) -> str:
    from edgenas.search.strategies import DEFAULT_STRATEGY, strategy_names

    name = name or DEFAULT_STRATEGY
    if name not in strategy_names():
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(strategy_names())}", source=source,
                          field="search.strategy")
    return name


# ---- the Optuna study ---------------------------------------------------------------------------------------


def study_directions(setup: SearchSetup) -> tuple[str, ...]:
    """The directions the Optuna study is created with (one per objective, or one for a scalarised strategy)."""
    return make_strategy(setup, seed=0).directions


def study_metric_names(setup: SearchSetup) -> list[str]:
    """What each value the study is told means: the objective metrics in order (so optuna-dashboard and
    `plot_pareto_front` label their axes `fps`, `sram_kib` rather than `0`, `1`), or, for a strategy that
    scalarises them into one value (mnas), `<strategy>_reward`."""
    strategy = make_strategy(setup, seed=0)
    if getattr(strategy, "transform", None) is None and len(strategy.directions) == len(setup.objectives):
        return [o.metric for o in setup.objectives]
    n = len(strategy.directions)
    return [f"{setup.strategy}_reward"] if n == 1 else [f"{setup.strategy}_{i}" for i in range(n)]


def name_metrics(study: Any, setup: SearchSetup) -> None:
    """Name the study's values unless they are named (a study made by an edgenas that did not name them gets
    its names when it is resumed). Optuna marks `set_metric_names` experimental: no news to our users."""
    import optuna

    if study.metric_names is not None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(study_metric_names(setup))


def trial_constraints_supported() -> bool:
    """Optuna >= 5 takes constraints per trial (`Trial.set_constraint`); its samplers read them from there."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def make_strategy(setup: SearchSetup, *, seed: int, known: Any = None) -> Any:
    """The strategy's sampler. The hard limits reach it either as per-trial constraints (Optuna >= 5's
    samplers read those) or, for samplers that take one, through a `constraints_func`. `known`: params ->
    objective values known before evaluation (None where not), for a strategy that takes it."""
    from edgenas.search.strategies import make_strategy as make
    from edgenas.search.strategies import uses_known

    n = len(setup.problem.constraint_names)

    def constraints_func(trial: Any) -> list[float]:
        c = (trial.user_attrs.get(RECORD_ATTR) or {}).get("constraints")
        return [float(v) for v in c] if isinstance(c, list) and len(c) == n else [1.0] * n

    kwargs = dict(seed=seed, choices=setup.space.choices, directions=[o.direction for o in setup.objectives],
                  **setup.section.strategy_options)
    if uses_known(setup.strategy) and "reference" not in kwargs:
        kwargs["reference"] = objective_limits(setup.problem)
    if known is not None and uses_known(setup.strategy):  # cheap objectives of every candidate (worker.py)
        kwargs["known"] = known
    try:
        plain = make(setup.strategy, **kwargs)
    except ConfigError as e:
        raise _strategy_error(e, setup.source) from None
    if trial_constraints_supported() and type(plain.sampler).__module__.startswith("optuna."):
        return plain
    try:
        return make(setup.strategy, constraints_func=constraints_func, **kwargs)
    except ConfigError as e:
        if "constraints_func" not in str(e):
            raise _strategy_error(e, setup.source) from None
        return plain  # a strategy without constraint handling (random): feasibility is still recorded per trial


def objective_limits(problem: Problem) -> list[float | None]:
    """Per objective, the tightest hard limit on its worse side (`acc >= 90` for a maximised accuracy), else
    None: what a strategy that takes a reference point should measure the front's hypervolume from, so it
    spends no proposals on the region the constraints rule out."""
    out: list[float | None] = []
    for o in problem.objectives:
        worse_side = (">=", ">") if o.direction == "max" else ("<=", "<")
        limits = [c.limit for c in problem.constraints if c.metric == o.metric and c.op in worse_side]
        out.append(None if not limits else (max(limits) if o.direction == "max" else min(limits)))
    return out


def _strategy_error(e: ConfigError, source: str) -> ConfigError:
    field = "search.strategy" if e.field in (None, "strategy") else f"search.strategy_options.{e.field}"
    if e.field == "strategy" and "option" in e.message:
        field = "search.strategy_options"
    return ConfigError(e.message, source=source, field=field)


def create_or_load_study(setup: SearchSetup, storage: Any, study_name: str, *, trials: int) -> Any:
    """Create the study, or load it when it exists (resume); refuse one made for a different search."""
    import optuna

    directions = list(study_directions(setup))
    fp = setup.fingerprint()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        study = None
    if study is None:
        try:
            study = optuna.create_study(study_name=study_name, storage=storage, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:  # another process created it a moment ago
            study = optuna.load_study(study_name=study_name, storage=storage)
        else:
            study.set_user_attr(CONFIG_ATTR, setup.config_text)
            study.set_user_attr(PROFILE_ATTR, setup.profile.to_dict())
            study.set_user_attr(FINGERPRINT_ATTR, fp)
            study.set_user_attr(OBJECTIVES_ATTR, [[o.metric, o.direction] for o in setup.objectives])
    old = study.user_attrs.get(FINGERPRINT_ATTR)
    if old is None:
        raise ConfigError(f"study {study_name!r} exists but was not made by edgenas search; pick another --study",
                          field="--study")
    if old != fp or [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(f"study {study_name!r} exists for a different search (space, resolution, hardware, "
                          "objectives, constraints, evaluators or strategy kind differ); pick another --study name",
                          field="--study")
    name_metrics(study, setup)
    study.set_user_attr(CONFIG_ATTR, setup.config_text)  # strategy, seed and trials may change on resume
    study.set_user_attr(TARGET_ATTR, int(trials))
    return study


def load_setup_from_study(study: Any, *, cache_path: str | None = None) -> SearchSetup:
    """The setup a study was created with, from its stored config (for workers)."""
    text = study.user_attrs.get(CONFIG_ATTR)
    if not text:
        raise ConfigError(f"study {study.study_name!r} has no edgenas config; create it with `edgenas search`",
                          field="--study")
    prof = study.user_attrs.get(PROFILE_ATTR)
    try:
        profile = HardwareProfile(**prof) if isinstance(prof, dict) else None
    except TypeError:
        raise ConfigError(f"study {study.study_name!r} was made by a different edgenas version (its hardware "
                          "profile has other fields); install the same version", field="--study") from None
    setup = prepare_from_text(text, f"study {study.study_name}", cache_path=cache_path, profile=profile)
    if setup.fingerprint() != study.user_attrs.get(FINGERPRINT_ATTR):
        raise ConfigError(f"study {study.study_name!r} was made by a different edgenas (the evaluators or the "
                          "compiler version differ from this machine's); install the same version",
                          field="--study")
    return setup


# ---- results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRow:
    """One COMPLETE trial as the search saw it: the real objective values, feasibility and metrics."""

    number: int
    arch_id: str
    genotype: dict[str, Any]
    values: tuple[float, ...]
    feasible: bool
    violated: tuple[str, ...]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    reused: bool = False


def trial_rows(study: Any) -> list[TrialRow]:
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = t.user_attrs.get(RECORD_ATTR)
        if not isinstance(rec, dict) or not isinstance(rec.get("values"), list):
            continue
        rows.append(TrialRow(t.number, t.user_attrs.get("arch_id", ""), dict(t.params),
                             tuple(_float(v) for v in rec["values"]), bool(rec.get("feasible", False)),
                             tuple(rec.get("violated", ())), dict(rec.get("metrics", {})),
                             not rec.get("measured")))
    return rows


def _float(v: Any) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v)
    return float(v)


def pareto_front(rows: Sequence[TrialRow], objectives: Sequence[Objective]) -> list[TrialRow]:
    """Feasible trials no other feasible trial dominates; one row per architecture (its first trial)."""
    from edgenas.search.pareto import nondominated_mask

    seen: set[str] = set()
    cands = []
    for r in rows:
        if r.feasible and r.arch_id not in seen and all(math.isfinite(v) for v in r.values):
            seen.add(r.arch_id)
            cands.append(r)
    if not cands:
        return []
    mask = nondominated_mask([list(r.values) for r in cands], [o.direction for o in objectives])
    front = [r for r, keep in zip(cands, mask) if keep]
    return sorted(front, key=lambda r: tuple(-v if o.direction == "max" else v
                                             for v, o in zip(r.values, objectives)))


def study_objectives(study: Any) -> list[Objective]:
    return [Objective(m, d) for m, d in study.user_attrs.get(OBJECTIVES_ATTR, [])]


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO and warns about experimental heartbeat features: keep stderr for us."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
