"""Which sub-networks a training step uses.

Every step draws from its own generator seeded with (seed, global step): a resumed run draws what the
uninterrupted run drew without any saved sampler state, and every process of a distributed run would draw
the same sub-network at the same step.

"Largest" and "smallest" (the sandwich rule) are by the IR's MAC count (`Graph.macs`, the compute the
analytic cost model and the compiler see) at the training resolution, ties broken by the weight count,
then by enumeration order. Spaces of at most `EXTREMES_LIMIT` genotypes are searched exhaustively; larger
ones greedily, one choice point at a time in config order, keeping the option with the most (fewest) MACs
while the others stay at the current best (exact when MACs grow with each option independently, as they
do for widths, kernels and expansions).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace

EXTREMES_LIMIT = 10_000


def step_rng(seed: int, step: int) -> random.Random:
    """The generator of one training step."""
    return random.Random(seed * 1_000_003 + step)


def size_of(space: SearchSpace, g: Genotype, resolution: tuple[int, int]) -> tuple[int, int]:
    """The measure the sandwich rule orders by: (MACs, weights) of the sub-network's Graph."""
    graph = space.build(g, resolution)
    return graph.macs, graph.params


def greedy_extreme(space: SearchSpace, resolution: tuple[int, int], *, largest: bool) -> Genotype:
    values = space.default.as_dict()
    sign = 1 if largest else -1
    for k, opts in space.choices.items():
        scored = []
        for v in opts:
            g = space.genotype({**values, k: v})
            macs, params = size_of(space, g, resolution)
            scored.append((sign * macs, sign * params, v))
        values[k] = max(scored, key=lambda t: (t[0], t[1]))[2]
    return space.genotype(values)


@dataclass(frozen=True)
class Extremes:
    largest: Genotype
    smallest: Genotype
    method: str  # "exhaustive over N" or "greedy per choice"


def extremes(space: SearchSpace, resolution: tuple[int, int]) -> Extremes:
    if space.size() <= EXTREMES_LIMIT:
        scored = [(size_of(space, g, resolution), i, g) for i, g in enumerate(space.enumerate())]
        big = max(scored, key=lambda t: (t[0], -t[1]))[2]
        small = min(scored, key=lambda t: (t[0], t[1]))[2]
        return Extremes(big, small, f"exhaustive over {len(scored)} sub-networks by MACs")
    return Extremes(greedy_extreme(space, resolution, largest=True),
                    greedy_extreme(space, resolution, largest=False), "greedy per choice by MACs")
