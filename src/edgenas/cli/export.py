"""`edgenas export`: a trained network as a compiled, packaged int8 model for an Ethos-U target.
torch is an optional extra: it is imported inside the command only; the logic is in edgenas.export.deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgenas.cli._common import err, out

_HELP = """Export a trained network for an Ethos-U target: int8 TFLite, the compiler-optimised file, a C array.

\b
The --out folder receives model_int8.tflite (trained weights, BatchNorm folded, calibrated on
--calibration-samples training samples),
model_int8_vela.tflite (optimised for the profile), model_int8_vela.c/.h (16-byte aligned array and
length for TFLite Micro firmware) and summary.json (speed, memory, float and int8 metric, input
quantisation and preprocessing, output units, tensor arena size, the ops to register, provenance).
With --qat-epochs N the PTQ model is fine-tuned first by quantisation-aware training (N epochs, PTQ's
activation ranges kept, BatchNorm statistics frozen); summary.json then holds metric_ptq, metric_qat and
qat_recovered (the part of PTQ's loss won back), and the folder model_qat.pt (the QAT'd weights).
It refuses (exit 2, nothing written) a model with ops on the CPU (unless --allow-cpu-ops), one that does
not fit the device's SRAM or flash, a checkpoint of another network, and an invalid resolution."""

_LABELS = {"data": "data", "calibrate": "calibration", "compile": "compile", "evaluate float": "float metric",
           "evaluate int8": "int8 metric (LiteRT)", "arena": "TFLite Micro arena",
           "qat": "quantisation-aware training"}


def export(
    config: str = typer.Argument(..., help="The space YAML the network was trained from."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="best.pt or checkpoint.pt of a training run."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to create (must not exist, or be empty)."),
    genotype: str | None = typer.Option(None, "--genotype", "-g", help="'default' or choices as name=value,... "
                                           "(default: the checkpoint's network); must be the checkpoint's network."),
    hardware: str | None = typer.Option(None, "--hardware", "-H", help="Profile name or YAML file, optionally "
                                           "NAME:field=value,... Default: the space's first `hardware`, else "
                                           "ethos-u55-256."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW (default: the training "
                                             "resolution)."),
    calibration_samples: int = typer.Option(200, "--calibration-samples", min=1, help="Training samples to "
                                            "calibrate activation ranges on."),
    allow_cpu_ops: bool = typer.Option(False, "--allow-cpu-ops", help="Export even when some ops run on the CPU."),
    observer: str = typer.Option("minmax", "--observer", help="Activation ranges from torchao's observer: minmax, "
                                 "moving_average or histogram."),
    concat: str = typer.Option("shared", "--concat", help="Concatenation scales: shared (one scale, TFLite's "
                               "int8 CONCATENATION as is) or per_input (each input its own, requantised)."),
    qat_epochs: int = typer.Option(0, "--qat-epochs", min=0, help="Epochs of quantisation-aware training after "
                                   "PTQ (0: none), at 0.1x the config's train.lr."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress of the slow steps."),
) -> None:
    from edgenas.cli.train import _need_torch
    from edgenas.hardware.profile import DEFAULT_PROFILE, load_profile_spec
    from edgenas.space.space import load_space

    _need_torch()
    from edgenas.errors import ConfigError
    from edgenas.export.deploy import ExportRequest, check_out_dir
    from edgenas.export.deploy import export as run_export
    from edgenas.export.ptq import CONCAT_MODES, OBSERVERS

    for field, value, allowed in (("--observer", observer, OBSERVERS), ("--concat", concat, CONCAT_MODES)):
        if value not in allowed:
            raise ConfigError(f"unknown value {value!r}; allowed: {', '.join(allowed)}", field=field)
    check_out_dir(out_dir)  # before anything slow
    spec = hardware or (load_space(config).config.hardware or [DEFAULT_PROFILE])[0]
    req = ExportRequest(config, genotype, checkpoint, load_profile_spec(spec), out_dir, resolution,
                        calibration_samples, allow_cpu_ops, qat_epochs, observer, concat)
    if not progress:
        summary = run_export(req)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]export[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err) as bar:
            tasks: dict[str, Any] = {}

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(_LABELS.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            summary = run_export(req, on_progress)
    m = summary["metric"]
    out.print(f"{summary['genotype']} @ {summary['resolution']} on {summary['profile']['name']}: "
              f"{summary['fps']:.1f} inferences/s (estimate), SRAM {summary['sram_kib']:.1f} KiB, flash "
              f"{summary['offchip_flash_kib']:.1f} KiB, {m} float {summary['metric_float']:.4g} / int8 "
              f"{summary['metric_int8']:.4g}{_qat_note(summary)}, tensor arena "
              f"{summary['tflm']['tensor_arena_bytes']} bytes. "
              f"Files: {out_dir}/", markup=False, highlight=False, soft_wrap=True)


def _qat_note(summary: dict[str, Any]) -> str:
    if summary.get("metric_qat") is None:
        return ""
    rec = summary.get("qat_recovered")
    recovered = "" if rec is None else f", {rec:.0%} of its loss recovered"
    return f" (QAT; PTQ {summary['metric_ptq']:.4g}{recovered})"


def register(app: typer.Typer) -> None:
    app.command("export", help=_HELP)(export)
