"""One registry-backed factory for search strategies: `make_strategy(name, ...)` / `make_sampler(name, ...)`.

A strategy is an Optuna sampler plus how the study sees the objectives: most strategies optimise the
objectives as they are; "mnas" optimises one scalar reward (single-objective study, "maximize").
Options are keyword arguments of the sampler (strings from a command line are coerced to numbers and
booleans); an unknown option or strategy is a one-line ConfigError listing what is allowed.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, NSGAIIISampler, NSGAIISampler, RandomSampler, TPESampler

from edgenas.errors import ConfigError
from edgenas.search.strategies._evolution import RegularizedEvolutionSampler
from edgenas.search.strategies._frontier import FrontierSampler
from edgenas.search.strategies._mnas import MnasReward
from edgenas.search.strategies._mo import signs
from edgenas.search.strategies._params import check_choices

DEFAULT_STRATEGY = "frontier"
ANCHORS = ("random", "nsga2", "tpe")


@dataclass(frozen=True)
class Strategy:
    """A sampler and the study it expects: `directions` of the Optuna study, and `study_values` mapping
    the real objective values (in the caller's order and directions) to what the study is told."""

    name: str
    sampler: BaseSampler
    directions: tuple[str, ...]
    transform: Callable[[Sequence[float]], float] | None = None

    def study_values(self, values: Sequence[float]) -> list[float]:
        return list(map(float, values)) if self.transform is None else [float(self.transform(values))]


@dataclass(frozen=True)
class _Entry:
    summary: str
    build: Callable[..., Strategy]
    uses_known: bool = False  # accepts `known` (cheap objectives known before evaluation) and `reference`
    multi_objective: bool = True
    reads_constraints: bool = False  # reads Optuna's per-trial constraints (`Trial.set_constraint`)


def _coerce(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    low = v.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _check_options(name: str, options: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    bad = [k for k in options if k not in allowed]
    if bad:
        raise ConfigError(f"strategy {name!r} has no option(s) {', '.join(bad)}; allowed: "
                          f"{', '.join(allowed) or '(none)'}", field="strategy")
    return {k: _coerce(v) for k, v in options.items()}


def _optuna(cls: type[BaseSampler], name: str, seed: int, directions: Sequence[str],
            options: Mapping[str, Any], single_only: bool = False) -> Strategy:
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "seed", "args", "kwargs")]
    opts = _check_options(name, options, allowed)
    if single_only and len(directions) > 1:
        raise ConfigError(f"strategy {name!r} is single-objective; got {len(directions)} objectives "
                          "(use mnas to scalarise)", field="strategy")
    try:
        with warnings.catch_warnings():  # NSGA-III and GP are "experimental" in Optuna: chosen knowingly
            warnings.simplefilter("ignore", ExperimentalWarning)
            sampler = cls(seed=seed, **opts)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"strategy {name!r}: {e}", field="strategy") from None
    return Strategy(name, sampler, tuple(directions))


def _random(seed, choices, directions, options) -> Strategy:
    return _optuna(RandomSampler, "random", seed, directions, options)


def _nsga2(seed, choices, directions, options) -> Strategy:
    return _optuna(NSGAIISampler, "nsga2", seed, directions, options)


def _nsga3(seed, choices, directions, options) -> Strategy:
    return _optuna(NSGAIIISampler, "nsga3", seed, directions, options)


def _tpe(seed, choices, directions, options) -> Strategy:
    return _optuna(TPESampler, "tpe", seed, directions, options)


def gp_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "scipy"))


def _gp(seed, choices, directions, options) -> Strategy:
    if not gp_available():
        raise ConfigError("strategy 'gp' (Optuna's GPSampler) needs torch and scipy, which are not installed; "
                          "install torch (pip install torch==2.13.0, a CPU build) or pick another strategy",
                          field="strategy")
    from optuna.samplers import GPSampler

    return _optuna(GPSampler, "gp", seed, directions, options)


def _evolution(seed, choices, directions, options) -> Strategy:
    opts = _check_options("evolution", options, ["population_size", "sample_size", "constraints_func"])
    return Strategy("evolution", RegularizedEvolutionSampler(choices, seed=seed, **opts), tuple(directions))


def _frontier(seed, choices, directions, options) -> Strategy:
    opts = _check_options("frontier", options, ["n_startup", "beta", "max_pool", "max_train", "known", "reference",
                                                "side", "constraints_func"])
    return Strategy(DEFAULT_STRATEGY, FrontierSampler(choices, directions, seed=seed, **opts), tuple(directions))


_MNAS_KEYS = ("target", "w", "method", "penalty", "accuracy", "latency")


def _mnas(seed, choices, directions, options) -> Strategy:
    opts = dict(options)
    inner = str(opts.pop("sampler", "tpe"))
    reward = MnasReward.for_directions(directions, **{k: _coerce(opts.pop(k)) for k in _MNAS_KEYS if k in opts})
    if inner in ("mnas", DEFAULT_STRATEGY) or inner not in _REGISTRY:
        allowed = [n for n in _REGISTRY if n not in ("mnas", DEFAULT_STRATEGY)]
        raise ConfigError(f"mnas: sampler {inner!r} is not a single-objective strategy; allowed: "
                          f"{', '.join(allowed)}", field="sampler")
    s = _REGISTRY[inner].build(seed, choices, ("maximize",), opts)
    return Strategy("mnas", s.sampler, ("maximize",), reward)


_REGISTRY: dict[str, _Entry] = {
    DEFAULT_STRATEGY: _Entry("ours (default): GP surrogate per expensive objective, proposes the candidate with "
                             "the largest optimistic hypervolume improvement; uses cheap objectives exactly",
                             _frontier, uses_known=True),
    "random": _Entry("Optuna RandomSampler: uniform over the choices", _random),
    "nsga2": _Entry("Optuna NSGAIISampler (defaults: population 50)", _nsga2, reads_constraints=True),
    "nsga3": _Entry("Optuna NSGAIIISampler (defaults: population 50)", _nsga3, reads_constraints=True),
    "tpe": _Entry("Optuna TPESampler (multi-objective TPE, defaults)", _tpe, reads_constraints=True),
    "gp": _Entry("Optuna GPSampler (optional: needs torch and scipy)", _gp, reads_constraints=True),
    "evolution": _Entry("regularized (aging) evolution, tournament on non-dominated rank + crowding",
                        _evolution),
    "mnas": _Entry("MnasNet reward ACC*(LAT/TARGET)^w as one objective (options target, w=-0.07, "
                   "method=soft|hard|penalty, penalty, sampler=tpe)", _mnas, multi_objective=False),
}


def strategy_names() -> list[str]:
    return list(_REGISTRY)


def strategy_summary(name: str) -> str:
    return _entry(name).summary


def uses_known(name: str) -> bool:
    """Whether the strategy accepts `known=` (objectives known for every candidate before evaluation)."""
    return _entry(name).uses_known


def reads_constraints(name: str) -> bool:
    """Whether the strategy's sampler reads the constraints set on each trial (`Trial.set_constraint`,
    Optuna >= 5; what replaced `constraints_func`): a feasible trial is preferred to an infeasible one."""
    return _entry(name).reads_constraints


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; allowed: {', '.join(_REGISTRY)}", field="strategy") from None


def make_strategy(name: str, *, seed: int, choices: Mapping[str, Sequence[Any]], directions: Sequence[str],
                  **options: Any) -> Strategy:
    entry = _entry(name)
    dirs = tuple(str(getattr(d, "name", d)).lower() for d in directions)
    dirs = tuple("minimize" if s > 0 else "maximize" for s in signs(dirs))
    if not dirs:
        raise ConfigError("a search needs at least one objective direction", field="directions")
    return entry.build(int(seed), check_choices(choices), dirs, dict(options))


def make_sampler(name: str, *, seed: int, choices: Mapping[str, Sequence[Any]], directions: Sequence[str],
                 **options: Any) -> BaseSampler:
    """The Optuna sampler of strategy `name`. For "mnas" this is the inner single-objective sampler: the
    study must then be single-objective ("maximize") and told `make_strategy(...).study_values(values)`."""
    return make_strategy(name, seed=seed, choices=choices, directions=directions, **options).sampler
