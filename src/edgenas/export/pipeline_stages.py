"""The pipeline's stages: search, train, prune, quantize, export. Each runner takes the context (the
pipeline, its state, the progress callback), its stage and folder and whether to resume, and returns the
stage's outputs and figures (see `pipeline.py` for how they are joined and why)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas import atomic
from edgenas.errors import ConfigError, EdgeNasError
from edgenas.export.pipeline_file import Pipeline, Stage, field_error

STUDY = "pipeline"

Say = Callable[[str], None]


@dataclass
class StageContext:
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
        raise field_error(p.source, f"stages[{s.index}]", e.message) from None


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


def _stage_search(ctx: StageContext, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _float_figures(ctx: StageContext, c: Any, module: Any, rel: str) -> dict[str, Any]:
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


def _stage_train(ctx: StageContext, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgenas.train.run import train_candidate
    from edgenas.train.trainer import BEST, CHECKPOINT

    c = ctx.candidate()
    result = train_candidate(c, d, resume=resume and (d / CHECKPOINT).exists())
    module = _load_module(c, d / BEST, None)
    rel = f"{s.name}/{BEST}"
    outputs = {"checkpoint": rel, "genotype": str(c.genotype), "best_epoch": result.best_epoch,
               "best_metric": result.best_metric}
    return outputs, _float_figures(ctx, c, module, rel)


def _stage_prune(ctx: StageContext, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _stage_quantize(ctx: StageContext, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
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
    atomic.write_bytes(d / INT8_FILE, tflite)
    m, _ = VelaEvaluator(ctx.p.profile).compile(tflite, per_layer=False)
    rel = f"{s.name}/{INT8_FILE}"
    outputs.update(model=rel, int8_runtime=f"ai-edge-litert, OpResolverType.{resolver}", metrics_int8=metrics)
    figures = {"params": module.graph.params, "macs": module.graph.macs, "resolution": _res(c.resolution),
               "vela_on": "the int8 file", **_vela_figures(m), "model_file": "int8 TFLite", "model_bytes": len(tflite),
               "metric_name": c.task.primary, "metric": metrics[c.task.primary], "metric_kind": "int8"}
    return outputs, figures


def _export_files(ctx: StageContext, c: Any, tflite: bytes, d: Path,
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


def _stage_export(ctx: StageContext, s: Stage, d: Path, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
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


RUNNERS: dict[str, Callable[[StageContext, Stage, Path, bool], tuple[dict[str, Any], dict[str, Any]]]] = {
    "search": _stage_search, "train": _stage_train, "prune": _stage_prune, "quantize": _stage_quantize,
    "export": _stage_export}
