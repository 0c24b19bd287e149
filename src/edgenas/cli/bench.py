"""`edgenas bench-search`: judge search strategies on a table with a known Pareto front (thin: parses and calls
edgenas.search.bench)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from edgenas.errors import ConfigError, EdgeNasError


def bench_search(
    table: Path = typer.Option(..., "--table", help="CSV with one row per architecture and its known metrics."),
    arch_col: str = typer.Option("arch", "--arch-col", help="Column holding the architecture (NAS-Bench-201 "
                                 "cell string, or NAME=VALUE,... per choice point)."),
    objective: list[str] = typer.Option(..., "--objective", help="COLUMN:max or COLUMN:min; repeat (two or more)."),
    floor: Optional[list[str]] = typer.Option(None, "--floor", help="COLUMN=VALUE: the region of interest (an "
                                              "accuracy floor) and that objective's reference point; repeatable."),
    budget: int = typer.Option(300, "--budget", help="Distinct architectures each strategy may evaluate."),
    seeds: int = typer.Option(10, "--seeds", help="Runs per strategy, seeds 0..N-1."),
    strategies: Optional[str] = typer.Option(None, "--strategies", help="Comma-separated strategies, each NAME or "
                                             "NAME:KEY=VALUE:...; the default and the anchors (random, nsga2, tpe) "
                                             "always run."),
    hardware_free: bool = typer.Option(False, "--hardware-free", help="The hardware objectives (every :min one, "
                                       "or those named by --free) are known for every architecture up front; "
                                       "only the others cost budget."),
    free: Optional[list[str]] = typer.Option(None, "--free", help="With --hardware-free: the objective columns "
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


def register(app: typer.Typer) -> None:
    app.command("bench-search")(bench_search)
