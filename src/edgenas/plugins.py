"""The one door for what users add without editing edgenas: evaluators and tasks given as `module:function`
in a config (the module importable: installed, or on PYTHONPATH), or registered by an installed package
under an entry-point group (`edgenas.evaluators`, `edgenas.tasks`: name = module:function), the way
pytest and Optuna take plug-ins. The test suite plants its fakes through the same door."""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from edgenas.errors import ConfigError

EVALUATORS = "edgenas.evaluators"
TASKS = "edgenas.tasks"


def is_entry_spec(text: str) -> bool:
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr)


def load_entry(spec: str, *, source: str | None = None, field: str | None = None) -> Any:
    """The object `module:attr.sub` names; one ConfigError line when it cannot be had."""
    module_name, sep, attr = spec.partition(":")
    if not (sep and module_name and attr):
        raise ConfigError(f"expected MODULE:FUNCTION, got {spec!r}", source=source, field=field)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import plug-in module {module_name!r} ({e}); is it installed or on PYTHONPATH?",
                          source=source, field=field) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"plug-in module {module_name!r} has no {attr!r}", source=source, field=field)
        obj = getattr(obj, part)
    return obj


def registered(group: str) -> dict[str, metadata.EntryPoint]:
    """Entry points of installed packages in `group`, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def load_registered(group: str, name: str, *, source: str | None = None, field: str | None = None) -> Any | None:
    """The object an installed package registered under `name` in `group`, or None if there is none."""
    ep = registered(group).get(name)
    if ep is None:
        return None
    try:
        return ep.load()
    except Exception as e:  # a broken plug-in package: say which
        raise ConfigError(f"plug-in {name!r} ({ep.value}) failed to load: {e}", source=source, field=field) from None
