"""Search strategies: Optuna samplers selectable by name (`make_sampler`, `strategy_names`).

Optuna's own (random, nsga2, nsga3, tpe, gp), ours (regularized evolution, the default "frontier"), and
the MnasNet scalarised mode ("mnas"). A genotype maps to one `suggest_categorical` per choice point
(`suggest_genotype`).
"""

from edgenas.search.strategies._evolution import PARENT_ATTR, RegularizedEvolutionSampler
from edgenas.search.strategies._frontier import FrontierSampler
from edgenas.search.strategies._mnas import MnasReward
from edgenas.search.strategies._params import distributions, params_to_values, suggest_genotype
from edgenas.search.strategies._registry import (
                                                 ANCHORS,
                                                 DEFAULT_STRATEGY,
                                                 Strategy,
                                                 gp_available,
                                                 make_sampler,
                                                 make_strategy,
                                                 reads_constraints,
                                                 strategy_names,
                                                 strategy_summary,
                                                 uses_known,
)

__all__ = [
                                                 "ANCHORS",
                                                 "DEFAULT_STRATEGY",
                                                 "PARENT_ATTR",
                                                 "FrontierSampler",
                                                 "MnasReward",
                                                 "RegularizedEvolutionSampler",
                                                 "Strategy",
                                                 "distributions",
                                                 "gp_available",
                                                 "make_sampler",
                                                 "make_strategy",
                                                 "params_to_values",
                                                 "reads_constraints",
                                                 "strategy_names",
                                                 "strategy_summary",
                                                 "suggest_genotype",
                                                 "uses_known",
]
