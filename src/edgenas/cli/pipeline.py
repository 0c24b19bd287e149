"""`edgenas pipeline`: search -> train -> prune -> quantize -> export from one YAML file, resumable.
torch is an optional extra: it is imported inside the command only; the logic is in edgenas.export.pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from edgenas.cli._common import err, out

_HELP = """Run a compression pipeline from one YAML file: search, train, prune, quantize, export.

\b
PIPELINE.yaml, for example (see examples/pipeline_digits.yaml):
  config: digits.yaml            # the space YAML (relative to this file)
  hardware: ethos-u55-128        # default: the space's first profile
  out: runs/pipeline             # output folder (or --out)
  stages:                        # in this order; any may be left out
    - {stage: search, trials: 8, choose: {metric: fps, direction: max}}
    - {stage: train, epochs: 4}                    # train-recipe overrides
    - {stage: prune, score: l1, keep_ratio: 0.5, round_to: 8,
       finetune: {epochs: 2}}
    - {stage: quantize, observer: minmax, concat: shared,
       calibration_samples: 200, qat: {epochs: 1}}
    - {stage: export, allow_cpu_ops: false}

Without a search stage the file names `genotype:`; without a train stage, `checkpoint:`.
Each stage works in its own sub-folder and is recorded in pipeline.json. Running the same command again
keeps the finished stages, resumes an interrupted one (Ctrl-C, SIGTERM, kill -9) where it stopped, and redoes
a stage whose settings changed with every stage after it. report.md compares the stages: params, MACs, model
size, FPS, SRAM and the metric (float after train/prune, int8 after quantize). A bad file exits 2 naming the
field, before anything is written."""


def pipeline(
    file: Path = typer.Argument(..., help="The pipeline YAML."),
    out_dir: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: the file's `out:`)."),
) -> None:
    from edgenas.cli.train import _need_torch

    _need_torch()
    from edgenas.export.pipeline import REPORT_FILE, load_pipeline, run_pipeline

    p = load_pipeline(file, out_dir)

    def say(text: str) -> None:
        err.print(f"pipeline {text}", markup=False, highlight=False, soft_wrap=True)

    state = run_pipeline(p, say)
    last = state["stages"][p.stages[-1].name]
    out.print(f"pipeline done: {len(p.stages)} stage(s), last {p.stages[-1].name} in {p.out}/{last['dir']}; "
              f"report {p.out}/{REPORT_FILE}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("pipeline", help=_HELP)(pipeline)
