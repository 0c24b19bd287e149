"""`edgenas export` as a user runs it, checked against independent truths.

A tiny flow network (16x16, upsampling by the DEPTH_TO_SPACE op, which Ethos-U runs on the CPU) is trained
for one epoch, then exported with --allow-cpu-ops. The truths: the `vela` CLI compiling model_int8.tflite
with the profile's settings (figures and optimised file length); the system C compiler building a program
that writes the C array back (bytes and alignment); LiteRT reading the files (scales, zero points, op
codes) and running model_int8.tflite with its reference kernels, scored by an EPE written here; TFLite
Micro's runtime allocating the plain int8 file in the reported arena (and not in 16 bytes less); and
`edgenas evaluate` for the float metric. Every refusal exits 2 on one line that names the field and leaves
no folder and no temporary files behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EDGENAS = str(Path(sys.executable).with_name("edgenas"))
VELA = shutil.which("vela") or str(Path(sys.executable).with_name("vela"))
PYTHON = sys.executable

CONFIG = """\
name: flow_tiny
network: flow
input_channels: 6
resolutions: [16x16]
widths: {stem: 4, encoder: 8, encoder_units: 1, head0: 8, head1: 4, head2: 4}
fixed: {backbone: resnet, head0_block: conv3x3, head1_block: conv3x3, head2_block: dsconv3x3, predict_kernel: 3,
        activation: relu}
choices:
  upsample: [depth_to_space_op, bilinear]
default: {upsample: depth_to_space_op}
hardware: [ethos-u55-128]
task: {type: flow, train_samples: 16, val_samples: 8}
train: {epochs: 3, batch_size: 8, lr: 0.004, threads: 1}
"""
PROFILE = "ethos-u55-128"
EXPORT = ["--checkpoint", "run/best.pt", "--calibration-samples", "12"]

# name -> (extra arguments, text the error line must contain)
FAILURES = {
    "cpu_ops": (["-H", PROFILE], ["--allow-cpu-ops", "DEPTH_TO_SPACE"]),
    "sram": (["-H", f"{PROFILE}:sram_kib=1", "--allow-cpu-ops"], ["sram_kib"]),
    "flash": (["-H", f"{PROFILE}:flash_kib=1", "--allow-cpu-ops"], ["flash_kib"]),
    "checkpoint": (["--genotype", "upsample=bilinear", "--allow-cpu-ops"], ["--genotype", "checkpoint"]),
    "resolution_stride": (["--resolution", "18x18", "--allow-cpu-ops"], ["--resolution", "stride"]),
    "resolution_text": (["--resolution", "sixteen", "--allow-cpu-ops"], ["--resolution"]),
    "observer": (["--observer", "median", "--allow-cpu-ops"], ["--observer", "minmax, moving_average, histogram"]),
    "concat": (["--concat", "mixed", "--allow-cpu-ops"], ["--concat", "shared, per_input"]),
}


def _env(d: Path) -> dict[str, str]:
    return {**os.environ, "EDGENAS_DATA_CACHE": str(d / "cache")}


def _edgenas(d: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([EDGENAS, *args], cwd=d, env=_env(d), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


# `edgenas evaluate` and the refusals run one after another in one process (torch is imported once):
# `edgenas.cli.main` as the `edgenas` script calls it; its exit code, stdout and stderr.
_COMMANDS = """
import contextlib, io, json, sys
from edgenas.cli import main
got = {}
for name, args in json.loads(sys.argv[1]).items():
    sys.argv = ["edgenas", *args]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    got[name] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(got))
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A trained checkpoint, its export, `edgenas evaluate` of it, and every refusal (run side by side)."""
    d = tmp_path_factory.mktemp("export")
    (d / "cfg.yaml").write_text(CONFIG)
    r = subprocess.run([EDGENAS, "train", "cfg.yaml", "--out", "run", "--epochs", "1", "--no-progress"], cwd=d,
                       env=_env(d), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EDGENAS, "train", "cfg.yaml", "-g", "upsample=bilinear", "--out", "run_bl", "--epochs", "1",
                        "--no-progress"], cwd=d, env=_env(d), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (d / "taken").mkdir()
    (d / "taken" / "old.txt").write_text("keep")
    commands = {name: ["export", "cfg.yaml", *EXPORT, "--out", f"fail_{name}", *extra]
                for name, (extra, _) in FAILURES.items()}
    commands["taken"] = ["export", "cfg.yaml", *EXPORT, "--out", "taken", "--allow-cpu-ops"]
    commands["evaluate"] = ["evaluate", "cfg.yaml", "--checkpoint", "run/best.pt", "--json"]
    # no --genotype: the checkpoint's network (not the space's default, whose upsampling differs)
    commands["from_checkpoint"] = ["export", "cfg.yaml", "--checkpoint", "run_bl/best.pt", "--calibration-samples",
                                   "12", "--out", "exp_bl", "-H", PROFILE, "--no-progress"]
    commands["qat_negative"] = ["export", "cfg.yaml", *EXPORT, "--out", "fail_qat", "--qat-epochs", "-1"]
    procs = {"export": _edgenas(d, "export", "cfg.yaml", *EXPORT, "--out", "exp", "-H", PROFILE, "--allow-cpu-ops"),
             "export_qat": _edgenas(d, "export", "cfg.yaml", *EXPORT, "--out", "exp_qat", "-H", PROFILE,
                                    "--allow-cpu-ops", "--qat-epochs", "2"),
             "commands": subprocess.Popen([PYTHON, "-c", _COMMANDS, json.dumps(commands)], cwd=d, env=_env(d),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)}
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=600)
        results[name] = (p.returncode, out, err)
    assert results["commands"][0] == 0, results["commands"][2]
    results.update(json.loads(results.pop("commands")[1]))
    (d / "results.json").write_text(json.dumps(results))
    assert results["export"][0] == 0, results["export"][2]
    assert results["export_qat"][0] == 0, results["export_qat"][2]
    return d


def results(work: Path) -> dict[str, list]:
    return json.loads((work / "results.json").read_text())


def summary(work: Path) -> dict:
    return json.loads((work / "exp" / "summary.json").read_text())


def vela_cli(work: Path, s: dict, tmp: Path) -> tuple[dict[str, str], str]:
    """The CLI on model_int8.tflite with the profile's own values (not edgenas's argument builder)."""
    v = s["profile"]["values"]
    cmd = [VELA, str(work / "exp" / "model_int8.tflite"), "--accelerator-config", v["accelerator_config"],
           "--system-config", v["system_config"], "--memory-mode", v["memory_mode"],
           "--arena-cache-size", str(v["arena_cache_kib"] * 1024), "--optimise", "Performance",
           "--output-dir", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    with open(tmp / f"model_int8_summary_{v['system_config']}.csv") as f:
        header, row = list(csv.reader(f))
    return dict(zip(header, row)), proc.stdout


def test_vela_cli_gives_the_summarys_figures_and_file(work: Path, tmp_path: Path) -> None:
    s = summary(work)
    csv_row, stdout = vela_cli(work, s, tmp_path)
    rel = 1e-5
    assert s["fps"] == pytest.approx(float(csv_row["inferences_per_second"]), rel=rel)
    assert s["inference_ms"] == pytest.approx(float(csv_row["inference_time"]) * 1000, rel=rel)
    assert s["sram_kib"] == pytest.approx(float(csv_row["sram_memory_used"]), rel=rel)
    assert s["offchip_flash_kib"] == pytest.approx(float(csv_row["off_chip_flash_memory_used"]), rel=rel)
    assert s["compiler_figures"]["cycles_total"] == pytest.approx(float(csv_row["cycles_total"]), rel=rel)
    assert s["npu_ops"] == int(re.search(r"^NPU operators = (\d+)", stdout, re.MULTILINE).group(1))
    assert s["cpu_op_count"] == int(re.search(r"^CPU operators = (\d+)", stdout, re.MULTILINE).group(1)) == 2
    ours = (work / "exp" / "model_int8_vela.tflite").read_bytes()
    theirs = (tmp_path / "model_int8_vela.tflite").read_bytes()
    assert len(ours) == len(theirs) == s["files"]["model_int8_vela.tflite"]["bytes"]
    assert s["compiler"].startswith("ethos-u-vela ") and s["profile"]["name"] == PROFILE
    # Vela's arena plan inside the file is what it reports as SRAM used (Shared_Sram: feature maps only)
    assert s["tflm"]["vela_model"]["vela_planned_bytes"] == round(float(csv_row["sram_memory_used"]) * 1024)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler (cc/gcc)")
@pytest.mark.parametrize("define", [[], ['-DMODEL_TFLITE_ATTRIBUTE=__attribute__((aligned(16), section("nn_model")))']],
                         ids=["default", "eval-kit-attribute"])
def test_c_array_compiles_to_the_vela_file_aligned(work: Path, tmp_path: Path, define: list[str]) -> None:
    exp = work / "exp"
    (tmp_path / "main.c").write_text(
        '#include <stdint.h>\n#include <stdio.h>\n#include "model_int8_vela.h"\n'
        "int main(void) {\n"
        "  if (model_int8_vela_len != MODEL_INT8_VELA_LEN) return 3;\n"
        '  fprintf(stderr, "%u", (unsigned)((uintptr_t)model_int8_vela % 16u));\n'
        "  return fwrite(model_int8_vela, 1, model_int8_vela_len, stdout) == model_int8_vela_len ? 0 : 4;\n}\n")
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *define, "-I", str(exp), str(tmp_path / "main.c"),
                    str(exp / "model_int8_vela.c"), "-o", str(tmp_path / "dump")], check=True, capture_output=True)
    r = subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True)
    assert r.stdout == (exp / "model_int8_vela.tflite").read_bytes()
    assert r.stderr == b"0"  # address modulo 16


def test_quantisation_and_ops_are_the_files(work: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter
    from ethosu.vela.tflite import BuiltinOperator, Model

    s = summary(work)
    it = Interpreter(model_path=str(work / "exp" / "model_int8.tflite"))
    (d,) = it.get_input_details()
    assert (s["input"]["name"], s["input"]["shape"]) == (d["name"], d["shape"].tolist())
    assert (s["input"]["scale"], s["input"]["zero_point"]) == pytest.approx(d["quantization"], rel=1e-7)
    outs = it.get_output_details()
    assert [o["name"] for o in s["outputs"]] == [o["name"] for o in outs]
    for ours, theirs in zip(s["outputs"], outs):
        assert (ours["scale"], ours["zero_point"]) == pytest.approx(theirs["quantization"], rel=1e-7)
        assert ours["shape"] == theirs["shape"].tolist()
    # the firmware's op list: the Vela file's op codes, read with the schema
    data = (work / "exp" / "model_int8_vela.tflite").read_bytes()
    m = Model.Model.GetRootAs(data, 0)
    names = {v: k for k, v in vars(BuiltinOperator.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(m.OperatorCodesLength()):
        c = m.OperatorCodes(i)
        b = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
        codes.append("CUSTOM:" + c.CustomCode().decode() if names[b] == "CUSTOM" else names[b])
    assert sorted(op["op"] for op in s["tflm"]["ops_to_register"]) == sorted(codes)
    assert {op["resolver_call"] for op in s["tflm"]["ops_to_register"]} == {"AddEthosU", "AddDepthToSpace"}
    assert s["cpu_ops"] == ["DEPTH_TO_SPACE"]


def test_provenance(work: Path) -> None:
    s = summary(work)
    run = json.loads((work / "run" / "run.json").read_text())
    assert (s["genotype"], s["arch_id"]) == (run["identity"]["genotype"], run["identity"]["arch_id"])
    assert s["resolution"] == "16x16" and s["calibration"]["samples"] == 12
    assert (s["calibration"]["observer"], s["calibration"]["concat"]) == ("minmax", "shared")
    assert s["checkpoint_sha256"] == hashlib.sha256((work / "run" / "best.pt").read_bytes()).hexdigest()
    for name, meta in s["files"].items():
        data = (work / "exp" / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (meta["bytes"], meta["sha256"])
    assert "pixels" in s["output_units"] and "16x16" in s["output_units"]
    assert s["preprocessing"]["layout"] == "NHWC [1, 16, 16, 6]"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []  # no temporary folders left
    assert "compile" in results(work)["export"][2]  # progress of the slow steps


def _epe(pred: np.ndarray, target: np.ndarray) -> tuple[float, int]:
    """Sum of endpoint errors over valid pixels: pred NHWC [1,H,W,2], target CHW [3,H,W] (u, v, valid)."""
    valid = target[2] > 0
    err = np.sqrt(((pred[0].transpose(2, 0, 1) - target[:2]) ** 2).sum(axis=0))
    return float(err[valid].sum()), int(valid.sum())


def int8_epe(work: Path, folder: str, s: dict) -> float:
    """The EPE of folder/model_int8.tflite over the task's validation set, run here in LiteRT."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgenas.train.run import make_candidate

    resolver = getattr(OpResolverType, s["metric_data"]["int8_runtime"].rsplit(".", 1)[1])
    it = Interpreter(model_path=str(work / folder / "model_int8.tflite"), experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    last = it.get_output_details()[-1]
    (si, zi), (so, zo) = inp["quantization"], last["quantization"]
    ds = make_candidate(str(work / "cfg.yaml")).task.eval_data((16, 16))
    total, count = 0.0, 0
    for i in range(len(ds)):
        x, target = (t.numpy() for t in ds[i])
        q = np.clip(np.round(x.transpose(1, 2, 0)[None] / si) + zi, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q)
        it.invoke()
        pred = (it.get_tensor(last["index"]).astype(np.float32) - zo) * so
        e, n = _epe(pred, target)
        total, count = total + e, count + n
    return total / count


def test_metrics_recomputed(work: Path, monkeypatch) -> None:
    """metric_int8 from the int8 file run here; metric_float from `edgenas evaluate`."""
    monkeypatch.setenv("EDGENAS_DATA_CACHE", str(work / "cache"))
    s = summary(work)
    code, out, err = results(work)["evaluate"]
    assert code == 0, err
    assert s["metric"] == "epe" and s["metric_float"] == pytest.approx(json.loads(out)["epe"], rel=1e-6)
    assert s["metric_int8"] == pytest.approx(int8_epe(work, "exp", s), rel=1e-5)
    assert s["metric_ptq"] == s["metric_int8"] and s["metric_qat"] is None and s["qat"] is None
    assert s["metric_data"]["samples"] == 8
    assert abs(s["metric_int8"] - s["metric_float"]) < 0.25 * s["metric_float"] + 0.05  # quantisation kept it


def test_qat_export(work: Path, monkeypatch) -> None:
    """--qat-epochs 2: the int8 file's EPE recomputed here is metric_qat; metric_ptq is the plain export's int8
    EPE (same checkpoint and calibration); every activation tensor keeps the plain export's quantisation (QAT
    keeps PTQ's ranges) while the file changed; model_qat.pt is a checkpoint of the network with other weights
    than the trained one; a negative --qat-epochs exits 2 naming the option."""
    import torch
    from ai_edge_litert.interpreter import Interpreter

    from edgenas.train.builder import GraphModule
    from edgenas.train.run import make_candidate
    from edgenas.train.trainer import load_checkpoint, load_weights

    monkeypatch.setenv("EDGENAS_DATA_CACHE", str(work / "cache"))
    plain, s = summary(work), json.loads((work / "exp_qat" / "summary.json").read_text())
    assert s["metric_qat"] == s["metric_int8"] == pytest.approx(int8_epe(work, "exp_qat", s), rel=1e-5)
    assert s["metric_ptq"] == pytest.approx(plain["metric_int8"], rel=1e-6)
    assert s["metric_float"] == pytest.approx(plain["metric_float"], rel=1e-6)
    lost = s["metric_ptq"] - s["metric_float"]  # EPE: lower is better
    if lost > 1e-3 * s["metric_float"]:
        assert s["qat_recovered"] == pytest.approx((s["metric_qat"] - s["metric_ptq"]) / -lost)
    else:  # nothing (worth a ratio) to recover
        assert s["qat_recovered"] is None
    assert s["qat"]["epochs"] == 2 and len(s["qat"]["history"]) == 2
    c = make_candidate(str(work / "cfg.yaml"))
    acts = set(c.graph().tensors)
    a, b = ({d["name"]: d["quantization"] for d in Interpreter(model_path=str(work / f / "model_int8.tflite"))
             .get_tensor_details() if d["name"] in acts} for f in ("exp", "exp_qat"))
    assert a == b and set(a) == acts
    assert (work / "exp" / "model_int8.tflite").read_bytes() != (work / "exp_qat" / "model_int8.tflite").read_bytes()
    qat_pt = work / "exp_qat" / "model_qat.pt"
    load_weights(GraphModule(c.graph()), load_checkpoint(qat_pt), qat_pt)  # an edgenas checkpoint of this network
    qat_w, trained = load_checkpoint(qat_pt)["model"], load_checkpoint(work / "run" / "best.pt")["model"]
    assert qat_w.keys() == trained.keys() and any(not torch.equal(qat_w[k], trained[k]) for k in qat_w)
    assert s["files"]["model_qat.pt"]["bytes"] == qat_pt.stat().st_size
    code, _, err = results(work)["qat_negative"]
    assert code == 2 and "--qat-epochs" in err and not (work / "fail_qat").exists()


_TFLM = """
import sys
from tflite_micro import runtime
runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2]))
"""


def test_tflm_arena_is_the_smallest_that_allocates(work: Path) -> None:
    s = summary(work)
    arena = s["tflm"]["int8_model"]["arena_bytes"]
    model = str(work / "exp" / "model_int8.tflite")

    def allocates(n: int) -> bool:
        return subprocess.run([PYTHON, "-c", _TFLM, model, str(n)], capture_output=True).returncode == 0

    assert allocates(arena) and not allocates(arena - 16)
    vela = s["tflm"]["vela_model"]
    assert s["tflm"]["tensor_arena_bytes"] == vela["arena_bytes"] >= vela["vela_planned_bytes"]


@pytest.mark.parametrize("name", [*FAILURES, "taken"])
def test_refusals_exit_2_naming_the_field_and_leave_nothing(work: Path, name: str) -> None:
    code, _, err = results(work)[name]
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("edgenas: error:")]
    assert len(errors) == 1 and err.strip().endswith(errors[0]) and "Traceback" not in err, err  # after progress
    for text in FAILURES.get(name, ([], ["--out"]))[1]:
        assert text in errors[0]
    if name == "taken":
        assert [p.name for p in (work / "taken").iterdir()] == ["old.txt"]
    else:
        assert not (work / f"fail_{name}").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_the_genotype_defaults_to_the_checkpoints(work: Path) -> None:
    code, _, err = results(work)["from_checkpoint"]
    assert code == 0, err
    s = json.loads((work / "exp_bl" / "summary.json").read_text())
    assert "upsample=bilinear" in s["genotype"]
    assert s["genotype"] == json.loads((work / "run_bl" / "run.json").read_text())["identity"]["genotype"]
