"""Generated datasets cached on disk: generated once, read back by every later run with the same key.

Where: `$EDGENAS_DATA_CACHE`, else `~/.cache/edgenas/data`. A file's name is its key (generator name and
version, resolution, seed, sample count and a digest of the generator's settings), so a change to any of
them is a new file and a stale one is never read. Written atomically (a temporary file in the same folder,
then `os.replace`), so a killed run leaves no half-written file under the final name; a file that cannot be
read back (truncated by a full disk, say) is generated again.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgenas import atomic

ENV_VAR = "EDGENAS_DATA_CACHE"


def cache_dir() -> Path:
    """The data cache folder (not created here)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgenas" / "data"


def settings_digest(settings: Mapping[str, Any]) -> str:
    """Short stable digest of generator settings (canonical JSON)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def cache_name(kind: str, version: int, resolution: tuple[int, int], seed: int, count: int,
               settings: Mapping[str, Any]) -> str:
    h, w = resolution
    return f"{kind}-v{version}-{h}x{w}-s{seed}-n{count}-{settings_digest(settings)}.npz"


def cached_arrays(name: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under `name`, built (and stored) first if absent or unreadable."""
    path = cache_dir() / name
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            pass  # unreadable: build it again below
    arrays = build()
    write_atomic(path, arrays)
    return arrays


def write_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez into a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path, fsync=True) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # a file object: given a path, savez would append `.npz` to the temporary name
