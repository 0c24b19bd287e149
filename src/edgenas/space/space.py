"""SearchSpace: choice points over a network template, with enumerate / sample / mutate / contains / build.

A choice point is a template parameter (`head1_block`) or a channel width written `widths.<name>`
(`widths.head1: [16, 24, 32]`): the chosen width replaces the `widths:` value when the network is built.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError, GraphError
from edgenas.graph.ir import Graph
from edgenas.graph.networks import TEMPLATES, Template, get_template, total_stride
from edgenas.space.config import MAX_DIM, SpaceConfig, format_resolution, load_space_config, resolve_space_path
from edgenas.space.genotype import Genotype, parse_genotype_text

WIDTH_PREFIX = "widths."  # a choice or tied key naming a channel width rather than a template parameter


def width_name(key: str) -> str | None:
    """`widths.head1` -> `head1`; None for a template parameter."""
    return key[len(WIDTH_PREFIX):] if key.startswith(WIDTH_PREFIX) else None


class SearchSpace:
    """A validated space. Parameters resolve as: template default <- fixed <- choice <- tied copy; widths as:
    template default <- `widths:` <- `widths.<name>` choice <- tied copy."""

    def __init__(self, config: SpaceConfig, source: str = "<config>") -> None:
        self.config = config
        self.source = source
        if config.network not in TEMPLATES:
            raise ConfigError(f"unknown network {config.network!r}; allowed: {', '.join(TEMPLATES)}",
                              source=source, field="network")
        self.template: Template = get_template(config.network)
        self.widths = self._check_widths()
        self._check_params()
        self.stride = self._total_stride()
        for i, res in enumerate(config.resolutions):
            if res[0] % self.stride or res[1] % self.stride:
                raise ConfigError(
                    f"{format_resolution(res)} is not divisible by the network's total stride {self.stride}",
                    source=source, field=f"resolutions[{i}]")
        self.space_key = self._space_key()
        self.default = self._parse_default()

    # ---- validation -----------------------------------------------------------------------------
    def _err(self, field: str, msg: str) -> ConfigError:
        return ConfigError(msg, source=self.source, field=field)

    def _check_widths(self) -> dict[str, int]:
        widths = dict(self.template.widths)
        for k, v in self.config.widths.items():
            self._check_width(f"widths.{k}", k, v)
            widths[k] = v
        return widths

    def _check_width(self, field: str, name: str, v: Any) -> None:
        if name not in self.template.widths:
            raise self._err(field, f"unknown width; allowed: {', '.join(self.template.widths)}")
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise self._err(field, f"must be a positive integer, got {v!r}")
        limit = self.template.limits.get(name, MAX_DIM)
        if v > limit:
            raise self._err(field, f"must be at most {limit}, got {v}")

    def _check_value(self, field: str, param: str, value: Any) -> None:
        width = width_name(param)
        if width is not None:
            self._check_width(field, width, value)
            return
        spec = self.template.params.get(param)
        if spec is None:
            raise self._err(field, f"unknown parameter {param!r} of network {self.template.name}; allowed: "
                                   f"{', '.join(self.template.params)}, {WIDTH_PREFIX}<width>")
        if not spec.valid(value):
            raise self._err(field, f"invalid value {value!r}; allowed: {spec.allowed_text()}")

    def _check_params(self) -> None:
        c = self.config
        for k, v in c.fixed.items():
            if width_name(k) is not None:
                raise self._err(f"fixed.{k}", f"a width is fixed under widths: ({{{width_name(k)}: ...}})")
            self._check_value(f"fixed.{k}", k, v)
        for k, opts in c.choices.items():
            if k in c.fixed:
                raise self._err(f"choices.{k}", "is also in fixed; a parameter is either fixed or searched")
            for i, v in enumerate(opts):
                self._check_value(f"choices.{k}[{i}]", k, v)
        for k, src in c.tied.items():
            if src not in c.choices:
                raise self._err(f"tied.{k}", f"must name a choice; allowed: {', '.join(c.choices)}")
            if k in c.choices or k in c.fixed:
                raise self._err(f"tied.{k}", "a tied parameter cannot also be fixed or searched")
            for v in c.choices[src]:
                self._check_value(f"tied.{k}", k, v)

    def _width_keys(self) -> list[str]:
        """The choice and tied keys that set a width."""
        return [k for k in (*self.config.choices, *self.config.tied) if width_name(k) is not None]

    def _total_stride(self) -> int:
        """A resolution must divide by the stride of every network in the space: the lcm over the width
        options (only a width such as `stages` changes it; width choices are few, so the product is small)."""
        c = self.config
        keys = sorted({c.tied.get(k, k) for k in self._width_keys()})  # the choices that set some width
        stride = 1
        for combo in itertools.product(*(c.choices[k] for k in keys)):
            values = dict(zip(keys, combo))
            values.update({k: values[src] for k, src in c.tied.items() if src in values})
            widths = {**self.widths, **{width_name(k): v for k, v in values.items() if width_name(k) is not None}}
            stride = math.lcm(stride, total_stride(self.template, widths))
        return stride

    def _space_key(self) -> str:
        c = self.config
        # A width that is searched is named by the genotype, not by its `widths:` value (which it replaces).
        searched = {width_name(k) for k in self._width_keys()}
        widths = {k: v for k, v in self.widths.items() if k not in searched}
        blob = json.dumps({"network": c.network, "in": c.input_channels, "widths": widths, "fixed": c.fixed,
                           "tied": c.tied}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _parse_default(self) -> Genotype:
        values = {k: opts[0] for k, opts in self.config.choices.items()}
        for k, v in self.config.default.items():
            if k not in self.config.choices:
                raise self._err(f"default.{k}", f"not a choice; allowed: {', '.join(self.config.choices)}")
            if v not in self.config.choices[k]:
                raise self._err(f"default.{k}", f"{v!r} is not an option; allowed: "
                                                f"{', '.join(map(str, self.config.choices[k]))}")
            values[k] = v
        return Genotype.of(values, self.space_key)

    # ---- the interface ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def choices(self) -> Mapping[str, list[Any]]:
        return self.config.choices

    @property
    def resolutions(self) -> list[tuple[int, int]]:
        return list(self.config.resolutions)

    def size(self) -> int:
        n = 1
        for opts in self.choices.values():
            n *= len(opts)
        return n

    def genotype(self, values: Mapping[str, Any]) -> Genotype:
        """Values in choice order; missing choices come from the default genotype."""
        full = self.default.as_dict()
        for k, v in values.items():
            if k not in self.choices:
                raise self._err(f"genotype.{k}", f"not a choice of this space; allowed: {', '.join(self.choices)}")
            full[k] = self.option(k, v)
        g = Genotype.of(full, self.space_key)
        return g

    def option(self, k: str, v: Any, *, field: str | None = None) -> Any:
        """The option of choice `k` equal to `v` (or to its text: values typed on a command line arrive as
        strings); else a ConfigError naming `field` (default `genotype.<k>`) and the allowed options."""
        opts = self.choices[k]
        if v in opts:
            return v
        for o in opts:  # values typed on a command line arrive as strings
            if str(o) == str(v):
                return o
        raise self._err(field or f"genotype.{k}", f"{v!r} is not an option; allowed: {', '.join(map(str, opts))}")

    def parse_genotype(self, text: str) -> Genotype:
        try:
            return self.genotype(parse_genotype_text(text))
        except ValueError as e:
            raise self._err("genotype", str(e)) from None

    def enumerate(self) -> Iterator[Genotype]:
        keys = list(self.choices)
        for combo in itertools.product(*(self.choices[k] for k in keys)):
            yield Genotype.of(dict(zip(keys, combo)), self.space_key)

    def sample(self, rng: random.Random) -> Genotype:
        return Genotype.of({k: rng.choice(opts) for k, opts in self.choices.items()}, self.space_key)

    def mutate(self, g: Genotype, rng: random.Random) -> Genotype:
        """Change exactly one choice that has alternatives (the regularized-evolution mutation)."""
        mutable = [k for k, opts in self.choices.items() if len(opts) > 1]
        if not mutable:
            return g
        k = rng.choice(mutable)
        values = g.as_dict()
        values[k] = rng.choice([o for o in self.choices[k] if o != values[k]])
        return Genotype.of(values, self.space_key)

    def contains(self, g: Genotype) -> bool:
        d = g.as_dict()
        return (g.space_key == self.space_key and set(d) == set(self.choices)
                and all(d[k] in opts for k, opts in self.choices.items()))

    def _resolved(self, g: Genotype) -> dict[str, Any]:
        values = g.as_dict()
        for k, src in self.config.tied.items():
            values[k] = values[src]
        return values

    def params(self, g: Genotype) -> dict[str, Any]:
        """The template parameters of a genotype (width choices are in `widths_of`)."""
        p = {k: spec.default for k, spec in self.template.params.items()}
        p.update(self.config.fixed)
        p.update({k: v for k, v in self._resolved(g).items() if width_name(k) is None})
        return p

    def widths_of(self, g: Genotype) -> dict[str, int]:
        """The channel widths of a genotype: `widths:` with its chosen `widths.<name>` values applied."""
        w = dict(self.widths)
        w.update({width_name(k): v for k, v in self._resolved(g).items() if width_name(k) is not None})
        return w

    def build(self, g: Genotype, resolution: tuple[int, int]) -> Graph:
        if resolution[0] % self.stride or resolution[1] % self.stride:
            raise ConfigError(f"{format_resolution(resolution)} is not divisible by the network's total stride "
                              f"{self.stride}", source=self.source, field="resolution")
        try:
            graph = self.template.build(self.params(g), self.widths_of(g), self.config.input_channels, resolution)
        except GraphError as e:
            raise ConfigError(str(e), source=self.source, field=str(g)) from None
        graph.name = f"{self.name}.{g.arch_id}.{format_resolution(resolution)}"
        graph.meta.update(arch_id=g.arch_id, genotype=str(g), resolution=format_resolution(resolution))
        return graph


def load_space(name_or_path: str | Path) -> SearchSpace:
    path = resolve_space_path(str(name_or_path))
    return SearchSpace(load_space_config(path), str(path))
