"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021): one sub-supernet per
option of a chosen choice point (`supernet.split`, e.g. the backbone), each the ordinary one-shot supernet
of the space with that choice pinned, so sub-networks with different options share no weights.

Why: in a one-shot supernet every option of a choice point trains the weights of everything after it; the
flow heads, shared across backbones whose features differ in kind, are where that interference is largest.

Budget: each part trains ceil(train.epochs / options) epochs, so the parts together make the steps of one
supernet of train.epochs (up to options - 1 epochs more, from the rounding up); under uniform sampling
(SPOS) each option's sub-networks get the passes the one-shot supernet would give them. The parts start
from scratch (the paper initialises them from a trained one-shot supernet; here that would add a stage and
its cost), each with the run's seeds, one after the other, and each resumes on its own.

Layout: DIR/supernet.json names the split and its parts (status, seconds); DIR/<choice>=<option>/ is a
complete supernet folder of the pinned space (supernet.json records it as a `part`), usable on its own.
A loaded split supernet serves each genotype from the part that holds its option (`SplitNet`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgenas.errors import ConfigError
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace
from edgenas.train.trainer import CHECKPOINT, TrainResult

if TYPE_CHECKING:
    import torch

    from edgenas.train.supernet.run import LoadedSupernet, Prepared, SupernetSetup
    from edgenas.train.supernet.supernet import Supernet


def recorded_split(folder: Path) -> str | None:
    """The choice a supernet folder was split by (None: a one-shot supernet, or no readable record)."""
    import json

    from edgenas.train.supernet.run import SUPERNET_FILE

    try:
        meta = json.loads((Path(folder) / SUPERNET_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("split") if isinstance(meta, dict) else None


def check_split(space: SearchSpace, choice: str, field: str) -> None:
    """`choice` names a choice point of the space with at least two options."""
    splittable = [k for k, opts in space.choices.items() if len(opts) > 1]
    if choice not in splittable:
        raise ConfigError(f"{choice!r} is not a choice with two or more options; allowed: {', '.join(splittable)}",
                          source=space.source, field=field)


def pinned_space(space: SearchSpace, choice: str, option: Any) -> SearchSpace:
    """The space with `choice` fixed to `option` (same network and space_key, so genotypes carry over)."""
    c = space.config
    config = c.model_copy(update={"choices": {**c.choices, choice: [option]},
                                  "default": {**c.default, choice: option}})
    return SearchSpace(config, space.source)


def part_label(choice: str, option: Any) -> str:
    return f"{choice}={option}"


def part_epochs(epochs: int, options: int) -> int:
    return max(1, math.ceil(epochs / options))


def part_setup(setup: SupernetSetup, option: Any) -> SupernetSetup:
    """The one-shot setup of one part: the space pinned, the epochs shared out, no split."""
    choice = setup.settings.split
    assert choice is not None
    space = setup.space
    option = space.option(choice, option, field="supernet.split")
    epochs = part_epochs(setup.recipe.epochs, len(space.choices[choice]))
    return replace(setup, space=pinned_space(space, choice, option),
                   recipe=setup.recipe.with_overrides(epochs=epochs),
                   settings=setup.settings.model_copy(update={"split": None}), part=(choice, option))


def part_setups(setup: SupernetSetup) -> dict[str, SupernetSetup]:
    choice = setup.settings.split
    assert choice is not None
    return {part_label(choice, o): part_setup(setup, o) for o in setup.space.choices[choice]}


def split_fingerprint(stores: dict[str, str]) -> str:
    """The split supernet's store: its parts' store fingerprints, by part."""
    blob = ";".join(f"{k}:{v}" for k, v in sorted(stores.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class PreparedSplit:
    parts: dict[str, tuple[SupernetSetup, Prepared | None]]  # None: the part finished before
    identity: dict[str, Any]


def _part_done(folder: Path) -> bool:
    from edgenas.train.records import read_done
    from edgenas.train.supernet.run import SUPERNET_FILE

    return read_done(folder / SUPERNET_FILE) is not None


# what a finished part's record must agree on with the part a run would train (threads and checkpoint spacing
# change nothing that is kept)
_RECIPE_IGNORED = ("threads", "checkpoint_every")
_SETTINGS_TRAINED = ("strategy", "random", "resolutions", "seed")


def check_part_record(ps: SupernetSetup, folder: Path, store: str) -> None:
    """A finished part was trained as `ps` would train it: identity (space, task, strategy, store shapes),
    recipe and the supernet settings that shape training; one line naming what differs."""
    import json

    from edgenas.train.supernet.run import SUPERNET_FILE

    meta_path = Path(folder) / SUPERNET_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"unreadable ({type(e).__name__})", source=str(meta_path)) from None
    want = ps.identity_base()
    have = meta.get("identity") or {}
    diff = [k for k in ("space_key", "task", "strategy") if have.get(k) != want.get(k)]
    if have.get("store") != store:
        diff.append("store")
    recipe = {k: v for k, v in (meta.get("recipe") or {}).items() if k not in _RECIPE_IGNORED}
    wanted = {k: v for k, v in ps.recipe.model_dump().items() if k not in _RECIPE_IGNORED}
    diff += [f"train.{k}" for k in sorted(set(recipe) | set(wanted)) if recipe.get(k) != wanted.get(k)]
    settings, want_s = meta.get("settings") or {}, ps.settings.model_dump()
    diff += [f"supernet.{k}" for k in _SETTINGS_TRAINED if settings.get(k) != want_s.get(k)]
    if diff:
        raise ConfigError(f"this part was trained with other settings ({', '.join(diff)} differ); train the split "
                          "into another --out", source=str(meta_path))


def prepare_split(setup: SupernetSetup, out_dir: Path, *, resume: bool = False) -> PreparedSplit:
    """Every part's store and identity, checked against what a resumed run holds (finished parts against
    their records), before any training."""
    from edgenas.train.supernet.run import SUPERNET_FILE, prepare_supernet
    from edgenas.train.supernet.store import build_store

    out_dir = Path(out_dir)
    started = (out_dir / SUPERNET_FILE).exists()
    if started and not resume:
        raise ConfigError("already holds a supernet run; pass --resume to continue it or choose another --out",
                          source=str(out_dir))
    if resume and not started:
        raise ConfigError(f"nothing to resume: no {SUPERNET_FILE} here", source=str(out_dir))
    setups = part_setups(setup)
    if not started:
        stray = [label for label in setups if (out_dir / label).exists()]
        if stray:
            raise ConfigError(f"holds a part folder ({stray[0]}) but no {SUPERNET_FILE} of a split run; choose "
                              "another --out", source=str(out_dir))
    if resume:
        have = recorded_split(out_dir)
        if have != setup.settings.split:
            what = f"split by {have}" if have else "not split"
            raise ConfigError(f"the run here is {what}, not by {setup.settings.split} (--split / supernet.split)",
                              source=str(out_dir))
    parts: dict[str, tuple[SupernetSetup, Prepared | None]] = {}
    stores = {}
    for label, ps in setups.items():
        folder = out_dir / label
        if _part_done(folder):
            stores[label] = build_store(ps.space, ps.resolution, ps.recipe.seed)[0].fingerprint
            check_part_record(ps, folder, stores[label])
            parts[label] = (ps, None)
            continue
        prep = prepare_supernet(ps, folder, resume=(folder / CHECKPOINT).exists())
        stores[label] = prep.store.fingerprint
        parts[label] = (ps, prep)
    identity = {**setup.identity_base(), "store": split_fingerprint(stores)}
    return PreparedSplit(parts, identity)


def train_split(setup: SupernetSetup, out_dir: Path, *, resume: bool = False,
                on_progress: Callable | None = None, on_data: Callable | None = None,
                on_part: Callable[[str, int, int], None] | None = None,
                prepared: PreparedSplit | None = None) -> TrainResult:
    """Train (or resume) every part in turn into out_dir/<choice>=<option>/; out_dir/supernet.json names them."""
    import json

    from edgenas.train import distributed
    from edgenas.train.records import write_json
    from edgenas.train.supernet.run import SUPERNET_FILE, train_supernet

    out_dir = Path(out_dir)
    prep = prepared or prepare_split(setup, out_dir, resume=resume)
    dist = distributed.current()
    choice = setup.settings.split
    meta: dict[str, Any] = {
        "config": str(Path(setup.config).resolve()), "identity": prep.identity,
        "settings": setup.settings.model_dump(), "split": choice,
        "resolutions": [f"{h}x{w}" for h, w in setup.resolutions], "recipe": setup.recipe.model_dump(),
        "parts": {label: {"option": str(ps.space.choices[choice][0]), "epochs": ps.recipe.epochs}
                  for label, (ps, _) in prep.parts.items()},
    }

    def write(status: str, **extra: Any) -> None:
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(out_dir / SUPERNET_FILE, {**meta, "status": status, **extra, "updated": time.time()})

    dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    write("running")
    results: dict[str, dict[str, Any]] = {}
    try:
        for i, label in enumerate(list(prep.parts)):
            ps, part_prep = prep.parts[label]
            folder = out_dir / label
            if on_part is not None:
                on_part(label, i, len(prep.parts))
            if part_prep is not None:
                train_supernet(ps, folder, resume=(folder / CHECKPOINT).exists(), on_progress=on_progress,
                               on_data=on_data, prepared=part_prep)
                prep.parts[label] = (ps, None)  # its store and optimiser are not needed again: let them go
                del part_prep
            done = json.loads((folder / SUPERNET_FILE).read_text(encoding="utf-8"))
            # `updated` names the part's training as it ended: a part retrained or swapped in later is told apart
            results[label] = {k: done.get(k) for k in ("seconds", "cpu_seconds", "best_metric", "history", "updated")}
            if i + 1 < len(prep.parts):
                write("running", results=results)
    except KeyboardInterrupt:  # inside a part or between two: the record says where it stopped
        write("interrupted", results=results)
        raise
    seconds = sum(float(r["seconds"] or 0.0) for r in results.values())
    cpus = [r["cpu_seconds"] for r in results.values()]
    cpu = None if any(c is None for c in cpus) else float(sum(cpus))
    write("done", results=results, seconds=seconds, cpu_seconds=cpu)
    dist.barrier()
    return TrainResult(history=[], best_metric=None, best_epoch=None, stopped_early=False, curve=None,
                       seconds=seconds, extra={"parts": results}, cpu_seconds=cpu)


class SplitNet:
    """The parts of a split supernet as one: each genotype served by the part holding its option."""

    def __init__(self, space: SearchSpace, choice: str, parts: dict[Any, Supernet],
                 sources: dict[Any, dict[str, str]]) -> None:
        self.space = space
        self.choice = choice
        self.parts = parts
        self.sources = sources  # option -> {part, checkpoint, store}: what an export records

    def part_of(self, g: Genotype) -> Supernet:
        return self.parts[self._option_of(g)]

    def source_of(self, g: Genotype) -> dict[str, str]:
        """The part serving `g`: its label, checkpoint file and store fingerprint."""
        return dict(self.sources[self._option_of(g)])

    def _option_of(self, g: Genotype) -> Any:
        value = g.as_dict().get(self.choice)
        for option in self.parts:
            if str(option) == str(value):
                return option
        raise ConfigError(f"genotype {g} has {self.choice}={value}, which no part of the supernet holds "
                          f"(parts: {', '.join(map(str, self.parts))})", field="genotype")

    def subnet_module(self, g: Genotype, resolution: tuple[int, int]) -> torch.nn.Module:
        return self.part_of(g).subnet_module(g, resolution)

    @property
    def device(self) -> torch.device:
        return next(iter(self.parts.values())).device


def load_split(run_dir: Path, meta: dict[str, Any], setup: SupernetSetup) -> LoadedSupernet:
    """A split supernet folder: every part loaded and checked, served as one."""
    from edgenas.train.supernet.run import LoadedSupernet, load_supernet
    from edgenas.train.supernet.sampling import Extremes, size_of

    if meta.get("status") != "done":
        raise ConfigError(f"the split supernet is not trained to the end (status {meta.get('status')!r}); "
                          "finish it with `edgenas supernet train ... --resume`", source=str(run_dir))
    choice = setup.settings.split
    assert choice is not None
    loaded = {}
    for label in meta.get("parts") or {}:  # the parts it trained, whatever the config lists now
        part = load_supernet(Path(run_dir) / label)
        loaded[part.setup.space.choices[choice][0]] = part
    stores = {part_label(choice, o): p.meta["identity"]["store"] for o, p in loaded.items()}
    if split_fingerprint(stores) != meta.get("identity", {}).get("store"):
        raise ConfigError("its parts are not the ones it was trained with (store fingerprints differ)",
                          source=str(Path(run_dir) / "supernet.json"))
    for o, p in loaded.items():  # a part retrained or copied in after the split run ended
        label = part_label(choice, o)
        recorded = ((meta.get("results") or {}).get(label) or {}).get("updated")
        if recorded is not None and recorded != p.meta.get("updated"):
            raise ConfigError(f"part {label} is not the one this split run trained (its supernet.json changed "
                              "since)", source=str(Path(run_dir) / "supernet.json"))
    space, res = setup.space, setup.resolution
    big = max((p.extremes.largest for p in loaded.values()), key=lambda g: size_of(space, g, res))
    small = min((p.extremes.smallest for p in loaded.values()), key=lambda g: size_of(space, g, res))
    sources = {o: {"part": part_label(choice, o), "checkpoint": str(p.checkpoint),
                   "store": p.meta["identity"]["store"]} for o, p in loaded.items()}
    net = SplitNet(space, choice, {o: p.net for o, p in loaded.items()}, sources)
    return LoadedSupernet(setup, net, Extremes(big, small, "over the parts' extremes by MACs"), meta,  # type: ignore[arg-type]
                          Path(run_dir))

