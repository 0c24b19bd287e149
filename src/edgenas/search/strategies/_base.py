"""What edgenas's own samplers share: a finite categorical space proposed as a whole (relative sampling),
Optuna's random sampler for anything outside it, and the hard-limit values of each completed trial kept
on the trial (`CONSTRAINTS_ATTR`), so the sampler reads them back from the study like the values."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from edgenas.search.strategies._params import check_choices, distributions

CONSTRAINTS_ATTR = "edgenas:constraints"  # per trial: constraints_func's values (<= 0 where met)
ConstraintsFn = Callable[[FrozenTrial], Sequence[float]]


class CategoricalSampler(BaseSampler):
    """Subclasses set `_rng` (anything with `seed()`) and implement `sample_relative`."""

    _rng: Any

    def __init__(self, choices: Mapping[str, Sequence[Any]], *, seed: int | None,
                 constraints_func: ConstraintsFn | None) -> None:
        self._choices = check_choices(choices)
        self._dists = distributions(self._choices)
        self._constraints_func = constraints_func
        self._fallback = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        if self._constraints_func is not None and state == TrialState.COMPLETE:
            c = [float(v) for v in self._constraints_func(trial)]
            study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, c)
