"""From a config to a trained candidate: the space builds the Graph, the torch builder the module, the
task its data; the trainer joins them. Everything the run needs (config, genotype, seed, data, versions)
is written to `run.json` next to its checkpoint, so any figure can be traced back and re-run. Under torchrun
every process runs this; rank 0 prepares the data first (it fills the cache) and alone writes run.json."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from edgenas.errors import ConfigError
from edgenas.graph.ir import Graph
from edgenas.space.config import format_resolution, parse_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace, load_space
from edgenas.train import distributed, store
from edgenas.train.builder import GraphModule
from edgenas.train.recipe import TrainRecipe, parse_train_section
from edgenas.train.records import write_json
from edgenas.train.tasks.base import DataProgress, Task
from edgenas.train.trainer import BEST, CHECKPOINT, Progress, Trainer, TrainResult, device_for_training

RUN_FILE = "run.json"


@dataclass(frozen=True)
class Candidate:
    """One network of a space at one resolution, with its task and recipe."""

    space: SearchSpace
    genotype: Genotype
    resolution: tuple[int, int]
    task: Task
    recipe: TrainRecipe
    config: str

    def graph(self, resolution: tuple[int, int] | None = None) -> Graph:
        return self.space.build(self.genotype, resolution or self.resolution)

    @property
    def identity(self) -> dict[str, Any]:
        return {"space": self.space.name, "space_key": self.space.space_key, "arch_id": self.genotype.arch_id,
                "genotype": str(self.genotype)}


def check_resolution(space: SearchSpace, res: tuple[int, int], field: str) -> None:
    if res[0] % space.stride or res[1] % space.stride:
        raise ConfigError(f"{format_resolution(res)} is not divisible by the network's total stride {space.stride}",
                          source=space.source, field=field)


def resolve_resolution(space: SearchSpace, text: str | None, field: str) -> tuple[int, int]:
    if not text:
        return space.resolutions[0]
    try:
        res = parse_resolution(text)
    except ValueError as e:
        raise ConfigError(str(e), source=space.source, field=field) from None
    check_resolution(space, res, field)
    return res


def load_training_config(config: str, **recipe_overrides: Any) -> tuple[SearchSpace, Task, TrainRecipe]:
    """The space of a config file, its `task:` and its `train:` section with the given overrides."""
    from edgenas.train.tasks import make_task

    space = load_space(config)
    src = space.source
    task = make_task(space.config.task, source=src, input_channels=space.config.input_channels)
    recipe = parse_train_section(space.config.train, src)
    try:
        recipe = recipe.with_overrides(**recipe_overrides)
    except ValidationError as e:  # an override out of range
        raise ConfigError(" ".join(str(e).split())[:200], source=src, field="train") from None
    return space, task, recipe


def make_candidate(config: str, genotype: str = "default", *, resolution: str | None = None,
                   **recipe_overrides: Any) -> Candidate:
    """Load the space, its `task:` and `train:` sections, the genotype ('default' or name=value,...)."""
    space, task, recipe = load_training_config(config, **recipe_overrides)
    g = space.default if genotype in ("", "default") else space.parse_genotype(genotype)
    res = resolve_resolution(space, resolution or recipe.resolution, "--resolution")
    return Candidate(space, g, res, task, recipe, config)


def versions() -> dict[str, str]:
    import numpy

    from edgenas import __version__

    return {"edgenas": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}




def check_run_dir(out_dir: Path, *, resume: bool) -> None:
    """A new run needs a folder without one; --resume needs one."""
    has_run = (Path(out_dir) / CHECKPOINT).exists()
    if has_run and not resume:
        raise ConfigError("already holds a training run; pass --resume to continue it or choose another --out",
                          source=str(out_dir))
    if resume and not has_run:
        raise ConfigError(f"nothing to resume: no {CHECKPOINT} here", source=str(out_dir))


def initial_weights(c: Candidate, path: Path | None, *, resume: bool) -> dict[str, Any] | None:
    """The checkpoint a new run starts from (`--init-from`: weights only), checked against the genotype."""
    if path is None:
        return None
    if resume:
        raise ConfigError("starts a new run from a checkpoint's weights; a resumed run continues its own",
                          field="--init-from")
    from edgenas.train.trainer import check_identity, load_checkpoint

    state = load_checkpoint(Path(path))
    check_identity(state, c.identity, Path(path))
    return state


def train_candidate(c: Candidate, out_dir: Path, *, resume: bool = False,
                    on_progress: Callable[[Progress], None] | None = None,
                    on_data: DataProgress | None = None, init_from: Path | None = None) -> TrainResult:
    """Train (or resume) one candidate into `out_dir`: checkpoint.pt, best.pt and run.json. `init_from`: a
    checkpoint of the same network whose weights the run starts from (fresh optimiser and schedule)."""
    out_dir = Path(out_dir)
    check_run_dir(out_dir, resume=resume)
    init = initial_weights(c, init_from, resume=resume)
    r = c.recipe
    dist = distributed.current()
    if r.threads:
        torch.set_num_threads(r.threads)
    graph = c.graph()
    device = device_for_training()
    key = None
    if store.reusable(c.task, device, distributed=dist.active, init_from=init_from):
        key = store_key(graph, c.task, r, device)
        entry = store.lookup(key) if not resume else None
        if entry is not None:
            return _reuse(c, graph, out_dir, entry, key, device)
    torch.manual_seed(r.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    with dist.main_first():
        data = c.task.data(c.resolution, seed=r.seed, progress=on_data if dist.is_main else None)
    torch.manual_seed(r.seed)  # the same initial weights whatever the data preparation drew
    module = GraphModule(graph)
    if init is not None:
        from edgenas.train.trainer import load_weights

        load_weights(module, init, Path(init_from))
    trainer = Trainer(module, c.task, data, r, out_dir, identity=c.identity, device=device, on_progress=on_progress)
    if resume:
        trainer.resume()
    meta = {**run_meta(c, graph, device), "data": dict(data.description),
            "params": sum(p.numel() for p in module.parameters())}
    if init_from is not None:
        meta["init_from"] = str(init_from)
    if dist.active:
        meta["processes"] = dist.world
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / RUN_FILE, {**meta, "status": "running", "updated": time.time()})
    try:
        result = trainer.run()
    except KeyboardInterrupt:
        if dist.is_main:
            write_json(out_dir / RUN_FILE, {**meta, "status": "interrupted", "history": trainer.history,
                                             "updated": time.time()})
        raise
    if dist.is_main:
        write_json(out_dir / RUN_FILE, {**meta, "status": "done", **asdict(result), "primary": c.task.primary,
                                         "best_checkpoint": BEST, "updated": time.time()})
        if key is not None:
            store.put(key, out_dir / BEST, result=asdict(result), data=meta["data"], params=meta["params"],
                      source={"config": str(c.config), "identity": c.identity, "out_dir": str(out_dir)})
    dist.barrier()  # every rank returns with the folder complete
    return result


def store_key(graph: Graph, task: Task, recipe: TrainRecipe, device: torch.device) -> str:
    """The training's key in the store (train/store.py), with the threads torch uses now."""
    return store.training_key(graph.structure_fingerprint(), task.describe(), recipe.model_dump(),
                              threads=torch.get_num_threads(), device=str(device), torch_version=torch.__version__)


def run_meta(c: Candidate, graph: Graph, device: torch.device) -> dict[str, Any]:
    return {"config": str(c.config), "identity": c.identity, "genotype": c.genotype.as_dict(),
            "resolution": format_resolution(c.resolution), "task": c.task.describe(), "recipe": c.recipe.model_dump(),
            "device": str(device), "threads": torch.get_num_threads(), "versions": versions(), "macs": graph.macs}


def reused_from(out_dir: str | Path) -> dict[str, Any] | None:
    """Where a finished run's weights came from when it was taken from the training store (run.json's
    `reused`: store, key and the identity it was trained under), else None."""
    path = Path(out_dir) / RUN_FILE
    return json.loads(path.read_text()).get("reused") if path.exists() else None


def _reuse(c: Candidate, graph: Graph, out_dir: Path, entry: Path, key: str, device: torch.device) -> TrainResult:
    """The same training finished before (under any space or config): its best weights and result, in
    `out_dir` as if trained here, with run.json saying where they came from."""
    record = store.read_record(entry)
    result = TrainResult(**record["result"])
    store.restore_best(entry, out_dir / BEST, c.identity)
    write_json(out_dir / RUN_FILE, {**run_meta(c, graph, device), "data": record.get("data", {}),
                                    "params": record.get("params"), "status": "done", **asdict(result),
                                    "primary": c.task.primary, "best_checkpoint": BEST,
                                    "reused": {"store_key": key, "store": str(entry.parent), **record["source"]},
                                    "updated": time.time()})
    return result
