"""The `supernet` evaluator for `edgenas search`: a candidate's accuracy (EPE, top-1: the task's primary
metric) estimated by a trained weight-sharing supernet (`edgenas supernet train`) in seconds instead of
training it.

    evaluators: [compiler, {type: supernet, checkpoint: runs/flow_search/supernet}]

Options: `checkpoint` (the supernet folder; relative to the config file), `resolution` (HxW the sub-network
is scored at; default: the supernet's training resolution, not the search's deployment resolution, which
the compiler measures), `bn_samples` and `seed` (the training samples BatchNorm is recalibrated on; default:
the supernet's `bn_samples` and `seed`), `val_samples` (score on the first N validation samples; default all),
`batch_size`. Each candidate is scored exactly as `edgenas supernet evaluate` scores it
(`train.supernet.evaluate`): the sub-network copied out of the store, its BatchNorm statistics recomputed
over the fixed sample set, then the validation set. It reports `<primary>` and the seconds spent
(`supernet_seconds`, split into `supernet_recalibration_seconds` and `supernet_score_seconds`).

Checked when the search is set up, before anything is evaluated (one line naming the file, exit 2): the
folder holds a supernet (supernet.json, checkpoint.pt or one per part of a split supernet), it was trained
on this search's space (the same network, every search choice an option the supernet holds) and task. The
checkpoint itself (hundreds of MB for a real supernet) is loaded on the first evaluation and then kept for
the process: `edgenas search` and each `edgenas worker` load it once, however many candidates they score.

It is `expensive`, so it runs after the compiler and never for a candidate over a hard limit (`sram_kib <=
device`): see `Problem.evaluate`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgenas.errors import ConfigError
from edgenas.search.evaluators import (
    Cost,
    EvalContext,
    EvaluationFailed,
    Evaluator,
    MetricValue,
    _needs_network,
    _options,
    register_evaluator,
)
from edgenas.space.genotype import Genotype

_SUPERNET_FILE = "supernet.json"  # as edgenas.train.supernet.run writes them (not imported: torch loads late)
_CHECKPOINT = "checkpoint.pt"

# One loaded supernet per folder per process: every evaluator (and every setup a process makes) shares it.
_LOADED: dict[str, Any] = {}
_LOADS: dict[str, int] = {}  # how many times each folder was loaded in this process
_LOCK = threading.Lock()


class _SupernetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    resolution: str | None = None
    bn_samples: int | None = Field(None, ge=1)
    seed: int | None = None
    val_samples: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)


def _checkpoints(folder: Path, meta: dict[str, Any]) -> list[Path]:
    """The checkpoint of a supernet folder, or of each part of a split one (as train.supernet.fewshot lays
    them out; not imported: torch loads late)."""
    if meta.get("split"):
        return [folder / str(label) / _CHECKPOINT for label in meta.get("parts") or {}]
    return [folder / _CHECKPOINT]


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _read_meta(folder: Path, fld: str) -> dict[str, Any]:
    meta_path = folder / _SUPERNET_FILE
    if not folder.is_dir():
        raise ConfigError(f"no supernet folder {folder} (train one with `edgenas supernet train CONFIG --out DIR`)",
                          field=f"{fld}.checkpoint")
    if not meta_path.is_file():
        raise ConfigError(f"{folder} is not a trained supernet folder (no {_SUPERNET_FILE})", field=f"{fld}.checkpoint")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{meta_path} is unreadable ({type(e).__name__})", field=f"{fld}.checkpoint") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("identity"), dict) or not meta.get("config"):
        raise ConfigError(f"{meta_path} is not a supernet record (no identity or config)", field=f"{fld}.checkpoint")
    missing = [p for p in _checkpoints(folder, meta) if not p.is_file()]
    if missing:
        raise ConfigError(f"{folder} is not a trained supernet folder (no {missing[0].relative_to(folder)})",
                          field=f"{fld}.checkpoint")
    if meta.get("split") and meta.get("status") not in ("done", "running"):  # a part left unfinished
        raise ConfigError(f"{meta_path}: the split supernet stopped before its last part (status "
                          f"{meta.get('status')}); finish it with `edgenas supernet train ... --resume`",
                          field=f"{fld}.checkpoint")
    if meta.get("status") == "running":  # its checkpoint changes under the search; a killed run: --resume it
        raise ConfigError(f"{meta_path}: the supernet is still training (status running); wait for it, or finish "
                          "a stopped run with `edgenas supernet train ... --resume`", field=f"{fld}.checkpoint")
    return meta


def check_supernet_fits(ctx: EvalContext, folder: Path, meta: dict[str, Any], task: Any, fld: str) -> None:
    """The supernet of `folder` was trained on this search's network, task, and every option it searches."""
    from edgenas.train.run import load_training_config

    ident = meta["identity"]
    where = folder / _SUPERNET_FILE
    space = ctx.space
    if ident.get("space_key") != space.space_key:
        raise ConfigError(f"{where}: the supernet is of another space ({ident.get('space')!r}, space_key "
                          f"{ident.get('space_key')}; this search: {space.name!r}, {space.space_key})",
                          field=f"{fld}.checkpoint")
    if _canonical(ident.get("task")) != _canonical(task.describe()):
        have, want = ident.get("task") or {}, task.describe()
        diff = sorted(k for k in {*have, *want} if _canonical(have.get(k)) != _canonical(want.get(k)))
        raise ConfigError(f"{where}: the supernet was trained on another task ({', '.join(diff)} differ)",
                          field=f"{fld}.checkpoint")
    try:
        trained_space, _, _ = load_training_config(str(meta["config"]))
    except ConfigError as e:
        raise ConfigError(f"{where}: its training config cannot be read ({e})", field=f"{fld}.checkpoint") from None
    have_choices = {k: [str(v) for v in vs] for k, vs in trained_space.choices.items()}
    # a split supernet holds the options it has parts for; one part alone holds its own option only
    part = meta.get("part") or {}
    if meta.get("split"):
        have_choices[meta["split"]] = [str(p.get("option")) for p in (meta.get("parts") or {}).values()]
    elif part.get("choice") in have_choices:
        have_choices[part["choice"]] = [str(part.get("option"))]
    for k, vs in space.choices.items():
        if k not in have_choices:
            raise ConfigError(f"{where}: the supernet has no choice {k!r} (it has: {', '.join(have_choices)})",
                              field=f"{fld}.checkpoint")
        outside = [str(v) for v in vs if str(v) not in have_choices[k]]
        if outside:
            raise ConfigError(f"{where}: {k}={outside[0]} is outside the supernet (its {k}: "
                              f"{', '.join(have_choices[k])})", field=f"{fld}.checkpoint")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def loads_in_process(folder: str | Path) -> int:
    """How many times this process loaded the supernet of `folder` (1 after any number of evaluations)."""
    return _LOADS.get(str(Path(folder).resolve()), 0)


def _load(folder: Path) -> Any:
    from edgenas.train.supernet.run import load_supernet

    key = str(folder)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load_supernet(folder)
            _LOADS[key] = _LOADS.get(key, 0) + 1
        return _LOADED[key]


class SupernetEvaluator(Evaluator):
    """Accuracy of a candidate from a trained supernet, BatchNorm recalibrated per candidate."""

    type_name = "supernet"
    cost: Cost = "expensive"

    def __init__(self, ctx: EvalContext, opts: _SupernetOptions, fld: str) -> None:
        _needs_network(ctx, "score", fld)
        from edgenas.space.config import format_resolution, parse_resolution
        from edgenas.train.tasks import make_task

        cfg = ctx.space.config  # type: ignore[union-attr]
        self.task = make_task(cfg.task, source=ctx.space.source, input_channels=cfg.input_channels)
        folder = Path(opts.checkpoint)
        if not folder.is_absolute():
            folder = Path(ctx.base_dir) / folder
        self.folder = folder.resolve()
        meta = _read_meta(self.folder, fld)
        check_supernet_fits(ctx, self.folder, meta, self.task, fld)
        trained = (meta.get("resolutions") or [None])[0]
        text = opts.resolution or trained
        if text is None:
            raise ConfigError(f"{self.folder / _SUPERNET_FILE} records no training resolution; give `resolution:`",
                              field=f"{fld}.resolution")
        try:
            res = parse_resolution(text)
        except ValueError as e:
            raise ConfigError(str(e), field=f"{fld}.resolution") from None
        stride = ctx.space.stride  # type: ignore[union-attr]
        if res[0] % stride or res[1] % stride:
            raise ConfigError(f"{format_resolution(res)} is not divisible by the network's total stride {stride}",
                              field=f"{fld}.resolution")
        self.resolution = res
        self.opts = opts
        self._store = str(meta["identity"].get("store", ""))
        # supernet.json is rewritten when training ends or stops (history, `updated`): its digest and the
        # checkpoint's size name the weights without reading them (a copy on another machine has the same)
        checkpoints = _checkpoints(self.folder, meta)
        sizes = ",".join(str(p.stat().st_size) for p in checkpoints)
        # a split supernet: each part's supernet.json too (rewritten when that part is trained again)
        parts = "".join(f":{_digest(p.parent / _SUPERNET_FILE)}" for p in checkpoints) if meta.get("split") else ""
        self._meta_digest = f"{_digest(self.folder / _SUPERNET_FILE)}{parts}:{sizes}"
        self._scorer: Any = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.task.primary, "supernet_seconds", "supernet_recalibration_seconds", "supernet_score_seconds")

    def fingerprint(self) -> str:
        from edgenas.space.config import format_resolution

        o = self.opts
        return (f"supernet:{self._meta_digest}:{self._store}:{format_resolution(self.resolution)}:{o.bn_samples}:"
                f"{o.seed}:{o.val_samples}")

    def scorer(self) -> Any:
        """The SubnetEvaluator of this evaluator's settings (data prepared once), over the process's supernet."""
        if self._scorer is None:
            from edgenas.train.supernet.evaluate import SubnetEvaluator

            loaded = _load(self.folder)
            if loaded.setup.recipe.threads:  # train.threads, as training takes it (workers sharing a machine)
                import torch

                torch.set_num_threads(loaded.setup.recipe.threads)
            over = {k: v for k, v in (("bn_samples", self.opts.bn_samples), ("seed", self.opts.seed)) if v is not None}
            if over:  # a copy of the setup with this evaluator's BatchNorm sample set; the weights are shared
                setup = replace(loaded.setup, settings=loaded.setup.settings.with_overrides(**over))
                loaded = replace(loaded, setup=setup)
            scorer = SubnetEvaluator(loaded, self.resolution, self.opts.batch_size)
            if self.opts.val_samples is not None:
                scorer.val_batches = _first_samples(scorer.val_batches, self.opts.val_samples)
            self._scorer = scorer
        return self._scorer

    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        scorer = self.scorer()
        g = scorer.loaded.setup.space.parse_genotype(str(genotype))  # the supernet's own space object
        try:
            row = scorer.score(g)
        except (RuntimeError, ValueError) as e:  # a sub-network the task cannot score (shape mismatch, say)
            raise EvaluationFailed(f"supernet could not score the network: {str(e).splitlines()[0][:200]}") from None
        value = row.metrics.get(self.task.primary)
        if value is None or not math.isfinite(value):
            raise EvaluationFailed(f"the supernet gave no finite {self.task.primary}")
        return {self.task.primary: float(value),
                "supernet_seconds": round(row.recalibration_seconds + row.score_seconds, 4),
                "supernet_recalibration_seconds": round(row.recalibration_seconds, 4),
                "supernet_score_seconds": round(row.score_seconds, 4)}


def _first_samples(batches: list, n: int) -> list:
    """The collated validation batches cut to their first n samples (the order is the validation set's)."""
    out, left = [], n
    for xs, target in batches:
        if left <= 0:
            break
        k = min(left, int(target.shape[0]))
        out.append((tuple(x[:k] for x in xs), target[:k]))
        left -= k
    return out


def _supernet_factory(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    return SupernetEvaluator(ctx, _options(_SupernetOptions, opts, fld, None), fld)


register_evaluator("supernet", _supernet_factory)
