"""Genotype <-> Optuna params: one `suggest_categorical` per choice point.

Optuna stores categorical choices that are None, bool, int, float or str; a choice point whose options
are anything else (a tuple, a dict) is suggested by its options' `str()` and mapped back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import CategoricalDistribution
from optuna.trial import BaseTrial

from edgenas.errors import ConfigError

_PRIMITIVE = (type(None), bool, int, float, str)


def _storable(opts: Sequence[Any]) -> bool:
    return all(isinstance(o, _PRIMITIVE) for o in opts)


def check_choices(choices: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """A copy with every choice point non-empty and its options distinct (one-line ConfigError)."""
    if not choices:
        raise ConfigError("a search strategy needs at least one choice point")
    out: dict[str, list[Any]] = {}
    for k, opts in choices.items():
        opts = list(opts)
        if not opts:
            raise ConfigError(f"choice point {k!r} has no options", field=f"choices.{k}")
        if len({repr(o) for o in opts}) != len(opts):
            raise ConfigError(f"choice point {k!r} lists an option twice", field=f"choices.{k}")
        out[str(k)] = opts
    return out


def distributions(choices: Mapping[str, Sequence[Any]]) -> dict[str, CategoricalDistribution]:
    return {k: CategoricalDistribution(list(opts) if _storable(opts) else [str(o) for o in opts])
            for k, opts in choices.items()}


def suggest_genotype(trial: BaseTrial, choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """One `suggest_categorical` per choice point, in the space's order; returns the option values."""
    out: dict[str, Any] = {}
    for k, opts in choices.items():
        if _storable(opts):
            out[k] = trial.suggest_categorical(k, list(opts))
        else:
            s = trial.suggest_categorical(k, [str(o) for o in opts])
            out[k] = next(o for o in opts if str(o) == s)
    return out


def params_to_values(params: Mapping[str, Any], choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Trial params (as stored) -> option values; raises KeyError for a param the space lacks."""
    out = {}
    for k, opts in choices.items():
        v = params[k]
        out[k] = v if _storable(opts) else next(o for o in opts if str(o) == v)
    return out


def values_to_params(values: Mapping[str, Any], choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Option values -> trial params as stored (the inverse of `params_to_values`), e.g. for `enqueue_trial`."""
    return {k: v if _storable(choices[k]) else str(v) for k, v in values.items()}
