"""The JSON records a training run, a study and the proxy benchmark keep beside their checkpoints: written
atomically (temp file + rename, the temp file removed if the write fails), so a killed writer leaves no
half-written record under the final name; read back only when finished (`status: done`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgenas import atomic

__all__ = ["read_done", "write_json"]


def write_json(path: Path, data: Any) -> None:
    """Atomically: a killed writer leaves no half-written file under the final name."""
    atomic.write_text(path, json.dumps(data, indent=1, default=str))


def read_done(path: Path) -> dict[str, Any] | None:
    """The record at `path` if it is a finished one (`status: done`), else None (missing, unreadable, partial)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "done" else None
