"""The command package: every group registered, and `edgenas --help` loads no heavy or optional module."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "torch", "ethosu", "optuna", "moocore", "matplotlib", "scipy", "sqlalchemy")


def test_help_lists_every_command_and_loads_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "sys.argv = ['edgenas', '--help']\n"
        "from edgenas.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stderr.strip().splitlines()[-1])
    assert loaded == [], f"`edgenas --help` imported {loaded}"
    for command in ("sweep", "measure", "show", "calibrate", "npu-support", "study", "report", "search", "worker",
                    "pareto", "bench-search", "hardware"):
        assert f" {command} " in res.stdout, command


def test_every_registered_command_is_reachable() -> None:
    """Typer keeps the last of two commands with one name: count registrations against the click group."""
    import typer.main

    from edgenas.cli import app

    group = typer.main.get_command(app)
    assert len(group.commands) == len(app.registered_commands) + len(app.registered_groups)


def test_search_help_names_every_registered_strategy() -> None:
    """The --strategy help is written out (listing the registry would import it for every --help): it must
    name each built-in strategy and the default."""
    import re

    import typer.main

    from edgenas.cli import app
    from edgenas.search.strategies._registry import DEFAULT_STRATEGY, strategy_names

    search = typer.main.get_command(app).commands["search"]
    (option,) = [p for p in search.params if "--strategy" in getattr(p, "opts", ())]
    text = " ".join(option.help.split())
    assert set(strategy_names()) <= set(re.findall(r"[a-z0-9]+", text))
    assert f"{DEFAULT_STRATEGY} (edgenas's default)" in text
