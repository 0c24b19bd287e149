"""The supernet: a search space and its weight store, serving any sub-network at any resolution.

`run(genotype, *inputs)` builds (once, cached per genotype and resolution) the sub-network's Graph and a
`GraphModule` on the meta device (no memory of its own), and calls it with views of the store's tensors
(`torch.func.functional_call`): the sub-network is the Graph the compiler measured, computed by the torch
builder, with the store's weights. `forward` runs the active genotype, so the stand-alone trainer's
validation and the evaluation helpers can treat a supernet like any module.

`subnet_module` copies a sub-network's slice into an ordinary GraphModule: the stand-alone network with
inherited weights (export, BatchNorm recalibration without touching the store).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from edgenas.errors import ConfigError
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace
from edgenas.train.builder import GraphModule
from edgenas.train.supernet.slots import graph_slots, tensor_shapes
from edgenas.train.supernet.store import WeightStore

_CACHE_LIMIT = 512  # cached sub-networks (meta modules are small; a long sandwich run meets many)


class Supernet(nn.Module):
    def __init__(self, space: SearchSpace, store: WeightStore, active: Genotype) -> None:
        super().__init__()
        self.space = space
        self.store = store
        self.active = active
        self._cache: dict[tuple[str, tuple[int, int]], tuple[GraphModule, dict[str, tuple[str, str, tuple]]]] = {}

    def _served(self, g: Genotype, resolution: tuple[int, int]) -> tuple[GraphModule, dict[str, tuple]]:
        key = (g.arch_id, resolution)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if not self.space.contains(g):
            raise ConfigError(f"genotype {g} is not in the supernet's space {self.space.name}", field="genotype")
        graph = self.space.build(g, resolution)
        with torch.device("meta"):
            module = GraphModule(graph)
        plan: dict[str, tuple] = {}
        for mk, (slot, op) in graph_slots(graph, self.space.template.name, self.space.params(g)).items():
            for name, shape in tensor_shapes(graph, op).items():
                plan[f"layers.{mk}.{name}"] = (slot, name, shape, op.name)
        expected = set(module.state_dict())
        if set(plan) != expected:  # the mirror of the builder's shapes disagrees: a bug, not user input
            raise RuntimeError(f"supernet plan and GraphModule differ: {sorted(set(plan) ^ expected)[:4]}")
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (module, plan)
        return module, plan

    def tensors(self, g: Genotype, resolution: tuple[int, int]) -> dict[str, Tensor]:
        """The sub-network's parameters and buffers as views of the store, by GraphModule state names."""
        _, plan = self._served(g, resolution)
        return {k: self.store.view(slot, name, shape, f"op {op} of {g}") for k, (slot, name, shape, op) in plan.items()}

    def run(self, g: Genotype, *inputs: Tensor) -> tuple[Tensor, ...]:
        resolution = (int(inputs[0].shape[-2]), int(inputs[0].shape[-1]))
        module, _ = self._served(g, resolution)
        module.train(self.training)
        return functional_call(module, self.tensors(g, resolution), inputs, strict=True)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.run(self.active, *inputs)

    def subnet_module(self, g: Genotype, resolution: tuple[int, int]) -> GraphModule:
        """A stand-alone GraphModule holding a copy of the sub-network's weights."""
        module = GraphModule(self.space.build(g, resolution))
        with torch.no_grad():
            state = {k: v.detach().clone() for k, v in self.tensors(g, resolution).items()}
        module.load_state_dict(state, strict=True)
        return module.to(self.device)

    @property
    def device(self) -> torch.device:
        return next(self.store.parameters()).device

    def describe(self) -> dict[str, Any]:
        return {"space": self.space.name, "slots": len(self.store.shapes), "fingerprint": self.store.fingerprint}
