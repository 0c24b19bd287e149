"""`edgenas pipeline PIPELINE.yaml`: search -> train -> prune -> quantize -> export, resumable, with a report.

A pipeline file names the space config (`config:`, relative to the pipeline file), the hardware profile, the
output folder and ordered `stages:`, each `{stage: NAME, ...settings}`. Everything is validated before any
file is written (one ConfigError naming the file and field). Each stage works in its own sub-folder of the
output folder and is recorded in `pipeline.json` (written atomically when a stage starts and when it ends):
with its fingerprint (a hash of its settings chained to the previous stage's, the space config's merged
mapping and the profile), a start counter, its outputs and its figures. Running the same command again skips
the stages whose fingerprint is unchanged and done, resumes an interrupted stage in place (training and
fine-tuning from the trainer's checkpoint, the search from its own Optuna storage; quantize and export are
redone, they are short), and redoes a stage whose settings changed together with every stage after it.

Why the pieces are joined here rather than through their one-call APIs:
- The search runs as the `edgenas search` command in a child process (it dies with this one): `export/` may
  not import `search/` (ARCHITECTURE.md); the front comes back as the command's CSV, and the command's own
  resume (same storage, same study) resumes an interrupted search.
- `prune_and_finetune` has no resume; a fresh prune stage calls it, an interrupted one repeats its first
  steps (scores and kept channels are deterministic functions of the trained weights) and resumes its
  trainer (`_resume_prune`). The resume test checks that both give the same weights.
- `deploy.build_export` quantises a genotype's network itself and cannot take a pruned Graph or a QAT'd
  file; the export stage compiles the quantize stage's file with the same helpers (`_export_files`).

Figures per stage, all at the pipeline's resolution: params and MACs of the stage's Graph; FPS and SRAM from
Vela for the profile (float stages: the Graph written as int8 with the writer's random weights, as the
search measures it; quantize and export: the real int8 file); model size = the stage's model file (float32
TFLite for float stages, the int8 file, the Vela-optimised file); the task's primary metric on its
validation set (float module after train/prune, the int8 file in LiteRT after quantize, `int8_eval`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from edgenas.errors import ConfigError, EdgeNasError
from edgenas.sections import validate_section

STATE_FILE = "pipeline.json"
REPORT_FILE = "report.md"
STATE_FORMAT = 1
ORDER = ("search", "train", "prune", "quantize", "export")
STUDY = "pipeline"

Say = Callable[[str], None]


# ---- the file ---------------------------------------------------------------------------------------------

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineFile(_Section):
    config: str  # the space YAML (relative to the pipeline file) or a built-in space name
    out: str | None = None  # output folder (relative to the working directory); --out overrides
    hardware: str | None = None  # profile spec; default: the space's first `hardware`, else ethos-u55-256
    genotype: str | None = None  # without a search stage: 'default' or name=value,... (default: the checkpoint's)
    checkpoint: str | None = None  # without a train stage: trained weights of the genotype
    stages: list[Any] = Field(min_length=1)


class Choose(_Section):
    metric: str  # a column of the search's front (an objective or another measured metric)
    direction: Literal["max", "min"]


class SearchStage(_Section):
    trials: int | None = Field(None, ge=1)  # default: the config's search.trials
    seed: int | None = None
    strategy: str | None = None
    choose: Choose | None = None  # default: the first objective of the config's search section


class QatSettings(_Section):
    epochs: int = Field(ge=1)


class PruneStage(_Section):
    score: Literal["l1", "bn", "taylor"] = "l1"
    keep_ratio: float = Field(0.5, gt=0, le=1)
    round_to: int = Field(8, ge=1)
    finetune: dict[str, Any] = Field(default_factory=dict)  # train-recipe overrides (epochs, lr, ...)


class QuantizeStage(_Section):
    observer: Literal["minmax", "moving_average", "histogram"] = "minmax"
    concat: Literal["shared", "per_input"] = "shared"
    calibration_samples: int = Field(200, ge=1)
    qat: QatSettings | None = None


class ExportStage(_Section):
    allow_cpu_ops: bool = False


MODELS: dict[str, type[BaseModel]] = {"search": SearchStage, "prune": PruneStage, "quantize": QuantizeStage,
                                      "export": ExportStage}  # train: TrainRecipe overrides


@dataclass(frozen=True)
class Stage:
    name: str
    settings: dict[str, Any]  # validated, defaults filled in (what the fingerprint hashes)
    index: int  # position in the file's `stages` list


@dataclass(frozen=True)
class Pipeline:
    source: str
    config: str  # path (or built-in name) for the space loader
    config_mapping: dict[str, Any]
    profile: Any  # HardwareProfile
    out: Path
    stages: tuple[Stage, ...]
    genotype: str  # without a search stage
    checkpoint: Path | None
    train_overrides: dict[str, Any]  # for make_candidate
    resolution: tuple[int, int]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)


def _err(source: str, field: str, msg: str) -> ConfigError:
    return ConfigError(msg, source=source, field=field)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read ({type(e).__name__})", source=str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {' '.join(str(e).split())[:160]}", source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping; fields: {', '.join(PipelineFile.model_fields)}", source=str(path))
    return data


def _stages(raw: list[Any], src: str) -> list[tuple[str, dict[str, Any], int]]:
    """[(name, raw settings, index)], each known, once, in an order that makes sense."""
    out: list[tuple[str, dict[str, Any], int]] = []
    for i, item in enumerate(raw):
        field = f"stages[{i}]"
        if not isinstance(item, dict) or "stage" not in item:
            raise _err(src, field, f"must be a mapping with `stage:` ({', '.join(ORDER)}) and its settings")
        name = item["stage"]
        if name not in ORDER:
            raise _err(src, f"{field}.stage", f"unknown stage {name!r}; allowed: {', '.join(ORDER)}")
        if any(n == name for n, _, _ in out):
            raise _err(src, f"{field}.stage", f"stage {name!r} is given twice")
        if out and ORDER.index(name) < ORDER.index(out[-1][0]):
            raise _err(src, f"{field}.stage", f"{name} cannot come after {out[-1][0]}; the order is "
                       f"{' -> '.join(ORDER)} (any may be left out)")
        out.append((name, {k: v for k, v in item.items() if k != "stage"}, i))
    names = [n for n, _, _ in out]
    if "export" in names and "quantize" not in names:
        raise _err(src, f"stages[{out[names.index('export')][2]}].stage", "export needs a quantize stage before it "
                   "(the deployed model is the quantize stage's int8 file)")
    return out


def _profile(spec: str | None, space: Any, src: str) -> Any:
    from edgenas.export.deploy import check_profile
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec

    try:
        profile = load_profile_spec(spec or (space.config.hardware or [DEFAULT_PROFILE])[0])
        check_profile(profile)
    except ConfigError as e:
        raise _err(src, "hardware", e.message) from None
    return profile


def _recipe_overrides(base: Any, given: dict[str, Any], src: str, field: str) -> Any:
    """The train recipe with `given` fields replaced, validated with field-named errors."""
    from edgenas.train.recipe import TrainRecipe

    return validate_section(TrainRecipe, {**base.model_dump(), **given}, source=src, section=field)


def load_pipeline(path: str | Path, out: str | Path | None = None) -> Pipeline:
    """Read and validate a pipeline file completely; writes nothing."""
    from edgenas.space.config import read_config_mapping, resolve_space_path
    from edgenas.train.run import make_candidate

    path = Path(path)
    src = str(path)
    top = validate_section(PipelineFile, _read(path), source=src, section="")
    stages = _stages(top.stages, src)
    names = [n for n, _, _ in stages]

    cfg = top.config
    if not Path(cfg).is_absolute() and (path.parent / cfg).exists():
        cfg = str(path.parent / cfg)
    try:
        space_path = resolve_space_path(cfg)
        mapping = read_config_mapping(space_path)
        c = make_candidate(cfg, "default")
    except ConfigError as e:
        raise _err(src, "config", str(e)) from None
    space = c.space
    profile = _profile(top.hardware, space, src)

    if "search" in names:
        if top.genotype is not None:
            raise _err(src, "genotype", "a search stage chooses the genotype; give one or the other")
        if not mapping.get("search"):
            raise _err(src, "config", f"{cfg} has no `search:` section for the search stage")
        _check_search_profile(mapping, space, profile, src)
    genotype = top.genotype or "default"
    if top.genotype is not None:
        try:
            space.parse_genotype(genotype) if genotype != "default" else None
        except ConfigError as e:
            raise _err(src, "genotype", e.message) from None

    settings: dict[str, dict[str, Any]] = {}
    train_overrides: dict[str, Any] = {}
    recipe = c.recipe
    for name, raw, i in stages:
        field = f"stages[{i}]"
        if name == "train":
            recipe = _recipe_overrides(c.recipe, raw, src, field)
            train_overrides = dict(raw)
            settings[name] = recipe.model_dump()
            continue
        model = validate_section(MODELS[name], raw, source=src, section=field)
        settings[name] = model.model_dump()
        if name == "prune":
            ft = _recipe_overrides(recipe, model.finetune, src, f"{field}.finetune")
            settings[name]["finetune"] = ft.model_dump()
        if name == "quantize" and model.qat is not None:
            try:
                import edgenas.export.qat  # noqa: F401
            except ImportError:
                raise _err(src, f"{field}.qat", "qat not available in this edgenas (edgenas.export.qat is "
                           "missing); remove `qat:`") from None
    try:
        c = make_candidate(cfg, "default", **train_overrides)
    except ConfigError as e:
        field = next((f"stages[{i}]" for n, _, i in stages if n == "train"), "config")
        raise _err(src, field, e.message) from None

    checkpoint = None
    needs_weights = any(n in names for n in ("prune", "quantize", "export"))
    if "search" in names and "train" not in names and needs_weights:
        raise _err(src, "stages", "after a search, prune/quantize/export need a train stage (no checkpoint can be of "
                   "a design the search has not chosen yet)")
    if "train" not in names and needs_weights:
        if top.checkpoint is None:
            raise _err(src, "checkpoint", f"{names[0]} needs trained weights: add a train stage or give "
                       "`checkpoint:` (best.pt of a training run of the genotype)")
        checkpoint = Path(top.checkpoint)
        if not checkpoint.is_absolute() and (path.parent / checkpoint).exists():
            checkpoint = path.parent / checkpoint
        if "search" not in names:
            genotype = _check_checkpoint(cfg, top.genotype, checkpoint, src)
    elif top.checkpoint is not None:
        raise _err(src, "checkpoint", "the train stage makes the weights; `checkpoint:` is only for a pipeline "
                   "without one")

    out_dir = Path(out) if out is not None else (Path(top.out) if top.out else None)
    if out_dir is None:
        raise _err(src, "out", "required field is missing (or pass --out)")
    check_out(out_dir, src)
    return Pipeline(src, cfg, mapping, profile, out_dir,
                    tuple(Stage(n, settings[n], i) for n, _, i in stages), genotype, checkpoint, train_overrides,
                    c.resolution)


def _check_search_profile(mapping: dict[str, Any], space: Any, profile: Any, src: str) -> None:
    """The search must measure on the pipeline's device (its `search.hardware`, else the space's first)."""
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec

    spec = mapping["search"].get("hardware") or (space.config.hardware or [DEFAULT_PROFILE])[0]
    try:
        searched = load_profile_spec(str(spec))
    except ConfigError:
        return  # the search's own check names it (validate_search)
    if searched.to_dict() != profile.to_dict():
        raise _err(src, "hardware", f"{profile.name} differs from the profile the search measures on ({spec}: "
                   "search.hardware, else the space's first `hardware`); make them the same")


def _check_checkpoint(cfg: str, genotype: str | None, path: Path, src: str) -> str:
    """The checkpoint's network must be `genotype`; without one it is the checkpoint's (as `edgenas evaluate`
    and `export` take it). Returns the genotype."""
    from edgenas.train.run import make_candidate
    from edgenas.train.trainer import check_identity, checkpoint_genotype, load_checkpoint

    try:
        state = load_checkpoint(path)
        genotype = genotype or checkpoint_genotype(state)
        check_identity(state, make_candidate(cfg, genotype).identity, path)
    except ConfigError as e:
        raise _err(src, "checkpoint", str(e)) from None
    return genotype


def check_out(out: Path, src: str) -> None:
    """The output folder is new, empty, or a pipeline's (it has pipeline.json of our format)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise _err(src, "out", f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    state = out / STATE_FILE
    if not state.is_file():
        raise _err(src, "out", f"{out} holds other files (no {STATE_FILE}); choose another output folder")
    try:
        data = json.loads(state.read_text())
        ok = isinstance(data, dict) and data.get("format") == STATE_FORMAT and isinstance(data.get("stages"), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise _err(src, "out", f"{state} is not a pipeline state of format {STATE_FORMAT}; choose another output "
                   "folder")


# ---- state ------------------------------------------------------------------------------------------------

def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprints(p: Pipeline) -> dict[str, str]:
    """Each stage's fingerprint: its settings chained to the previous stage's; the first chains to the space
    config, the profile and the given genotype/checkpoint."""
    from edgenas.export.deploy import sha256_file

    root = _hash({"config": p.config_mapping, "profile": p.profile.to_dict(), "genotype": p.genotype,
                  "checkpoint": sha256_file(p.checkpoint) if p.checkpoint else None})
    out, prev = {}, root
    for s in p.stages:
        prev = out[s.name] = _hash({"previous": prev, "stage": s.name, "settings": s.settings})
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if path.is_file():
        return json.loads(path.read_text())
    return {"format": STATE_FORMAT, "stages": {}}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    _write_atomic(out / STATE_FILE, json.dumps(state, indent=1, default=_json_default) + "\n")


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy / torch scalars
        return v.item()
    return str(v)


# ---- running ----------------------------------------------------------------------------------------------

@dataclass
class _Ctx:
    p: Pipeline
    state: dict[str, Any]
    say: Say

    def outputs(self, name: str) -> dict[str, Any]:
        return self.state["stages"][name]["outputs"]

    def path(self, rel: str) -> Path:
        return self.p.out / rel

    def genotype(self) -> str:
        return self.outputs("search")["genotype"] if self.p.stage("search") else self.p.genotype

    def candidate(self) -> Any:
        from edgenas.train.run import make_candidate

        return make_candidate(self.p.config, self.genotype(), **self.p.train_overrides)

    def weights(self, before: str) -> tuple[Path, dict[str, int] | None]:
        """The float weights the stage `before` starts from, and the pruned widths (None: unpruned)."""
        names = [s.name for s in self.p.stages]
        done = [n for n in names[:names.index(before)] if n in ("train", "prune")]
        if not done:
            return self.p.checkpoint, None  # validated: given when there is no train stage
        out = self.outputs(done[-1])
        return self.path(out["checkpoint"]), out.get("widths")


def plan(p: Pipeline) -> list[tuple[Stage, str, str]]:
    """What a run will do with each stage, from pipeline.json, without writing: [(stage, action, why)],
    action "keep", "resume" or "run"."""
    fps = fingerprints(p)
    state = _load_state(p.out)
    out: list[tuple[Stage, str, str]] = []
    ran = False  # once a stage runs, every later one runs on its new outputs
    for k, s in enumerate(p.stages):
        entry = state["stages"].get(s.name)
        fp = fps[s.name]
        if entry is None:
            why = "running"
        elif ran or entry.get("status") == "invalidated":
            why = "an earlier stage ran again: running it again"
        elif entry.get("fingerprint") != fp:
            later = len(p.stages) - k - 1
            why = (f"settings changed since the last run (fingerprint {entry.get('fingerprint')} -> {fp}): redoing "
                   "it" + (f" and the {later} stage(s) after it" if later else ""))
        elif entry.get("status") == "done" and _outputs_exist(p.out, entry):
            out.append((s, "keep", f"done before (fingerprint {fp}), kept"))
            continue
        elif entry.get("status") == "running":
            out.append((s, "resume", "resuming the interrupted stage"))
            ran = True
            continue
        else:
            why = "its outputs are missing: running it again"
        out.append((s, "run", why))
        ran = True
    return out


def _outputs_exist(out: Path, entry: dict[str, Any]) -> bool:
    outs = entry.get("outputs") or {}
    return all((out / outs[k]).exists() for k in ("checkpoint", "model", "front", "summary") if k in outs)


def run_pipeline(p: Pipeline, say: Say = lambda s: None) -> dict[str, Any]:
    """Run (or continue) the pipeline; returns the final state. Writes report.md at the end."""
    import tempfile

    steps = plan(p)
    if any(s.name == "search" and action == "run" for s, action, _ in steps):  # a resumed one was checked
        with tempfile.TemporaryDirectory(prefix="edgenas-pipeline-") as work:
            validate_search(p, Path(work))  # before anything is written
    fps = fingerprints(p)
    p.out.mkdir(parents=True, exist_ok=True)
    state = _load_state(p.out)
    state.update(format=STATE_FORMAT, pipeline=p.source, config=p.config, profile=p.profile.name)
    names = [s.name for s in p.stages]
    for old in [n for n in state["stages"] if n not in names]:
        say(f"{old}: no longer in the pipeline; its folder is removed")
        shutil.rmtree(p.out / old, ignore_errors=True)
        del state["stages"][old]
    ctx = _Ctx(p, state, say)
    for k, (s, action, why) in enumerate(steps):
        label = f"[{k + 1}/{len(p.stages)}] {s.name}"
        say(f"{label}: {why}")
        if action == "keep":
            continue
        old = state["stages"].get(s.name) if action == "resume" else None
        if old is None:
            shutil.rmtree(p.out / s.name, ignore_errors=True)
        entry = {"fingerprint": fps[s.name], "status": "running", "dir": s.name, "settings": s.settings,
                 "starts": (state["stages"].get(s.name) or {}).get("starts", 0) + 1, "started": time.time(),
                 "seconds": old.get("seconds", 0.0) if old else 0.0}
        state["stages"][s.name] = entry
        for later in p.stages[k + 1:]:  # their inputs change: forget their outputs, keep their start counts
            if later.name in state["stages"]:
                state["stages"][later.name] = {"status": "invalidated",
                                               "starts": state["stages"][later.name].get("starts", 0)}
                shutil.rmtree(p.out / later.name, ignore_errors=True)
        _save_state(p.out, state)
        t0 = time.perf_counter()
        (p.out / s.name).mkdir(parents=True, exist_ok=True)
        outputs, figures = _RUNNERS[s.name](ctx, s, p.out / s.name, action == "resume")
        entry.update(status="done", outputs=outputs, figures=figures, finished=time.time(),
                     seconds=entry["seconds"] + time.perf_counter() - t0)
        _save_state(p.out, state)
        say(f"{label}: done in {time.perf_counter() - t0:.0f} s ({_figure_text(figures)})")
    _write_atomic(p.out / REPORT_FILE, render_report(p, state))
    return state


def _figure_text(f: dict[str, Any]) -> str:
    parts = [f"{f['params']:,} params" if f.get("params") is not None else None,
             f"{f['fps']:.1f} FPS" if _finite(f.get("fps")) else None,
             f"SRAM {f['sram_kib']:.1f} KiB" if _finite(f.get("sram_kib")) else None,
             f"{f['metric_name']} {f['metric']:.4g} ({f['metric_kind']})" if _finite(f.get("metric")) else None]
    return ", ".join(x for x in parts if x)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


# ---- stages -----------------------------------------------------------------------------------------------

_CHILD = ("import sys\nfrom edgenas.processes import die_with_parent\ndie_with_parent(int(sys.argv[1]))\n"
          "sys.argv = ['edgenas', *sys.argv[2:]]\nfrom edgenas.cli import main\nmain()\n")


def _edgenas_child(args: list[str], log: Path, *, name_log: bool = True) -> None:
    """`edgenas ARGS` in a child process that dies with this one (SIGKILL included); an interrupt here stops
    it. Its output goes to `log`; exit 2 becomes a ConfigError with its error line."""
    from edgenas.processes import interrupts_deferred

    proc = None
    with open(log, "w", encoding="utf-8") as f:
        try:
            with interrupts_deferred():  # an interrupt during Popen must not lose the child's handle
                proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(os.getpid()), *args], stdout=f,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            code = proc.wait()
        except BaseException:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            raise
    if code:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if ln.startswith("edgenas: error: ")), lines[-1] if lines else "")
        msg = last.removeprefix("edgenas: error: ")
        where = f" (log: {log})" if name_log else ""
        raise (ConfigError if code == 2 else EdgeNasError)(f"edgenas {args[0]} failed (exit {code}): {msg}{where}")


def _search_args(p: Pipeline, st: dict[str, Any], storage: Path) -> list[str]:
    args = ["search", p.config, "--storage", f"sqlite:///{storage.resolve()}", "--study", STUDY, "--no-progress"]
    for key in ("trials", "seed", "strategy"):
        if st.get(key) is not None:
            args += [f"--{key}", str(st[key])]
    return args


def validate_search(p: Pipeline, work: Path) -> None:
    """The config's search section as `edgenas search` checks it, with a throw-away storage in `work`."""
    s = p.stage("search")
    if s is None:
        return
    try:
        _edgenas_child([*_search_args(p, s.settings, work / "check.db"), "--create-only"], work / "check.log",
                       name_log=False)
    except ConfigError as e:
        raise _err(p.source, f"stages[{s.index}]", e.message) from None


def _read_front(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _choose(rows: list[dict[str, str]], rule: dict[str, str], source: str, field: str) -> dict[str, str]:
    """The front's row with the best value of the rule's metric (ties: the earlier trial)."""
    metric, sign = rule["metric"], (-1.0 if rule["direction"] == "max" else 1.0)
    if metric not in rows[0]:
        raise ConfigError(f"the search front has no column {metric!r}; columns: {', '.join(rows[0])}",
                          source=source, field=field)
    return min(rows, key=lambda r: (sign * float(r[metric]), int(r["trial"])))


def _stage_search(ctx: _Ctx, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgenas.space.space import load_space

    p = ctx.p
    front = d / "front.csv"
    _edgenas_child([*_search_args(p, s.settings, d / "study.db"), "--out", str(front)], d / "search.log")
    rows = _read_front(front) if front.exists() else []
    if not rows:
        raise ConfigError("the search found no feasible design (empty front); relax its constraints or run more "
                          f"trials (see {d / 'search.log'})", source=p.source, field=f"stages[{s.index}]")
    first = (p.config_mapping["search"].get("objectives") or [{}])[0]
    rule = s.settings.get("choose") or {"metric": first.get("metric"),
                                        "direction": "min" if str(first.get("direction")).startswith("min") else "max"}
    row = _choose(rows, rule, p.source, f"stages[{s.index}].choose.metric")
    space = load_space(p.config)
    g = space.parse_genotype(",".join(f"{k}={row[k]}" for k in space.choices))
    if g.arch_id != row["arch_id"]:  # the front's columns must give back the very design it names
        raise EdgeNasError(f"front row {row['trial']}: genotype {g} has arch_id {g.arch_id}, the front says "
                           f"{row['arch_id']}")
    outputs = {"genotype": str(g), "arch_id": g.arch_id, "trial": int(row["trial"]), "front": f"{s.name}/front.csv",
               "front_size": len(rows), "rule": rule, "search_figures": row}
    from edgenas.train.run import make_candidate

    c = make_candidate(p.config, str(g), **p.train_overrides)
    return outputs, {**_graph_figures(c.graph(), p.profile), "resolution": _res(c.resolution)}


def _res(r: tuple[int, int]) -> str:
    return f"{r[0]}x{r[1]}"


def _graph_figures(graph: Any, profile: Any) -> dict[str, Any]:
    """Params, MACs, and Vela's FPS/SRAM of the Graph written as int8 with random weights."""
    from edgenas.hardware.vela import VelaEvaluator

    m = VelaEvaluator(profile).evaluate(graph, per_layer=False)
    fig: dict[str, Any] = {"params": graph.params, "macs": graph.macs, "vela_on": "graph, random int8 weights"}
    fig.update(_vela_figures(m))
    return fig


def _vela_figures(m: Any) -> dict[str, Any]:
    if not m.ok:
        return {"fps": None, "sram_kib": None, "compile_error": m.error}
    return {k: float(m.metrics[k]) for k in ("fps", "sram_kib", "offchip_flash_kib", "cpu_ops")}


def _float_figures(ctx: _Ctx, c: Any, module: Any, rel: str) -> dict[str, Any]:
    import torch

    from edgenas.export.ptq import to_float_tflite
    from edgenas.train.trainer import evaluate

    module = module.cpu().eval()
    metric = evaluate(module, c.task, c.task.eval_data(c.resolution), batch_size=32,
                      device=torch.device("cpu"))[c.task.primary]
    return {**_graph_figures(module.graph, ctx.p.profile), "resolution": _res(c.resolution),
            "model_file": "float32 TFLite (BatchNorm folded)", "model_bytes": len(to_float_tflite(module)),
            "weights": rel, "metric_name": c.task.primary, "metric": metric, "metric_kind": "float"}


def _load_module(c: Any, checkpoint: Path, widths: dict[str, int] | None) -> Any:
    from edgenas.graph.channels import pruned_graph
    from edgenas.train.builder import GraphModule
    from edgenas.train.trainer import load_checkpoint, load_weights

    graph = c.graph()
    if widths:
        graph = pruned_graph(graph, widths)
    module = GraphModule(graph)
    load_weights(module, load_checkpoint(checkpoint), checkpoint)
    return module.eval()


def _set_threads(recipe: Any) -> None:
    import torch

    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _stage_train(ctx: _Ctx, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgenas.train.run import train_candidate
    from edgenas.train.trainer import BEST, CHECKPOINT

    c = ctx.candidate()
    result = train_candidate(c, d, resume=resume and (d / CHECKPOINT).exists())
    module = _load_module(c, d / BEST, None)
    rel = f"{s.name}/{BEST}"
    outputs = {"checkpoint": rel, "genotype": str(c.genotype), "best_epoch": result.best_epoch,
               "best_metric": result.best_metric}
    return outputs, _float_figures(ctx, c, module, rel)


def _stage_prune(ctx: _Ctx, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgenas.export.prune import prune_and_finetune
    from edgenas.train.recipe import TrainRecipe
    from edgenas.train.trainer import BEST, CHECKPOINT

    c = ctx.candidate()
    st = s.settings
    recipe = TrainRecipe.model_validate(st["finetune"])
    _set_threads(recipe)
    src, widths = ctx.weights(s.name)
    module = _load_module(c, src, widths)
    data = c.task.data(c.resolution, seed=recipe.seed)
    r = prune_and_finetune(module, c.task, data, recipe, d, method=st["score"], keep_ratio=st["keep_ratio"],
                           round_to=st["round_to"], identity=c.identity, resume=resume and (d / CHECKPOINT).exists())
    plan, before, pruned = r.widths, r.metric_before, r.module
    rel = f"{s.name}/{BEST}"
    outputs = {"checkpoint": rel, "widths": plan, "metric_before_finetune": before}
    return outputs, _float_figures(ctx, c, pruned, rel)


def _stage_quantize(ctx: _Ctx, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgenas.export.int8_eval import int8_metrics
    from edgenas.export.package import INT8_FILE
    from edgenas.export.ptq import calibration_batches, to_int8_tflite
    from edgenas.hardware.vela import VelaEvaluator
    from edgenas.train.trainer import CHECKPOINT

    c = ctx.candidate()
    st = s.settings
    src, widths = ctx.weights(s.name)
    module = _load_module(c, src, widths)
    data = c.task.data(c.resolution, seed=c.recipe.seed)
    n_cal = min(st["calibration_samples"], len(data.train))
    val = c.task.eval_data(c.resolution)
    outputs: dict[str, Any] = {"calibration_samples": n_cal, "observer": st["observer"], "concat": st["concat"]}
    if st["qat"] is not None:
        from edgenas.export.qat import qat_finetune, qat_recipe

        recipe = qat_recipe(c.recipe, st["qat"]["epochs"])
        _set_threads(recipe)
        q = qat_finetune(module, c.task, data, recipe, d / "qat",
                         calibration=calibration_batches(data.train, n_cal), observer=st["observer"],
                         concat=st["concat"], eval_set=val, identity=c.identity,
                         resume=resume and (d / "qat" / CHECKPOINT).exists())
        tflite = q.tflite
        outputs.update(qat_epochs=st["qat"]["epochs"], metric_ptq=q.metric_ptq, metric_qat=q.metric_qat)
    else:
        tflite, _ = to_int8_tflite(module, calibration_batches(data.train, n_cal), observer=st["observer"],
                                   concat=st["concat"])
    metrics, resolver = int8_metrics(tflite, list(module.graph.outputs), c.task, val)
    tmp = d / f".{INT8_FILE}.tmp"
    tmp.write_bytes(tflite)
    os.replace(tmp, d / INT8_FILE)
    m, _ = VelaEvaluator(ctx.p.profile).compile(tflite, per_layer=False)
    rel = f"{s.name}/{INT8_FILE}"
    outputs.update(model=rel, int8_runtime=f"ai-edge-litert, OpResolverType.{resolver}", metrics_int8=metrics)
    figures = {"params": module.graph.params, "macs": module.graph.macs, "resolution": _res(c.resolution),
               "vela_on": "the int8 file", **_vela_figures(m), "model_file": "int8 TFLite", "model_bytes": len(tflite),
               "metric_name": c.task.primary, "metric": metrics[c.task.primary], "metric_kind": "int8"}
    return outputs, figures


def _export_files(ctx: _Ctx, c: Any, tflite: bytes, d: Path,
                  allow_cpu_ops: bool) -> tuple[dict[str, bytes], dict[str, Any], Any]:
    """The export folder's files and summary for a given int8 file (the same package as `edgenas export`)."""
    from edgenas.export.package import compile_for_device, package

    p = ctx.p
    try:
        compiled = compile_for_device(tflite, p.profile, allow_cpu_ops=allow_cpu_ops)
    except ConfigError as e:
        field = "allow_cpu_ops" if e.field == "--allow-cpu-ops" else f"hardware ({e.field})"
        raise ConfigError(e.message, source=p.source, field=field) from None
    files, summary = package(tflite, compiled, p.profile, c.task, c.resolution)
    summary.update(genotype=str(c.genotype), arch_id=c.genotype.arch_id, resolution=_res(c.resolution),
                   pruned_widths=None, pipeline=p.source)
    return files, summary, compiled.measurement


def _stage_export(ctx: _Ctx, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgenas.export.deploy import write_export
    from edgenas.export.package import VELA_FILE, file_entries

    c = ctx.candidate()
    q = ctx.outputs("quantize")
    tflite = ctx.path(q["model"]).read_bytes()
    _, widths = ctx.weights("quantize")
    graph = c.graph() if not widths else _pruned(c, widths)
    files, summary, m = _export_files(ctx, c, tflite, d, s.settings["allow_cpu_ops"])
    qfig = ctx.state["stages"]["quantize"]["figures"]
    floats = [ctx.state["stages"][n]["figures"] for n in ("train", "prune") if ctx.p.stage(n)]
    summary.update(pruned_widths=widths, metric=c.task.primary, metric_int8=qfig["metric"],
                   metric_int8_runtime=q["int8_runtime"], metric_float=floats[-1]["metric"] if floats else None,
                   files=file_entries(files))
    shutil.rmtree(d, ignore_errors=True)  # write_export creates the folder whole, or not at all
    write_export(d, files, summary)
    outputs = {"files": sorted([*files, "summary.json"]), "summary": f"{s.name}/summary.json",
               "tensor_arena_bytes": summary["tflm"]["tensor_arena_bytes"], "cpu_ops": summary["cpu_ops"]}
    figures = {"params": graph.params, "macs": graph.macs, "resolution": _res(c.resolution),
               "vela_on": "the int8 file", **_vela_figures(m), "model_file": "Vela-optimised int8 TFLite",
               "model_bytes": len(files[VELA_FILE]), "metric_name": c.task.primary, "metric": qfig["metric"],
               "metric_kind": "int8"}
    return outputs, figures


def _pruned(c: Any, widths: dict[str, int]) -> Any:
    from edgenas.graph.channels import pruned_graph

    return pruned_graph(c.graph(), widths)


_RUNNERS: dict[str, Callable[[_Ctx, Stage, Path, bool], tuple[dict[str, Any], dict[str, Any]]]] = {
    "search": _stage_search, "train": _stage_train, "prune": _stage_prune, "quantize": _stage_quantize,
    "export": _stage_export}


# ---- report -----------------------------------------------------------------------------------------------

def _cell(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def render_report(p: Pipeline, state: dict[str, Any]) -> str:
    """Markdown: one row per stage with its figures, then how each figure was measured."""
    lines = [f"# Pipeline report: {Path(p.source).name}", "",
             f"Space config `{p.config}`, hardware profile `{p.profile.name}`, output folder `{p.out}`.", ""]
    search = state["stages"].get("search", {}).get("outputs")
    if search:
        rule = search["rule"]
        lines += [f"The search's front held {search['front_size']} design(s); chosen by the rule "
                  f"\"{rule['direction']} {rule['metric']}\" (ties: the earlier trial): trial {search['trial']}, "
                  f"`{search['genotype']}` (arch_id {search['arch_id']}).", ""]
    lines += ["| stage | resolution | params | MACs | model file | size (KiB) | FPS | SRAM (KiB) | metric |",
              "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for s in p.stages:
        e = state["stages"].get(s.name)
        if not e or e.get("status") != "done":
            lines.append(f"| {s.name} | not run | | | | | | | |")
            continue
        f = e["figures"]
        metric = (f"{f['metric_name']} {f['metric']:.4g} ({f['metric_kind']})" if _finite(f.get("metric")) else "-")
        size = _cell(f["model_bytes"] / 1024 if f.get("model_bytes") else None, ".1f")
        lines.append(f"| {s.name} | {f.get('resolution', '-')} | {_cell(f.get('params'), ',')} | "
                     f"{_cell(f.get('macs'), ',')} | {f.get('model_file', '-')} | {size} | {_cell(f.get('fps'), '.1f')}"
                     f" | {_cell(f.get('sram_kib'), '.1f')} | {metric} |")
    quant = (state["stages"].get("quantize") or {}).get("outputs") or {}
    if "metric_qat" in quant:
        lines += ["", f"Quantisation-aware training ({quant['qat_epochs']} epoch(s)): int8 metric "
                  f"{quant['metric_ptq']:.4g} after post-training quantisation, {quant['metric_qat']:.4g} after QAT."]
    lines += ["", "How the figures were measured:", "",
              "- params, MACs: the stage's network (the pruned one from prune on).",
              f"- FPS, SRAM: Vela (ethos-u-vela) for `{p.profile.name}`; search/train/prune compile the network "
              "written as int8 with random weights, quantize/export the stage's real int8 file.",
              "- size: the stage's model file (search: none).",
              "- metric: the task's primary metric on its validation set: the float module after train and prune, "
              "the int8 file in LiteRT (`int8_eval`, reference kernels where they have every op) after quantize "
              "and export.", "", "| stage | fingerprint | starts | seconds | outputs |", "|---|---|---:|---:|---|"]
    for s in p.stages:
        e = state["stages"].get(s.name) or {}
        outs = e.get("outputs") or {}
        files = ", ".join(f"`{v}`" for k, v in outs.items() if k in ("checkpoint", "model", "front", "summary"))
        lines.append(f"| {s.name} | {e.get('fingerprint', '-')} | {e.get('starts', 0)} | "
                     f"{_cell(e.get('seconds'), '.0f')} | {files} |")
    return "\n".join(lines) + "\n"
