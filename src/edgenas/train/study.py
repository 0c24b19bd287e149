"""Training inside a study (`edgenas study CONFIG --train`).

Which networks: the config's `study: {train: [...]}` list, in its order (a list entry gives choice values, a
single value or a list of them, the other choices at the space's default, and optionally `seeds: [..]`;
without the section, every design of the space). Only designs that fit the device at the deployment
resolution (the report's key resolution) are trained; the others are listed as skipped, unless their entry
says `over_device: true` (a variant whose accuracy a question needs although it does not fit, e.g. to say
what a larger SRAM would buy).

Each network is trained stand-alone (train/run.py, the config's `task:` and `train:` sections) into
`<run>/train/<arch_id>-s<seed>/`, then its best checkpoint is evaluated at the training resolution and at
the deployment resolution (the task's validation set rendered at each) and `result.json` is written there.
A re-run skips networks with a result, resumes those with a checkpoint and starts the rest, so a study
stopped by Ctrl-C, SIGTERM or even SIGKILL loses at most the steps since the last checkpoint.
`<run>/accuracy.csv` (one row per finished network and seed) is rewritten after each network.

torch is imported by the functions that train, so `edgenas study` without `--train` and `edgenas report`
never load it.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas import atomic
from edgenas.errors import ConfigError
from edgenas.space.config import format_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace
from edgenas.train.records import read_done, write_json

ACCURACY_CSV = "accuracy.csv"
TRAIN_DIR = "train"
RESULT_FILE = "result.json"
SECTION_KEYS = ("train",)
ENTRY_KEYS = ("seeds", "over_device")
BUDGET_COLUMNS = ("metric", "higher_is_better", "train_resolution", "deploy_resolution", "best_epoch", "epochs",
                  "epochs_run", "train_samples", "val_samples", "batch_size", "lr", "threads", "device", "seconds",
                  "eval_seconds")


@dataclass(frozen=True)
class TrainEntry:
    """One item of `study.train`: choice -> values (a product), and the seeds (None: the recipe's)."""

    values: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: tuple[int, ...] | None
    over_device: bool = False  # train even the designs that do not fit the device


@dataclass(frozen=True)
class TrainJob:
    genotype: Genotype
    seed: int

    @property
    def dirname(self) -> str:
        return f"{self.genotype.arch_id}-s{self.seed}"


@dataclass(frozen=True)
class TrainPlan:
    jobs: tuple[TrainJob, ...]
    skipped: tuple[tuple[Genotype, str], ...]  # (genotype, "over_device" | "not_measured")


def parse_study_section(data: Mapping[str, Any] | None, space: SearchSpace) -> tuple[TrainEntry, ...]:
    """Validate `study:`; errors name `study.train[i].<choice>`. Empty: every design of the space."""
    src = space.source

    def err(field: str, msg: str) -> ConfigError:
        return ConfigError(msg, source=src, field=field)

    data = dict(data or {})
    for k in data:
        if k not in SECTION_KEYS:
            raise err(f"study.{k}", f"unknown setting; allowed keys: {', '.join(SECTION_KEYS)}")
    items = data.get("train")
    if items is None:
        return ()
    if not isinstance(items, list) or not items:
        raise err("study.train", "must be a non-empty list of {choice: value or [values], seeds: [..]} entries")
    out = []
    for i, item in enumerate(items):
        where = f"study.train[{i}]"
        if not isinstance(item, Mapping):
            raise err(where, f"must be a mapping of choice: value or [values], got {item!r}")
        values: list[tuple[str, tuple[Any, ...]]] = []
        seeds: tuple[int, ...] | None = None
        over = False
        for k, v in item.items():
            if k == "over_device":
                if not isinstance(v, bool):
                    raise err(f"{where}.over_device", f"must be true or false, got {v!r}")
                over = v
                continue
            if k == "seeds":
                vs = v if isinstance(v, list) else [v]
                if not vs or any(isinstance(s, bool) or not isinstance(s, int) for s in vs):
                    raise err(f"{where}.seeds", f"must be a list of integers, got {v!r}")
                seeds = tuple(dict.fromkeys(vs))
                continue
            if k not in space.choices:
                raise err(f"{where}.{k}", f"not a choice of this space; allowed: {', '.join(space.choices)}, "
                                          f"{', '.join(ENTRY_KEYS)}")
            vs = v if isinstance(v, list) else [v]
            if not vs:
                raise err(f"{where}.{k}", "must give at least one value")
            coerced = []
            for x in vs:
                try:
                    coerced.append(space.genotype({k: x})[k])
                except ConfigError as e:
                    raise err(f"{where}.{k}", e.message) from None
            values.append((str(k), tuple(dict.fromkeys(coerced))))
        out.append(TrainEntry(tuple(values), seeds, over))
    return tuple(out)


def plan_training(space: SearchSpace, entries: Sequence[TrainEntry], *, default_seed: int,
                  fits: Mapping[str, bool]) -> TrainPlan:
    """The (genotype, seed) pairs to train, in the entries' order without repeats. `fits`: arch_id -> fits
    the device at the deployment resolution (designs missing from it were not measured there)."""
    genotypes: list[tuple[Genotype, tuple[int, ...], bool]] = []
    if not entries:
        genotypes = [(g, (default_seed,), False) for g in space.enumerate()]
    for e in entries:
        keys = [k for k, _ in e.values]
        for combo in itertools.product(*(vs for _, vs in e.values)):
            genotypes.append((space.genotype(dict(zip(keys, combo))), e.seeds or (default_seed,), e.over_device))
    jobs: dict[tuple[str, int], TrainJob] = {}
    skipped: dict[str, tuple[Genotype, str]] = {}
    for g, seeds, over in genotypes:
        if g.arch_id not in fits:
            skipped.setdefault(g.arch_id, (g, "not_measured"))
            continue
        if not fits[g.arch_id] and not over:
            skipped.setdefault(g.arch_id, (g, "over_device"))
            continue
        for s in seeds:
            jobs.setdefault((g.arch_id, s), TrainJob(g, s))
    trained = {j.genotype.arch_id for j in jobs.values()}
    return TrainPlan(tuple(jobs.values()), tuple(v for k, v in skipped.items() if k not in trained))


# ---- the accuracy CSV --------------------------------------------------------------------------------------
def accuracy_columns(choices: Sequence[str], metrics: Sequence[str]) -> list[str]:
    cols = [*choices, "arch_id", "genotype", "seed", "status"]
    for m in metrics:
        cols += [f"{m}_train", f"{m}_deploy"]
    cols += [f"zero_{metrics[0]}_train", f"zero_{metrics[0]}_deploy"] if metrics else []
    return cols + list(BUDGET_COLUMNS)


def write_accuracy_csv(path: Path, choices: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Atomically (temp file + rename): a stopped study never leaves half a CSV."""
    metrics = list(dict.fromkeys(k[: -len("_train")] for r in rows for k in r if k.endswith("_train")
                                 and not k.startswith("zero_")))
    primary = [str(r["metric"]) for r in rows[:1]]
    metrics = primary + [m for m in metrics if m not in primary]
    cols = accuracy_columns(choices, metrics)
    with atomic.replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in cols})


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_accuracy_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of an accuracy.csv; a file that is not one is a ConfigError naming it."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = [dict(r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"cannot read accuracy results ({e})", source=str(path)) from None
    need = ("arch_id", "seed", "metric", "train_resolution", "deploy_resolution")
    missing = [c for c in need if c not in header]
    if missing:
        raise ConfigError(f"not an accuracy CSV: missing column(s) {', '.join(missing)}", source=str(path))
    return rows


# ---- training ---------------------------------------------------------------------------------------------




@dataclass(frozen=True)
class TrainSummary:
    rows: tuple[dict[str, Any], ...]  # finished networks (this run and earlier ones)
    trained: int  # trained to the end in this run (resumed ones included)
    resumed: int
    reused: int  # finished before: result.json read back, nothing recomputed
    from_store: int = 0  # the same training found in the training store (train/store.py): nothing trained


def train_plan(config: str, space: SearchSpace, plan: TrainPlan, run_dir: Path, *, deploy_resolution: tuple[int, int],
               log: Callable[[str], None] | None = None,
               on_row: Callable[[Sequence[Mapping[str, Any]]], None] | None = None) -> TrainSummary:
    """Train, resume or reuse every job of `plan` in order (see the module docstring). `on_row(rows)` is
    called with every finished row so far after each network (accuracy.csv and the report are refreshed
    there); Ctrl-C / SIGTERM stop after the trainer's checkpoint and propagate."""
    from edgenas.train.run import make_candidate, reused_from, train_candidate
    from edgenas.train.trainer import CHECKPOINT

    say = log or (lambda _msg: None)
    rows: list[dict[str, Any]] = []
    trained = resumed = reused = from_store = 0
    for i, job in enumerate(plan.jobs):
        out = run_dir / TRAIN_DIR / job.dirname
        c = make_candidate(config, str(job.genotype), seed=job.seed)
        head = f"[{i + 1}/{len(plan.jobs)}] {job.genotype} seed {job.seed}"
        done = read_done(out / RESULT_FILE)
        if done is not None:
            _check_same_recipe(done, c, out)
            rows.append(done["row"])
            reused += 1
            metric = done['row']['metric']
            say(f"{head}: finished before, {metric} {_g(done['row'].get(metric + '_train'))}"
                f" ({out})")
            continue
        resume = (out / CHECKPOINT).exists()
        say(f"{head}: {'resuming' if resume else 'training'} at {format_resolution(c.resolution)} -> {out}")
        result = train_candidate(c, out, resume=resume, on_progress=_epoch_logger(say))
        stored = reused_from(out) is not None
        from_store += stored
        trained += not stored
        resumed += resume and not stored
        row = _evaluate(c, out, result, deploy_resolution, space)
        write_json(out / RESULT_FILE, {"status": "done", "row": row, "recipe": c.recipe.model_dump(),
                                        "task": c.task.describe()})
        rows.append(row)
        m = row["metric"]
        say(f"{head}: {m} {_g(row[m + '_train'])} at {row['train_resolution']}, {_g(row[m + '_deploy'])} at "
            f"{row['deploy_resolution']} ({'training store: ' if stored else ''}{row['seconds']:.0f} s training)")
        if on_row is not None:
            on_row(rows)
    return TrainSummary(tuple(rows), trained, resumed, reused, from_store)


def _g(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def _as_json(data: Any) -> Any:
    """`data` as it reads back from result.json (tuples become lists)."""
    return json.loads(json.dumps(data, default=str))


def _check_same_recipe(done: Mapping[str, Any], c: Any, out: Path) -> None:
    recipe, task = _as_json(c.recipe.model_dump()), _as_json(c.task.describe())
    if done.get("recipe") != recipe or done.get("task") != task:
        changed = sorted(k for k, v in recipe.items() if done.get("recipe", {}).get(k) != v)
        if done.get("task") != task:
            changed.append("task")
        raise ConfigError(f"was trained with another train:/task: setting (changed: {', '.join(changed)}); "
                          "remove the folder to train it again, or study into another --out", source=str(out))


def _epoch_logger(say: Callable[[str], None]) -> Callable[[Any], None]:
    def on_progress(p: Any) -> None:
        if p.step == 0 and p.epoch > 0 and not p.done:  # just after an epoch ended (and was checkpointed)
            metric = "" if p.metric is None else f", validation {p.metric:.4g}"
            say(f"    epoch {p.epoch}/{p.epochs}: loss {p.loss:.4g}{metric}")
    return on_progress


def evaluate_with_zero(module: Any, task: Any, ds: Any, batch_size: int) -> tuple[dict[str, float], dict[str, float]]:
    """Every metric of the task for the module and, from the same batches, for an all-zero output of the same
    shapes (for optical flow: no motion at all), as sums over counts (eval mode, CPU)."""
    import torch

    from edgenas.train.trainer import batches

    module.eval()
    sums: dict[str, dict[str, list[float]]] = {"model": {}, "zero": {}}
    with torch.no_grad():
        for _, (inputs, target) in batches(ds, torch.arange(len(ds)), batch_size):
            inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            out = module(*inputs)
            out = out if isinstance(out, tuple) else (out,)
            for kind, o in (("model", out), ("zero", tuple(torch.zeros_like(t) for t in out))):
                for name, (s, n) in task.metric_sums(o, target).items():
                    acc = sums[kind].setdefault(name, [0.0, 0])
                    acc[0] += float(s)
                    acc[1] += int(n)
    model, zero = ({k: (s / n if n else float("nan")) for k, (s, n) in sums[kind].items()}
                   for kind in ("model", "zero"))
    return model, zero


def _evaluate(c: Any, out: Path, result: Any, deploy: tuple[int, int], space: SearchSpace) -> dict[str, Any]:
    """The best checkpoint at the training and the deployment resolution, as one accuracy.csv row."""
    import torch

    from edgenas.train.builder import GraphModule
    from edgenas.train.trainer import BEST, CHECKPOINT, load_checkpoint, load_weights

    t0 = time.perf_counter()
    ckpt = out / BEST if (out / BEST).exists() else out / CHECKPOINT
    state = load_checkpoint(ckpt)
    metrics: dict[str, dict[str, float]] = {}
    zero: dict[str, dict[str, float]] = {}
    for where, res in (("train", c.resolution), ("deploy", deploy)):
        module = GraphModule(c.graph(res))
        load_weights(module, state, ckpt)
        metrics[where], zero[where] = evaluate_with_zero(module, c.task, c.task.eval_data(res), c.recipe.batch_size)
    r = c.recipe
    data = c.task.describe()
    row: dict[str, Any] = {k: str(v) for k, v in c.genotype.as_dict().items()}
    row.update(arch_id=c.genotype.arch_id, genotype=str(c.genotype), seed=r.seed, status="done",
               metric=c.task.primary, higher_is_better=bool(c.task.higher_is_better))
    for name in metrics["train"]:
        row[f"{name}_train"] = metrics["train"][name]
        row[f"{name}_deploy"] = metrics["deploy"].get(name)
    for where in ("train", "deploy"):  # the reference every trained network must beat to have learned anything
        row[f"zero_{c.task.primary}_{where}"] = zero[where].get(c.task.primary)
    row.update(train_resolution=format_resolution(c.resolution), deploy_resolution=format_resolution(deploy),
               best_epoch=result.best_epoch, epochs=r.epochs, epochs_run=len(result.history),
               train_samples=data.get("train_samples"), val_samples=data.get("val_samples"),
               batch_size=r.batch_size, lr=r.lr, threads=torch.get_num_threads(),
               device="cuda" if torch.cuda.is_available() else "cpu", seconds=round(result.seconds, 2),
               eval_seconds=round(time.perf_counter() - t0, 2))
    return row
