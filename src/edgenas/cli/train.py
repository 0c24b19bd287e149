"""`edgenas train` and `edgenas evaluate`: train one candidate stand-alone, measure a trained one.
torch is an optional extra (`edgenas[train]`): it is imported inside the commands only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from edgenas.cli._common import err, out
from edgenas.errors import ConfigError

_TRAIN_HELP = """Train one candidate of a space stand-alone and record how well it does.

CONFIG is a space YAML with a `task:` section (what to learn: synthetic optical flow, digits, your data,
your own task) and optionally a `train:` section (epochs, batch_size, optimizer, lr, weight_decay,
scheduler, warmup_epochs, seed, resolution, patience, eval_every, checkpoint_every, threads, grad_clip).

\b
The run folder gets checkpoint.pt (resumable state), best.pt (weights with the best validation metric)
and run.json (config, genotype, seed, data, versions, the per-epoch history, the learning-curve fit).
Ctrl-C or SIGTERM stops after writing a checkpoint; --resume (after any stop, kill -9 included)
continues and ends with the same weights, bit for bit on CPU, as an uninterrupted run."""


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("training needs PyTorch: pip install 'edgenas[train]' (on a CPU-only machine install "
                          "torch's CPU wheel first)") from None


def _progress_bar(label: str, disable: bool = False) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn(f"[bold]{label}[/] epoch {{task.fields[epoch]}}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}  {task.fields[metric]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=False, disable=disable)


def progress_callbacks(bar: Any, progress: bool, metric_label: str) -> tuple[Any, Any]:
    """(on_data, on_progress) drawing a training run on `bar`; on_progress is None without --progress."""
    data_id = bar.add_task("data", total=None, epoch="data", loss="-", metric="", visible=False)
    task_id = bar.add_task("train", total=None, epoch="-", loss="-", metric="", visible=progress)

    def on_data(done: int, total: int) -> None:  # data generated (or read) for the first time
        bar.update(data_id, total=total, completed=done, visible=progress and done < total)

    def on_progress(p: Any) -> None:
        metric = "" if p.metric is None else f"{metric_label} {p.metric:.4g}"
        bar.update(task_id, total=p.epochs * p.steps, completed=p.epoch * p.steps + p.step,
                   epoch=f"{min(p.epoch + 1, p.epochs)}/{p.epochs}", loss=f"{p.loss:.4g}", metric=metric)

    return on_data, (on_progress if progress else None)


def train(
    config: str = typer.Argument(..., help="Space YAML with a `task:` section (e.g. examples/digits_train.yaml)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoint.pt, best.pt, run.json)."),
    genotype: str = typer.Option("default", "--genotype", "-g", help="'default' (the space's default genotype) or "
                                 "choices as name=value,...; missing ones from the default."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default: train.epochs)."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW to train at (default: "
                                             "train.resolution, else the space's first)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: train.seed); fixes the result on CPU."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out where it stopped."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    init_from: Path | None = typer.Option(None, "--init-from", help="Start from this checkpoint's weights "
                                             "(same network; e.g. `edgenas supernet export`): fine-tuning with a "
                                             "fresh optimiser."),
) -> None:
    _need_torch()
    from edgenas.train.distributed import is_main_process
    from edgenas.train.run import check_run_dir, initial_weights, make_candidate, reused_from, train_candidate

    main = is_main_process()  # under torchrun only rank 0 draws and prints
    progress = progress and main
    c = make_candidate(config, genotype, resolution=resolution, epochs=epochs, threads=threads, seed=seed)
    check_run_dir(out_dir, resume=resume)  # before anything is shown or computed
    initial_weights(c, init_from, resume=resume)
    primary = c.task.primary
    with _progress_bar("train", disable=not main) as bar:
        on_data, on_progress = progress_callbacks(bar, progress, primary)
        result = train_candidate(c, out_dir, resume=resume, on_progress=on_progress, on_data=on_data,
                                 init_from=init_from)
    if not main:
        return
    best = "-" if result.best_metric is None else f"{result.best_metric:.4g}"
    stop = " (stopped early)" if result.stopped_early else ""
    curve = ""
    if result.curve and result.curve.get("at_bound"):
        curve = "; learning curve not saturating yet (no asymptote to extrapolate)"
    elif result.curve:
        curve = f"; learning-curve asymptote {primary} {result.curve['a']:.4g}"
    reused = reused_from(out_dir)
    how = (f"reused from the training store ({reused['store']}; trained as {reused['identity']['genotype']} of "
           f"{reused['config']}, {result.seconds:.0f} s)" if reused else f"in {result.seconds:.0f} s")
    out.print(f"{c.genotype} @ {c.resolution[0]}x{c.resolution[1]}: best {primary} {best} at epoch "
              f"{result.best_epoch}{stop} {how}{curve}. Run: {out_dir}/run.json")


def evaluate(
    config: str = typer.Argument(..., help="The space YAML the network was trained from."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="best.pt or checkpoint.pt of a run."),
    data: str | None = typer.Option(None, "--data", help="A dataset the task knows (a file list, a folder, "
                                       "...); default: the task's validation set."),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="HxW (default: the run's)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Samples per batch."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Measure a trained network on any dataset of its task, at any resolution (the networks are fully
    convolutional)."""
    _need_torch()
    from edgenas.train.builder import GraphModule
    from edgenas.train.run import make_candidate, resolve_resolution
    from edgenas.train.trainer import check_identity, checkpoint_genotype, load_checkpoint, load_weights
    from edgenas.train.trainer import evaluate as run_eval

    state = load_checkpoint(checkpoint)
    c = make_candidate(config, checkpoint_genotype(state))
    check_identity(state, c.identity, checkpoint)
    res = resolve_resolution(c.space, resolution, "--resolution") if resolution else c.resolution
    module = GraphModule(c.graph(res))
    load_weights(module, state, checkpoint)
    ds = c.task.eval_data(res, source=data)
    metrics = run_eval(module, c.task, ds, batch_size=batch_size)
    if as_json:
        print(json.dumps({"genotype": str(c.genotype), "resolution": f"{res[0]}x{res[1]}", "samples": len(ds),
                          **metrics}))
        return
    text = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    out.print(f"{c.genotype} @ {res[0]}x{res[1]} on {len(ds)} samples: {text}")


def register(app: typer.Typer) -> None:
    app.command("train", help=_TRAIN_HELP)(train)
    app.command("evaluate")(evaluate)
