"""`edgenas bench-supernet`: does a weight-sharing supernet rank networks like stand-alone training?

The supernet's rows are added to bench-proxies' table (train/bench_proxies.py), on the same genotype list and
against the same reference, with the same statistics and the same bootstrap resamples:
- The reference (seeds A and B), the proxies, short training and MACs / params are bench-proxies' own units
  of work in ITS run folder (`--reference FILE.json` -> FILE.runs/): finished runs are read, never retrained;
  what is missing is trained by `bench_proxies.run_bench`, which also rewrites FILE.json.
- One supernet per strategy (spos, sandwich, sandwich-labels), trained once by `train.supernet.train_supernet` in
  `<out>.runs/<strategy>/supernet/` (checkpointed, resumed when the command is run again), then every listed
  genotype scored by `train.supernet.evaluate.SubnetEvaluator` (BatchNorm recalibrated per sub-network on a
  fixed seeded training sample, then the task's validation set: the set the reference is measured on). The
  scores are kept in `<out>.runs/<strategy>/scores.json` as each genotype ends, so a stopped run loses at
  most one sub-network.
- The supernet's estimate of a genotype is its metric, oriented like the reference (-EPE for flow); its cost
  is the whole of it: the supernet's training (wall seconds as the trainer counts them over every resumed
  session) plus the data preparation of scoring plus BatchNorm recalibration and scoring of every genotype.

Settings. The supernet is trained on the reference's task, data, resolution and recipe (optimizer, lr,
schedule, batch) with its own seed (train.seed + 4, disjoint from A, B, short training and the proxies) and
the config's `supernet:` section (strategy set per row, its resolutions dropped: the benchmark trains and
scores at the reference's one resolution). Its budget, unless --supernet-epochs says otherwise, is set by
the sub-network passes of short training of the whole list (N x short_epochs epochs of one network):
sandwich (2 + `random` sub-networks per step) ceil(N x short_epochs / (2 + random)) epochs, SPOS (one
sub-network per step) ceil(SPOS_SHARE x N x short_epochs): at equal passes SPOS cost about 1.25x short
training's CPU time (measured), so it gets three quarters of them. The issue's "no more compute than short
training of all genotypes" is thus aimed at by construction, and the measured seconds say how far it holds.
Validation of the largest sub-network runs only at the end (it decides nothing here). The run folder of
each strategy writes the config it trains (`config.yaml`: the benchmark's config with these task:, train:
and supernet: sections), so `edgenas supernet evaluate <out>.runs/<strategy>/supernet` works on it, and
remembers its settings (`bench.json`): a folder of other settings is refused.

The JSON is bench-proxies' (`bench_proxies.summarise` with the supernet rows as `extra` estimates) with
schema SCHEMA, `reference_file`, and `supernet` {strategy: {epochs, batch_size, train_seconds, train_cpu_seconds,
setup_seconds, recalibration_seconds, scoring_seconds, seconds_total, genotypes_scored, folder, largest,
smallest, status}}; FILE.md beside it holds the table as markdown. Runs in parallel over strategies (one
torch thread per process, as bench-proxies).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgenas import atomic
from edgenas.errors import ConfigError
from edgenas.space.config import format_resolution, read_config_mapping
from edgenas.space.genotype import Genotype
from edgenas.space.space import load_space
from edgenas.train import bench_proxies as bp
from edgenas.train import bench_tables as tables
from edgenas.train.records import read_done, write_json
from edgenas.train.supernet.settings import STRATEGIES

SCHEMA = "edgenas.bench-supernet/1"
SEED_OFFSET = 4  # the supernet's seed: train.seed + 4 (A, B, short training and proxies take +0..+3)
DEFAULT_RANDOM = 2  # sandwich: random sub-networks per step when the config's supernet: section says nothing
LABELS = {"spos": "supernet, SPOS", "sandwich": "supernet, sandwich", "sandwich-labels": "supernet, sandwich (labels)"}
# SPOS trains 3/4 of short training's sub-network passes: at equal passes it cost 1.22x (flow pilot) and
# 1.26x (digits-hard full) short training's CPU time, its recalibration and scoring included (an optimizer
# step per sub-network where the sandwich shares one among four); at 3/4, 0.92x on digits-hard.
SPOS_SHARE = 0.75


@dataclass(frozen=True)
class SupernetBenchSettings:
    reference: bp.BenchSettings
    strategies: tuple[str, ...]
    epochs: Mapping[str, int]  # per strategy
    supernet: Mapping[str, Any]  # the supernet: section trained (without strategy)
    recipe: Mapping[str, Any]  # the supernet's train: section (the reference's recipe, its own seed)

    def strategy_fingerprint(self, strategy: str, space_key: str) -> str:
        blob = json.dumps({"reference": self.reference.fingerprint(space_key), "strategy": strategy,
                           "epochs": self.epochs[strategy], "supernet": dict(self.supernet),
                           "recipe": dict(self.recipe)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_strategies(text: str) -> tuple[str, ...]:
    """`spos,sandwich` -> the strategies, each checked."""
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        what = f"unknown strategy {bad[0]!r}" if bad else "no strategy given"
        raise ConfigError(f"{what}; allowed: {', '.join(STRATEGIES)}", field="--strategies")
    return names


def make_settings(config: str, n_genotypes: int, *, preset: str = "full", resolution: str | None = None,
                  strategies: Sequence[str] = STRATEGIES, supernet_epochs: int | None = None,
                  supernet_lr: float | None = None, split: str | None = None) -> SupernetBenchSettings:
    """bench-proxies' settings of `config` under `preset`, and the supernets' on top of them (their recipe is
    the reference's with their own seed, `supernet_lr` as the learning rate when given, and few-shot
    supernets split by the choice `split` when given: the same epochs, shared out among the parts)."""
    from edgenas.train.supernet.fewshot import check_split
    from edgenas.train.supernet.settings import parse_supernet_section

    ref = bp.make_settings(config, preset=preset, resolution=resolution)
    space = load_space(config)
    section = dict(space.config.supernet)
    section.pop("resolutions", None)
    section.pop("strategy", None)
    seed = int(ref.recipe["seed"]) + SEED_OFFSET
    section["seed"] = seed
    section.setdefault("random", DEFAULT_RANDOM)
    section = parse_supernet_section(section, space.source).model_dump()
    section.pop("strategy")
    section.pop("resolutions")
    if split is not None:
        check_split(space, split, "--split")
        section["split"] = split
    elif section.get("split") is None:
        section.pop("split", None)  # one-shot: the section (and the fingerprint) of runs made before splits
    if supernet_epochs is not None and supernet_epochs < 1:
        raise ConfigError(f"must be >= 1, got {supernet_epochs}", field="--supernet-epochs")
    if supernet_lr is not None and not (0 < supernet_lr < math.inf):
        raise ConfigError(f"must be > 0, got {supernet_lr}", field="--supernet-lr")
    work = n_genotypes * ref.short_epochs
    per_step = 2 + section["random"]
    passes = {"spos": SPOS_SHARE * work, "sandwich": work / per_step, "sandwich-labels": work / per_step}
    epochs = {s: supernet_epochs or max(1, math.ceil(passes[s])) for s in strategies}
    recipe = {**dict(ref.recipe), "seed": seed, "patience": None, "threads": None}
    if supernet_lr is not None:
        recipe["lr"] = float(supernet_lr)
    return SupernetBenchSettings(ref, tuple(strategies), epochs, section, recipe)


def _derived_config(s: SupernetBenchSettings, strategy: str) -> dict[str, Any]:
    """The config a strategy's supernet trains: the benchmark's, with the task:, train: and supernet: used."""
    data = read_config_mapping(s.reference.config)
    data.pop("extends", None)
    epochs = s.epochs[strategy]
    data["task"] = dict(s.reference.task)
    data["train"] = {**dict(s.recipe), "epochs": epochs, "eval_every": epochs}
    data["supernet"] = {**dict(s.supernet), "strategy": strategy}
    return data


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    atomic.write_text(path, yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))


def _prepare_folder(s: SupernetBenchSettings, strategy: str, folder: Path, space_key: str, *,
                    create: bool = True) -> None:
    record = {"strategy": strategy, "epochs": s.epochs[strategy], "supernet": dict(s.supernet)}
    what = "config, preset, recipe, task, resolution, epochs or supernet section"
    bp.remember_settings(folder, s.strategy_fingerprint(strategy, space_key), record, what=what, manifest="bench.json",
                         create=create)
    if create and not (folder / "config.yaml").exists():  # decided by the fingerprinted settings: safe to write again
        _write_yaml(folder / "config.yaml", _derived_config(s, strategy))


# ---- in the worker processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    strategy: str
    folder: str
    genotypes: tuple[str, ...]
    resolution: tuple[int, int]
    batch_size: int


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _train(folder: Path) -> dict[str, Any]:
    """Train (or resume, or find trained) the strategy's supernet; its cost record."""
    from edgenas.train.supernet.fewshot import recorded_split
    from edgenas.train.supernet.run import SUPERNET_FILE, make_setup, prepare_supernet, train_supernet
    from edgenas.train.trainer import CHECKPOINT

    cost_file = folder / "train.json"
    done = read_done(cost_file)
    if done is not None:
        return done
    run = folder / "supernet"
    resume = (run / CHECKPOINT).exists() or recorded_split(run) is not None
    setup = make_setup(str(folder / "config.yaml"))
    prepared = prepare_supernet(setup, run, resume=resume)
    result = train_supernet(setup, run, resume=resume, prepared=prepared)
    meta = json.loads((run / SUPERNET_FILE).read_text(encoding="utf-8"))
    record = {"status": "done", "seconds": result.seconds, "resumed": resume,
              # the training's CPU time, earlier sessions of a resumed run included (None: its checkpoint
              # predates CPU time being kept)
              "cpu_seconds": result.cpu_seconds,
              "epochs": setup.recipe.epochs, "batch_size": setup.recipe.batch_size,
              "train_loss": [h.get("train_loss") for h in meta.get("history", [])],
              "parts": _part_losses(meta),
              "largest": meta.get("largest"), "smallest": meta.get("smallest"),
              "device": meta.get("device"), "finished": time.time()}
    write_json(cost_file, record)
    return record


def _part_losses(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """A split supernet's parts: epochs and training losses of each (None for a one-shot supernet)."""
    results = meta.get("results") or {}
    return {k: {"epochs": v.get("epochs"),
                "train_loss": [h.get("train_loss") for h in (results.get(k) or {}).get("history") or []]}
            for k, v in (meta.get("parts") or {}).items()} or None


def _work(job: Job) -> dict[str, Any]:
    """Train the supernet of one strategy, then score every listed genotype not scored yet."""
    from edgenas.train.supernet.evaluate import SubnetEvaluator
    from edgenas.train.supernet.run import load_supernet

    folder = Path(job.folder)
    trained = _train(folder)
    scores_file = folder / "scores.json"
    try:
        kept = json.loads(scores_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {"scores": {}, "setup_seconds": 0.0, "setup_cpu_seconds": 0.0}
    loaded = load_supernet(folder / "supernet")
    space = loaded.setup.space
    todo = [space.parse_genotype(t) for t in job.genotypes]
    todo = [g for g in todo if g.arch_id not in kept["scores"]]
    if todo:
        t0, c0 = time.perf_counter(), time.process_time()
        ev = SubnetEvaluator(loaded, job.resolution, job.batch_size)
        kept["setup_seconds"] += time.perf_counter() - t0
        kept["setup_cpu_seconds"] += time.process_time() - c0
        primary = loaded.setup.task.primary
        for g in todo:
            c0 = time.process_time()
            sc = ev.score(g)
            kept["scores"][g.arch_id] = {"genotype": str(g), "metric": sc.metrics.get(primary, math.nan),
                                         "metrics": sc.metrics, "recalibration_seconds": sc.recalibration_seconds,
                                         "score_seconds": sc.score_seconds, "cpu_seconds": time.process_time() - c0}
            write_json(scores_file, kept)
    return {"train": trained, "scored_now": len(todo)}


# ---- the parent ------------------------------------------------------------------------------------------


@dataclass
class SupernetBenchRun:
    summary: dict[str, Any]
    reference: bp.BenchRun
    trained_now: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def run_bench_supernet(s: SupernetBenchSettings, genotypes: Sequence[Genotype], out: Path, *,
                       reference_out: Path | None = None, jobs: int = 1, resamples: int = 1000, train: bool = True,
                       train_reference: bool = True, on_event: Callable[[str], None] | None = None,
                       part: tuple[str, Sequence[Genotype]] | None = None) -> SupernetBenchRun:
    """The reference (bench-proxies' run folder: finished runs read, missing ones trained by its own code
    unless `train_reference` is False: then it is read as it stands, e.g. while bench-proxies trains it in
    another process, and the table covers the genotypes it has finished), then each strategy's supernet
    trained and scored, then the table; `out` gets the JSON. `part` (its file and genotypes, part of the
    list): the same table on those alone as well, under `part` (e.g. the randomly drawn part of a list that
    also names hand-chosen networks)."""
    from edgenas.processes import WorkerDied, run_in_workers

    out = Path(out)
    runs = bp.runs_dir(out)
    reference_out = Path(reference_out) if reference_out is not None else runs / "reference.json"
    space = load_space(s.reference.config)
    say = on_event or (lambda _msg: None)
    folders = {st: runs / st for st in s.strategies}
    for create in (False, True):  # every folder checked before anything is written
        bp.check_folder(bp.runs_dir(reference_out), s.reference, space, create=create)
        for st, folder in folders.items():
            _prepare_folder(s, st, folder, space.space_key, create=create)
    say(f"reference: {reference_out}")
    ref = bp.run_bench(s.reference, genotypes, reference_out, jobs=jobs, resamples=resamples,
                       train=train and train_reference)
    say(f"reference: {ref.done_before} bench-proxies runs were kept, {ref.done_now} trained now "
        f"({reference_out})")
    texts = tuple(str(g) for g in genotypes)
    todo = [st for st in s.strategies if not _all_scored(folders[st], genotypes)]
    failed: list[str] = []
    trained_now: list[str] = []
    if train and todo:
        jobs_list = [Job(st, str(folders[st]), texts, s.reference.resolution, int(s.reference.recipe["batch_size"]))
                     for st in todo]
        workers = min(len(jobs_list), jobs if jobs > 0 else (os.cpu_count() or 1))
        say(f"supernets to train or score: {', '.join(todo)}")
        for i, result in run_in_workers(_work, jobs_list, workers=workers, initializer=_init_worker, initargs=(1,)):
            if isinstance(result, WorkerDied):
                failed.append(f"supernet {todo[i]}: {result.message}")
                continue
            trained_now.append(todo[i])
            say(f"supernet {todo[i]}: trained in {result['train']['seconds']:.0f} s, {result['scored_now']} scored")
    summary = summarise(s, space, genotypes, out, reference_out, resamples=resamples)
    if part is not None:
        summary["part"] = {**summarise(s, space, part[1], out, reference_out, resamples=resamples,
                                       trained_for=len(genotypes)),
                           "part_file": part[0]}
    summary["failed"] = ref.failed + failed
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, summary)
    atomic.write_text(out.with_suffix(".md"), markdown(summary))
    return SupernetBenchRun(summary, ref, trained_now, failed)


def _all_scored(folder: Path, genotypes: Sequence[Genotype]) -> bool:
    kept = _read_json(folder / "scores.json") or {}
    return read_done(folder / "train.json") is not None and all(g.arch_id in kept.get("scores", {}) for g in genotypes)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lr_note(s: SupernetBenchSettings) -> str:
    """', lr 0.002' in a row's label when the supernets train at another learning rate than the reference."""
    lr = s.recipe.get("lr")
    return "" if lr == s.reference.recipe.get("lr") else f", lr {lr:g}"


def _label(s: SupernetBenchSettings, space: Any, strategy: str, epochs: int) -> str:
    """'supernet, SPOS (51 ep)', 'supernet, SPOS, few-shot by backbone (51 ep in 3 parts of 17)', ..."""
    split = s.supernet.get("split")
    if not split:
        return f"{LABELS[strategy]} ({epochs} ep{_lr_note(s)})"
    from edgenas.train.supernet.fewshot import part_epochs

    n = len(space.choices[split])
    return (f"{LABELS[strategy]}, few-shot by {split} ({epochs} ep in {n} parts of {part_epochs(epochs, n)}"
            f"{_lr_note(s)})")


def supernet_estimates(s: SupernetBenchSettings, space: Any, runs: Path, genotypes: Sequence[Genotype],
                       higher_is_better: bool, trained_for: int | None = None,
                       ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The `extra` estimates for bench_proxies.summarise (trained strategies only) and their cost records.

    `trained_for`: how many genotypes the supernet was trained to serve (the whole list; `genotypes` may be
    a part of it). Its cost per genotype is its training and data preparation shared out over those, plus
    recalibration and scoring per genotype scored: comparable with a per-genotype estimate like short
    training, which the whole cost divided by the genotypes in a table is not."""
    trained_for = trained_for or len(genotypes)
    extra: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {}
    listed = {g.arch_id for g in genotypes}
    for st in s.strategies:
        folder = runs / st
        trained = read_done(folder / "train.json")
        kept = _read_json(folder / "scores.json") or {"scores": {}}
        scores = {a: r for a, r in kept.get("scores", {}).items() if a in listed}
        if trained is None:
            info[st] = {"status": "not trained", "folder": str(folder / "supernet")}
            continue
        recal = sum(r["recalibration_seconds"] for r in scores.values())
        scoring = sum(r["score_seconds"] for r in scores.values())
        once = trained["seconds"] + kept.get("setup_seconds", 0.0)  # paid once for the whole list
        total = once + recal + scoring
        per = _per_genotype(once, recal + scoring, trained_for, len(scores))
        cpu = trained.get("cpu_seconds")
        cpu_total = cpu_per = None
        if cpu is not None:
            cpu_once = cpu + kept.get("setup_cpu_seconds", 0.0)
            cpu_scoring = sum(r.get("cpu_seconds", 0.0) for r in scores.values())
            cpu_total = cpu_once + cpu_scoring
            cpu_per = _per_genotype(cpu_once, cpu_scoring, trained_for, len(scores))
        info[st] = {"status": "complete" if len(scores) == len(listed) else "partial",
                    "epochs": trained["epochs"], "batch_size": trained.get("batch_size"),
                    "train_seconds": trained["seconds"],
                    "train_cpu_seconds": cpu, "setup_seconds": kept.get("setup_seconds", 0.0),
                    "recalibration_seconds": recal, "scoring_seconds": scoring, "seconds_total": total,
                    "cpu_seconds_total": cpu_total, "genotypes_scored": len(scores), "trained_for": trained_for,
                    "seconds_per_genotype": per, "cpu_seconds_per_genotype": cpu_per,
                    "largest": trained.get("largest"), "smallest": trained.get("smallest"),
                    "device": trained.get("device"), "folder": str(folder / "supernet"), "supernet": dict(s.supernet)}
        sign = 1.0 if higher_is_better else -1.0
        extra[f"supernet_{st}"] = {
            "scores": {a: sign * float(r["metric"]) if r["metric"] is not None else math.nan
                       for a, r in scores.items()},
            "label": _label(s, space, st, trained["epochs"]), "kind": "supernet", "strategy": st,
            "cost_of": "supernet training + data preparation + BatchNorm recalibration + scoring, every genotype",
            "seconds_total": total, "cpu_seconds_total": cpu_total, "epochs": trained["epochs"],
            "seconds_per_genotype": per, "cpu_seconds_per_genotype": cpu_per, "trained_for": trained_for}
    return extra, info


def _per_genotype(once: float, scoring: float, trained_for: int, scored: int) -> float:
    """A supernet's cost per genotype: what is paid once shared over the genotypes it was trained for, plus
    the mean cost of scoring one."""
    return once / trained_for + (scoring / scored if scored else 0.0)


def _cost_against_short_training(summary: dict[str, Any]) -> None:
    """Each supernet's cost per genotype over short training's (CPU seconds where both have them, else wall):
    the issue's "no more total compute than short training of all genotypes" is this ratio <= 1."""
    est = summary.get("estimates") or {}
    short = est.get("short_training")
    if not short:
        return
    for name, e in est.items():
        if not name.startswith("supernet_"):
            continue
        key = "cpu_seconds_per_genotype" if e.get("cpu_seconds_per_genotype") and short.get(
            "cpu_seconds_per_genotype") else "seconds_per_genotype"
        if e.get(key) and short.get(key):
            e["cost_vs_short_training"] = {"ratio": e[key] / short[key], "of": key}


def summarise(s: SupernetBenchSettings, space: Any, genotypes: Sequence[Genotype], out: Path, reference_out: Path,
              *, resamples: int = 1000, trained_for: int | None = None) -> dict[str, Any]:
    """bench-proxies' summary of the reference folder with the supernets' rows added (`trained_for`: the
    size of the whole list when `genotypes` is a part of it)."""
    from edgenas.train.tasks import make_task

    ref_settings = s.reference
    task = make_task(ref_settings.task, source=space.source, input_channels=space.config.input_channels)
    runs = bp.runs_dir(Path(out))
    ref_runs = bp.runs_dir(Path(reference_out))
    items = bp.plan(ref_settings, genotypes)
    records = {it.key: read_done(ref_runs / f"{it.key}.json") for it in items}
    extra, info = supernet_estimates(s, space, runs, genotypes, task.higher_is_better, trained_for)
    # is a supernet above each cheap estimate beyond the noise of which genotypes were drawn?
    cheap = ("short_training", *bp.PROXY_NAMES, *bp.BASELINE_NAMES)
    pairs = [(name, other) for name in extra for other in cheap]
    summary = bp.summarise(ref_settings, space, genotypes, items, records, resamples=resamples, extra=extra,
                           differences=pairs)
    _cost_against_short_training(summary)
    summary["schema"] = SCHEMA
    summary["reference_file"] = str(reference_out)
    summary["supernet"] = info
    summary["supernet_settings"] = {"strategies": list(s.strategies), "epochs": dict(s.epochs),
                                    "section": dict(s.supernet), "seed": s.recipe["seed"], "lr": s.recipe["lr"],
                                    "resolution": format_resolution(ref_settings.resolution),
                                    "budget_rule": "epochs = ceil(N x short_epochs / sub-networks per step) "
                                                   "unless --supernet-epochs"}
    if any(st["status"] != "complete" for st in info.values()) and summary.get("status") == "complete":
        summary["status"] = "partial"
    return summary


COST_NOTE = ("Costs: a supernet's per-genotype seconds share its training over every genotype of the list it "
             "was trained for and add one genotype's recalibration and scoring; its total is that whole training "
             "and the scoring of every genotype listed. Every other row's total is over the genotypes "
             "compared.")


def markdown(summary: Mapping[str, Any]) -> str:
    """The table (bench-proxies' with the supernet rows), the headline and each supernet's cost, as markdown;
    the table on the list's part after them when there is one."""
    lines = [f"# {summary['space']}: supernet and cheap estimates of {summary['primary']} vs seed A", "",
             *_table_lines(summary)]
    part = summary.get("part")
    if part is not None:
        lines += [f"## The same on the genotypes of {part['part_file']} ({part['genotypes']['listed']} listed): the "
                  "same supernets, trained for the whole list", "", *_table_lines(part)]
    est = summary.get("estimates") or {}
    for st, info in summary.get("supernet", {}).items():
        if info.get("status") == "not trained":
            lines.append(f"- {st}: not trained")
            continue
        lines.append(f"- {st}: {info['epochs']} epochs, training {info['train_seconds']:.1f} s, data preparation "
                     f"{info['setup_seconds']:.1f} s, BatchNorm recalibration {info['recalibration_seconds']:.1f} s, "
                     f"scoring {info['scoring_seconds']:.1f} s ({info['genotypes_scored']} genotypes): "
                     f"{info['seconds_total']:.1f} s in all; per genotype "
                     f"{_cost_cell(info, est.get(f'supernet_{st}'))}")
    return "\n".join(lines) + "\n"


def _table_lines(summary: Mapping[str, Any]) -> list[str]:
    """The table with its cost note (when anything is complete), then the headline."""
    table = [tables.markdown_table(summary), "", COST_NOTE, ""] if summary.get("estimates") else []
    return [*table, headline(summary) + ".", ""]


def _cost_cell(info: Mapping[str, Any], entry: Mapping[str, Any] | None) -> str:
    """'61.2 CPU s (training shared over the 68 genotypes it serves), 1.09x short training's'."""
    cpu = info.get("cpu_seconds_per_genotype")
    text = (f"{cpu:.1f} CPU s" if cpu is not None else f"{info['seconds_per_genotype']:.1f} s wall") + (
        f" (training shared over the {info['trained_for']} genotypes it serves)")
    ratio = (entry or {}).get("cost_vs_short_training")
    return text + (f", {ratio['ratio']:.2f}x short training's" if ratio else "")


def headline(summary: Mapping[str, Any]) -> str:
    """The supernet rows beside the best other cheap estimate, seed B and the ceiling."""
    est = summary.get("estimates") or {}
    sn = [k for k in est if k.startswith("supernet_")]
    if not sn:
        return tables.headline(summary)
    others = [k for k in summary.get("ranking", []) if not k.startswith("supernet_")]
    diffs = {(d["a"], d["b"]): d for d in summary.get("differences") or []}
    parts = [f"{est[k].get('label', k)}: Kendall tau {tables.corr_cell(est[k]['tau'], est[k]['tau_ci'])}"
             + (f" at {r['ratio']:.2f}x short training's cost" if (r := est[k].get('cost_vs_short_training')) else "")
             + _above(k, others, diffs) for k in sn]
    best = others[0] if others else None
    tail = ""
    if best is not None:
        tail = f"; best other estimate {best} {tables.corr_cell(est[best]['tau'], est[best]['tau_ci'])}"
    if best is not None:  # the paired interval of each supernet's lead over it
        leads = [f"{est[k].get('label', k)} {tables.corr_cell(d['tau'], d['tau_ci'])}" for k in sn
                 if (d := diffs.get((k, best))) is not None]
        if leads:
            tail += f"; tau minus {best}'s (paired bootstrap): {', '.join(leads)}"
    c = summary.get("ceiling") or {}
    n = summary["genotypes"]
    return (f"{'; '.join(parts)}{tail}; seed B {tables.corr_cell(est['seed_b']['tau'])}, ceiling sqrt(r_AB) "
            f"{tables.corr_cell(c.get('ceiling_one_seed'))} on {n['complete']} of {n['listed']} genotypes")


def _above(name: str, others: Sequence[str], diffs: Mapping[tuple[str, str], Mapping[str, Any]]) -> str:
    """', above k of the n cheap estimates beyond the paired interval' (the issue's "above every cheap
    estimate" holds when k = n); '' when no difference was computed."""
    ds = [d for o in others if (d := diffs.get((name, o))) is not None]
    if not ds:
        return ""
    return f", above {tables.beyond_zero(ds)} of the {len(ds)} cheap estimates beyond the paired interval"
