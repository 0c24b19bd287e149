"""The `edgenas` command: parses arguments and calls the packages. No logic lives here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgenas.errors import ConfigError, EdgeNasError

app = typer.Typer(
    help="Hardware-aware neural architecture search for edge NPUs (Arm Ethos-U): declare a family of networks "
    "in YAML, measure every candidate with the real compiler, and find what is fast enough and fits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
hardware_app = typer.Typer(help="Hardware profiles: list them, show one, print the matching vela CLI options.",
                           no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
# Piped output is read by programs and pagers: do not squeeze tables into 80 columns then.
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True)


def default_cache_path() -> Path:
    """EDGENAS_CACHE (a file) wins, then $XDG_CACHE_HOME/edgenas, then ~/.cache/edgenas."""
    if os.environ.get("EDGENAS_CACHE"):
        return Path(os.environ["EDGENAS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgenas" / "measurements.sqlite"


def _parse_resolutions(values: list[str] | None, field: str = "--resolution") -> list[tuple[int, int]] | None:
    from edgenas.space.config import parse_resolution

    if not values:
        return None
    try:
        return [parse_resolution(v) for v in values]
    except ValueError as e:
        raise ConfigError(str(e), field=field) from None


def _load_profiles(names: list[str] | None, fallback: list[str]) -> list[Any]:
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec

    chosen = names or fallback or [DEFAULT_PROFILE]
    profiles = [load_profile_spec(n) for n in chosen]
    seen = set()
    for p in profiles:
        if p.name in seen:
            raise ConfigError(f"profile {p.name!r} given twice", field="--hardware")
        seen.add(p.name)
    return profiles


@app.command()
def sweep(
    space: str = typer.Argument(..., help="A built-in space name (e.g. flow_head_upsample) or a space YAML file."),
    out_csv: Path = typer.Option(..., "--out", "-o", help="CSV to write: one row per network x resolution x profile."),
    hardware: Optional[list[str]] = typer.Option(
        None, "--hardware", "-H", help="Hardware profile name or YAML file, optionally with changed fields "
        "(ethos-u55-256:sram_kib=1024); repeat to sweep several (e.g. the same NPU with 1, 2 and 4 MiB SRAM). "
        "Default: the space's `hardware`, else ethos-u55-256."),
    resolution: Optional[list[str]] = typer.Option(
        None, "--resolution", "-r", help="HxW; repeat for several. Default: the space's resolutions."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel compiler processes (0 = one per core)."),
    save_tflite: Optional[Path] = typer.Option(None, "--save-tflite", help="Write each candidate's int8 .tflite "
                                               "here, named <arch_id>_<HxW>.tflite."),
    layers: Optional[Path] = typer.Option(None, "--layers", help="Also write the per-layer table of every row."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Measurement cache (SQLite). Default: "
                                         "$EDGENAS_CACHE or ~/.cache/edgenas/measurements.sqlite."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Compile everything; read and write no cache."),
) -> None:
    """Compile every candidate of a space at every resolution for every hardware profile."""
    from edgenas.space.space import load_space
    from edgenas.sweep.driver import sweep_to_csv

    sp = load_space(space)
    profiles = _load_profiles(hardware, sp.config.hardware)
    res = _parse_resolutions(resolution)
    if res:
        for r in res:
            if r[0] % sp.stride or r[1] % sp.stride:
                raise ConfigError(f"{r[0]}x{r[1]} is not divisible by the network's total stride {sp.stride}",
                                  source=sp.source, field="--resolution")
    cache_path = None if no_cache else (cache or default_cache_path())
    summary = sweep_to_csv(sp, profiles, out_csv, resolutions=res, n_jobs=jobs, cache_path=cache_path,
                           save_tflite=save_tflite, layers_csv=layers, console=err)
    err.print(summary)


@app.command()
def study(
    config: str = typer.Argument(..., help="Study config: a space YAML with `hardware:` and `report:` sections "
                                 "(e.g. examples/seed_head_upsample.yaml) or a built-in space name."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/<space name>)."),
    lang: str = typer.Option("en", "--lang", help="Report language: en or zh."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel compiler processes (0 = one per core)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Measurement cache (default as for sweep)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Compile everything; read and write no cache."),
) -> None:
    """Sweep a space on its hardware profiles and write the study: report.md, a self-contained report.html,
    the plots as PNG, and the sweep CSVs."""
    from edgenas.space.space import load_space
    from edgenas.study import run_study

    target = out_dir or Path("runs") / load_space(config).name
    files = run_study(config, target, lang=lang, n_jobs=jobs, cache_path=None if no_cache else
                      (cache or default_cache_path()), console=err)
    out.print(f"report: {files.html}  ({files.markdown}, {len(files.images)} plots, sweep {files.csv})")


@app.command()
def report(
    csv: Path = typer.Argument(..., help="A sweep CSV written by `edgenas sweep` or `edgenas study`."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for report.md, report.html and the plots."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="The space YAML the sweep came from: its "
                                         "`report:` thresholds, baseline and the IR (tensors that do not fit)."),
    layers: Optional[Path] = typer.Option(None, "--layers", help="Per-layer CSV (default: layers.csv beside the "
                                          "sweep CSV, if there)."),
    lang: str = typer.Option("en", "--lang", help="Report language: en or zh."),
    key_resolution: Optional[str] = typer.Option(None, "--key-resolution", help="HxW of the key-results "
                                                 "section (default: the config's, else the middle one)."),
) -> None:
    """Write the study report of an existing sweep."""
    from edgenas.study import report_from_csv

    files = report_from_csv(csv, out_dir, config=config, layers=layers, lang=lang, key_resolution=key_resolution)
    out.print(f"report: {files.html}  ({files.markdown}, {len(files.images)} plots)")


@app.command()
def measure(
    model: Path = typer.Argument(..., help="An int8 .tflite model."),
    hardware: Optional[list[str]] = typer.Option(None, "--hardware", "-H", help="Profile(s), as for sweep; default "
                                                 "ethos-u55-256."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of tables."),
    no_layers: bool = typer.Option(False, "--no-layers", help="Leave out the per-layer table."),
) -> None:
    """Measure your own int8 TFLite model: the same figures and per-layer table as a sweep row."""
    from edgenas.hardware.measure_file import measure_file
    from edgenas.report.terminal import render_file_measurement

    profiles = _load_profiles(hardware, [])
    results = [measure_file(model, p) for p in profiles]
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        for r in results:
            render_file_measurement(out, r, layers=not no_layers)
    if any(not r.measurement.ok for r in results):
        raise typer.Exit(1)


@app.command()
def show(
    space: str = typer.Argument(..., help="Built-in space name or YAML file."),
    genotype: str = typer.Option("", "--genotype", "-g", help="Choices as name=value,...; missing ones from the "
                                 "space's default."),
    resolution: str = typer.Option("", "--resolution", "-r", help="HxW (default: the space's first)."),
) -> None:
    """Print the layer table of one network: shapes, MACs, params, receptive field and peak memory."""
    from edgenas.graph.table import LAYER_TABLE_COLUMNS, layer_table
    from edgenas.space.space import load_space

    sp = load_space(space)
    g = sp.parse_genotype(genotype)
    res = (_parse_resolutions([resolution]) or [sp.resolutions[0]])[0] if resolution else sp.resolutions[0]
    graph = sp.build(g, res)
    t = Table(title=f"{sp.name}: {g} @ {res[0]}x{res[1]} (arch_id {g.arch_id})")
    for col in LAYER_TABLE_COLUMNS:  # fold, never truncate: op names are the point of the table
        t.add_column(col, overflow="fold")
    for row in layer_table(graph):
        t.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    out.print(t)
    plan = graph.memory_plan()
    out.print(f"total: {graph.macs:,} MACs, {graph.params:,} params, {graph.weight_bytes:,} weight bytes; "
              f"peak activations {plan.peak_bytes / 1024:,.1f} KiB at {plan.peak_op} "
              f"(live: {', '.join(plan.live_at_peak)})")


@app.command()
def calibrate(
    space: str = typer.Argument(..., help="Built-in space name or YAML file whose candidates calibrate the model."),
    out_file: Path = typer.Option(..., "--out", "-o", help="Calibration JSON to write (use it as `calibration:` "
                                  "in an analytic profile)."),
    hardware: str = typer.Option("ethos-u55-256", "--hardware", "-H", help="Compiler profile to calibrate against."),
    resolution: Optional[list[str]] = typer.Option(None, "--resolution", "-r", help="HxW; default: the space's."),
    train_fraction: float = typer.Option(0.5, min=0.05, max=0.95, help="Share of architectures used to fit; the "
                                         "rest are held out to check the ranking."),
    seed: int = typer.Option(0, help="Seed of the train/test split."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel compiler processes (0 = one per core)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Measurement cache (default as for sweep)."),
) -> None:
    """Fit the analytic evaluator's per-op coefficients to compiler measurements; report the held-out
    Spearman rank correlation of analytic vs compiler cycles."""
    from edgenas.hardware.calibrate import calibrate as fit
    from edgenas.hardware.profile import load_profile_spec
    from edgenas.space.space import load_space
    from edgenas.sweep.runner import plan_jobs, run_sweep

    sp = load_space(space)
    profile = load_profile_spec(hardware)
    if profile.evaluator != "vela":
        raise ConfigError("calibration needs a compiler profile (evaluator: vela)", field="--hardware")
    jobs_list = plan_jobs(sp, resolutions=_parse_resolutions(resolution))
    results = run_sweep(sp, [profile], jobs_list, n_jobs=jobs, cache_path=cache or default_cache_path())
    samples = [(r.job.genotype.arch_id, sp.build(r.job.genotype, r.job.resolution), r.measurements[0])
               for r in results]
    try:
        rep = fit(samples, profile, train_fraction=train_fraction, seed=seed)
    except ValueError as e:
        raise ConfigError(str(e), source=sp.source) from None
    out_file.parent.mkdir(parents=True, exist_ok=True)
    rep.calibration.save(out_file)
    out.print(f"fitted on {rep.train_archs} architectures, checked on {rep.test_archs} held-out ones "
              f"({rep.test_points} points): Spearman {rep.spearman_calibrated:.3f} calibrated, "
              f"{rep.spearman_roofline:.3f} plain roofline; median |error| {100 * rep.median_abs_rel_error:.1f}% "
              f"calibrated, {100 * rep.median_abs_rel_error_roofline:.1f}% plain roofline")
    out.print(f"calibration written to {out_file}")


@app.command("npu-support")
def npu_support(
    out_file: Path = typer.Option(Path("docs/npu_support.md"), "--out", "-o", help="Markdown file to write."),
    check: bool = typer.Option(False, "--check", help="Regenerate and compare the NPU/CPU cells with the file; "
                               "exit 1 if the compiler's verdict changed."),
    workers: int = typer.Option(0, "--workers", help="Processes (0 = one per core)."),
) -> None:
    """Compile every block and upsampler alone for every built-in compiler target and write where each op
    runs (NPU, or CPU fallback), e.g. docs/npu_support.md."""
    from edgenas.hardware.npu_support import main as generate

    argv = ["--out", str(out_file)] + (["--check"] if check else []) + (["--workers", str(workers)] if workers else [])
    code = generate(argv)
    if code:
        raise typer.Exit(code)


@hardware_app.command("list")
def hardware_list() -> None:
    """List the built-in hardware profiles."""
    from edgenas.hardware.profile import list_profiles, load_profile

    t = Table("profile", "accelerator", "system config", "memory mode", "SRAM KiB", "flash KiB", "evaluator")
    for name in list_profiles():
        p = load_profile(name)
        t.add_row(p.name, p.accelerator_config or "-", p.system_config or "-", p.memory_mode or "-",
                  str(p.sram_kib), str(p.flash_kib or "-"), p.evaluator)
    out.print(t)


@hardware_app.command("show")
def hardware_show(
    profile: str = typer.Argument(..., help="Built-in profile name or YAML file."),
    vela_args: bool = typer.Option(False, "--vela-args", help="Print only the vela CLI options that reproduce "
                                   "this profile's figures."),
) -> None:
    """Show a profile, or the `vela` command-line options equal to it."""
    from edgenas.hardware.profile import load_profile_spec, vela_cli_args

    p = load_profile_spec(profile)
    if vela_args:
        print(" ".join(vela_cli_args(p)))
        return
    t = Table("field", "value", title=p.name)
    for k, v in p.__dict__.items():
        t.add_row(k, str(v))
    out.print(t)


def _register_command_modules() -> None:
    """Commands that live in their own modules (search, benchmarks) add themselves to `app`."""
    import importlib

    for name in ("edgenas.search.pareto_cli", "edgenas.cli_search", "edgenas.cli_bench"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(app)


_register_command_modules()


def main() -> None:
    try:
        app()
    except EdgeNasError as e:
        err.print(f"edgenas: error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("edgenas: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
