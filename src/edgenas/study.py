"""The study pipeline: sweep (through the cache) -> analysis -> report files, joined in one short function
each for `edgenas study` and `edgenas report` (pymoo style: the parts stay separate objects). With
`train=True` the study then trains the candidates that fit the device (train/study.py) and the report gains
their accuracy (the run folder's accuracy.csv)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from edgenas.analysis import analyse, settings_from_mapping
from edgenas.analysis.study import Study
from edgenas.errors import ConfigError
from edgenas.hardware.profile import DEFAULT_PROFILE, HardwareProfile, load_profile_spec
from edgenas.space.space import SearchSpace, load_space
from edgenas.sweep.table import LayerTable, SweepTable, load_layers_csv, load_sweep_csv

LANGS = ("en", "zh")
ACCURACY_CSV = "accuracy.csv"  # = train.study.ACCURACY_CSV (not imported here: that module is for --train)
REPORT_EVERY_S = 120.0  # while training, the report is rewritten after a network when it is older than this


@dataclass(frozen=True)
class StudyFiles:
    out_dir: Path
    markdown: Path
    html: Path
    images: tuple[Path, ...]
    csv: Path | None


def profiles_of(space: SearchSpace | None, names: list[str]) -> dict[str, HardwareProfile]:
    """Profiles by the names a sweep used (built-in names, files or NAME:field=value specs); names that
    cannot be loaded (a profile file moved since) are left out and the analysis works without their sizes."""
    out: dict[str, HardwareProfile] = {}
    for n in names:
        try:
            out[n] = load_profile_spec(n)
        except ConfigError:
            continue
    return out


def build_study(table: SweepTable, layers: LayerTable | None, space: SearchSpace | None,
                overrides: dict[str, object] | None = None,
                accuracy: Sequence[Mapping[str, Any]] | None = None) -> Study:
    report_cfg = dict(space.config.report) if space is not None else {}
    report_cfg.update(overrides or {})
    settings = settings_from_mapping(report_cfg, source=space.source if space is not None else None)
    return analyse(table, layers, settings, space=space, profiles=profiles_of(space, table.hardware),
                   accuracy=accuracy)


def read_accuracy(path: Path | None) -> list[dict[str, Any]] | None:
    """The rows of an accuracy.csv (None when there is none)."""
    if path is None or not path.exists():
        return None
    from edgenas.train.study import read_accuracy_csv

    return read_accuracy_csv(path)


def write_report(study: Study, out_dir: Path, lang: str, *, sweep_csv: Path | None = None,
                 layers_csv: Path | None = None, accuracy_csv: Path | None = None) -> StudyFiles:
    """Render and write report.md, its PNGs and a self-contained report.html into `out_dir`. Everything is
    written to a temporary folder beside it first and moved in at the end: a failure leaves nothing."""
    from edgenas.report.html import render_html
    from edgenas.report.markdown import render_markdown
    from edgenas.report.study_doc import study_document

    if lang not in LANGS:
        raise ConfigError(f"unknown language {lang!r}; allowed: {', '.join(LANGS)}", field="--lang")
    doc = study_document(study, lang)
    md, images = render_markdown(doc)
    html = render_html(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    try:
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(html, encoding="utf-8")
        for name, data in images.items():
            (tmp / name).write_bytes(data)
        for src, name in ((sweep_csv, "results.csv"), (layers_csv, "layers.csv"), (accuracy_csv, ACCURACY_CSV)):
            if src is not None and src.resolve() != (out_dir / name).resolve():
                shutil.copyfile(src, tmp / name)
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    csv = out_dir / "results.csv"
    return StudyFiles(out_dir, out_dir / "report.md", out_dir / "report.html",
                      tuple(out_dir / n for n in images), csv if csv.exists() else None)


def run_study(config: str, out_dir: Path, *, lang: str = "en", n_jobs: int = 0, cache_path: Path | None = None,
              console: Console | None = None, train: bool = False) -> StudyFiles:
    """`edgenas study`: sweep the config's space on its hardware (through the cache), then write the report.
    `train`: then train the candidates of the config's `study:` section that fit the device into
    `out_dir/train/` (resuming unfinished ones, reusing finished ones), evaluate them at the training and
    the deployment (key) resolution, write accuracy.csv and the report with its accuracy section."""
    if lang not in LANGS:
        raise ConfigError(f"unknown language {lang!r}; allowed: {', '.join(LANGS)}", field="--lang")
    space = load_space(config)
    profiles = [load_profile_spec(n) for n in (space.config.hardware or [DEFAULT_PROFILE])]
    check_report_settings(space)  # a bad `report:` section fails before minutes of compiling
    entries = _check_training(config, space) if train else None  # and bad task:/train:/study: sections too
    with _output_dir(out_dir):
        files, study = _sweep_and_report(space, profiles, out_dir, lang, n_jobs, cache_path, console)
    if entries is None:
        return files
    # Outside _output_dir: a stopped training keeps the run folder (its checkpoints are what resumes).
    return _train_and_report(config, space, entries, study, files, lang, console)


def _check_training(config: str, space: SearchSpace) -> Any:
    if not space.config.task:
        raise ConfigError("--train needs a `task:` section (what to learn, e.g. `task: {type: flow}`)",
                          source=space.source, field="task")
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("training needs PyTorch: pip install 'edgenas[train]'") from None
    from edgenas.train.run import make_candidate
    from edgenas.train.study import parse_study_section

    make_candidate(config)  # task:, train: and the training resolution, validated
    return parse_study_section(space.config.study, space)


def _train_and_report(config: str, space: SearchSpace, entries: Any, study: Study, files: StudyFiles, lang: str,
                      console: Console | None) -> StudyFiles:
    from edgenas.space.config import parse_resolution
    from edgenas.train.recipe import parse_train_section
    from edgenas.train.study import plan_training, train_plan, write_accuracy_csv

    say = console.print if console is not None else (lambda _m: None)
    out_dir = files.out_dir
    seed = parse_train_section(space.config.train, space.source).seed
    plan = plan_training(space, entries, default_seed=seed,
                         fits={r.design.arch_id: r.fits for r in study.key_results.rows})
    key, device = str(study.settings.key_resolution), str(study.settings.device_hardware)
    for g, why in plan.skipped:
        say(f"not trained: {g} (" + (f"does not fit {device} at {key})" if why == "over_device" else
                                     f"not in the sweep at {key})"))
    say(f"training {len(plan.jobs)} network(s) into {out_dir / 'train'}; deployment resolution {key}")
    if not plan.jobs:
        return files
    table = load_sweep_csv(out_dir / "results.csv")
    layers = load_layers_csv(out_dir / "layers.csv") if (out_dir / "layers.csv").exists() else None
    acc_csv = out_dir / ACCURACY_CSV
    last_report = [time.monotonic()]

    def refresh(rows: Sequence[Mapping[str, Any]], force: bool = False) -> StudyFiles | None:
        """accuracy.csv after each network, the report too when the last one is a while old: a study
        stopped midway has both nearly up to date (`edgenas report` on the folder brings the report level)."""
        write_accuracy_csv(acc_csv, list(space.choices), rows)
        if not force and time.monotonic() - last_report[0] < REPORT_EVERY_S:
            return None
        full = build_study(table, layers, space, accuracy=read_accuracy(acc_csv))
        files = write_report(full, out_dir, lang)
        last_report[0] = time.monotonic()
        return files

    summary = train_plan(config, space, plan, out_dir, deploy_resolution=parse_resolution(key), log=say,
                         on_row=refresh)
    say(f"trained {summary.trained} ({summary.resumed} resumed), {summary.from_store} taken from the training store, "
        f"{summary.reused} finished before")
    files = refresh(summary.rows, force=True)
    assert files is not None
    return files


def _sweep_and_report(space: SearchSpace, profiles: list[HardwareProfile], out_dir: Path, lang: str, n_jobs: int,
                      cache_path: Path | None, console: Console | None) -> tuple[StudyFiles, Study]:
    from edgenas.sweep.driver import sweep_to_csv

    work = Path(tempfile.mkdtemp(prefix=".sweep-", dir=out_dir))
    try:
        csv, layers = work / "results.csv", work / "layers.csv"
        summary = sweep_to_csv(space, profiles, csv, n_jobs=n_jobs, cache_path=cache_path, layers_csv=layers,
                               console=console)
        if console is not None:
            console.print(summary.rsplit(" -> ", 1)[0])  # the CSV's final place is the run folder
        accuracy = read_accuracy(out_dir / ACCURACY_CSV)  # a run folder that holds trained results keeps them
        study = build_study(load_sweep_csv(csv), load_layers_csv(layers), space, accuracy=accuracy)
        return write_report(study, out_dir, lang, sweep_csv=csv, layers_csv=layers), study
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report_from_csv(csv: Path, out_dir: Path, *, config: str | None = None, layers: Path | None = None,
                    lang: str = "en", key_resolution: str | None = None, accuracy: Path | None = None) -> StudyFiles:
    """`edgenas report`: the study of an existing sweep CSV (per-layer rows from `layers`, or the
    `layers.csv` beside it; the space from `config`, which unlocks the IR-based parts; trained results from
    `accuracy`, or the accuracy.csv beside it)."""
    table = load_sweep_csv(csv)
    if layers is None and (csv.parent / "layers.csv").exists():
        layers = csv.parent / "layers.csv"
    if accuracy is None and (csv.parent / ACCURACY_CSV).exists():
        accuracy = csv.parent / ACCURACY_CSV
    elif accuracy is not None and not accuracy.exists():
        raise ConfigError("file not found", source=str(accuracy))
    layer_table = load_layers_csv(layers) if layers is not None else None
    space = load_space(config) if config else None
    if space is not None:
        unknown = [c for c in table.choices if c not in space.choices]
        if unknown:
            raise ConfigError(f"the sweep's choice column(s) {', '.join(unknown)} are not choices of the space "
                              f"{space.name}; allowed: {', '.join(space.choices)}", source=str(csv))
    overrides = {"key_resolution": key_resolution} if key_resolution else None
    study = build_study(table, layer_table, space, overrides, accuracy=read_accuracy(accuracy))
    with _output_dir(out_dir):
        return write_report(study, out_dir, lang, sweep_csv=csv, layers_csv=layers, accuracy_csv=accuracy)


def check_report_settings(space: SearchSpace) -> None:
    """The `report:` section against the space itself: thresholds, baseline genotype, key resolution."""
    from edgenas.space.config import format_resolution

    settings = settings_from_mapping(dict(space.config.report), source=space.source)
    if settings.baseline:
        space.genotype(settings.baseline)  # raises naming the choice and its options
    for k, values in (settings.recommended or {}).items():
        for v in values:
            try:
                space.genotype({k: v})
            except ConfigError as e:
                raise ConfigError(e.message, source=space.source, field=f"report.recommended.{k}") from None
    if settings.key_resolution:
        allowed = [format_resolution(r) for r in space.resolutions]
        if settings.key_resolution not in allowed:
            raise ConfigError(f"{settings.key_resolution} is not one of the space's resolutions; allowed: "
                              f"{', '.join(allowed)}", source=space.source, field="report.key_resolution")


@contextlib.contextmanager
def _output_dir(out_dir: Path) -> Iterator[None]:
    """Create `out_dir` if needed, and remove it again if it was new and the work failed."""
    new = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if new:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
