"""`edgenas export`: a trained checkpoint -> the files a firmware project needs for one Ethos-U target.

Steps: load and check the checkpoint against the genotype; build the network at the export resolution;
post-training quantise it (BatchNorm folded, calibrated on N training samples); compile it for the
profile; refuse it when an op would run on the CPU (unless allowed) or it does not fit the device's
memory; optionally fine-tune it with quantisation-aware training (`qat_epochs`, `export.qat`: PTQ's
activation quantisation kept, the QAT'd file compiled and checked again); measure the task's metric on the
float module and on the int8 file (LiteRT reference kernels);
size the TFLite Micro arena; then write everything into a temporary folder beside DIR and rename it, so
a failure leaves no DIR and no partial files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgenas.errors import ConfigError
from edgenas.export.int8_eval import int8_metrics
from edgenas.export.package import INT8_FILE, VELA_FILE, compile_for_device, file_entries, package
from edgenas.export.ptq import CALIBRATION_SEED, calibration_batches
from edgenas.hardware.profile import HardwareProfile

__all__ = ["INT8_FILE", "QAT_FILE", "SUMMARY_FILE", "VELA_FILE", "ExportRequest", "build_export", "export"]
QAT_FILE = "model_qat.pt"  # with --qat-epochs: the QAT'd float weights (an edgenas checkpoint)
SUMMARY_FILE = "summary.json"
SUMMARY_FORMAT = 1

# (stage, done, total): stages "data", "calibrate", "compile", "qat", "evaluate float", "evaluate int8", "arena"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ExportRequest:
    config: str
    genotype: str | None  # None: the checkpoint's network
    checkpoint: Path
    profile: HardwareProfile
    out: Path
    resolution: str | None = None
    calibration_samples: int = 200
    allow_cpu_ops: bool = False
    qat_epochs: int = 0  # quantisation-aware training epochs after PTQ (0: none)
    observer: str = "minmax"  # torchao observer for activation ranges (ptq.OBSERVERS)
    concat: str = "shared"  # concatenation scales (tflite.quant.CONCAT_MODES)


def check_out_dir(out: Path) -> None:
    """DIR must not exist (or be an empty folder): an export never mixes with older files."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError("already exists and is not an empty folder; choose another --out", source=str(out),
                          field="--out")


def check_profile(profile: HardwareProfile) -> None:
    if profile.evaluator != "vela" or profile.accelerator_config is None:
        raise ConfigError(f"profile {profile.name!r} has no Ethos-U compiler target (evaluator: vela with an "
                          "accelerator_config); export compiles for one, e.g. ethos-u55-256", field="--hardware")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_export(req: ExportRequest, progress: Progress | None = None) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every file of the export in memory ({name: bytes}) and the summary; raises ConfigError / CompileError."""
    from edgenas.export.ptq import to_int8_tflite
    from edgenas.space.config import format_resolution
    from edgenas.train.builder import GraphModule
    from edgenas.train.run import make_candidate, resolve_resolution
    from edgenas.train.trainer import check_identity, checkpoint_genotype, evaluate, load_checkpoint, load_weights

    check_profile(req.profile)
    state = load_checkpoint(req.checkpoint)
    c = make_candidate(req.config, req.genotype or checkpoint_genotype(state))
    res = resolve_resolution(c.space, req.resolution, "--resolution") if req.resolution else c.resolution
    try:
        check_identity(state, c.identity, req.checkpoint)
    except ConfigError as e:
        raise ConfigError(e.message, source=str(req.checkpoint), field="--genotype") from None
    graph = c.graph(res)
    module = GraphModule(graph)
    load_weights(module, state, req.checkpoint)
    module.eval()

    def data_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("data", done, total)

    if req.qat_epochs < 0:
        raise ConfigError(f"must be 0 (no QAT) or more, got {req.qat_epochs}", field="--qat-epochs")
    data = c.task.data(res, seed=c.recipe.seed, progress=data_progress)
    n_cal = min(req.calibration_samples, len(data.train))
    calibration = calibration_batches(data.train, n_cal,
                                      None if progress is None else lambda d, t: progress("calibrate", d, t))
    tflite, act_quant = to_int8_tflite(module, calibration, observer=req.observer, concat=req.concat)
    compiled = compile_for_device(tflite, req.profile, allow_cpu_ops=req.allow_cpu_ops,
                                  progress=progress)  # refuses before QAT spends its time

    val = c.task.eval_data(res)
    n_val = len(val)
    qat = None
    if req.qat_epochs:
        qat = _run_qat(req, c, module, data, val, act_quant, progress)
        tflite = qat.tflite
        compiled = compile_for_device(tflite, req.profile, allow_cpu_ops=req.allow_cpu_ops, progress=progress)
    if progress is not None:
        progress("evaluate float", 0, n_val)
    metric_float = evaluate(module, c.task, val, batch_size=32, device=torch.device("cpu"))
    if progress is not None:
        progress("evaluate float", n_val, n_val)
    if qat is None:
        metric_int8, resolver = int8_metrics(tflite, list(graph.outputs), c.task, val,
                                   progress=None if progress is None else lambda d, t: progress("evaluate int8", d, t))
    else:
        metric_int8, resolver = qat.metrics_qat, qat.resolver

    files, device = package(tflite, compiled, req.profile, c.task, res, progress)
    if qat is not None:
        files[QAT_FILE] = _checkpoint_bytes(qat.module, c.identity)
    primary = c.task.primary
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        **device,
        "metric": primary,
        "metric_higher_is_better": c.task.higher_is_better,
        "metric_float": metric_float[primary],
        "metric_int8": metric_int8[primary],
        "metric_ptq": metric_int8[primary] if qat is None else qat.metric_ptq,
        "metric_qat": None if qat is None else qat.metric_qat,
        "qat_recovered": None if qat is None else qat.recovered,
        "qat": None if qat is None else _qat_summary(qat, req.qat_epochs),
        "metrics_float": metric_float,
        "metrics_int8": metric_int8,
        "metric_data": {"set": "the task's validation set", "samples": n_val, "resolution": format_resolution(res),
                        "int8_runtime": f"ai-edge-litert Interpreter, OpResolverType.{resolver}"},
        "calibration": {"samples": n_cal, "set": f"training set, first {n_cal} of a permutation seeded "
                                                 f"{CALIBRATION_SEED}", "observer": req.observer,
                        "concat": req.concat},
        "genotype": str(c.genotype),
        "genotype_choices": c.genotype.as_dict(),
        "arch_id": c.genotype.arch_id,
        "space": c.space.name,
        "config": str(req.config),
        "resolution": format_resolution(res),
        "checkpoint": str(req.checkpoint),
        "checkpoint_sha256": sha256_file(req.checkpoint),
        "files": file_entries(files),
    }
    return files, summary


def _run_qat(req: ExportRequest, c: Any, module: Any, data: Any, val: Any, act_quant: Any,
             progress: Progress | None) -> Any:
    """Quantisation-aware training of the module with PTQ's activation quantisation (checkpoints in a
    temporary folder: an export is not resumable)."""
    from edgenas.export.qat import qat_finetune, qat_recipe

    recipe = qat_recipe(c.recipe, req.qat_epochs)

    def on_progress(p: Any) -> None:
        if progress is not None:
            progress("qat", p.epoch * p.steps + p.step, p.epochs * p.steps)

    with tempfile.TemporaryDirectory(prefix="edgenas-qat-") as tmp:
        return qat_finetune(module, c.task, data, recipe, Path(tmp) / "qat", act_quant=act_quant, eval_set=val,
                            identity=c.identity, on_progress=on_progress)


def _qat_summary(qat: Any, epochs: int) -> dict[str, Any]:
    from edgenas.export.qat import QAT_LR_FACTOR

    r = qat.train
    return {"epochs": epochs, "lr_factor": QAT_LR_FACTOR, "best_epoch": r.best_epoch, "history": r.history,
            "batchnorm": "statistics frozen (running mean and variance of the checkpoint)",
            "activation_quantisation": "PTQ's calibration, fixed", "weights_file": QAT_FILE,
            "metrics_ptq": qat.metrics_ptq, "best_epoch_by": "int8 simulator metric on the validation set"}


def _checkpoint_bytes(module: Any, identity: dict[str, Any]) -> bytes:
    """The module's weights as an edgenas checkpoint (loadable by `load_checkpoint`, `edgenas evaluate`)."""
    import io

    from edgenas.train.trainer import CHECKPOINT_FORMAT

    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "identity": identity, "model": module.state_dict(), "qat": True}, buf)
    return buf.getvalue()


def write_export(out: Path, files: dict[str, bytes], summary: dict[str, Any]) -> None:
    """All files into a temporary folder beside `out`, then one rename: `out` appears whole or not at all."""
    out = Path(out)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    try:
        for name, data in {**files, SUMMARY_FILE: (json.dumps(summary, indent=1) + "\n").encode()}.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, out)  # replaces an empty folder too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export(req: ExportRequest, progress: Progress | None = None) -> dict[str, Any]:
    """Build and write the export; returns the summary."""
    check_out_dir(req.out)
    files, summary = build_export(req, progress)
    write_export(req.out, files, summary)
    return summary
