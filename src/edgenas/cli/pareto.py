"""`edgenas pareto FILE.csv --max COL --min COL`: the non-dominated rows of any CSV (edgenas.search.pareto_csv)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def pareto(
    csv_file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="Any CSV with a header row, e.g. a sweep "
                                             "CSV or a benchmark table.")],
    maximize: Annotated[list[str] | None, typer.Option("--max", metavar="COL", help="A column to maximise; "
                                                       "repeat for several.")] = None,
    minimize: Annotated[list[str] | None, typer.Option("--min", metavar="COL", help="A column to minimise; "
                                                       "repeat for several.")] = None,
) -> None:
    """Print the non-dominated rows of a CSV as CSV (header included, all columns, file order). Equal
    points are all kept; rows with an empty or non-numeric objective value are skipped (counted on stderr)."""
    from edgenas.search.pareto_csv import pareto_rows, write_pareto_csv

    header, rows = pareto_rows(csv_file, maximize or [], minimize or [])
    write_pareto_csv(header, rows, sys.stdout)


def register(app: typer.Typer) -> None:
    app.command("pareto")(pareto)
