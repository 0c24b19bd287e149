"""The NAS-Bench-201 cell space: 6 edges x 5 ops, a table-only space for judging search strategies.

A cell has four nodes; node j sums one op applied to every earlier node i, so the six edges are
e01, e02, e12, e03, e13, e23 ("e" + from + to). The NB201 architecture string lists them node by node:
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (`op~i` is the op on the edge from node i). Accuracies and
latencies of all 15,625 cells are published tables, so this space has no Graph builder: it is searched
against a table (`edgenas.search.table_eval.TableEvaluator`), not compiled.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

from edgenas.errors import ConfigError
from edgenas.space.genotype import Genotype, parse_genotype_text

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to_node, from_node) in the order the arch string lists them
_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NB201_EDGES: tuple[str, ...] = tuple(f"e{i}{j}" for j, i in _EDGES)
# The ResNet cell of the NAS-Bench-201 paper: a sensible default, unlike "none" everywhere.
_RESNET = ("nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none", "none")


class NB201Space:
    """NAS-Bench-201 cell space with the `SearchSpace` interface where it applies (no `build`)."""

    name = "nb201"
    table_only = True  # no network to build: searched against a table of known metrics

    def __init__(self) -> None:
        self._choices: dict[str, list[str]] = {e: list(NB201_OPS) for e in NB201_EDGES}
        blob = json.dumps({"space": "nas-bench-201", "edges": NB201_EDGES, "ops": NB201_OPS})
        self.space_key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self.default = Genotype.of(dict(zip(NB201_EDGES, _RESNET)), self.space_key)
        self.source = "<builtin nb201>"

    @property
    def choices(self) -> Mapping[str, list[str]]:
        return self._choices

    @property
    def resolutions(self) -> list[tuple[int, int]]:
        return []

    def size(self) -> int:
        return len(NB201_OPS) ** len(NB201_EDGES)

    def genotype(self, values: Mapping[str, Any]) -> Genotype:
        """Values per edge; missing edges come from the default (ResNet) cell."""
        full = self.default.as_dict()
        for k, v in values.items():
            if k not in self._choices:
                raise ConfigError(f"not an edge of this space; allowed: {', '.join(NB201_EDGES)}",
                                  source=self.source, field=f"genotype.{k}")
            if v not in NB201_OPS:
                raise ConfigError(f"{v!r} is not an op; allowed: {', '.join(NB201_OPS)}",
                                  source=self.source, field=f"genotype.{k}")
            full[k] = v
        return Genotype.of(full, self.space_key)

    def parse_genotype(self, text: str) -> Genotype:
        """Either an NB201 arch string (`|op~0|+|...|`) or `e01=op,e12=op,...`."""
        if text.strip().startswith("|"):
            return self.parse_arch(text)
        try:
            return self.genotype(parse_genotype_text(text))
        except ValueError as e:
            raise ConfigError(str(e), source=self.source, field="genotype") from None

    def enumerate(self) -> Iterator[Genotype]:
        for combo in itertools.product(NB201_OPS, repeat=len(NB201_EDGES)):
            yield Genotype.of(dict(zip(NB201_EDGES, combo)), self.space_key)

    def sample(self, rng: random.Random) -> Genotype:
        return Genotype.of({e: rng.choice(NB201_OPS) for e in NB201_EDGES}, self.space_key)

    def mutate(self, g: Genotype, rng: random.Random) -> Genotype:
        """Change the op of exactly one edge (the regularized-evolution mutation)."""
        values = g.as_dict()
        e = rng.choice(NB201_EDGES)
        values[e] = rng.choice([o for o in NB201_OPS if o != values[e]])
        return Genotype.of(values, self.space_key)

    def contains(self, g: Genotype) -> bool:
        d = g.as_dict()
        return g.space_key == self.space_key and list(d) == list(NB201_EDGES) and all(
            d[e] in NB201_OPS for e in NB201_EDGES)

    def build(self, g: Genotype, resolution: tuple[int, int]) -> Any:
        raise ConfigError("the nb201 space is table-only (NAS-Bench-201 cells are looked up in a table of "
                          "known metrics, see edgenas.search.table_eval); it has no graph builder",
                          source=self.source)

    def arch_string(self, g: Genotype) -> str:
        return arch_string(g)

    def parse_arch(self, text: str) -> Genotype:
        return parse_arch(text)


NB201 = NB201Space()


def arch_string(g: Genotype | Mapping[str, Any]) -> str:
    """Genotype -> `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, the NAS-Bench-201 format."""
    d = g.as_dict() if isinstance(g, Genotype) else dict(g)
    missing = [e for e in NB201_EDGES if e not in d]
    if missing:
        raise ConfigError(f"not an nb201 genotype: missing edges {', '.join(missing)}", field="genotype")
    nodes = []
    for j in (1, 2, 3):
        nodes.append("|" + "|".join(f"{d[f'e{i}{j}']}~{i}" for i in range(j)) + "|")
    return "+".join(nodes)


def parse_arch(text: str) -> Genotype:
    """`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` -> Genotype; a malformed string is a ConfigError."""
    s = text.strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"not an NB201 arch string ({why}): {text!r}; expected "
                           "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'", field="arch")

    nodes = s.split("+")
    if len(nodes) != 3:
        raise bad(f"{len(nodes)} nodes, expected 3")
    values: dict[str, str] = {}
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise bad(f"node {j} is not enclosed in '|'")
        parts = node[1:-1].split("|")
        if len(parts) != j:
            raise bad(f"node {j} has {len(parts)} inputs, expected {j}")
        for i, part in enumerate(parts):
            op, sep, src = part.rpartition("~")
            if not sep or src != str(i):
                raise bad(f"input {i} of node {j} is {part!r}, expected 'op~{i}'")
            if op not in NB201_OPS:
                raise bad(f"unknown op {op!r}; allowed: {', '.join(NB201_OPS)}")
            values[f"e{i}{j}"] = op
    return Genotype.of({e: values[e] for e in NB201_EDGES}, NB201.space_key)


def builtin_table_spaces() -> dict[str, NB201Space]:
    """Spaces searched against tables rather than compiled."""
    return {"nb201": NB201}
