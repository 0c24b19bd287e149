"""The pipeline file (`edgenas pipeline PIPELINE.yaml`): read and validate it completely, writing nothing;
every error is one ConfigError naming the file and field. What a pipeline does is in `pipeline.py`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from edgenas.errors import ConfigError
from edgenas.sections import validate_section

STATE_FILE = "pipeline.json"
STATE_FORMAT = 1
ORDER = ("search", "train", "prune", "quantize", "export")


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


def field_error(source: str, field: str, msg: str) -> ConfigError:
    """An error in the pipeline file `source` at `field`."""
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
            raise field_error(src, field, f"must be a mapping with `stage:` ({', '.join(ORDER)}) and its settings")
        name = item["stage"]
        if name not in ORDER:
            raise field_error(src, f"{field}.stage", f"unknown stage {name!r}; allowed: {', '.join(ORDER)}")
        if any(n == name for n, _, _ in out):
            raise field_error(src, f"{field}.stage", f"stage {name!r} is given twice")
        if out and ORDER.index(name) < ORDER.index(out[-1][0]):
            raise field_error(src, f"{field}.stage", f"{name} cannot come after {out[-1][0]}; the order is "
                       f"{' -> '.join(ORDER)} (any may be left out)")
        out.append((name, {k: v for k, v in item.items() if k != "stage"}, i))
    names = [n for n, _, _ in out]
    if "export" in names and "quantize" not in names:
        raise field_error(src, f"stages[{out[names.index('export')][2]}].stage", "export needs a quantize stage before it "
                   "(the deployed model is the quantize stage's int8 file)")
    return out


def _profile(spec: str | None, space: Any, src: str) -> Any:
    from edgenas.export.deploy import check_profile
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec

    try:
        profile = load_profile_spec(spec or (space.config.hardware or [DEFAULT_PROFILE])[0])
        check_profile(profile)
    except ConfigError as e:
        raise field_error(src, "hardware", e.message) from None
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
        raise field_error(src, "config", str(e)) from None
    space = c.space
    profile = _profile(top.hardware, space, src)

    if "search" in names:
        if top.genotype is not None:
            raise field_error(src, "genotype", "a search stage chooses the genotype; give one or the other")
        if not mapping.get("search"):
            raise field_error(src, "config", f"{cfg} has no `search:` section for the search stage")
        _check_search_profile(mapping, space, profile, src)
    genotype = top.genotype or "default"
    if top.genotype is not None:
        try:
            space.parse_genotype(genotype) if genotype != "default" else None
        except ConfigError as e:
            raise field_error(src, "genotype", e.message) from None

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
                raise field_error(src, f"{field}.qat", "qat not available in this edgenas (edgenas.export.qat is "
                           "missing); remove `qat:`") from None
    try:
        c = make_candidate(cfg, "default", **train_overrides)
    except ConfigError as e:
        field = next((f"stages[{i}]" for n, _, i in stages if n == "train"), "config")
        raise field_error(src, field, e.message) from None

    checkpoint = None
    needs_weights = any(n in names for n in ("prune", "quantize", "export"))
    if "search" in names and "train" not in names and needs_weights:
        raise field_error(src, "stages", "after a search, prune/quantize/export need a train stage (no checkpoint can be of "
                   "a design the search has not chosen yet)")
    if "train" not in names and needs_weights:
        if top.checkpoint is None:
            raise field_error(src, "checkpoint", f"{names[0]} needs trained weights: add a train stage or give "
                       "`checkpoint:` (best.pt of a training run of the genotype)")
        checkpoint = Path(top.checkpoint)
        if not checkpoint.is_absolute() and (path.parent / checkpoint).exists():
            checkpoint = path.parent / checkpoint
        if "search" not in names:
            genotype = _check_checkpoint(cfg, top.genotype, checkpoint, src)
    elif top.checkpoint is not None:
        raise field_error(src, "checkpoint", "the train stage makes the weights; `checkpoint:` is only for a pipeline "
                   "without one")

    out_dir = Path(out) if out is not None else (Path(top.out) if top.out else None)
    if out_dir is None:
        raise field_error(src, "out", "required field is missing (or pass --out)")
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
        raise field_error(src, "hardware", f"{profile.name} differs from the profile the search measures on ({spec}: "
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
        raise field_error(src, "checkpoint", str(e)) from None
    return genotype


def check_out(out: Path, src: str) -> None:
    """The output folder is new, empty, or a pipeline's (it has pipeline.json of our format)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise field_error(src, "out", f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    state = out / STATE_FILE
    if not state.is_file():
        raise field_error(src, "out", f"{out} holds other files (no {STATE_FILE}); choose another output folder")
    try:
        data = json.loads(state.read_text())
        ok = isinstance(data, dict) and data.get("format") == STATE_FORMAT and isinstance(data.get("stages"), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise field_error(src, "out", f"{state} is not a pipeline state of format {STATE_FORMAT}; choose another output "
                   "folder")
