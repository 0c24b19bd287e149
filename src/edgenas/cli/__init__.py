"""The `edgenas` command: one thin module per command group, registered here explicitly. No logic lives
in these modules, and each imports what it needs inside its commands, so `edgenas --help` loads neither
the compiler nor numpy nor the optional extras (torch)."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from edgenas.cli import bench, export, hardware, pareto, pipeline, search, study, supernet, sweep, train
from edgenas.cli._common import err
from edgenas.errors import EdgeNasError
from edgenas.processes import exit_code_for_interrupts, handle_sigterm


class _Commands(TyperGroup):
    """Interrupts are turned into exit codes inside the command's invocation: Typer would otherwise make
    every KeyboardInterrupt (so SIGTERM's `Terminated` too) a silent exit 130."""

    def invoke(self, ctx: Any) -> Any:
        with exit_code_for_interrupts():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Commands,
    help="Hardware-aware neural architecture search for edge NPUs (Arm Ethos-U): declare a family of networks "
    "in YAML, measure every candidate with the real compiler, and find what is fast enough and fits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The order here is the order of `edgenas --help`.
for _group in (sweep, study, train, supernet, export, pipeline, search, pareto, bench, hardware):
    _group.register(app)


def main() -> None:
    handle_sigterm()
    with exit_code_for_interrupts():
        try:
            app()
        except EdgeNasError as e:
            err.print(f"edgenas: error: {e}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(2)


__all__ = ["app", "main"]
