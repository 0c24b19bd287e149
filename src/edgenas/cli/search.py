"""`edgenas search` and `edgenas worker`: parse arguments, call edgenas.search, print the front."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgenas.cli._common import cache_option, err, out
from edgenas.errors import ConfigError

_SEARCH_HELP = """Multi-objective architecture search under hard memory limits.

CONFIG is a space YAML (it may `extends:` another) with a `search:` section, for example:

\b
  search:
    objectives:                    # any metric an evaluator produces
      - {metric: fps, direction: max}
      - {metric: sram_kib, direction: min}
    constraints:                   # hard limits (over_sram/over_flash always violate)
      - sram_kib <= device         # device = the hardware profile's SRAM
      - fps >= 10
    resolution: 64x96              # default: report.key_resolution, else the first
    hardware: ethos-u55-256        # default: the space's first profile
    evaluators: \\[compiler]         # cheap ones (compiler, analytic, table) run first
    strategy: frontier             # default: the strategy registry's default
    trials: 50
    seed: 0

""" + (
    "CONFIG may instead name a built-in space known only through tables: `space: nb201` (NAS-Bench-201) with a "
    "`table` evaluator, see examples/search_nb201.yaml.\n\n"
    "The study lives in an Optuna storage (default: the SQLite file runs/<study>/study.db) together with every "
    "measurement, so a genotype is never measured twice, and running the same command again resumes the study up "
    "to the requested number of completed trials. With --storage postgresql://... any number of `edgenas worker` "
    "processes on any machines can join. At the end the Pareto front of the feasible trials is printed.\n\n"
    "Accuracy evaluators (expensive): `{type: supernet, checkpoint: DIR}` (a trained supernet's estimate, see "
    "examples/flow_search.yaml), `train`, `proxy`. With one of them and a space of at most 10,000 networks, the "
    "cheap evaluators first run on every network (their objectives are then known exactly), and a design over a "
    "hard limit never reaches an expensive one. Designs of the config's report.recommended are marked on the front.")

_WORKER_HELP = """Work on an existing study until it has its number of completed trials (all workers together).

""" + (
    "A worker needs only the storage URL and the study name: the config is stored in the study. A worker that dies "
    "mid-trial is noticed by the others through its missing heartbeat; its trial is failed and run again, and no "
    "measurement is repeated.")


def _cache(cache: Path | None, no_cache: bool) -> str | None:
    path = cache_option(cache, no_cache)
    return None if path is None else str(path)


def _progress(enabled: bool, target: int, done: int, label: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=err, disable=not enabled, transient=False)
    task = prog.add_task(label, total=max(target, 1), completed=min(done, target), info="")
    return prog, task


def _run(setup: Any, study_name: str, storage: Any, target: int, seed: int, progress: bool, label: str) -> Any:
    import optuna

    from edgenas.search.study import RECORD_ATTR, trial_rows
    from edgenas.search.worker import run_trials

    study = optuna.load_study(study_name=study_name, storage=storage)
    done = sum(1 for r in trial_rows(study))
    prog, task = _progress(progress, target, done, label)

    def on_progress(complete: int, total: int, ft: Any) -> None:
        rec = ft.user_attrs.get(RECORD_ATTR) or {}
        feasible = rec.get("feasible")
        info = "" if feasible is None else ("feasible" if feasible else "infeasible: " +
                                            ", ".join(rec.get("violated", []))[:60])
        prog.update(task, completed=min(complete, total), info=f"#{ft.number} {info}")

    def on_prepass(n: int, total: int) -> None:
        prog.update(task, info=f"cheap evaluators on every network first: {n}/{total}")

    with prog:
        return run_trials(setup, study_name, storage, target=target, seed=seed, on_progress=on_progress,
                          on_prepass=on_prepass)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def _front_report(study: Any, storage_url: str, out_csv: Path | None) -> None:
    from edgenas.analysis.marks import dominated_by, is_recommended
    from edgenas.search.storage import redact
    from edgenas.search.study import pareto_front, study_objectives, trial_rows

    objectives = study_objectives(study)
    rows = trial_rows(study)
    front = pareto_front(rows, objectives)
    choice_names = list(front[0].genotype) if front else (list(rows[0].genotype) if rows else [])
    obj_names = [o.metric for o in objectives]
    rec = _recommended(study)  # the config's report.recommended: those designs are marked
    t = Table(title=f"Pareto front of study {study.study_name}: {len(front)} of {len({r.arch_id for r in rows})} "
                    "architectures")
    for c in ("trial", "arch_id", *choice_names):
        t.add_column(c, overflow="fold")
    for o in objectives:
        t.add_column(f"{o.metric} ({'max' if o.direction == 'max' else 'min'})", justify="right")
    if rec:
        t.add_column("recommended")
    for r in front:
        t.add_row(str(r.number), r.arch_id, *(str(r.genotype.get(c, "")) for c in choice_names),
                  *(_fmt(v) for v in r.values), *(("*" if is_recommended(r.genotype, rec) else "",) if rec else ()))
    out.print(t)
    feasible = sum(r.feasible for r in rows)
    out.print(f"{len(rows)} trials complete ({feasible} feasible, {len(rows) - feasible} infeasible); "
              f"study {study.study_name!r} in {redact(storage_url)}")
    if rec:
        picks = [r for r in rows if is_recommended(r.genotype, rec)]
        text = "; ".join(f"{k} {'/'.join(vs)}" for k, vs in rec.items())
        on_front = sum(1 for r in front if is_recommended(r.genotype, rec))
        out.print(f"* recommended (report.recommended: {text}): {on_front} on the front; {len(picks)} evaluated in "
                  f"this study, {sum(r.feasible for r in picks)} of them within the limits")
        off = [(r, by) for r, by in dominated_by(picks, front, [o.direction for o in objectives]) if by is not None]
        for r, by in off[:10]:
            out.print(f"  recommended trial {r.number} ({', '.join(f'{k}={v}' for k, v in r.genotype.items())}: "
                      f"{', '.join(f'{o.metric} {_fmt(v)}' for o, v in zip(objectives, r.values))}) is dominated by "
                      f"front trial {by.number}")
    if out_csv is not None:
        from edgenas.sweep.rows import write_csv_atomic

        metric_names = sorted({k for r in front for k in r.metrics if k not in obj_names})
        marks = ["recommended"] if rec else []
        cols = ["trial", "arch_id", *choice_names, *obj_names, *marks, *metric_names]
        write_csv_atomic(out_csv, cols, (
            {"trial": r.number, "arch_id": r.arch_id, **r.genotype, **dict(zip(obj_names, r.values)),
             **({"recommended": is_recommended(r.genotype, rec)} if rec else {}),
             **{k: r.metrics.get(k, "") for k in metric_names}} for r in front))
        out.print(f"front written to {out_csv}")


def _recommended(study: Any) -> dict[str, tuple[str, ...]]:
    import yaml

    from edgenas.analysis.marks import recommended_from_config
    from edgenas.search.study import CONFIG_ATTR

    try:
        cfg = yaml.safe_load(study.user_attrs.get(CONFIG_ATTR) or "") or {}
    except yaml.YAMLError:
        return {}
    return recommended_from_config(cfg if isinstance(cfg, dict) else {})


def search(
    config: str = typer.Argument(..., help="Space YAML with a `search:` section (see above)."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL: sqlite:///FILE, a plain "
                                          "file path, or postgresql://USER:PASS@HOST:PORT/DB (for many workers). "
                                          "Default: sqlite under runs/<study>/study.db."),
    study_name: str | None = typer.Option(None, "--study", help="Study name (default: the space's name). "
                                             "An existing study with this name is resumed."),
    trials: int | None = typer.Option(None, "--trials", "-n", min=0, help="Total number of completed trials "
                                         "to reach (default: search.trials)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the strategy (default: search.seed); the same "
                                       "seed gives the same proposals on one worker."),
    strategy: str | None = typer.Option(None, "--strategy", help="Search strategy: frontier (edgenas's default), "
                                           "random, nsga2, nsga3, tpe, gp, evolution, mnas, or a plug-in's name "
                                           "(default: search.strategy, else frontier)."),
    out_csv: Path | None = typer.Option(None, "--out", "-o", help="Also write the front as CSV."),
    cache: Path | None = typer.Option(None, "--cache", help="Compiler measurement cache (SQLite, keyed on the "
                                         "model bytes; default as for sweep)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the compiler cache (the study's own "
                                  "measurement store is always used)."),
    create_only: bool = typer.Option(False, "--create-only", help="Create (or update) the study in the storage "
                                     "and exit, for `edgenas worker` processes to run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    from edgenas.search.storage import default_storage_url, normalise_storage_url, open_storage, redact
    from edgenas.search.study import create_or_load_study, prepare_from_file, quiet_optuna

    quiet_optuna()
    setup = prepare_from_file(config, trials=trials, seed=seed, strategy=strategy,
                              cache_path=_cache(cache, no_cache))
    name = study_name or setup.name
    url = normalise_storage_url(storage) if storage else default_storage_url(name)
    sec = setup.section
    st = open_storage(url, heartbeat_interval=sec.heartbeat_interval, grace_period=sec.grace,
                      max_retry=sec.max_retry)
    study = create_or_load_study(setup, st, name, trials=sec.trials)
    if create_only:
        out.print(f"study {name!r} ready in {redact(url)}: {sec.trials} trials, strategy {setup.strategy}. Start "
                  f"workers with: edgenas worker --storage '{redact(url)}' --study {name}")
        return
    _run(setup, name, st, sec.trials, sec.seed, progress, f"search {name}")
    _front_report(study, url, out_csv)


def worker(
    storage: str = typer.Option(..., "--storage", help="Storage URL of the study (as given to `edgenas search`)."),
    study_name: str = typer.Option(..., "--study", help="Study name."),
    trials: int | None = typer.Option(None, "--trials", "-n", min=0, help="Stop when the study has this many "
                                         "completed trials (default: the number it was created with)."),
    seed: int | None = typer.Option(None, "--seed", help="Base seed (default: the study's). Each worker session "
                                       "samples with its own seed derived from it."),
    cache: Path | None = typer.Option(None, "--cache", help="Compiler measurement cache on this machine."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the compiler cache."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    import optuna

    from edgenas.search.storage import normalise_storage_url, open_storage, redact
    from edgenas.search.study import TARGET_ATTR, load_setup_from_study, quiet_optuna

    quiet_optuna()
    url = normalise_storage_url(storage)
    plain = open_storage(url)
    try:
        study = optuna.load_study(study_name=study_name, storage=plain)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(plain)]
        raise ConfigError(f"no study {study_name!r} in {redact(url)}; studies there: {', '.join(names) or 'none'}"
                          " (create one with `edgenas search CONFIG --storage URL --study NAME`)",
                          field="--study") from None
    setup = load_setup_from_study(study, cache_path=_cache(cache, no_cache))
    _dispose(plain)
    sec = setup.section
    st = open_storage(url, heartbeat_interval=sec.heartbeat_interval, grace_period=sec.grace, max_retry=sec.max_retry)
    target = trials if trials is not None else int(study.user_attrs.get(TARGET_ATTR, sec.trials))
    summary = _run(setup, study_name, st, target, sec.seed if seed is None else seed, progress,
                   f"worker {study_name}")
    err.print(f"worker done: the study has {summary.complete} of {summary.target} completed trials; this worker "
              f"finished {summary.trials} trials, ran {summary.measured} evaluations and reused {summary.reused} "
              f"(session {summary.session}, seed {summary.seed})", soft_wrap=True)


def _dispose(storage: Any) -> None:
    with contextlib.suppress(Exception):  # disposal is a courtesy to the database; never fail the command on it
        storage.engine.dispose()


def register(app: typer.Typer) -> None:
    app.command("search", help=_SEARCH_HELP)(search)
    app.command("worker", help=_WORKER_HELP)(worker)

