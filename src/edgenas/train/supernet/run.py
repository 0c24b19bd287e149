"""From a config to a trained supernet folder, and back.

`train_supernet` joins the space, its weight store, the task's data and a strategy's step function to the
stand-alone Trainer (seeding, data order, lr schedule, atomic checkpoints with optimiser and RNG state,
resume bit for bit, progress, SIGTERM through edgenas.processes). The folder gets checkpoint.pt (the
resumable state: the store's tensors), best.pt (the trainer's pick by the largest sub-network's validation
metric with the store's shared BatchNorm statistics: a rough guide only) and supernet.json (config, identity,
settings, the sandwich's largest and smallest, the store's size, versions, history).

`load_supernet` reads a folder back for evaluation and export: the config named in supernet.json rebuilds the
space, task and store, and the checkpoint must match them (space, task, strategy, store shapes).

Under torchrun every process trains (`edgenas.train.distributed`: the store's gradients all-reduced after
each step; every rank samples the same sub-networks, as sampling is seeded by (seed, step)); rank 0
prepares the data first and alone writes supernet.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from edgenas.errors import ConfigError
from edgenas.space.config import format_resolution, parse_resolution
from edgenas.space.space import SearchSpace
from edgenas.train import distributed
from edgenas.train.recipe import TrainRecipe
from edgenas.train.records import write_json
from edgenas.train.run import check_resolution, check_run_dir, load_training_config, resolve_resolution, versions
from edgenas.train.supernet.fewshot import (
    PreparedSplit,
    check_split,
    load_split,
    part_setup,
    prepare_split,
    recorded_split,
    train_split,
)
from edgenas.train.supernet.sampling import Extremes, extremes
from edgenas.train.supernet.settings import STRATEGIES, SupernetSettings, parse_supernet_section
from edgenas.train.supernet.store import WeightStore, build_store, describe_shapes
from edgenas.train.supernet.strategies import sandwich_step, spos_step
from edgenas.train.supernet.supernet import Supernet
from edgenas.train.supernet.updates import KeepUnused
from edgenas.train.tasks.base import DataProgress, Task
from edgenas.train.trainer import CHECKPOINT, Progress, Trainer, TrainResult, device_for_training, load_checkpoint

SUPERNET_FILE = "supernet.json"


@dataclass
class SupernetSetup:
    """Everything a supernet run is made of, before any training."""

    space: SearchSpace
    task: Task
    recipe: TrainRecipe
    settings: SupernetSettings
    resolutions: list[tuple[int, int]]  # sampled per step; the first is the largest (data, validation)
    config: str

    @property
    def resolution(self) -> tuple[int, int]:
        return self.resolutions[0]

    # a part of a split (few-shot) supernet: (choice, option) pinned in `space`
    part: tuple[str, Any] | None = None

    def identity_base(self) -> dict[str, Any]:
        return {"space": self.space.name, "space_key": self.space.space_key, "arch_id": "supernet",
                "genotype": "supernet", "task": self.task.describe(), "strategy": self.settings.strategy}

    def identity(self, store: WeightStore) -> dict[str, Any]:
        return {**self.identity_base(), "store": store.fingerprint}


def make_setup(config: str, *, strategy: str | None = None, resolution: str | None = None, split: str | None = None,
               **recipe_overrides: Any) -> SupernetSetup:
    space, task, recipe = load_training_config(config, **recipe_overrides)
    src = space.source
    settings = parse_supernet_section(space.config.supernet, src)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}", field="--strategy")
        settings = settings.with_overrides(strategy=strategy)
    if split is not None:
        check_split(space, split, "--split")
        settings = settings.with_overrides(split=split)
    elif settings.split is not None:
        check_split(space, settings.split, "supernet.split")
    if resolution:
        resolutions = [resolve_resolution(space, resolution, "--resolution")]
    elif settings.resolutions:
        resolutions = [parse_resolution(r) for r in settings.resolutions]
        for i, r in enumerate(resolutions):
            check_resolution(space, r, f"supernet.resolutions[{i}]")
        resolutions.sort(key=lambda r: (-r[0] * r[1], r))
        big = resolutions[0]
        for i, r in enumerate(resolutions):
            if r[0] > big[0] or r[1] > big[1]:
                raise ConfigError(f"{format_resolution(r)} does not fit inside the largest, {format_resolution(big)} "
                                  "(smaller resolutions are resized from it)", source=src,
                                  field="supernet.resolutions")
    else:
        resolutions = [resolve_resolution(space, recipe.resolution, "train.resolution")]
    return SupernetSetup(space, task, recipe, settings, resolutions, config)


def check_supernet_identity(state: dict[str, Any], identity: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint of another space, task, strategy or store, naming what differs."""
    have = state.get("identity", {})
    if have.get("arch_id") != "supernet":
        raise ConfigError(f"not a supernet checkpoint (network {have.get('genotype', '?')})", source=str(path))
    for key, what in (("space_key", "space"), ("task", "task"), ("strategy", "strategy"), ("store", "store shapes")):
        if have.get(key) != identity.get(key):
            a = have.get("space") if key == "space_key" else have.get(key)
            b = identity.get("space") if key == "space_key" else identity.get(key)
            raise ConfigError(f"checkpoint is of another {what}: {a!r}, expected {b!r} ({key} differs)",
                              source=str(path))


def _step_fn(setup: SupernetSetup, net: Supernet, ext: Extremes, keep: KeepUnused) -> Callable:
    s = setup.settings
    if s.strategy == "spos":
        return spos_step(net, setup.task, setup.resolutions, s.seed, keep.begin)
    return sandwich_step(net, setup.task, ext, s.random, setup.resolutions, s.seed, keep.begin,
                         distill=s.strategy == "sandwich")


@dataclass
class Prepared:
    """What is decided before training starts (and checked before anything is shown)."""

    store: WeightStore
    shapes_from: str
    extremes: Extremes
    identity: dict[str, Any]


def prepare_supernet(setup: SupernetSetup, out_dir: Path, *, resume: bool = False) -> Prepared | PreparedSplit:
    """The store, the sandwich's extremes and the identity; a resumed run's checkpoint must match them. A split
    (few-shot) supernet: those of every part (`fewshot.prepare_split`)."""
    out_dir = Path(out_dir)
    if setup.settings.split is not None:
        return prepare_split(setup, out_dir, resume=resume)
    have = recorded_split(out_dir)
    if have:
        raise ConfigError(f"holds a supernet split by {have}; pass --split {have} (or set supernet.split)",
                          source=str(out_dir))
    check_run_dir(out_dir, resume=resume)
    ext = extremes(setup.space, setup.resolution)
    store, how = build_store(setup.space, setup.resolution, setup.recipe.seed)
    identity = setup.identity(store)
    if resume:
        check_supernet_identity(load_checkpoint(out_dir / CHECKPOINT), identity, out_dir / CHECKPOINT)
    return Prepared(store, how, ext, identity)


def train_supernet(setup: SupernetSetup, out_dir: Path, *, resume: bool = False,
                   on_progress: Callable[[Progress], None] | None = None,
                   on_data: DataProgress | None = None, prepared: Prepared | PreparedSplit | None = None,
                   on_part: Callable[[str, int, int], None] | None = None) -> TrainResult:
    """Train (or resume) a supernet into `out_dir`: checkpoint.pt, best.pt, supernet.json. A split (few-shot)
    supernet: one such folder per part (`fewshot.train_split`; `on_part(label, index, count)` as each starts)."""
    out_dir = Path(out_dir)
    if setup.settings.split is not None:
        assert prepared is None or isinstance(prepared, PreparedSplit)
        return train_split(setup, out_dir, resume=resume, on_progress=on_progress, on_data=on_data,
                           on_part=on_part, prepared=prepared)
    prep = prepared or prepare_supernet(setup, out_dir, resume=resume)
    assert isinstance(prep, Prepared)
    store, how, ext, identity = prep.store, prep.shapes_from, prep.extremes, prep.identity
    r = setup.recipe
    dist = distributed.current()
    if r.threads:
        torch.set_num_threads(r.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(r.seed)
    with dist.main_first():
        data = setup.task.data(setup.resolution, seed=r.seed, progress=on_data if dist.is_main else None)
    net = Supernet(setup.space, store, ext.largest)
    device = device_for_training()
    trainer = Trainer(net, setup.task, data, r, out_dir, identity=identity, device=device, on_progress=on_progress)
    keep = KeepUnused(store, trainer.opt)
    trainer.step_fn = _step_fn(setup, net, ext, keep)
    if resume:
        trainer.resume()
    meta = {
        "config": str(Path(setup.config).resolve()), "identity": identity,
        "settings": setup.settings.model_dump(), "resolutions": [format_resolution(x) for x in setup.resolutions],
        "largest": str(ext.largest), "smallest": str(ext.smallest), "extremes_by": ext.method,
        "store": {**describe_shapes(store.shapes), "shapes_from": how}, "task": setup.task.describe(),
        "data": dict(data.description), "recipe": r.model_dump(), "device": str(device),
        "threads": torch.get_num_threads(), "versions": versions(),
    }
    if dist.active:
        meta["processes"] = dist.world
    if setup.part is not None:
        meta["part"] = {"choice": setup.part[0], "option": str(setup.part[1])}
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / SUPERNET_FILE, {**meta, "status": "running", "updated": time.time()})
    try:
        result = trainer.run()
    except KeyboardInterrupt:
        if dist.is_main:
            write_json(out_dir / SUPERNET_FILE, {**meta, "status": "interrupted", "history": trainer.history,
                                                 "updated": time.time()})
        raise
    if dist.is_main:
        write_json(out_dir / SUPERNET_FILE, {**meta, "status": "done", **asdict(result), "updated": time.time()})
    dist.barrier()  # every rank returns with the folder complete
    return result


@dataclass
class LoadedSupernet:
    setup: SupernetSetup
    net: Supernet
    extremes: Extremes
    meta: dict[str, Any]
    checkpoint: Path


def load_supernet(run_dir: Path) -> LoadedSupernet:
    """A trained supernet folder: its setup from the recorded config, the store loaded and checked."""
    run_dir = Path(run_dir)
    meta_path = run_dir / SUPERNET_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"not a supernet folder (no {SUPERNET_FILE})", source=str(run_dir)) from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"unreadable ({type(e).__name__})", source=str(meta_path)) from None
    settings = meta.get("settings", {})
    res = meta.get("resolutions") or [None]
    setup = make_setup(meta["config"], strategy=settings.get("strategy"))
    setup.resolutions = [parse_resolution(x) for x in res]
    part = meta.get("part") or {}
    split = meta.get("split") or part.get("choice")  # as trained, whatever the config says now
    setup = replace(setup, settings=setup.settings.model_copy(update={"split": split}))
    if meta.get("split"):
        return load_split(run_dir, meta, setup)
    if part:
        setup = part_setup(setup, part["option"])
    ckpt = run_dir / CHECKPOINT
    state = load_checkpoint(ckpt)
    store, _ = build_store(setup.space, setup.resolution, setup.recipe.seed)
    check_supernet_identity(state, setup.identity(store), ckpt)
    net = Supernet(setup.space, store, setup.space.default)
    prefix = "store."
    net.store.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)},
                              strict=True)
    if meta.get("largest") and meta.get("smallest"):  # recorded at training: no second search over the space
        ext = Extremes(setup.space.parse_genotype(meta["largest"]), setup.space.parse_genotype(meta["smallest"]),
                       meta.get("extremes_by", ""))
    else:
        ext = extremes(setup.space, setup.resolution)
    return LoadedSupernet(setup, net, ext, meta, ckpt)
