"""`edgenas study` and `edgenas report`: a whole study in one run folder, or the report of a sweep."""

from __future__ import annotations

from pathlib import Path

import typer

from edgenas.cli._common import cache_option, err, out


def study(
    config: str = typer.Argument(..., help="Study config: a space YAML with `hardware:` and `report:` sections "
                                 "(e.g. examples/seed_head_upsample.yaml) or a built-in space name."),
    out_dir: Path | None = typer.Option(None, "--out", "-o", help="Run folder (default runs/<space name>)."),
    lang: str = typer.Option("en", "--lang", help="Report language: en or zh."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel compiler processes (0 = one per core)."),
    cache: Path | None = typer.Option(None, "--cache", help="Measurement cache (default as for sweep)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Compile everything; read and write no cache."),
    train: bool = typer.Option(False, "--train", help="Also train the networks of `study.train` (else every design) "
                               "that fit the device, and add their accuracy to the report (needs a `task:` "
                               "section; see below)."),
) -> None:
    """Sweep a space on its hardware profiles and write the study: report.md, a self-contained report.html,
    the plots as PNG, and the sweep CSVs.

    \b
    --train (needs PyTorch, the `train` extra, and a `task:` section; `train:` is the recipe) then trains,
    stand-alone, the networks listed in the config's `study: {train: [...]}` section, in that order (each
    entry maps choices to a value or a list of values, the other choices at the default; optional `seeds:
    [..]`), or every design of the sweep when there is no such section. Networks that do not fit the device
    at the key resolution are skipped (listed as such) unless their entry says `over_device: true`.
    Each goes to RUN/train/<arch_id>-s<seed>/ and is evaluated at the training and at the key (deployment)
    resolution; RUN/accuracy.csv and the report (EPE beside FPS and SRAM, an accuracy section) follow.
    Ctrl-C or SIGTERM stops after a checkpoint; the same command resumes: finished networks are reused,
    unfinished ones resumed."""
    from edgenas.space.space import load_space
    from edgenas.study import run_study

    target = out_dir or Path("runs") / load_space(config).name
    files = run_study(config, target, lang=lang, n_jobs=jobs, cache_path=cache_option(cache, no_cache),
                      console=err, train=train)
    acc = files.out_dir / "accuracy.csv"
    extra = f", accuracy {acc}" if acc.exists() else ""
    out.print(f"report: {files.html}  ({files.markdown}, {len(files.images)} plots, sweep {files.csv}{extra})")


def report(
    csv: Path = typer.Argument(..., help="A sweep CSV written by `edgenas sweep` or `edgenas study`."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for report.md, report.html and the plots."),
    config: str | None = typer.Option(None, "--config", "-c", help="The space YAML the sweep came from: its "
                                         "`report:` thresholds, baseline and the IR (tensors that do not fit)."),
    layers: Path | None = typer.Option(None, "--layers", help="Per-layer CSV (default: layers.csv beside the "
                                          "sweep CSV, if there)."),
    lang: str = typer.Option("en", "--lang", help="Report language: en or zh."),
    key_resolution: str | None = typer.Option(None, "--key-resolution", help="HxW of the key-results "
                                                 "section (default: the config's, else the middle one)."),
    accuracy: Path | None = typer.Option(None, "--accuracy", help="Trained results (accuracy.csv of "
                                            "`edgenas study --train`; default: accuracy.csv beside the sweep CSV, "
                                            "if there): adds EPE columns and the accuracy section."),
) -> None:
    """Write the study report of an existing sweep (with trained results, when there are some)."""
    from edgenas.study import report_from_csv

    files = report_from_csv(csv, out_dir, config=config, layers=layers, lang=lang, key_resolution=key_resolution,
                            accuracy=accuracy)
    out.print(f"report: {files.html}  ({files.markdown}, {len(files.images)} plots)")


def register(app: typer.Typer) -> None:
    app.command()(study)
    app.command()(report)
