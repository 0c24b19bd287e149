"""Regularized (aging) evolution (Real et al., 2019) as an Optuna sampler.

The population is the `population_size` most recently completed trials of the study: a new child joins
it and the oldest member leaves, which is exactly aging. Because the population is read from the study
rather than kept in the sampler, it survives a restart and is shared by workers on one storage.

Per proposal: while fewer than `population_size` trials completed, a uniform random architecture; then a
tournament: `sample_size` members drawn without replacement, the best one is the parent, and the child
is the parent with exactly one choice point changed to another option (chosen uniformly).
"Best" for several objectives: lowest non-dominated rank within the population, then the larger NSGA-II
crowding distance, then the earlier drawn; for one objective the better value. With `constraints_func`,
a feasible member beats an infeasible one, and of two infeasible ones the smaller total violation wins.
The parent's trial number is recorded on the child (system attribute `evolution:parent`).

Defaults P = 20, S = 5: small populations suit budgets of hundreds (NAS-Bench-201's own baseline used
P = 10, S = 3; the original paper P = 100, S = 25 for tens of thousands of models).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from edgenas.errors import ConfigError
from edgenas.search.strategies._base import CONSTRAINTS_ATTR, CategoricalSampler, ConstraintsFn
from edgenas.search.strategies._mo import crowding_distance, nondominated_rank

PARENT_ATTR = "evolution:parent"


class RegularizedEvolutionSampler(CategoricalSampler):
    def __init__(self, choices: Mapping[str, Sequence[Any]], *, population_size: int = 20, sample_size: int = 5,
                 seed: int | None = None,
                 constraints_func: ConstraintsFn | None = None) -> None:
        if population_size < 2:
            raise ConfigError(f"population_size must be >= 2, got {population_size}", field="population_size")
        if not 1 <= sample_size <= population_size:
            raise ConfigError(f"sample_size must be in 1..population_size ({population_size}), got {sample_size}",
                              field="sample_size")
        super().__init__(choices, seed=seed, constraints_func=constraints_func)
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self._rng = random.Random(seed)

    def population(self, study: Study) -> list[FrozenTrial]:
        """The `population_size` most recently completed trials over this space, oldest first."""
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if all(k in t.params for k in self._dists) and t.values is not None]
        done.sort(key=lambda t: t.number)
        return done[-self.population_size:]

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        pop = self.population(study)
        if len(pop) < self.population_size:
            return {k: self._rng.choice(d.choices) for k, d in self._dists.items()}
        parent = self._tournament(study, pop)
        study._storage.set_trial_system_attr(trial._trial_id, PARENT_ATTR, parent.number)
        return self.mutate({k: parent.params[k] for k in self._dists})

    def mutate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Exactly one choice point (with alternatives) changed to another option."""
        child = dict(params)
        mutable = [k for k, d in self._dists.items() if len(d.choices) > 1]
        if not mutable:
            return child
        k = self._rng.choice(mutable)
        child[k] = self._rng.choice([o for o in self._dists[k].choices if o != child[k]])
        return child

    def _tournament(self, study: Study, pop: list[FrozenTrial]) -> FrozenTrial:
        sgn = np.array([1.0 if d.name == "MINIMIZE" else -1.0 for d in study.directions])
        y = np.array([t.values for t in pop], dtype=float) * sgn
        violation = np.array([sum(max(0.0, c) for c in t.system_attrs.get(CONSTRAINTS_ATTR, ())) for t in pop])
        rank = nondominated_rank(y)
        crowd = crowding_distance(y, rank) if y.shape[1] > 1 else -y[:, 0]
        drawn = self._rng.sample(range(len(pop)), self.sample_size)
        best = min(drawn, key=lambda i: (violation[i] > 0, violation[i], rank[i], -crowd[i], drawn.index(i)))
        return pop[best]
