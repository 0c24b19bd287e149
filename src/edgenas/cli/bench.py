"""`edgenas bench-search`: judge search strategies on a table with a known Pareto front (thin: parses and calls
edgenas.search.bench). `edgenas bench-proxies`: which cheap accuracy estimate ranks networks like stand-alone
training (thin: calls edgenas.train.bench_proxies). `edgenas bench-supernet`: the weight-sharing supernet's rows
added to that table (thin: calls edgenas.train.bench_supernet)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from edgenas.errors import ConfigError, EdgeNasError


def bench_search(
    table: Path = typer.Option(..., "--table", help="CSV with one row per architecture and its known metrics."),
    arch_col: str = typer.Option("arch", "--arch-col", help="Column holding the architecture (NAS-Bench-201 "
                                 "cell string, or NAME=VALUE,... per choice point)."),
    objective: list[str] = typer.Option(..., "--objective", help="COLUMN:max or COLUMN:min; repeat (two or more)."),
    floor: list[str] | None = typer.Option(None, "--floor", help="COLUMN=VALUE: the region of interest (an "
                                              "accuracy floor) and that objective's reference point; repeatable."),
    budget: int = typer.Option(300, "--budget", help="Distinct architectures each strategy may evaluate."),
    seeds: int = typer.Option(10, "--seeds", help="Runs per strategy, seeds 0..N-1."),
    strategies: str | None = typer.Option(None, "--strategies", help="Comma-separated strategies, each NAME or "
                                             "NAME:KEY=VALUE:...; NAME+floor (= NAME:floor=on) tells a strategy "
                                             "that reads constraints the --floor. The default and the anchors "
                                             "(random, nsga2, tpe; with --floor also nsga2+floor, tpe+floor) "
                                             "always run."),
    hardware_free: bool = typer.Option(False, "--hardware-free", help="The hardware objectives (every :min one, "
                                       "or those named by --free) are known for every architecture up front; "
                                       "only the others cost budget."),
    free: list[str] | None = typer.Option(None, "--free", help="With --hardware-free: the objective columns "
                                             "known up front (default: every :min objective)."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel processes over seeds x strategies (0 = one per core)."),
) -> None:
    """Run search strategies on a table of known metrics and print how close each gets to the true front (JSON)."""
    from edgenas.search.bench import parse_floor, parse_objective, run_bench, strategy_list

    try:
        if jobs < 0:
            raise ConfigError(f"must be >= 0, got {jobs}", field="--jobs")
        if free and not hardware_free:
            raise ConfigError("--free needs --hardware-free", field="--free")
        objectives = tuple(parse_objective(o) for o in objective)
        floors: dict[str, float] = {}
        for f in floor or ():
            col, value = parse_floor(f)
            if col in floors:
                raise ConfigError(f"floor for {col!r} given twice", field="--floor")
            floors[col] = value
        requested = [s for s in (strategies or "").split(",") if s.strip()]
        specs = strategy_list(requested)
        problem = dict(table=table, arch_col=arch_col, objectives=objectives, floors=floors,
                       hardware_free=hardware_free, free=tuple(free or ()))
        summary, _ = run_bench(problem, specs, seeds=seeds, budget=budget, jobs=jobs)
    except EdgeNasError as e:
        print(f"edgenas: error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(json.dumps(summary))


_PROXIES_HELP = """Which cheap accuracy estimate can you trust? Train every genotype stand-alone with two seeds
(A and B, the reference: the config's train: recipe) and compare with seed A's result: each training-free
proxy (synflow, naswot, jacob_cov, snip, grad_norm; at initialisation on one batch), short training (1/10
of the epochs), params and MACs, and seed B.

\b
Reported as JSON (--out) and a table: Kendall tau and Spearman with paired bootstrap 95% intervals, the
same within each backbone, the ceiling sqrt(r_AB) (r_AB = Spearman of seed B with seed A), the two-seed
mean's reliability 2r/(1+r), and the cost of each in seconds. For a lower-is-better metric (EPE) every
estimate is correlated with -metric: positive tau = ranks like seed A.

\b
Every finished run is kept in the folder beside --out (FILE.runs/); the same command again skips what
is done, so a long benchmark can run in chunks over days. Ctrl-C / SIGTERM stop, keeping finished runs.
--preset smoke: a tiny version (minutes on 2 cores); full: the config as written."""


def _print_table(s: dict, what: str) -> None:
    """bench-proxies' table (and bench-supernet's, the same with the supernet rows) on the console."""
    from rich.table import Table

    from edgenas.cli._common import out as console
    from edgenas.train import bench_tables as tables

    table = Table(title=f"{s['space']}: {what} of {s['primary']} vs seed A "
                        f"({'lower' if not s['higher_is_better'] else 'higher'} is better; oriented so + = agrees)")
    for col in tables.TABLE_HEADER:
        table.add_column(col, justify="left" if col == "estimate" else "right")
    rows = tables.table_rows(s)
    for row in rows:
        table.add_row(*row)
    if rows:
        console.print(table)


def bench_proxies(
    config: str = typer.Argument(..., help="Space YAML with task: and train: sections (e.g. "
                                 "benchmarks/flow_space.yaml)."),
    genotypes: str = typer.Option(..., "--genotypes", "-g", help="N (N genotypes drawn at random, seeded) or a "
                                  "file with one genotype per line (name=value,...)."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSON to write; finished runs are kept in FILE.runs/."),
    preset: str = typer.Option("full", "--preset", help="full (the config as written) or smoke (tiny: minutes)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel processes, one torch thread each (0 = one per core)."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW to train at (default: the "
                                             "preset's, else train.resolution, else the space's first)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for the intervals."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the random draw when --genotypes is N."),
    report_only: bool = typer.Option(False, "--report-only", help="Train nothing: summarise the runs kept so far."),
    first: str | None = typer.Option(None, "--first", help="A file of genotypes (as for --genotypes, each of them "
                                        "listed there) whose runs come before the others', e.g. the randomly drawn "
                                        "part of the list: a partial run then covers them first."),
    table_on: str | None = typer.Option(None, "--table-on", help="A file of genotypes (part of --genotypes): "
                                           "also the table on them alone, e.g. the randomly drawn part of the "
                                           "list (the same runs, nothing trained for it)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    from edgenas.cli.train import _need_torch

    _need_torch()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from edgenas.cli._common import err
    from edgenas.cli._common import out as console
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp
    from edgenas.train import bench_tables as tables

    if jobs < 0:
        raise ConfigError(f"must be >= 0, got {jobs}", field="--jobs")
    settings = bp.make_settings(config, preset=preset, resolution=resolution)
    space = load_space(config)
    listed = bp.read_genotypes(space, genotypes, sample_seed=sample_seed)
    first_ids = {g.arch_id for g in bp.read_part(space, first, listed, field="--first")} if first else set()
    part = bp.read_part(space, table_on, listed, field="--table-on") if table_on else None
    bar = Progress(TextColumn("[bold]bench-proxies[/] {task.fields[last]}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not progress)
    with bar:
        task_id = bar.add_task("runs", total=None, last="")

        def on_start(todo: int, total: int) -> None:
            bar.update(task_id, total=total, completed=total - todo,
                       last=f"{len(listed)} genotypes, {todo} of {total} runs to do")

        def on_record(item: Any, record: dict, done: int, total: int) -> None:
            bar.update(task_id, completed=done, last=f"{item.kind} {item.genotype[:60]}")

        try:
            run = bp.run_bench(settings, listed, out, jobs=jobs, resamples=resamples, train=not report_only,
                               on_record=on_record, on_start=on_start, first=first_ids,
                               part=None if part is None else (table_on, part))
        except KeyboardInterrupt as e:
            e.args = (bp.resume_hint(sys.argv),)
            raise
    s = run.summary
    _print_table(s, "cheap estimates")
    n = s["genotypes"]
    console.print(tables.headline(s), markup=False, highlight=False)
    if "part" in s:
        _print_table(s["part"], f"the same on {s['part']['part_file']}")
        console.print(tables.headline(s["part"]), markup=False, highlight=False)
    console.print(f"{n['runs_done']} of {n['runs_total']} runs kept ({run.done_now} now); {out}", markup=False,
                  highlight=False)
    for f in run.failed:
        err.print(f"edgenas: warning: {f}", markup=False, highlight=False)


_SUPERNET_HELP = """Does a weight-sharing supernet rank networks like stand-alone training? Train one supernet
per strategy (spos, sandwich, sandwich-labels) on the reference's task, data and recipe, score every listed
genotype with it (BatchNorm recalibrated per sub-network), and add a row per strategy to bench-proxies'
table: the same genotypes, the same reference (seeds A and B), the same statistics and bootstrap resamples.

\b
The reference is bench-proxies' run folder (--reference FILE.json -> FILE.runs/; default OUT.runs/reference.json,
its runs in OUT.runs/reference.runs/):
its finished runs are read, never retrained; missing ones are trained by bench-proxies' own code. The
supernet's cost counts its training, data preparation, BatchNorm recalibration and scoring of every genotype.
Its budget: the sub-network passes of short training of the whole list, three quarters of them for SPOS
(its steps cost more); --supernet-epochs overrides.

\b
Everything finished is kept (FILE.runs/<strategy>/: the supernet's checkpoint, the scores as they end); the
same command again continues. --preset smoke: minutes on 2 cores; full: the config as written."""


def bench_supernet(
    config: str = typer.Argument(..., help="Space YAML with task: and train: sections (e.g. "
                                 "benchmarks/flow_space.yaml)."),
    genotypes: str = typer.Option(..., "--genotypes", "-g", help="N (N genotypes drawn at random, seeded) or a "
                                  "file with one genotype per line (name=value,...)."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSON to write; supernets and scores kept in FILE.runs/."),
    preset: str = typer.Option("full", "--preset", help="full (the config as written) or smoke (tiny: minutes)."),
    reference: Path | None = typer.Option(None, "--reference", help="bench-proxies' JSON whose run folder "
                                             "(FILE.runs/) holds the reference (default: OUT.runs/reference.json, "
                                             "OUT being --out)."),
    strategies: str = typer.Option("spos,sandwich,sandwich-labels", "--strategies",
                                   help="Comma-separated: spos, sandwich, sandwich-labels."),
    supernet_lr: float | None = typer.Option(None, "--supernet-lr", help="The supernets' learning rate "
                                                "(default: the reference recipe's)."),
    supernet_epochs: int | None = typer.Option(None, "--supernet-epochs", help="Epochs of every supernet "
                                                  "(default: the budget of short training of the list)."),
    split: str | None = typer.Option(None, "--split", help="Few-shot supernets: one part per option of this "
                                        "choice (e.g. backbone), the epochs shared out among the parts; runs "
                                        "apart from one-shot ones (use another --out)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel processes, one torch thread each (0 = one per core)."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW (default: the preset's, else "
                                             "train.resolution, else the space's first)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for the intervals."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the random draw when --genotypes is N."),
    report_only: bool = typer.Option(False, "--report-only", help="Train nothing: summarise what is kept."),
    reference_training: bool = typer.Option(True, "--reference-training/--no-reference-training",
                                            help="Train the reference's missing runs first (default), or read it "
                                            "as it stands: the supernets train while bench-proxies trains the "
                                            "reference in another process, and the table covers the genotypes "
                                            "it has finished."),
    table_on: str | None = typer.Option(None, "--table-on", help="A file of genotypes (part of --genotypes): "
                                           "also the table on them alone, e.g. the randomly drawn part of the "
                                           "list; the same supernets (trained for the whole list) and reference."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Print what starts and ends."),
) -> None:
    from edgenas.cli.train import _need_torch

    _need_torch()

    from edgenas.cli._common import err
    from edgenas.cli._common import out as console
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp
    from edgenas.train import bench_supernet as bs

    if jobs < 0:
        raise ConfigError(f"must be >= 0, got {jobs}", field="--jobs")
    names = bs.parse_strategies(strategies)
    space = load_space(config)
    listed = bp.read_genotypes(space, genotypes, sample_seed=sample_seed)
    part = bp.read_part(space, table_on, listed, field="--table-on") if table_on else None
    settings = bs.make_settings(config, len(listed), preset=preset, resolution=resolution, strategies=names,
                                supernet_epochs=supernet_epochs, supernet_lr=supernet_lr, split=split)

    def say(msg: str) -> None:
        if progress:
            err.print(f"bench-supernet: {msg}", markup=False, highlight=False)

    try:
        run = bs.run_bench_supernet(settings, listed, out, reference_out=reference, jobs=jobs, resamples=resamples,
                                    train=not report_only, train_reference=reference_training, on_event=say,
                                    part=None if part is None else (table_on, part))
    except KeyboardInterrupt as e:
        e.args = (bp.resume_hint(sys.argv),)
        raise
    s = run.summary
    _print_table(s, "supernet and cheap estimates")
    console.print(bs.headline(s), markup=False, highlight=False)
    if "part" in s:
        _print_table(s["part"], f"the same on {s['part']['part_file']}")
        console.print(bs.headline(s["part"]), markup=False, highlight=False)
    console.print(f"supernets trained or scored now: {', '.join(run.trained_now) or 'none'}; {out}", markup=False,
                  highlight=False)
    for f in s.get("failed", []):
        err.print(f"edgenas: warning: {f}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bench-search")(bench_search)
    app.command("bench-proxies", help=_PROXIES_HELP)(bench_proxies)
    app.command("bench-supernet", help=_SUPERNET_HELP)(bench_supernet)
