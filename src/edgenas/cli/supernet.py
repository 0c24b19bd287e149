"""`edgenas supernet train | evaluate | export`: one weight-sharing training for a whole space, then any
sub-network scored in seconds or exported as a stand-alone checkpoint. torch is imported inside commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgenas.cli._common import err, out
from edgenas.cli.train import _need_torch, _progress_bar, progress_callbacks

_HELP = """Weight-sharing supernet: train once for the whole space, then score any sub-network in seconds.

\b
  edgenas supernet train CONFIG --out DIR [--strategy spos|sandwich|sandwich-labels]
  edgenas supernet evaluate DIR --genotype G [--genotype G ...]
  edgenas supernet export DIR --genotype G --out FILE

CONFIG is a space YAML with `task:` and `train:` sections (as for `edgenas train`) and optionally a
`supernet:` section (strategy, random, resolutions, bn_samples, bn_batch_size, seed, split)."""

_TRAIN_HELP = """Train a supernet holding every sub-network of CONFIG's space.

Options that differ in size share weights by slicing (kernel: the centre, widths and expansion: the first
channels, depth: absent units skipped); options that differ in kind (conv vs dsconv vs mbconv, shufflenet
vs resnet) have their own. Strategies: spos (one uniformly drawn sub-network per step), sandwich (the
largest, the smallest and `supernet.random` others per step; in-place distillation from the largest) or
sandwich-labels (the same sub-networks per step, every one trained on the labels). --split CHOICE trains a
few-shot supernet instead: one such supernet per option of CHOICE (DIR/CHOICE=OPTION/), sharing no weights,
each for a share of the epochs; evaluate and export serve every genotype from its option's part.

\b
The --out folder gets checkpoint.pt (resumable), best.pt and supernet.json (with --split: supernet.json and one
such folder per part). Ctrl-C or SIGTERM stops after writing a checkpoint; --resume continues and ends with the
same weights, bit for bit on CPU."""

app = typer.Typer(help=_HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("train", help=_TRAIN_HELP)
def train(
    config: str = typer.Argument(..., help="Space YAML with `task:` and `train:` (and `supernet:`) sections."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoint.pt, best.pt, supernet.json)."),
    strategy: str | None = typer.Option(None, "--strategy", help="spos, sandwich or sandwich-labels "
                                           "(default: supernet.strategy, else sandwich)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default: train.epochs)."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="Train at this HxW only (default: "
                                             "supernet.resolutions, else train.resolution, else the space's "
                                             "first)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    split: str | None = typer.Option(None, "--split", help="Few-shot: one sub-supernet per option of this "
                                        "choice point (e.g. backbone), each trained for epochs / options epochs "
                                        "(default: supernet.split, else one supernet)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out where it stopped."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    _need_torch()
    from edgenas.train.distributed import is_main_process
    from edgenas.train.supernet.run import make_setup, prepare_supernet, train_supernet

    setup = make_setup(config, strategy=strategy, resolution=resolution, split=split, epochs=epochs, threads=threads)
    prepared = prepare_supernet(setup, out_dir, resume=resume)  # every check before anything is shown
    main = is_main_process()  # under torchrun only rank 0 draws and prints
    with _progress_bar(f"supernet ({setup.settings.strategy})", disable=not main) as bar:
        on_data, on_progress = progress_callbacks(bar, progress and main, f"largest {setup.task.primary}")

        def on_part(name: str, i: int, n: int) -> None:  # a split supernet's parts, one after the other
            if main:
                bar.console.print(f"part {i + 1}/{n}: {name}")

        result = train_supernet(setup, out_dir, resume=resume, on_progress=on_progress, on_data=on_data,
                                prepared=prepared, on_part=on_part)
    if not main:
        return
    kind = f", split by {setup.settings.split}" if setup.settings.split else ""
    out.print(f"supernet of {setup.space.name} ({setup.settings.strategy}{kind}) trained in {result.seconds:.0f} s. "
              f"Run: {out_dir}/supernet.json; score sub-networks with `edgenas supernet evaluate {out_dir} -g ...`")


@app.command("evaluate")
def evaluate(
    run_dir: Path = typer.Argument(..., help="A folder written by `edgenas supernet train`."),
    genotypes: list[str] = typer.Option(..., "--genotype", "-g", help="name=value,... (repeat for several; "
                                        "missing choices from the space's default)."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW (default: the largest "
                                             "training resolution)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sub-network."),
) -> None:
    """Score sub-networks: BatchNorm statistics recomputed for each over a fixed seeded set of training
    samples (supernet.bn_samples), then the task's validation set; seconds of each part reported."""
    _need_torch()
    from edgenas.train.run import resolve_resolution
    from edgenas.train.supernet.evaluate import evaluate_subnets
    from edgenas.train.supernet.run import load_supernet

    loaded = load_supernet(run_dir)
    space = loaded.setup.space
    res = resolve_resolution(space, resolution, "--resolution") if resolution else None
    gs = [space.parse_genotype(g) for g in genotypes]  # every genotype checked before any work
    rows = evaluate_subnets(loaded, gs, resolution=res)
    if as_json:
        for r in rows:
            print(json.dumps({"genotype": r.genotype, "arch_id": r.arch_id, "resolution": r.resolution,
                              **r.metrics, "recalibration_seconds": r.recalibration_seconds,
                              "score_seconds": r.score_seconds}))
        return
    from rich.table import Table

    names = list(rows[0].metrics) if rows else []
    table = Table("genotype", *names, "BN recal s", "score s")
    for r in rows:
        table.add_row(r.genotype, *(f"{r.metrics[n]:.4g}" for n in names), f"{r.recalibration_seconds:.2f}",
                      f"{r.score_seconds:.2f}")
    out.print(table)


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="A folder written by `edgenas supernet train`."),
    genotype: str = typer.Option(..., "--genotype", "-g", help="name=value,... of the sub-network."),
    out_file: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (the format `edgenas train` "
                                  "writes)."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW of the BatchNorm "
                                             "recalibration (default: the largest training resolution)."),
) -> None:
    """Write one sub-network with its inherited weights (BatchNorm recalibrated) as a stand-alone checkpoint:
    `edgenas evaluate`, `edgenas export` and `edgenas train --init-from` take it."""
    _need_torch()
    from edgenas.train.run import resolve_resolution
    from edgenas.train.supernet.evaluate import export_subnet
    from edgenas.train.supernet.run import load_supernet

    loaded = load_supernet(run_dir)
    space = loaded.setup.space
    res = resolve_resolution(space, resolution, "--resolution") if resolution else None
    g = space.parse_genotype(genotype)
    identity = export_subnet(loaded, g, out_file, resolution=res)
    err.print(f"wrote {out_file} ({identity['genotype']}); fine-tune with: edgenas train "
              f"{loaded.meta.get('config', 'CONFIG')} -g '{identity['genotype']}' --init-from {out_file} --out DIR",
              markup=False, highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="supernet", help=_HELP)
