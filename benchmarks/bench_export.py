"""edgenas export against ExecuTorch's Arm backend on the same trained networks (issue 10 item 4).

What a PyTorch user would pick instead of `edgenas export` is ExecuTorch's Arm backend (PyPI `executorch`
1.5.1 with its `ethos-u` extra, which pins ethos-u-vela 5.1.0, tosa-tools and torchao): pt2e quantisation
with its EthosUQuantizer, lowering with the EthosUPartitioner, TOSA compiled by Vela. This benchmark trains
each network once with edgenas's trainer (deterministic, cached), then

- edgenas: `edgenas.export.deploy.build_export` (what `edgenas export` runs) at the deployment resolution:
  PTQ calibrated on the training set, Vela 5.2 for the profile, the int8 metric of the int8 TFLite in LiteRT's
  reference kernels; the same int8 TFLite is also compiled by ExecuTorch's Vela 5.1.0 (`vela` CLI of its
  venv, the profile's options), so the compiler version is equal on both sides;
- ExecuTorch (`_executorch_side.py`, run in its own venv): the same float module (exported here with
  `torch.export.save`; half-pixel bilinear as F.interpolate), quantised with the same calibration samples in
  the same order, lowered for ethos-u55-256 with the profile's system config, memory mode and arena size; its
  figures are the delegated partitions, the ops left outside them, each partition's Vela summary (and the
  partitions' TOSA through this venv's Vela 5.2, so each compiler version sees both sides), and the int8
  metric of the converted pt2e model run in torch. No FVP runs here, so the compiled program is not run: the
  pt2e model computes the delegated part with float kernels on quantised values, not with the NPU's integer
  arithmetic.

End-to-end latency (both sides, one estimate): the compiler's NPU inference time plus, for every op left on
the CPU, max(MACs, output elements) at the profile's `host_cpu_macs_per_s` (what the sweep's `fps_end_to_end`
uses, `edgenas.sweep.rows.cpu_part_seconds`). The quantize of the input and the dequantize of each output are
counted apart on both sides: edgenas's file takes int8 and gives int8, so its application does that work too.

Flow is exported at 96x128 with a derived config whose training set is the 200 calibration pairs (the first
200 of the same synthetic sequence; generating 2,000 pairs at the deployment size would cost ~10 min and 1 GB).
The ExecuTorch venv is created on first use under ~/.cache/edgenas/bench_export/venv (a stamp file marks a
finished install; torch 2.13.0, the CPU wheel on local disk, is installed before executorch, which accepts it).
Everything is cached under ~/.cache/edgenas/bench_export: checkpoints, exports, ExecuTorch results.

    python benchmarks/bench_export.py --preset smoke    # flow with bilinear_hpc + digits
    python benchmarks/bench_export.py --preset full     # nearest, bilinear_hpc, bilinear + digits
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgenas.export.package import op_names
from edgenas.export.ptq import CALIBRATION_SEED, calibration_batches
from edgenas.train import records

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "edgenas" / "bench_export"
ET_PACKAGES = ("executorch[ethos-u]==1.5.1",)
TORCH = "torch==2.13.0"  # executorch 1.5.1 names no torch version; this CPU wheel lies on local disk
PROFILE = "ethos-u55-256"
FLOW_CONFIG = REPO / "benchmarks" / "export_flow.yaml"
DIGITS_CONFIG = REPO / "examples" / "digits_train.yaml"
FLOW_RESOLUTION = "96x128"
CALIBRATION_SAMPLES = 200


@dataclass(frozen=True)
class Network:
    key: str
    config: Path
    genotype: str
    resolution: str | None  # deployment resolution (None: the training resolution)
    calibration_train_samples: int | None = None  # the derived export config's task.train_samples


NETWORKS = {
    "flow_nearest": Network("flow_nearest", FLOW_CONFIG, "upsample=nearest", FLOW_RESOLUTION, CALIBRATION_SAMPLES),
    "flow_bilinear_hpc": Network("flow_bilinear_hpc", FLOW_CONFIG, "upsample=bilinear_hpc", FLOW_RESOLUTION,
                                 CALIBRATION_SAMPLES),
    "flow_bilinear": Network("flow_bilinear", FLOW_CONFIG, "upsample=bilinear", FLOW_RESOLUTION, CALIBRATION_SAMPLES),
    "digits": Network("digits", DIGITS_CONFIG, "default", None),
}
PRESETS = {"smoke": ("flow_bilinear_hpc", "digits"),
           "full": ("flow_nearest", "flow_bilinear_hpc", "flow_bilinear", "digits")}
# The smoke preset trains flow for 2 epochs (500 steps) instead of the config's 6, to stay near 10 minutes on a
# fresh cache; its figures check the pipeline, the full preset's are the ones RESULTS.md reports.
SMOKE_FLOW_EPOCHS = 2


def log(msg: str) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    records.write_json(path, data)


# ---- training (edgenas's trainer, cached) -------------------------------------------------------------------

def train(net: Network, cache: Path, epochs: int | None = None) -> Path:
    """best.pt of the network's training run (trained once; resumed if interrupted); `epochs` overrides the
    config's (the smoke preset's shorter flow training, kept apart from the full one)."""
    from edgenas.train.run import RUN_FILE, make_candidate, train_candidate
    from edgenas.train.trainer import BEST, CHECKPOINT

    out = cache / "train" / (net.key if epochs is None else f"{net.key}-e{epochs}")
    run = out / RUN_FILE
    if run.exists() and json.loads(run.read_text()).get("status") == "done":
        return out / BEST
    c = make_candidate(str(net.config), net.genotype, **({} if epochs is None else {"epochs": epochs}))
    log(f"training {net.key}: {c.genotype} at {c.resolution[0]}x{c.resolution[1]}, {c.recipe.epochs} epochs")
    train_candidate(c, out, resume=(out / CHECKPOINT).exists())
    return out / BEST


# ---- ExecuTorch's venv ----------------------------------------------------------------------------------------

def et_python(cache: Path) -> Path:
    return cache / "venv" / "bin" / "python"


def ensure_venv(cache: Path) -> Path:
    """ExecuTorch's venv, created once: torch 2.13.0 first (the CPU wheel on disk), then executorch[ethos-u]."""
    venv = cache / "venv"
    stamp = venv / (".bench_export-" + "-".join((TORCH, *ET_PACKAGES)).replace("[", "_").replace("]", "_"))
    if stamp.exists():
        return et_python(cache)
    log(f"creating ExecuTorch's venv in {venv} (once; several minutes)")
    if not et_python(cache).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(et_python(cache)), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, *ET_PACKAGES], check=True)
    stamp.touch()
    return et_python(cache)


# ---- the float module, calibration and evaluation data --------------------------------------------------------

def torch_user_module(graph):
    """The network as a PyTorch user writes it: half-pixel bilinear as F.interpolate(mode="bilinear",
    align_corners=False), the op ExecuTorch's quantizer and partitioner know (edgenas's builder computes it
    with TFLite's index arithmetic; the two agree in float). Everything else is edgenas's builder as is."""
    import torch.nn.functional as F

    from edgenas.train.builder import GraphModule

    class TorchUser(GraphModule):
        def _run_op(self, op, xs):
            if op.kind == "resize_bilinear" and op.attr("half_pixel_centers"):
                _, oh, ow, _ = self.graph.shape(op.outputs[0])
                return [F.interpolate(xs[0], size=(oh, ow), mode="bilinear", align_corners=False)]
            return super()._run_op(op, xs)

    return TorchUser(graph)


def export_config(net: Network, cache: Path) -> Path:
    """The config the export reads: the training config, or for flow one whose training set is only the
    calibration samples (generating 2,000 pairs at the deployment size would take ~10 min and 1 GB)."""
    if net.calibration_train_samples is None:
        return net.config
    path = cache / "configs" / f"{net.key}.yaml"
    text = (f"# written by benchmarks/bench_export.py: {net.config.name} with a calibration-sized training set\n"
            f"extends: {net.config}\ntask:\n  train_samples: {net.calibration_train_samples}\n")
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def inputs_and_targets(ds) -> tuple[np.ndarray, Any]:
    import torch

    items = [ds[i] for i in range(len(ds))]
    return torch.stack([x for x, _ in items]).numpy(), torch.stack([t for _, t in items])


# ---- edgenas ------------------------------------------------------------------------------------------------

def edgenas_side(net: Network, ckpt: Path, profile, cache: Path, observer: str = "minmax") -> dict[str, Any]:
    """`edgenas export`'s build (allowing CPU ops, so a refusal is a finding rather than a stop), cached; the
    summary's `_dir` names its folder under CACHE/edgenas."""
    from edgenas.errors import EdgeNasError
    from edgenas.export.deploy import ExportRequest, build_export, sha256_file, write_export

    name = f"{net.key}-{sha256_file(ckpt)[:12]}-{net.resolution or 'train'}"
    name += "" if observer == "minmax" else f"-{observer}"
    out = cache / "edgenas" / name
    if (out / "summary.json").exists():
        return {**json.loads((out / "summary.json").read_text()), "_dir": name}
    log(f"edgenas export {net.key}" + ("" if observer == "minmax" else f" --observer {observer}"))
    req = ExportRequest(str(export_config(net, cache)), net.genotype, ckpt, profile, out, net.resolution,
                        CALIBRATION_SAMPLES, allow_cpu_ops=True, observer=observer)
    try:
        files, summary = build_export(req)
    except EdgeNasError as e:
        return {"refused": str(e)}
    if out.exists():
        import shutil

        shutil.rmtree(out)
    write_export(out, files, summary)
    return {**summary, "_dir": name}


def is_npu_op(op: str) -> bool:
    """The op a Vela-compiled TFLite runs an NPU partition with (read as CUSTOM:ethos-u from 5.1 and 5.2)."""
    return op in ("ETHOSU", "CUSTOM:ethos-u")


def vela_cli(et_py: Path, model: Path, profile, out_dir: Path) -> dict[str, Any]:
    """The int8 TFLite through ExecuTorch's venv's `vela` CLI (5.1.0) with the profile's options."""
    from _executorch_side import vela_summary

    from edgenas.hardware.profile import vela_cli_args

    out_dir.mkdir(parents=True, exist_ok=True)
    vela = et_py.parent / "vela"
    cmd = [str(vela), str(model), *vela_cli_args(profile), "--output-dir", str(out_dir)]
    version = subprocess.run([str(vela), "--version"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"status": "failed", "error": (r.stderr or r.stdout)[-2000:], "command": cmd}
    ops = op_names((out_dir / f"{model.stem}_vela.tflite").read_bytes())
    npu = [op for op in ops if is_npu_op(op)]
    cpu = [op for op in ops if op not in npu]
    return {"status": "ok", "vela": f"ethos-u-vela {version}", "command": " ".join(cmd[1:]), "npu_partitions": len(npu),
            "cpu_ops": cpu, **vela_summary(str(out_dir))}


def vela52_on_tosa(et_dir: Path, partitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ExecuTorch partition's TOSA (kept by _executorch_side.py) through this venv's Vela (5.2) with the
    flags ExecuTorch gave 5.1.0: the same partitions under the newer compiler."""
    from _executorch_side import vela_summary

    vela = Path(sys.executable).with_name("vela")
    out = []
    for i, p in enumerate(partitions):
        d = et_dir / "vela" / f"partition{i}"
        flags = [f for f in p["flags"] if not f.startswith("--output-dir")]
        target = d / "vela52"
        r = subprocess.run([str(vela), *flags, f"--output-dir={target}", str(d / "out.tosa")], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"vela 5.2 on {d / 'out.tosa'}: {(r.stderr or r.stdout)[-1000:]}")
        out.append(vela_summary(str(target)))
    return out


# ---- ExecuTorch ---------------------------------------------------------------------------------------------

def executorch_side(net: Network, ckpt: Path, profile, cache: Path, et_py: Path) -> tuple[dict, np.ndarray, Any]:
    """(result.json of _executorch_side.py, its int8 outputs on the evaluation set, the targets)."""
    import torch

    from edgenas.export.deploy import sha256_file
    from edgenas.train.builder import GraphModule
    from edgenas.train.run import make_candidate, resolve_resolution
    from edgenas.train.trainer import load_checkpoint, load_weights

    c = make_candidate(str(export_config(net, cache)), net.genotype)
    res = resolve_resolution(c.space, net.resolution, "--resolution") if net.resolution else c.resolution
    val = c.task.eval_data(res)
    x_eval, targets = inputs_and_targets(val)
    out = cache / "executorch" / f"{net.key}-{sha256_file(ckpt)[:12]}-{res[0]}x{res[1]}"
    if (out / "result.json").exists() and (out / "outputs.npy").exists():
        return json.loads((out / "result.json").read_text()), np.load(out / "outputs.npy"), targets
    log(f"ExecuTorch export {net.key} (its own venv)")
    graph = c.graph(res)
    module = torch_user_module(graph)
    load_weights(module, load_checkpoint(ckpt), ckpt)
    module.eval()
    data = c.task.data(res, seed=c.recipe.seed)
    n_cal = min(CALIBRATION_SAMPLES, len(data.train))
    calib = torch.cat(list(calibration_batches(data.train, n_cal))).numpy()
    work = out.with_name(out.name + ".tmp")
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    with torch.no_grad():
        ref = GraphModule(graph)  # edgenas's own builder: the float module handed over must agree with it
        ref.load_state_dict(module.state_dict())
        probe = torch.from_numpy(x_eval[:4])
        float_diff = float((module(probe)[-1] - ref.eval()(probe)[-1]).abs().max())
    torch.export.save(torch.export.export(module, (torch.from_numpy(calib[:1]),)), str(work / "program.pt2"))
    np.save(work / "calib.npy", calib)
    np.save(work / "eval.npy", x_eval)
    cmd = [str(et_py), str(Path(__file__).with_name("_executorch_side.py")), "--program", str(work / "program.pt2"),
           "--calib", str(work / "calib.npy"), "--eval", str(work / "eval.npy"),
           "--target", str(profile.accelerator_config), "--system-config", str(profile.system_config),
           "--memory-mode", str(profile.memory_mode), f"--vela-flag=--arena-cache-size={profile.arena_cache_bytes}",
           "--vela-flag=--optimise=Performance", "--out", str(work)]
    with open(work / "log.txt", "w") as logf:
        r = subprocess.run(["nice", "-n", "5", *cmd], stdout=logf, stderr=subprocess.STDOUT)
    if not (work / "result.json").exists():
        tail = (work / "log.txt").read_text()[-3000:]
        raise RuntimeError(f"ExecuTorch side exited {r.returncode} without a result:\n{tail}")
    result = json.loads((work / "result.json").read_text())
    result.update(float_module_max_abs_diff=float_diff, calibration={"samples": n_cal, "seed": CALIBRATION_SEED},
                  resolution=f"{res[0]}x{res[1]}", eval_samples=len(val))
    write_json(work / "result.json", result)
    for name in ("calib.npy", "eval.npy"):
        (work / name).unlink()
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(work, out)
    return result, np.load(out / "outputs.npy"), targets



# ---- figures --------------------------------------------------------------------------------------------------

QUANT_OPS = ("quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel")


def cpu_seconds(ops: list[dict[str, Any]], macs_per_s: float) -> float:
    """Every op at max(MACs, output elements) / the host's MAC rate: the estimate of
    `edgenas.sweep.rows.cpu_part_seconds` (data movement counts one operation per output element)."""
    work = 0
    for op in ops:
        elems = 1
        for d in op["out_shape"]:
            elems *= int(d)
        work += max(int(op.get("macs", 0)), elems)
    return work / macs_per_s


def metric_of(outputs: np.ndarray, targets: Any, task) -> dict[str, float]:
    """The task's metrics (sum / count over all samples) of ExecuTorch's outputs."""
    import torch

    sums: dict[str, list[float]] = {}
    for i in range(len(outputs)):
        for name, (s, c) in task.metric_sums((torch.from_numpy(outputs[i:i + 1]),), targets[i:i + 1]).items():
            acc = sums.setdefault(name, [0.0, 0])
            acc[0] += float(s)
            acc[1] += int(c)
    return {k: (s / c if c else float("nan")) for k, (s, c) in sums.items()}


def edgenas_cpu_seconds(summary: dict[str, Any], net: Network, ckpt: Path, profile, cache: Path) -> float:
    """0 without CPU ops; else the sweep's analytic estimate from a per-layer compile of the export's file."""
    if not summary.get("cpu_op_count"):
        return 0.0
    from edgenas.hardware.vela import VelaEvaluator
    from edgenas.sweep.rows import cpu_part_seconds
    from edgenas.train.run import make_candidate, resolve_resolution

    c = make_candidate(str(export_config(net, cache)), net.genotype)
    res = resolve_resolution(c.space, net.resolution, "--resolution") if net.resolution else c.resolution
    model = (cache / "edgenas" / summary["_dir"] / "model_int8.tflite").read_bytes()
    m, _ = VelaEvaluator(profile).compile(model, per_layer=True)
    return cpu_part_seconds(c.graph(res), m, profile) or 0.0


def measure(net: Network, profile, cache: Path, et_py: Path, epochs: int | None = None,
            histogram: bool = False) -> dict[str, Any]:
    """Every side's figures for one network; `histogram`: also edgenas with ExecuTorch's activation observer."""
    from edgenas.export.deploy import sha256_file
    from edgenas.train.run import make_candidate

    ckpt = train(net, cache, epochs)
    c = make_candidate(str(net.config), net.genotype)
    rate = float(profile.host_cpu_macs_per_s)
    row: dict[str, Any] = {"network": net.key, "genotype": str(c.genotype), "config": str(net.config.relative_to(REPO)),
                           "checkpoint_sha256": sha256_file(ckpt), "metric": c.task.primary,
                           "higher_is_better": c.task.higher_is_better}
    run = json.loads((ckpt.parent / "run.json").read_text())
    row["training"] = {"resolution": run["resolution"], "epochs": run["recipe"]["epochs"],
                       "batch_size": run["recipe"]["batch_size"], "best_epoch": run.get("best_epoch"),
                       "best_val_metric": run.get("best_metric"), "run": str(ckpt.parent)}
    summary = edgenas_side(net, ckpt, profile, cache)
    if "refused" in summary:
        row["edgenas"] = {"status": "refused", "error": summary["refused"]}
    else:
        cpu_s = edgenas_cpu_seconds(summary, net, ckpt, profile, cache)
        vela_ops = op_names((cache / "edgenas" / summary["_dir"] / "model_int8_vela.tflite").read_bytes())
        npu_partitions = sum(map(is_npu_op, vela_ops))  # one ethos-u custom op per NPU partition
        f = summary["compiler_figures"]
        row["resolution"] = summary["resolution"]
        row["metric_float"] = summary["metric_float"]
        row["edgenas"] = {
            "status": "ok", "compiler": summary["compiler"], "npu_partitions": npu_partitions,
            "cpu_ops": summary["cpu_ops"],
            "cpu_op_count": summary["cpu_op_count"], "cycles_npu": f["cycles_npu"], "cycles_total": f["cycles_total"],
            "sram_kib": summary["sram_kib"], "offchip_flash_kib": summary["offchip_flash_kib"],
            "npu_ms": summary["inference_ms"], "cpu_ms": cpu_s * 1e3, "e2e_ms": summary["inference_ms"] + cpu_s * 1e3,
            "metric_int8": summary["metric_int8"], "int8_runtime": summary["metric_data"]["int8_runtime"],
            "metric_samples": summary["metric_data"]["samples"], "calibration": summary["calibration"],
            "export_accepts": summary["cpu_op_count"] == 0 and summary["sram_kib"] <= profile.sram_kib,
        }
        if histogram:  # the observer ExecuTorch's quantizer uses: separates observer from arithmetic
            h = edgenas_side(net, ckpt, profile, cache, "histogram")
            row["edgenas_histogram"] = {**row["edgenas"], "status": "ok", "compiler": h["compiler"],
                                        "cycles_npu": h["compiler_figures"]["cycles_npu"],
                                        "cycles_total": h["compiler_figures"]["cycles_total"],
                                        "sram_kib": h["sram_kib"], "offchip_flash_kib": h["offchip_flash_kib"],
                                        "npu_ms": h["inference_ms"],
                                        "e2e_ms": h["inference_ms"] + cpu_s * 1e3, "metric_int8": h["metric_int8"],
                                        "calibration": h["calibration"]}
        v51 = vela_cli(et_py, cache / "edgenas" / summary["_dir"] / "model_int8.tflite", profile,
                       cache / "edgenas_vela51" / summary["_dir"])
        if v51["status"] == "ok":
            v51_cpu = 0.0 if not v51["cpu_ops"] else cpu_s  # same file, same ops: the same CPU estimate
            row["edgenas_vela51"] = {
                "status": "ok", "compiler": v51["vela"], "command": v51["command"],
                "npu_partitions": v51["npu_partitions"], "cpu_ops": v51["cpu_ops"], "cycles_npu": v51["cycles_npu"],
                "cycles_total": v51["cycles_total"], "sram_kib": v51["sram_memory_used"],
                "offchip_flash_kib": v51["off_chip_flash_memory_used"], "npu_ms": v51["inference_time"] * 1e3,
                "cpu_ms": v51_cpu * 1e3, "e2e_ms": v51["inference_time"] * 1e3 + v51_cpu * 1e3,
                "metric_int8": summary["metric_int8"]}
        else:
            row["edgenas_vela51"] = v51
    try:
        result, outputs, targets = executorch_side(net, ckpt, profile, cache, et_py)
    except RuntimeError as e:  # it stopped before lowering (quantisation, export): a finding, kept in the table
        row["executorch"] = {"status": "failed", "error": str(e)[-3000:]}
        return row
    et: dict[str, Any] = {"status": result["status"], "versions": result["versions"],
                          "compile_flags": result["compile_flags"], "quantization": result["quantization"],
                          "float_module_max_abs_diff": result["float_module_max_abs_diff"]}
    et["metric_int8"] = metric_of(outputs, targets, c.task)[c.task.primary]
    if c.task.kind == "flow":  # what predicting no motion scores on the same samples: how far training got
        row["metric_zero_flow"] = metric_of(np.zeros_like(outputs), targets, c.task)[c.task.primary]
    et["int8_runtime"] = ("the converted pt2e model (quantize/dequantize around float ops) run in torch "
                          f"{result['versions']['torch']} on the CPU, not the compiled program")
    et["metric_samples"] = result["eval_samples"]
    if result["status"] == "ok":
        parts = result["partitions"]
        interior = [op for op in result["cpu_ops"] if not op.get("at_io")]
        io_ops = [op for op in result["cpu_ops"] if op.get("at_io")]
        npu_s = sum(p["inference_time"] for p in parts)
        cpu_s = cpu_seconds(interior, rate)
        et.update(npu_partitions=len(result["delegates"]), cpu_ops=[op["op"] for op in interior],
                  cpu_op_count=len(interior), io_quant_ops=len(io_ops), io_quant_ms=cpu_seconds(io_ops, rate) * 1e3,
                  cycles_npu=sum(p["cycles_npu"] for p in parts), cycles_total=sum(p["cycles_total"] for p in parts),
                  sram_kib=max(p["sram_memory_used"] for p in parts),
                  sram_kib_sum=sum(p["sram_memory_used"] for p in parts),
                  offchip_flash_kib=sum(p["off_chip_flash_memory_used"] for p in parts),
                  npu_ms=npu_s * 1e3, cpu_ms=cpu_s * 1e3, e2e_ms=(npu_s + cpu_s) * 1e3, pte_bytes=result["pte_bytes"],
                  partition_figures=[{k: p[k] for k in ("cycles_npu", "cycles_total", "sram_memory_used",
                                                        "inference_time", "off_chip_flash_memory_used")}
                                     for p in parts], cpu_op_detail=result["cpu_ops"])
        from edgenas.hardware.vela import compiler_version

        et_dir = cache / "executorch" / f"{net.key}-{row['checkpoint_sha256'][:12]}-{result['resolution']}"
        p52 = vela52_on_tosa(et_dir, parts)
        npu52 = sum(p["inference_time"] for p in p52)
        row["executorch_vela52"] = {
            "status": "ok", "compiler": compiler_version(), "npu_partitions": len(p52), "cpu_ops": et["cpu_ops"],
            "cpu_op_count": len(interior), "io_quant_ops": len(io_ops), "cycles_npu": sum(p["cycles_npu"] for p in p52),
            "cycles_total": sum(p["cycles_total"] for p in p52), "sram_kib": max(p["sram_memory_used"] for p in p52),
            "sram_kib_sum": sum(p["sram_memory_used"] for p in p52),
            "offchip_flash_kib": sum(p["off_chip_flash_memory_used"] for p in p52), "npu_ms": npu52 * 1e3,
            "cpu_ms": cpu_s * 1e3, "e2e_ms": (npu52 + cpu_s) * 1e3, "metric_int8": et["metric_int8"]}
    else:
        et["error"] = result["error"]
    row["executorch"] = et
    return row


# ---- report ---------------------------------------------------------------------------------------------------

SIDES = (("edgenas", "edgenas export"), ("edgenas_histogram", "edgenas export --observer histogram"),
         ("executorch_vela52", "ExecuTorch's partitions (TOSA), edgenas's Vela"),
         ("edgenas_vela51", "edgenas's file, ExecuTorch's Vela"), ("executorch", "ExecuTorch Arm backend"))


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None or v == "" else format(v, fmt)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| network | flow | compiler | NPU partitions | CPU ops (+ I/O Q/DQ) | NPU cycles | SRAM KiB | NPU ms "
             "| CPU ms (est.) | end-to-end ms | int8 metric (float) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for key, label in SIDES:
            s = r.get(key)
            if s is None:
                continue
            if s["status"] != "ok":
                err = " ".join(str(s.get("error", "")).split())[:160]
                lines.append(f"| {r['network']} | {label} | - | {s['status']}: {err} | | | | | | | "
                             f"{_f(s.get('metric_int8'), '.4f')} |")
                continue
            compiler = s.get("compiler") or f"ethos-u-vela {s['versions']['vela']}"
            cpu = str(s.get("cpu_op_count", len(s["cpu_ops"])))
            if s.get("io_quant_ops"):
                cpu += f" (+{s['io_quant_ops']})"
            names = sorted({o.split(".")[-2] if o.count(".") >= 2 else o for o in s["cpu_ops"]})
            if names:
                cpu += ": " + ", ".join(names)
            sram = _f(s["sram_kib"], ".1f") + (f" (sum {s['sram_kib_sum']:.1f})" if "sram_kib_sum" in s else "")
            lines.append(f"| {r['network']} | {label} | {compiler.replace('ethos-u-vela ', 'Vela ')} | "
                         f"{s['npu_partitions']} | {cpu} | {int(s['cycles_npu']):,} | {sram} | {s['npu_ms']:.3f} | "
                         f"{s['cpu_ms']:.3f} | {s['e2e_ms']:.3f} | {_f(s.get('metric_int8'), '.4f')} "
                         f"({_f(r.get('metric_float'), '.4f')}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"work folder (default {CACHE})")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default CACHE/results-PRESET.json)")
    ap.add_argument("--networks", default=None, help=f"comma-separated subset instead of the preset's: "
                    f"{', '.join(NETWORKS)}")
    a = ap.parse_args()
    keys = a.networks.split(",") if a.networks else list(PRESETS[a.preset])
    unknown = [k for k in keys if k not in NETWORKS]
    if unknown:
        ap.error(f"--networks: unknown {', '.join(unknown)}; allowed: {', '.join(NETWORKS)}")
    import torch
    from machine import describe

    from edgenas.hardware.profile import load_profile

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    profile = load_profile(PROFILE)
    et_py = ensure_venv(a.cache)
    rows = [measure(NETWORKS[k], profile, a.cache, et_py,
                    SMOKE_FLOW_EPOCHS if a.preset == "smoke" and k.startswith("flow") else None,
                    histogram=a.preset == "full") for k in keys]
    doc = {"date": datetime.date.today().isoformat(), "machine": describe(), "preset": a.preset,
           "command": " ".join(["python", "benchmarks/bench_export.py", *sys.argv[1:]]), "profile": profile.to_dict(),
           "flow_resolution": FLOW_RESOLUTION, "rows": rows}
    out = a.out or a.cache / f"results-{a.preset}.json"
    write_json(out, doc)
    print(f"Profile {profile.name} ({profile.system_config}, {profile.memory_mode}, arena "
          f"{profile.arena_cache_kib} KiB); CPU estimate at host_cpu_macs_per_s {profile.host_cpu_macs_per_s:g}.\n")
    print(table(rows))
    for r in rows:
        t = r["training"]
        ref = f"; predicting no motion scores {r['metric_zero_flow']:.4f}" if "metric_zero_flow" in r else ""
        print(f"\n{r['network']}: {r['genotype']}, trained {t['epochs']} epochs at {t['resolution']} (best "
              f"validation {r['metric']} {t['best_val_metric']:.4f}); metric at {r.get('resolution', '?')} on "
              f"{r['executorch']['metric_samples']} validation samples{ref}.", end="")
    print()
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
