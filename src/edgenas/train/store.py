"""Finished stand-alone trainings kept by what determines them, so the same training is never run twice.

On a CPU a training is a pure function of the network (the graph's structure, input shape included), the
task's data, the recipe with its seed, the thread count, the device and the torch version: the same inputs
give the same weights bit for bit, whichever space, config or command named the network (the seed's networks
trained by `edgenas study examples/flow_accuracy.yaml --train` and by the flow_search verdict are the same
trainings). `edgenas train`, `study --train` and bench-proxies' reference and short trainings look a
training up here before they start one and put it here when it finishes.

Where: `$EDGENAS_TRAIN_STORE`, else `~/.cache/edgenas/trainings`; `EDGENAS_TRAIN_STORE=off` turns it off.
Not kept: runs on data read from a user's files or code (`Task.data_fixed_by_description` False: the files can
change under the same description), runs started from other weights (`--init-from`), runs under torchrun,
runs on a GPU (not bit-reproducible), and runs with `patience`-free early stopping by a search
(`stop_when`: the caller's, not the recipe's). An entry is a folder named by the key: `best.pt` (the best
weights, with the identity of the run that made them) and `record.json` (the TrainResult and where it came
from); it is written into a temporary folder and renamed into place, so a killed run leaves nothing half
written under a key.

Written here because no library keys training results by content: the compiler's measurement cache
(hardware/cache.py) does the same job for Vela and the data cache (tasks/_cache.py) for generated data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_VAR = "EDGENAS_TRAIN_STORE"
FORMAT = 1
BEST_FILE = "best.pt"
RECORD_FILE = "record.json"
# recipe fields left out of the key: how often a checkpoint is written (changes nothing in the weights), the
# requested thread count (the count actually used goes in instead) and the requested resolution (the one
# used is the input shape in the graph's structure; a recipe may leave it to the space's first)
NEUTRAL_FIELDS = ("checkpoint_every", "threads", "resolution")


def store_dir() -> Path | None:
    """The store's folder, or None when it is turned off."""
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip().lower() in ("off", "0", "none", "false"):
        return None
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgenas" / "trainings"


def training_key(structure: str, task: Mapping[str, Any], recipe: Mapping[str, Any], *, threads: int,
                 device: str, torch_version: str) -> str:
    """The key of one training: the graph's structure fingerprint (input shape included), the task's
    description, the recipe (its seed included) without the fields that change nothing, the threads used,
    the device and the torch version."""
    text = json.dumps({"format": FORMAT, "structure": structure, "task": dict(task),
                       "recipe": {k: v for k, v in recipe.items() if k not in NEUTRAL_FIELDS},
                       "threads": threads, "device": device, "torch": torch_version},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def reusable(task: Any, device: Any, *, distributed: bool, init_from: Any = None) -> bool:
    """Whether a training of `task` on `device` may be looked up and kept (see the module docstring)."""
    return (store_dir() is not None and bool(getattr(task, "data_fixed_by_description", False))
            and str(device) == "cpu" and not distributed and init_from is None)


def lookup(key: str) -> Path | None:
    """The entry's folder when the store holds a complete one for `key`."""
    root = store_dir()
    if root is None:
        return None
    entry = root / key
    return entry if (entry / RECORD_FILE).is_file() and (entry / BEST_FILE).is_file() else None


def read_record(entry: Path) -> dict[str, Any]:
    return json.loads((entry / RECORD_FILE).read_text())


def put(key: str, best: Path, *, result: Mapping[str, Any], data: Mapping[str, Any], params: int,
        source: Mapping[str, Any]) -> Path | None:
    """Keep a finished training: a copy of its `best` checkpoint and its record (`result`: the TrainResult as
    a dict; `data`: the data's description; `params`; `source`: config, identity and folder of the run that
    trained it). A key already held is kept as it is (the same inputs gave the same weights). Returns the
    entry, or None when the store is off or the run has no best checkpoint (nothing to reuse)."""
    record = {"result": dict(result), "data": dict(data), "params": params, "source": dict(source)}
    root = store_dir()
    if root is None or not Path(best).is_file():
        return None
    entry = root / key
    if lookup(key) is not None:
        return entry
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        shutil.copyfile(best, tmp / BEST_FILE)
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=1, default=str))
        try:
            os.rename(tmp, entry)  # atomic; fails if another process put the same key meanwhile
        except OSError:
            if lookup(key) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry


def restore_best(entry: Path, dest: Path, identity: Mapping[str, Any]) -> None:
    """Write the entry's best weights to `dest` under the requesting run's identity (its space, arch_id and
    genotype: the same network, named by another space), atomically."""
    from edgenas.train.trainer import load_checkpoint, save_atomic

    state = load_checkpoint(entry / BEST_FILE)
    state["identity"] = dict(identity)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(state, dest)
