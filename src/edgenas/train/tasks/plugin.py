"""A user's own task through the plug-in door: `task: {type: plugin, entry: "module:function", ...}`, or
`task: {type: NAME, ...}` where an installed package registers NAME = "module:function" under the
`edgenas.tasks` entry-point group.

The function is imported (the module must be importable: installed, or on `sys.path` / `PYTHONPATH`) and
called with the section's other keys as a dict of settings; it may also declare the keyword arguments
`source` (the config file, or None) and `input_channels` (the space's), which are then passed. It must return
an `edgenas.train.tasks.Task`. Example::

    # my_tasks.py
    from edgenas.train.tasks import Task, TaskData

    class Shapes(Task):
        name, kind, primary, higher_is_better = "shapes", "classification", "top1", True
        input_channels = 3  # optional: checked against the space's input_channels
        best_possible = 100.0  # optional: the metric's bound, which learning-curve fits may not pass
        ...

    def make(settings, *, source=None):
        return Shapes(**settings)

    # space.yaml
    task: {type: plugin, entry: "my_tasks:make", classes: 4}
"""

from __future__ import annotations

import inspect
from typing import Any

from edgenas.errors import ConfigError
from edgenas.plugins import load_entry
from edgenas.train.tasks.base import Task


def load_plugin_task(entry: str, settings: dict[str, Any], ctx: Any, *, field: str = "task.entry") -> Task:
    """Call the plug-in's function and check that it returned a Task."""
    fn = load_entry(entry.strip(), source=ctx.source, field=field)
    if not callable(fn):
        raise ConfigError(f"{entry!r} is not a function", source=ctx.source, field=field)
    kwargs: dict[str, Any] = {}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (("source", ctx.source), ("input_channels", ctx.input_channels)):
        if takes_any or name in params:
            kwargs[name] = value
    try:
        task = fn(settings, **kwargs)
    except ConfigError as e:
        if e.source:
            raise
        raise ConfigError(e.message, source=ctx.source, field=f"task.{e.field}" if e.field else "task") from None
    if not isinstance(task, Task):
        raise ConfigError(f"{entry} returned {type(task).__name__}, not an edgenas.train.tasks.Task",
                          source=ctx.source, field=field)
    return task
