"""Scoring and exporting sub-networks of a trained supernet.

Each sub-network is copied out of the store as a stand-alone GraphModule (the store is never changed), its
BatchNorm statistics recomputed over a fixed seeded set of training samples (`recalibrate.py`), then scored
on the task's validation set. The data are prepared and collated once for all sub-networks of a call; the
seconds of recalibration and of scoring are counted separately per sub-network.

An exported sub-network is a checkpoint in the format `edgenas train` writes (format, identity of the
candidate, model state), so `edgenas evaluate`, `edgenas export` and `edgenas train --init-from` take it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from edgenas.space.config import format_resolution
from edgenas.space.genotype import Genotype
from edgenas.train.builder import GraphModule
from edgenas.train.supernet.recalibrate import recalibrate_bn
from edgenas.train.supernet.run import LoadedSupernet, load_supernet
from edgenas.train.trainer import CHECKPOINT_FORMAT, batches, save_atomic


@dataclass(frozen=True)
class SubnetScore:
    genotype: str
    arch_id: str
    resolution: str
    metrics: dict[str, float]
    recalibration_seconds: float
    score_seconds: float


def bn_sample_order(n: int, samples: int, seed: int) -> Tensor:
    """The fixed training samples every sub-network's BatchNorm statistics come from."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(samples, n)]


def _collated(ds: Dataset, order: Tensor, batch_size: int) -> list[tuple[tuple[Tensor, ...], Tensor]]:
    out = []
    for _, (inputs, target) in batches(ds, order, batch_size):
        out.append((tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,), target))
    return out


class SubnetEvaluator:
    """Data prepared once at one resolution; `score(genotype)` recalibrates and scores one sub-network."""

    def __init__(self, loaded: LoadedSupernet, resolution: tuple[int, int] | None = None,
                 batch_size: int = 32) -> None:
        self.loaded = loaded
        setup = loaded.setup
        self.resolution = resolution or setup.resolution
        data = setup.task.data(self.resolution, seed=setup.recipe.seed)
        s = setup.settings
        self.bn_batches = _collated(data.train, bn_sample_order(len(data.train), s.bn_samples, s.seed),
                                    s.bn_batch_size)
        self.val_batches = _collated(data.val, torch.arange(len(data.val)), batch_size)

    def module(self, g: Genotype) -> tuple[GraphModule, float]:
        """The sub-network with its BatchNorm recalibrated, and the seconds that took."""
        t0 = time.perf_counter()
        m = self.loaded.net.subnet_module(g, self.resolution)
        device = self.loaded.net.device
        recalibrate_bn(m, [tuple(x.to(device) for x in xs) for xs, _ in self.bn_batches])
        return m, time.perf_counter() - t0

    @torch.no_grad()
    def score(self, g: Genotype) -> SubnetScore:
        m, recal = self.module(g)
        t0 = time.perf_counter()
        task = self.loaded.setup.task
        device = self.loaded.net.device
        sums: dict[str, list[float]] = {}
        for xs, target in self.val_batches:
            for name, (s, c) in task.metric_sums(m(*(x.to(device) for x in xs)), target.to(device)).items():
                acc = sums.setdefault(name, [0.0, 0])
                acc[0] += float(s)
                acc[1] += int(c)
        metrics = {k: (s / c if c else float("nan")) for k, (s, c) in sums.items()}
        return SubnetScore(str(g), g.arch_id, format_resolution(self.resolution), metrics, recal,
                           time.perf_counter() - t0)


def evaluate_subnets(supernet: Path | LoadedSupernet, genotypes: Sequence[Genotype | str], *,
                     resolution: tuple[int, int] | None = None, batch_size: int = 32,
                     on_score: Callable[[SubnetScore], None] | None = None) -> list[SubnetScore]:
    """Every genotype scored (BatchNorm recalibrated first); genotypes may be given as text."""
    loaded = supernet if isinstance(supernet, LoadedSupernet) else load_supernet(Path(supernet))
    space = loaded.setup.space
    gs = [g if isinstance(g, Genotype) else space.parse_genotype(g) for g in genotypes]  # all checked first
    ev = SubnetEvaluator(loaded, resolution, batch_size)
    out = []
    for g in gs:
        row = ev.score(g)
        out.append(row)
        if on_score is not None:
            on_score(row)
    return out


def _source(loaded: LoadedSupernet, g: Genotype) -> dict[str, str]:
    """Where the exported weights come from: the checkpoint and store, of the part serving `g` in a split."""
    from edgenas.train.supernet.fewshot import SplitNet

    if isinstance(loaded.net, SplitNet):
        return {"split": str(loaded.checkpoint), **loaded.net.source_of(g)}
    return {"checkpoint": str(loaded.checkpoint), "store": loaded.meta["identity"]["store"]}


def export_subnet(supernet: Path | LoadedSupernet, genotype: Genotype | str, out_file: Path, *,
                  resolution: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write one sub-network (inherited weights, BatchNorm recalibrated) as a stand-alone checkpoint."""
    loaded = supernet if isinstance(supernet, LoadedSupernet) else load_supernet(Path(supernet))
    space = loaded.setup.space
    g = genotype if isinstance(genotype, Genotype) else space.parse_genotype(genotype)
    ev = SubnetEvaluator(loaded, resolution)
    module, _ = ev.module(g)
    identity = {"space": space.name, "space_key": space.space_key, "arch_id": g.arch_id, "genotype": str(g)}
    state = {"format": CHECKPOINT_FORMAT, "identity": identity,
             "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
             "supernet": {**_source(loaded, g), "bn_samples": sum(int(xs[0].shape[0]) for xs, _ in ev.bn_batches),
                          "resolution": format_resolution(ev.resolution)}}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(state, out_file)
    return identity
