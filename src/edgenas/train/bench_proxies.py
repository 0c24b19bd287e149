"""`edgenas bench-proxies`: which cheap accuracy estimate can a user trust?

Every genotype of a list is trained stand-alone twice, seeds A and B (the reference, the config's recipe).
The benchmark sets against seed A's result, per genotype:
- every training-free proxy (train/proxies.py) at initialisation on one batch of the training set;
- short training: the same recipe with 1/10 of the epochs (at least one), its own full schedule;
- the baselines params and MACs (bigger = predicted better);
- seed B, i.e. what a second full training agrees with the first: the noise floor of the reference.
and reports Kendall tau and Spearman rho with paired bootstrap intervals, the same within each backbone,
the Spearman-Brown ceiling, and the cost of each in seconds (analysis/fidelity.py has the statistics).

Seeds. With s = train.seed: A = s, B = s + 1, short training s + 2, proxies s + 3 (weight initialisation
and the batch); so no estimate shares a seed with the reference. The data are the task's fixed dataset
(`data_seed`), the same for every run. A reference run is what `edgenas train CONFIG --genotype G --seed S`
trains (same seeding: weights drawn after the data, torch's deterministic algorithms), with validation
only at the end when the recipe has no early stopping (evaluation changes nothing in training). Its
figure is the primary metric of the network as trained, at the last epoch.

Orientation. For a lower-is-better metric (EPE) every estimate is correlated with -metric, so a positive
tau means "ranks like seed A" for every row of the table.

Runs in chunks that resume. Each finished unit of work (one genotype's proxies, one training run) is kept
as it ends: one JSON file per (genotype, kind, seed) in the folder `<out>.runs/`, written atomically (temp
file + rename) by the worker that did it. A training run in progress checkpoints every epoch into
`<out>.runs/<key>.partial/` and resumes from there. Re-running the same command skips what is done, and
Ctrl-C / SIGTERM stop the workers and keep everything finished (the CLI exits 130 / 143). The folder
remembers its settings (`settings.json`) and refuses runs of other settings. Parallel over `jobs`
processes (edgenas.processes.run_in_workers), one torch thread each; on a GPU machine the trainer takes
the GPU (trainer.device_for_training), proxies stay on the CPU.

The JSON (`SCHEMA`; null wherever a figure is undefined or not finite):
  schema, status ("complete" | "partial"), config, space, space_key, settings {config, preset, resolution,
  task, recipe, short_epochs, seeds {a, b, short, proxy}, proxy_batch}, task (Task.describe()), primary,
  higher_is_better, orientation (text), genotypes {listed, complete, runs_done, runs_total}, group_by
  ("backbone" | null), ceiling_formula (text),
  reference {seed, epochs, seconds_total, seconds_per_genotype, cpu_seconds_total, cpu_seconds_per_genotype,
  metric_mean, metric_range},
  ceiling {r_ab, ceiling_one_seed, ceiling_one_seed_ci, reliability_two_seed_mean},
  estimates {seed_b | short_training | synflow | naswot | jacob_cov | snip | grad_norm | params | macs:
  {tau, tau_ci [lo, hi], spearman, spearman_ci, within {tau, tau_ci, spearman, spearman_ci, groups {label:
  {n, tau, spearman}}} (when group_by), top_k {k, overlap, best_in_top_k}, kind, cost_of, seconds_total,
  seconds_per_genotype, cpu_seconds_total, cpu_seconds_per_genotype, epochs (short_training)}},
  ranking [the cheap estimates by tau, best first], bootstrap {resamples, confidence, seed, method},
  rows [{genotype, arch_id, group, a, b, short (the metric), a_seconds, ..., proxies {name: score},
  proxy_seconds, proxy_cpu_seconds, complete}], failed [units whose worker died].
`summarise(extra=...)` adds other estimates (bench-supernet's supernet rows) to `estimates` and `ranking`, with
the same resamples, and their scores to each row's `extra`.
Only the genotypes with every unit done (`complete`) enter the statistics. Seconds are wall seconds of the
training (Trainer) or of each proxy; cpu_seconds the process's CPU time (one torch thread), steadier on a
shared machine.

Presets. `full`: the config as written (its task: and train: sections; benchmarks/flow_space.yaml and
benchmarks/digits_space.yaml hold the budget a measured pilot chose, benchmarks/RESULTS.md). `smoke`: the
same at a tiny resolution, few samples and epochs (SMOKE), minutes on 2 cores, for `make bench`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.space.config import format_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace, load_space
from edgenas.train.records import read_done, write_json

SCHEMA = "edgenas.bench-proxies/1"
PRESETS = ("full", "smoke")
PROXY_NAMES = ("synflow", "naswot", "jacob_cov", "snip", "grad_norm")
BASELINE_NAMES = ("params", "macs")
GROUP_CHOICE = "backbone"  # within-group correlations are over this choice, when the space has it
SHORT_FRACTION = 10  # short training: epochs // 10 (at least 1)
PROXY_BATCH = 64

# The smoke preset per task type: a tiny resolution, few samples, few epochs (the rest of the recipe as in
# the config). A type not listed keeps its data and resolution and trains SMOKE_EPOCHS epochs.
SMOKE: dict[str, dict[str, Any]] = {
    "flow": {"resolution": (32, 48), "task": {"train_samples": 96, "val_samples": 48}, "epochs": 5},
    "digits-hard": {"resolution": (32, 32), "task": {"train_samples": 1000, "val_samples": 500}, "epochs": 8,
                    "batch_size": 32},
    "digits": {"resolution": (16, 16), "task": {}, "epochs": 6},
}
SMOKE_EPOCHS = 4

ORIENTATION = ("every estimate is oriented higher = predicted better and correlated with the reference "
               "oriented the same way: for a lower-is-better metric (EPE) with -metric; a positive tau means "
               "the estimate ranks networks like seed A")
CEILING_FORMULA = ("r_AB = Spearman(seed A, seed B), the reliability of one training run; ceiling_one_seed = "
                   "sqrt(r_AB): no estimate correlates with seed A better than about this in expectation "
                   "(correction for attenuation); reliability_two_seed_mean = 2 r_AB / (1 + r_AB) "
                   "(Spearman-Brown, k = 2), the reliability of the mean of two seeds")


# ---- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    """Everything that decides the figures (and keys the run folder)."""

    config: str
    preset: str
    resolution: tuple[int, int]
    task: Mapping[str, Any]  # the task: section used (the config's, with the preset's changes)
    recipe: Mapping[str, Any]  # the reference recipe (TrainRecipe.model_dump())
    short_epochs: int
    seeds: Mapping[str, int]
    proxy_batch: int = PROXY_BATCH
    data: Mapping[str, Any] = field(default_factory=dict)  # Task.describe(): generator versions included

    def fingerprint(self, space_key: str) -> str:
        blob = json.dumps({"space_key": space_key, "task": dict(self.task), "data": dict(self.data),
                           "recipe": dict(self.recipe),
                           "resolution": list(self.resolution), "short_epochs": self.short_epochs,
                           "seeds": dict(self.seeds), "proxy_batch": self.proxy_batch},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_settings(config: str, *, preset: str = "full", resolution: str | None = None) -> BenchSettings:
    """The settings of a benchmark of `config` under `preset` (--resolution wins over both)."""
    from edgenas.train.recipe import parse_train_section
    from edgenas.train.run import resolve_resolution
    from edgenas.train.tasks import make_task

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}", field="--preset")
    space = load_space(config)
    task = dict(space.config.task)
    if not task:
        raise ConfigError("the config has no `task:` section; add one, e.g. `task: {type: flow}`",
                          source=space.source, field="task")
    recipe = parse_train_section(space.config.train, space.source)
    res_text = resolution or recipe.resolution
    if preset == "smoke":
        smoke = SMOKE.get(str(task.get("type")), {})
        task.update(smoke.get("task", {}))
        recipe = recipe.with_overrides(epochs=smoke.get("epochs", SMOKE_EPOCHS), batch_size=smoke.get("batch_size"))
        if resolution is None and "resolution" in smoke:
            res_text = format_resolution(smoke["resolution"])
    res = resolve_resolution(space, res_text, "--resolution")
    recipe = recipe.with_overrides(resolution=format_resolution(res))
    s = recipe.seed
    seeds = {"a": s, "b": s + 1, "short": s + 2, "proxy": s + 3}
    described = make_task(task, source=space.source, input_channels=space.config.input_channels).describe()
    return BenchSettings(str(config), preset, res, task, recipe.model_dump(),
                         max(1, recipe.epochs // SHORT_FRACTION), seeds, data=described)


def read_genotypes(space: SearchSpace, spec: str, *, sample_seed: int = 0,
                   field: str = "--genotypes") -> list[Genotype]:
    """`spec`: a number N (N distinct genotypes drawn at random, seeded; all of them if the space has no
    more) or a file with one genotype per line (name=value,...; `#` comments and blank lines skipped).
    `field`: the option errors name."""
    text = spec.strip()
    if text.isdigit():
        n = int(text)
        if n < 2:
            raise ConfigError(f"at least 2 genotypes are needed to rank anything, got {n}", field=field)
        if n >= space.size():
            return list(space.enumerate())
        rng = random.Random(sample_seed)
        seen: dict[str, Genotype] = {}
        while len(seen) < n:
            g = space.sample(rng)
            seen.setdefault(g.arch_id, g)
        return list(seen.values())
    path = Path(text)
    if not path.is_file():
        raise ConfigError("expected a number of genotypes or a file of genotypes (one per line): no such file",
                          source=text, field=field)
    out: dict[str, Genotype] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            g = space.parse_genotype(line)
        except ConfigError as e:
            raise ConfigError(f"line {lineno}: {e.message}", source=str(path), field=field) from None
        if g.arch_id in out:
            raise ConfigError(f"line {lineno}: {line} is listed twice", source=str(path), field=field)
        out[g.arch_id] = g
    if len(out) < 2:
        raise ConfigError("at least 2 genotypes are needed to rank anything", source=str(path), field=field)
    return list(out.values())


def read_part(space: SearchSpace, spec: str, listed: Sequence[Genotype], *, field: str) -> list[Genotype]:
    """The genotypes of file `spec`, a part of the list (bench-proxies' `--first`, bench-supernet's
    `--table-on`): each must be listed; `field` names the option in errors."""
    if not Path(spec).is_file():
        raise ConfigError("expected a file of genotypes (one per line): no such file", source=spec, field=field)
    ids = {g.arch_id for g in listed}
    part = read_genotypes(space, spec, field=field)
    stray = [str(g) for g in part if g.arch_id not in ids]
    if stray:
        raise ConfigError(f"{stray[0]} is not in the --genotypes list ({len(stray)} such)", source=spec, field=field)
    return part


# ---- the units of work ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One unit of work: a genotype's proxies, or one training run."""

    genotype: str
    arch_id: str
    kind: str  # "proxy" | "ref" | "short"
    seed: int
    epochs: int = 0  # training only

    @property
    def key(self) -> str:
        return f"{self.arch_id}-{self.kind}-s{self.seed}"


def plan(settings: BenchSettings, genotypes: Sequence[Genotype], *, first: Collection[str] = ()) -> list[Item]:
    """Genotype by genotype (proxies, seed A, seed B, short training), in a seeded random order of the
    genotypes: a partial run holds whole genotypes, and they are a random subset of the list (the list's
    own order may group them, e.g. by backbone). The arch_ids in `first` come before the others, each part
    in that same order: a partial run then holds a random subset of `first` (e.g. the randomly drawn part of
    a list that also names hand-chosen networks)."""
    seeds, epochs = settings.seeds, int(settings.recipe["epochs"])
    order = list(genotypes)
    random.Random(0).shuffle(order)
    order.sort(key=lambda g: g.arch_id not in first)  # stable: the seeded order within each part
    items: list[Item] = []
    for g in order:
        items += [Item(str(g), g.arch_id, "proxy", seeds["proxy"]),
                  Item(str(g), g.arch_id, "ref", seeds["a"], epochs),
                  Item(str(g), g.arch_id, "ref", seeds["b"], epochs),
                  Item(str(g), g.arch_id, "short", seeds["short"], settings.short_epochs)]
    return items


def runs_dir(out: Path) -> Path:
    """`results.json` -> `results.runs/`: where the finished units of work are kept."""
    out = Path(out)
    return out.with_name(out.stem + ".runs") if out.suffix == ".json" else out.with_name(out.name + ".runs")




# ---- in the worker processes ------------------------------------------------------------------------------


class _Context:
    """A worker's space, task and data, made once per process."""

    def __init__(self, settings: BenchSettings, space_source: str, runs: Path) -> None:
        from edgenas.train.tasks import make_task

        self.settings = settings
        self.space = load_space(space_source)
        self.task = make_task(settings.task, source=self.space.source, input_channels=self.space.config.input_channels)
        self.runs = runs
        self._data: dict[Any, Any] = {}

    def data(self, seed: int) -> Any:
        key = "fixed" if getattr(self.task, "data_seed", None) is not None else seed
        if key not in self._data:
            self._data[key] = self.task.data(self.settings.resolution, seed=seed)
        return self._data[key]


_CTX: _Context | None = None


def _init_worker(settings: BenchSettings, space_source: str, runs: str, threads: int) -> None:
    import torch

    global _CTX
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    _CTX = _Context(settings, space_source, Path(runs))


def proxy_batch(ds: Any, seed: int, size: int) -> tuple[Any, Any]:
    """`size` samples of a dataset drawn with a seeded generator, stacked: the proxies' one batch."""
    import torch

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:size].tolist()
    samples = [ds[i] for i in idx]
    return torch.stack([s[0] for s in samples]), torch.stack([torch.as_tensor(s[1]) for s in samples])


def _run_proxies(ctx: _Context, item: Item, g: Genotype) -> dict[str, Any]:
    import torch

    from edgenas.train.builder import GraphModule
    from edgenas.train.proxies import proxy_scores

    data = ctx.data(item.seed)
    x, y = proxy_batch(data.train, item.seed, ctx.settings.proxy_batch)
    torch.manual_seed(item.seed)
    module = GraphModule(ctx.space.build(g, ctx.settings.resolution))
    scores, seconds, cpu = {}, {}, {}
    for name in (*PROXY_NAMES, *BASELINE_NAMES):  # one at a time, for each one's CPU time (same scores)
        c0 = time.process_time()
        scores[name], seconds[name] = proxy_scores(module, x, y, ctx.task.loss, names=(name,))[name]
        cpu[name] = time.process_time() - c0
    return {"scores": scores, "seconds": seconds, "cpu": cpu, "batch": len(x), "device": "cpu"}


def _run_training(ctx: _Context, item: Item, g: Genotype) -> dict[str, Any]:
    import torch

    from edgenas.train import store
    from edgenas.train.builder import GraphModule
    from edgenas.train.recipe import TrainRecipe
    from edgenas.train.run import store_key
    from edgenas.train.trainer import BEST, CHECKPOINT, Trainer, device_for_training

    base = TrainRecipe.model_validate(dict(ctx.settings.recipe))
    # validation only at the end unless early stopping needs it (evaluation changes nothing in training)
    eval_every = item.epochs if base.patience is None else base.eval_every
    recipe = base.with_overrides(seed=item.seed, epochs=item.epochs, eval_every=eval_every)
    graph = ctx.space.build(g, ctx.settings.resolution)
    partial = ctx.runs / f"{item.key}.partial"
    identity = {"space": ctx.space.name, "space_key": ctx.space.space_key, "arch_id": g.arch_id, "genotype": str(g)}
    device = device_for_training()
    primary = ctx.task.primary
    key = store_key(graph, ctx.task, recipe, device) if store.reusable(ctx.task, device, distributed=False) else None
    entry = store.lookup(key) if key is not None and not (partial / CHECKPOINT).exists() else None
    if entry is not None:  # the same training finished before, here or under another command or space
        rec = store.read_record(entry)
        done = rec["result"]
        return {"metric": _last_metric(done["history"], primary), "best_metric": done["best_metric"],
                "best_epoch": done["best_epoch"], "seconds": done["seconds"], "history": done["history"],
                "resumed": False, "device": str(device), "recipe": recipe.model_dump(),
                "reused": {"store_key": key, **rec["source"]},
                "_cpu_stored": done.get("cpu_seconds")}
    torch.manual_seed(item.seed)
    data = ctx.data(item.seed)
    torch.manual_seed(item.seed)  # the same initial weights whatever the data preparation drew (as train_candidate)
    module = GraphModule(graph)
    trainer = Trainer(module, ctx.task, data, recipe, partial, identity=identity, device=device)
    resumed, cpu_before = False, 0.0
    if (partial / CHECKPOINT).exists():
        try:
            trainer.resume()
            resumed, cpu_before = True, trainer.cpu_seconds
        except ConfigError:  # unreadable or of other settings: start again
            shutil.rmtree(partial, ignore_errors=True)
            torch.manual_seed(item.seed)
            module = GraphModule(graph)
            trainer = Trainer(module, ctx.task, data, recipe, partial, identity=identity, device=device)
    result = trainer.run()
    if key is not None:
        store.put(key, partial / BEST, result=asdict(result), data=data.description,
                  params=sum(p.numel() for p in module.parameters()),
                  source={"config": ctx.space.source, "identity": identity, "out_dir": str(ctx.runs / item.key)})
    return {"metric": _last_metric(result.history, primary), "best_metric": result.best_metric,
            "best_epoch": result.best_epoch, "seconds": result.seconds, "history": result.history,
            "resumed": resumed, "device": str(device), "recipe": recipe.model_dump(), "_partial": str(partial),
            "_cpu_before": cpu_before}


def _last_metric(history: Sequence[Mapping[str, Any]], primary: str) -> float:
    """The primary metric of the last evaluated epoch (nan when none was evaluated)."""
    return next((h[primary] for h in reversed(history) if primary in h), math.nan)


def _work(item: Item) -> dict[str, Any]:
    """Do one unit of work and keep its record; returns the record."""
    ctx = _CTX
    assert ctx is not None, "worker not initialised"
    g = ctx.space.parse_genotype(item.genotype)
    t0, c0 = time.perf_counter(), time.process_time()
    body = _run_proxies(ctx, item, g) if item.kind == "proxy" else _run_training(ctx, item, g)
    partial = body.pop("_partial", None)
    # cpu_seconds: this process's CPU time (one torch thread), the cost on a machine shared with others, plus
    # what a resumed run's checkpoint carried from earlier sessions (None there: a checkpoint too old to say)
    cpu_before = body.pop("_cpu_before", 0.0)
    cpu = time.process_time() - c0
    if "_cpu_stored" in body:  # reused from the training store: the cost is that of the training that made it
        stored = body.pop("_cpu_stored")
        cpu, cpu_before = (stored, 0.0) if stored is not None else (body["seconds"], 0.0)
        if stored is None:  # a training resumed from a checkpoint too old to carry its CPU time
            body["cpu_seconds_from_wall"] = True
    record = {"status": "done", **asdict(item), "arch_id": g.arch_id, "wall_seconds": time.perf_counter() - t0,
              "cpu_seconds": cpu + cpu_before if cpu_before is not None else cpu, "finished": time.time(), **body}
    if cpu_before is None:
        record["cpu_seconds_this_session_only"] = True
    write_json(ctx.runs / f"{item.key}.json", record)
    if partial:
        shutil.rmtree(partial, ignore_errors=True)
    return record


# ---- the parent: plan, run, summarise -----------------------------------------------------------------------


def check_folder(runs: Path, settings: BenchSettings, space: SearchSpace, *, create: bool = True) -> None:
    """A run folder for `settings` (created with its manifest when new, unless `create` is False); a folder of
    other settings is refused."""
    remember_settings(runs, settings.fingerprint(space.space_key),
                      {"space": space.name, "space_key": space.space_key, "settings": _settings_dict(settings)},
                      what="config, preset, recipe, task or resolution", create=create)


def remember_settings(folder: Path, fingerprint: str, record: Mapping[str, Any], *, what: str,
                      manifest: str = "settings.json", create: bool = True) -> bool:
    """A run folder remembers the fingerprint of the settings its runs were made with and refuses others
    (ConfigError naming the folder and `what` may differ). True when the folder is new (manifest written,
    unless `create` is False: then only checked)."""
    path = folder / manifest
    if path.exists():
        try:
            have = json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            have = None
        if have != fingerprint:
            raise ConfigError(f"holds runs of other settings ({what}); use another --out or delete the folder",
                              source=str(folder))
        return False
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(path, {"fingerprint": fingerprint, **record})
    return True


def _settings_dict(s: BenchSettings) -> dict[str, Any]:
    return {"config": s.config, "preset": s.preset, "resolution": format_resolution(s.resolution),
            "task": dict(s.task), "recipe": dict(s.recipe), "short_epochs": s.short_epochs, "seeds": dict(s.seeds),
            "proxy_batch": s.proxy_batch}


@dataclass
class BenchRun:
    """What `run_bench` did, for the command's last lines."""

    summary: dict[str, Any]
    done_before: int
    done_now: int
    failed: list[str] = field(default_factory=list)


def run_bench(settings: BenchSettings, genotypes: Sequence[Genotype], out: Path, *, jobs: int = 1,
              threads: int = 1, resamples: int = 1000, train: bool = True,
              on_record: Callable[[Item, dict[str, Any], int, int], None] | None = None,
              on_start: Callable[[int, int], None] | None = None, first: Collection[str] = (),
              part: tuple[str, Sequence[Genotype]] | None = None) -> BenchRun:
    """Run what is not done yet (unless `train` is False), then summarise every kept record into `out`.
    `on_record(item, record, done, total)` after each finished unit; `on_start(to_do, total)` before;
    `first`: arch_ids whose units are done before the others' (see `plan`). `part` (its file and genotypes,
    part of the list): the same summary on those alone as well, under `part` (e.g. the randomly drawn part of
    a list that also names hand-chosen networks)."""
    from edgenas.processes import WorkerDied, run_in_workers

    out = Path(out)
    space = load_space(settings.config)
    runs = runs_dir(out)
    check_folder(runs, settings, space)
    items = plan(settings, genotypes, first=first)
    todo = [it for it in items if read_done(runs / f"{it.key}.json") is None]
    done_before = len(items) - len(todo)
    if on_start is not None:
        on_start(len(todo) if train else 0, len(items))
    failed: list[str] = []
    done_now = 0
    if train and todo:
        _prepare_data(settings, space)  # generated (and cached) once here, read by every worker
        workers = jobs if jobs > 0 else (os.cpu_count() or 1)
        for i, result in run_in_workers(_work, todo, workers=workers, initializer=_init_worker,
                                        initargs=(settings, space.source, str(runs), threads)):
            if isinstance(result, WorkerDied):
                failed.append(f"{todo[i].key}: {result.message}")
                continue
            done_now += 1
            if on_record is not None:
                on_record(todo[i], result, done_before + done_now, len(items))
    records = {it.key: read_done(runs / f"{it.key}.json") for it in items}
    summary = summarise(settings, space, genotypes, items, records, resamples=resamples)
    if part is not None:
        summary["part"] = _part_summary(settings, space, items, records, part, resamples)
    summary["failed"] = failed
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, summary)
    return BenchRun(summary, done_before, done_now, failed)


def _part_summary(settings: BenchSettings, space: SearchSpace, items: Sequence[Item],
                  records: Mapping[str, dict[str, Any] | None], part: tuple[str, Sequence[Genotype]],
                  resamples: int) -> dict[str, Any]:
    ids = {g.arch_id for g in part[1]}
    part_items = [it for it in items if it.arch_id in ids]
    return {**summarise(settings, space, part[1], part_items, {it.key: records[it.key] for it in part_items},
                        resamples=resamples), "part_file": part[0]}


def summarise_part(settings: BenchSettings, genotypes: Sequence[Genotype], out: Path,
                   part: tuple[str, Sequence[Genotype]], *, resamples: int = 1000) -> dict[str, Any]:
    """The summary on `part` (its file and genotypes, part of `genotypes`) alone, from the runs kept beside
    `out`: what `run_bench(..., part=part)` puts under `part`, for a second part of the same list, with
    nothing trained and nothing written."""
    space = load_space(settings.config)
    runs = runs_dir(out)
    check_folder(runs, settings, space, create=False)
    items = plan(settings, genotypes)
    records = {it.key: read_done(runs / f"{it.key}.json") for it in items}
    return _part_summary(settings, space, items, records, part, resamples)


def _prepare_data(settings: BenchSettings, space: SearchSpace) -> None:
    from edgenas.train.tasks import make_task

    task = make_task(settings.task, source=space.source, input_channels=space.config.input_channels)
    seeds = {settings.seeds["a"]} if getattr(task, "data_seed", None) is not None else set(settings.seeds.values())
    for s in seeds:
        task.data(settings.resolution, seed=s)


def summarise(settings: BenchSettings, space: SearchSpace, genotypes: Sequence[Genotype], items: Sequence[Item],
              records: Mapping[str, dict[str, Any] | None], *, resamples: int = 1000,
              extra: Mapping[str, Mapping[str, Any]] | None = None,
              differences: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The JSON of the benchmark from the kept records: the genotypes with every unit done are compared.

    `extra`: more estimates set against the same reference with the same bootstrap resamples (the supernet
    benchmark's rows), name -> {scores {arch_id: score, oriented higher = better}, seconds_total (the whole
    cost, however many genotypes), cpu_seconds_total, optionally seconds_per_genotype and cpu_seconds_per_genotype
    (else the totals over the genotypes compared), kind, cost_of, and any other fields for its entry
    (label: the table's text)}. A genotype is complete when every extra estimate scored it too.
    `differences`: pairs of estimate names whose tau / rho difference gets a paired interval (`fidelity`).
    The result's `lead`: the best cheap estimate's difference from each other one, in ranking order (is the
    best one better beyond the noise of which genotypes were drawn, or only first by point estimate?)."""
    extra = dict(extra or {})
    from edgenas.analysis.fidelity import fidelity, oriented
    from edgenas.train.tasks import make_task

    task = make_task(settings.task, source=space.source, input_channels=space.config.input_channels)
    seeds = settings.seeds
    by_arch: dict[str, dict[str, dict[str, Any] | None]] = {}
    for it in items:
        slot = {"proxy": "proxy", "short": "short"}.get(it.kind) or ("a" if it.seed == seeds["a"] else "b")
        by_arch.setdefault(it.arch_id, {})[slot] = records.get(it.key)
    rows = []
    for g in genotypes:
        r = by_arch.get(g.arch_id, {})
        row: dict[str, Any] = {"genotype": str(g), "arch_id": g.arch_id,
                               "group": g.as_dict().get(GROUP_CHOICE) if GROUP_CHOICE in space.choices else None}
        for slot in ("a", "b", "short"):
            rec = r.get(slot)
            row[slot] = None if rec is None else rec["metric"]
            row[f"{slot}_seconds"] = None if rec is None else rec["seconds"]
            row[f"{slot}_cpu_seconds"] = None if rec is None else rec.get("cpu_seconds")
        p = r.get("proxy")
        row["proxies"] = None if p is None else {k: _json_float(v) for k, v in p["scores"].items()}
        row["proxy_seconds"] = None if p is None else p["seconds"]
        row["proxy_cpu_seconds"] = None if p is None else p.get("cpu")
        row["complete"] = all(r.get(s) is not None for s in ("a", "b", "short", "proxy"))
        if extra:
            row["extra"] = {name: _json_float(x["scores"].get(g.arch_id)) if g.arch_id in x["scores"] else None
                            for name, x in extra.items()}
            row["complete"] = row["complete"] and all(g.arch_id in x["scores"] for x in extra.values())
        rows.append(row)
    complete = [row for row in rows if row["complete"]]
    hib = task.higher_is_better
    est_names = ("seed_b", "short_training", *PROXY_NAMES, *BASELINE_NAMES, *extra)
    result: dict[str, Any] = {
        "schema": SCHEMA, "status": "complete" if len(complete) == len(rows) else "partial",
        "config": settings.config, "space": space.name, "space_key": space.space_key,
        "settings": _settings_dict(settings), "task": task.describe(), "primary": task.primary,
        "higher_is_better": hib, "orientation": ORIENTATION,
        "genotypes": {"listed": len(rows), "complete": len(complete),
                      "runs_done": sum(1 for v in records.values() if v is not None), "runs_total": len(items)},
        "group_by": GROUP_CHOICE if GROUP_CHOICE in space.choices else None,
        "ceiling_formula": CEILING_FORMULA,
        "reference": None, "ceiling": None, "estimates": {},
        "rows": rows,
    }
    if len(complete) < 2:
        return _clean(result)
    ref = oriented([row["a"] for row in complete], hib)
    est: dict[str, Any] = {
        "seed_b": oriented([row["b"] for row in complete], hib),
        "short_training": oriented([row["short"] for row in complete], hib),
    }
    for name in (*PROXY_NAMES, *BASELINE_NAMES):
        est[name] = [_score(row["proxies"].get(name)) for row in complete]
    for name in extra:
        est[name] = [_score(row["extra"][name]) for row in complete]
    groups = [row["group"] for row in complete] if result["group_by"] else None
    # every ordered pair of cheap estimates gets its paired difference (a subtraction over resamples already
    # drawn), so the best one's lead over each other is known once the ranking is
    cheap = [name for name in est if name != "seed_b"]
    pairs = list(dict.fromkeys([*map(tuple, differences), *((a, b) for a in cheap for b in cheap if a != b)]))
    stats = fidelity(ref, est, groups=groups, resamples=resamples, ceiling_from="seed_b", differences=pairs)
    by_pair = {(d["a"], d["b"]): d for d in stats["differences"]}
    ref_seconds = sum(row["a_seconds"] for row in complete)
    costs: dict[str, tuple[str, float]] = {
        "seed_b": ("training", sum(row["b_seconds"] for row in complete)),
        "short_training": ("training", sum(row["short_seconds"] for row in complete)),
    }
    for name in (*PROXY_NAMES, *BASELINE_NAMES):
        costs[name] = ("compute", sum(row["proxy_seconds"].get(name, 0.0) for row in complete))
    kinds = {"seed_b": "reference seed", "short_training": "short training"}
    for name in est_names:
        entry = stats["estimates"][name]
        if name in extra:
            x = extra[name]
            entry.update({k: v for k, v in x.items() if k != "scores"})
            for key in ("seconds", "cpu_seconds"):  # the estimate's own figure when it gives one
                total = x.get(f"{key}_total")
                if f"{key}_per_genotype" not in x:
                    entry[f"{key}_per_genotype"] = None if total is None else total / len(complete)
            result["estimates"][name] = _clean(entry)
            continue
        what, seconds = costs[name]
        entry.update(kind=kinds.get(name, "proxy" if name in PROXY_NAMES else "baseline"),
                     seconds_total=seconds, seconds_per_genotype=seconds / len(complete), cost_of=what)
        if name == "short_training":
            entry["epochs"] = settings.short_epochs
        if name in ("seed_b", "short_training"):
            slot = "b" if name == "seed_b" else "short"
            entry["cpu_seconds_total"] = _total(row[f"{slot}_cpu_seconds"] for row in complete)
        else:
            entry["cpu_seconds_total"] = _total((row["proxy_cpu_seconds"] or {}).get(name) for row in complete)
        if entry["cpu_seconds_total"] is not None:
            entry["cpu_seconds_per_genotype"] = entry["cpu_seconds_total"] / len(complete)
        result["estimates"][name] = _clean(entry)
    b = result["estimates"]["seed_b"]
    result["ceiling"] = b.pop("ceiling")
    ref_cpu = _total(row["a_cpu_seconds"] for row in complete)
    result["reference"] = {"seed": seeds["a"], "epochs": settings.recipe["epochs"], "seconds_total": ref_seconds,
                           "seconds_per_genotype": ref_seconds / len(complete),
                           "cpu_seconds_total": ref_cpu,
                           "cpu_seconds_per_genotype": None if ref_cpu is None else ref_cpu / len(complete),
                           "metric_mean": sum(row["a"] for row in complete) / len(complete),
                           "metric_range": [min(row["a"] for row in complete), max(row["a"] for row in complete)]}
    result["bootstrap"] = {"resamples": stats["resamples"], "confidence": stats["confidence"],
                           "seed": stats["bootstrap_seed"], "method": "paired percentile bootstrap: genotypes "
                           "resampled with replacement, the same resamples for every estimate"}
    result["ranking"] = best_estimates(result)
    best = result["ranking"][0]
    result["lead"] = [by_pair[(best, other)] for other in result["ranking"][1:]]
    if differences:
        result["differences"] = [by_pair[tuple(pair)] for pair in differences]
    return _clean(result)


def _total(values: Iterable[Any]) -> float | None:
    vals = list(values)
    return None if any(v is None for v in vals) else float(sum(vals))


def best_estimates(summary: Mapping[str, Any]) -> list[str]:
    """The cheap estimates (seed B excluded) by tau, best first."""
    est = {k: v for k, v in summary.get("estimates", {}).items() if k != "seed_b"}
    return sorted(est, key=lambda k: -(est[k]["tau"] if finite(est[k]["tau"]) else -math.inf))


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _score(v: Any) -> float:
    return float(v) if finite(v) else -math.inf  # unscorable = worst (analysis.fidelity.finite_for_ranking)


def _json_float(v: Any) -> float | None:
    return float(v) if finite(v) else None


def _clean(obj: Any) -> Any:
    """NaN / inf -> None, numpy scalars -> float: strict JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return _clean(obj.item())
    except ImportError:  # pragma: no cover
        pass
    return obj


def resume_hint(argv: Iterable[str]) -> str:
    return "finished runs are kept; run the same command again to continue: " + " ".join(argv)
