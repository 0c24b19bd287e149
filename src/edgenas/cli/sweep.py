"""`edgenas sweep`, `measure`, `show`, `calibrate`, `npu-support`: the cost engine's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from edgenas.cli._common import cache_option, err, load_profiles, out, parse_resolutions
from edgenas.errors import ConfigError


def sweep(
    space: str = typer.Argument(..., help="A built-in space name (e.g. flow_head_upsample) or a space YAML file."),
    out_csv: Path = typer.Option(..., "--out", "-o", help="CSV to write: one row per network x resolution x profile."),
    hardware: list[str] | None = typer.Option(
        None, "--hardware", "-H", help="Hardware profile name or YAML file, optionally with changed fields "
        "(ethos-u55-256:sram_kib=1024); repeat to sweep several (e.g. the same NPU with 1, 2 and 4 MiB SRAM). "
        "Default: the space's `hardware`, else ethos-u55-256."),
    resolution: list[str] | None = typer.Option(
        None, "--resolution", "-r", help="HxW; repeat for several. Default: the space's resolutions."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel compiler processes (0 = one per core)."),
    save_tflite: Path | None = typer.Option(None, "--save-tflite", help="Write each candidate's int8 .tflite "
                                               "here, named <arch_id>_<HxW>.tflite."),
    layers: Path | None = typer.Option(None, "--layers", help="Also write the per-layer table of every row."),
    cache: Path | None = typer.Option(None, "--cache", help="Measurement cache (SQLite). Default: "
                                         "$EDGENAS_CACHE or ~/.cache/edgenas/measurements.sqlite."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Compile everything; read and write no cache."),
) -> None:
    """Compile every candidate of a space at every resolution for every hardware profile."""
    from edgenas.space.space import load_space
    from edgenas.sweep.driver import sweep_to_csv

    sp = load_space(space)
    profiles = load_profiles(hardware, sp.config.hardware)
    res = parse_resolutions(resolution)
    if res:
        for r in res:
            if r[0] % sp.stride or r[1] % sp.stride:
                raise ConfigError(f"{r[0]}x{r[1]} is not divisible by the network's total stride {sp.stride}",
                                  source=sp.source, field="--resolution")
    cache_path = cache_option(cache, no_cache)
    summary = sweep_to_csv(sp, profiles, out_csv, resolutions=res, n_jobs=jobs, cache_path=cache_path,
                           save_tflite=save_tflite, layers_csv=layers, console=err)
    err.print(summary)


def measure(
    model: Path = typer.Argument(..., help="An int8 .tflite model."),
    hardware: list[str] | None = typer.Option(None, "--hardware", "-H", help="Profile(s), as for sweep; default "
                                                 "ethos-u55-256."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of tables."),
    no_layers: bool = typer.Option(False, "--no-layers", help="Leave out the per-layer table."),
) -> None:
    """Measure your own int8 TFLite model: the same figures and per-layer table as a sweep row."""
    from edgenas.hardware.measure_file import measure_file
    from edgenas.report.terminal import render_file_measurement

    profiles = load_profiles(hardware, [])
    results = [measure_file(model, p) for p in profiles]
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        for r in results:
            render_file_measurement(out, r, layers=not no_layers)
    if any(not r.measurement.ok for r in results):
        raise typer.Exit(1)


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
    res = (parse_resolutions([resolution]) or [sp.resolutions[0]])[0] if resolution else sp.resolutions[0]
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


def calibrate(
    space: str = typer.Argument(..., help="Built-in space name or YAML file whose candidates calibrate the model."),
    out_file: Path = typer.Option(..., "--out", "-o", help="Calibration JSON to write (use it as `calibration:` "
                                  "in an analytic profile)."),
    hardware: str | None = typer.Option(None, "--hardware", "-H", help="Compiler profile to calibrate against "
                                           "(default: the space's first `hardware`, else ethos-u55-256)."),
    resolution: list[str] | None = typer.Option(None, "--resolution", "-r", help="HxW; default: the space's."),
    train_fraction: float = typer.Option(0.5, min=0.05, max=0.95, help="Share of architectures used to fit; the "
                                         "rest are held out to check the ranking."),
    seed: int = typer.Option(0, help="Seed of the train/test split."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel compiler processes (0 = one per core)."),
    cache: Path | None = typer.Option(None, "--cache", help="Measurement cache (default as for sweep)."),
) -> None:
    """Fit the analytic evaluator's per-op coefficients to compiler measurements; report the held-out
    Spearman rank correlation of analytic vs compiler cycles."""
    from edgenas.hardware.calibrate import calibrate as fit
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec
    from edgenas.space.space import load_space
    from edgenas.sweep.runner import plan_jobs, run_sweep

    sp = load_space(space)
    profile = load_profile_spec(hardware or (sp.config.hardware or [DEFAULT_PROFILE])[0])
    if profile.evaluator != "vela":
        raise ConfigError("calibration needs a compiler profile (evaluator: vela)", field="--hardware")
    jobs_list = plan_jobs(sp, resolutions=parse_resolutions(resolution))
    results = run_sweep(sp, [profile], jobs_list, n_jobs=jobs, cache_path=cache_option(cache, False))
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


def npu_support(
    out_file: Path = typer.Option(Path("docs/npu_support.md"), "--out", "-o", help="Markdown file to write."),
    check: bool = typer.Option(False, "--check", help="Regenerate and compare the NPU/CPU cells with the file; "
                               "exit 1 if the compiler's verdict changed."),
    workers: int = typer.Option(0, "--jobs", "-j", "--workers", help="Processes (0 = one per core)."),
) -> None:
    """Compile every block and upsampler alone for every built-in compiler target and write where each op
    runs (NPU, or CPU fallback), e.g. docs/npu_support.md."""
    from edgenas.hardware.npu_support import main as generate

    argv = ["--out", str(out_file)] + (["--check"] if check else []) + (["--workers", str(workers)] if workers else [])
    code = generate(argv)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(sweep)
    app.command()(measure)
    app.command()(show)
    app.command()(calibrate)
    app.command("npu-support")(npu_support)
