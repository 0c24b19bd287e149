"""What the command modules share: the two consoles and the parsing of options several commands take."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from edgenas.errors import ConfigError

# Piped output is read by programs and pagers: do not squeeze tables into 80 columns then.
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True)


def default_cache_path() -> Path:
    """EDGENAS_CACHE (a file) wins, then $XDG_CACHE_HOME/edgenas, then ~/.cache/edgenas."""
    if os.environ.get("EDGENAS_CACHE"):
        return Path(os.environ["EDGENAS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgenas" / "measurements.sqlite"


def cache_option(cache: Path | None, no_cache: bool) -> Path | None:
    """The cache a command uses: none with --no-cache, else --cache, else the default."""
    return None if no_cache else (cache or default_cache_path())


def parse_resolutions(values: list[str] | None, field: str = "--resolution") -> list[tuple[int, int]] | None:
    from edgenas.space.config import parse_resolution

    if not values:
        return None
    try:
        return [parse_resolution(v) for v in values]
    except ValueError as e:
        raise ConfigError(str(e), field=field) from None


def load_profiles(names: list[str] | None, fallback: list[str]) -> list[Any]:
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec

    chosen = names or fallback or [DEFAULT_PROFILE]
    profiles = [load_profile_spec(n) for n in chosen]
    seen = set()
    for p in profiles:
        if p.name in seen:
            raise ConfigError(f"profile {p.name!r} given twice", field="--hardware")
        seen.add(p.name)
    return profiles
