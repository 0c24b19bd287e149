"""The weight store: for every slot (see `slots.py`) the largest tensors any sub-network needs, and the slice
of them a given sub-network uses.

Why slices of whole tensors rather than once-for-all's dynamic layers: a sub-network is then run by the
tested torch builder on exactly the Graph the compiler measured (`GraphModule` on the meta device, called
with `torch.func.functional_call` on views of the store's tensors), so nothing re-implements a layer.
Gradients flow through the views into the store; BatchNorm's in-place running-statistics updates land in
the store's slices too.

Slicing: every dimension keeps its first entries (output and input channels, expansion, FC units), except
the kernel dimensions of a 4-D conv weight, which keep their centre (a 3x3 kernel is the centre of a 5x5,
as once-for-all's elastic kernel without its transform matrices).

The largest shapes are the element-wise maxima over the space's sub-networks: all of them where the space
has at most `ENUMERATE_LIMIT` genotypes (0.8 ms each), else a seeded sample of that many plus the greedy
largest; a sub-network that would need more than the store holds is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from edgenas.errors import ConfigError
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace
from edgenas.train.supernet.slots import graph_slots, tensor_shapes

ENUMERATE_LIMIT = 10_000
Shapes = dict[str, dict[str, tuple[int, ...]]]  # slot -> tensor name in its module -> largest shape


def _attr(local: str) -> str:
    return local.replace(".", "__")  # `conv.weight` -> `conv__weight` (parameter names may not hold dots)


def subnet_shapes(space: SearchSpace, g: Genotype, resolution: tuple[int, int]) -> dict[str, tuple[str, dict]]:
    """module key -> (slot, {tensor name: shape}) of one sub-network."""
    graph = space.build(g, resolution)
    slots = graph_slots(graph, space.template.name, space.params(g))
    return {mk: (slot, tensor_shapes(graph, op)) for mk, (slot, op) in slots.items()}


def covering_genotypes(space: SearchSpace, seed: int = 0) -> tuple[Iterable[Genotype], str]:
    """The genotypes whose shapes the store must hold, and how they were chosen."""
    if space.size() <= ENUMERATE_LIMIT:
        return space.enumerate(), f"all {space.size()} sub-networks"
    rng = random.Random(seed)
    return (space.sample(rng) for _ in range(ENUMERATE_LIMIT)), f"a seeded sample of {ENUMERATE_LIMIT}"


def largest_shapes(space: SearchSpace, resolution: tuple[int, int], genotypes: Iterable[Genotype]) -> Shapes:
    shapes: Shapes = {}
    for g in genotypes:
        for slot, tensors in subnet_shapes(space, g, resolution).values():
            have = shapes.setdefault(slot, {})
            for name, shape in tensors.items():
                old = have.get(name)
                have[name] = shape if old is None else tuple(max(a, b) for a, b in zip(old, shape))
    return dict(sorted(shapes.items()))


def shapes_fingerprint(shapes: Shapes) -> str:
    blob = json.dumps({s: {k: list(v) for k, v in t.items()} for s, t in shapes.items()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def slice_index(shape: tuple[int, ...], full: tuple[int, ...]) -> tuple[slice, ...]:
    """The index of a `shape` tensor inside its `full` one: first entries, kernel dimensions centred."""
    idx = []
    for d, (n, big) in enumerate(zip(shape, full)):
        start = (big - n) // 2 if len(full) == 4 and d >= 2 else 0
        idx.append(slice(start, start + n))
    return tuple(idx)


def _init_(name: str, t: Tensor, fan_in: int) -> None:
    """torch's defaults for the largest layer (nn.Conv2d / nn.Linear / nn.BatchNorm2d), as once-for-all
    initialises its elastic layers."""
    if name.endswith("running_var") or name == "bn.weight":
        nn.init.ones_(t)
    elif name.startswith("bn."):
        nn.init.zeros_(t)
    elif t.dim() >= 2:
        nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    else:  # the bias of a conv or FC without BatchNorm
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(t, -bound, bound)


class _Slot(nn.Module):
    def __init__(self, tensors: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__()
        weight = next((s for n, s in tensors.items() if n.endswith(".weight") and len(s) >= 2), ())
        fan_in = math.prod(weight[1:]) if weight else 0
        for name, shape in tensors.items():
            if name.startswith("bn.running") or name == "bn.num_batches_tracked":
                dtype = torch.long if name == "bn.num_batches_tracked" else torch.float32
                t = torch.zeros(shape, dtype=dtype)
                if dtype == torch.float32:
                    _init_(name, t, fan_in)
                self.register_buffer(_attr(name), t)
            else:
                t = torch.empty(shape)
                _init_(name, t, fan_in)
                self.register_parameter(_attr(name), nn.Parameter(t))


class WeightStore(nn.Module):
    """slot -> its largest tensors (parameters and BatchNorm buffers), initialised under the caller's seed."""

    def __init__(self, shapes: Shapes) -> None:
        super().__init__()
        self.shapes = shapes
        self.slots = nn.ModuleDict({slot: _Slot(tensors) for slot, tensors in shapes.items()})
        self.used: dict[str, list[tuple[slice, ...]]] | None = None  # while recording: parameter -> slices

    @property
    def fingerprint(self) -> str:
        return shapes_fingerprint(self.shapes)

    def tensor(self, slot: str, name: str) -> Tensor:
        return getattr(self.slots[slot], _attr(name))

    def param_name(self, slot: str, name: str) -> str:
        return f"slots.{slot}.{_attr(name)}"

    def view(self, slot: str, name: str, shape: tuple[int, ...], what: str) -> Tensor:
        """The slice of a slot's tensor that a sub-network of `shape` uses (recorded while recording)."""
        if slot not in self.shapes or name not in self.shapes[slot]:
            raise ConfigError(f"the supernet holds no weights for {what} ({slot} {name}): the genotype is "
                              "outside the space the supernet was built for")
        full = self.shapes[slot][name]
        if any(n > f for n, f in zip(shape, full)):
            raise ConfigError(f"{what} needs {name} of shape {tuple(shape)}, the supernet holds at most "
                              f"{tuple(full)}: the genotype is outside the supernet")
        idx = slice_index(shape, full)
        t = self.tensor(slot, name)
        if self.used is not None and isinstance(t, nn.Parameter):
            self.used.setdefault(self.param_name(slot, name), []).append(idx)
        return t[idx]


def build_store(space: SearchSpace, resolution: tuple[int, int], seed: int) -> tuple[WeightStore, str]:
    """A store holding every sub-network of the space, its weights drawn under `seed`; and how its shapes
    were found."""
    genotypes, how = covering_genotypes(space, seed)
    if space.size() > ENUMERATE_LIMIT:  # a sample may miss the largest options: add the greedy largest
        from edgenas.train.supernet.sampling import greedy_extreme

        genotypes = itertools.chain(genotypes, [greedy_extreme(space, resolution, largest=True)])
    shapes = largest_shapes(space, resolution, genotypes)
    torch.manual_seed(seed)
    return WeightStore(shapes), how


def describe_shapes(shapes: Shapes) -> dict[str, Any]:
    return {"slots": len(shapes), "tensors": sum(len(t) for t in shapes.values()),
            "weights": sum(math.prod(s) for t in shapes.values() for n, s in t.items() if "running" not in n
                           and "num_batches" not in n)}
