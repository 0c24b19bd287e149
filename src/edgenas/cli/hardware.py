"""`edgenas hardware list|show`: the hardware profiles."""

from __future__ import annotations

import typer
from rich.table import Table

from edgenas.cli._common import out


def hardware_list() -> None:
    """List the built-in hardware profiles."""
    from edgenas.hardware.profile import list_profiles, load_profile

    t = Table("profile", "accelerator", "system config", "memory mode", "SRAM KiB", "flash KiB", "evaluator")
    for name in list_profiles():
        p = load_profile(name)
        t.add_row(p.name, p.accelerator_config or "-", p.system_config or "-", p.memory_mode or "-",
                  str(p.sram_kib), str(p.flash_kib or "-"), p.evaluator)
    out.print(t)


def hardware_show(
    profile: str = typer.Argument(..., help="Built-in profile name or YAML file."),
    vela_args: bool = typer.Option(False, "--vela-args", help="Print only the vela CLI options that reproduce "
                                   "this profile's figures."),
) -> None:
    """Show a profile, or the `vela` command-line options equal to it."""
    from edgenas.hardware.profile import load_profile_spec, vela_cli_args

    p = load_profile_spec(profile)
    if vela_args:
        print(" ".join(vela_cli_args(p)))
        return
    t = Table("field", "value", title=p.name)
    for k, v in p.__dict__.items():
        t.add_row(k, str(v))
    out.print(t)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Hardware profiles: list them, show one, print the matching vela CLI options.",
                        no_args_is_help=True)
    group.command("list")(hardware_list)
    group.command("show")(hardware_show)
    app.add_typer(group, name="hardware")
