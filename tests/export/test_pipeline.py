"""`edgenas pipeline` as a user runs it: a tiny digits pipeline (16x16, 1 epoch) end to end, interrupted and
resumed with real signals, changed, and refused.

Truths: the search's own front CSV (the chosen design re-derived from it with the rule); LiteRT with its
reference kernels on the int8 file (the int8 metric recomputed with an argmax written here; params and MACs
counted from the file's weight shapes) and on the trained and the pruned network's float32 files (float
metric, params, MACs, size); the `vela` CLI on the int8 file (FPS, SRAM); an uninterrupted run of the same
pipeline (the interrupted one must end with the same weights); files' mtimes and pipeline.json's start
counters (finished stages are not redone); /proc (the search's child process dies with the pipeline).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EDGENAS = str(Path(sys.executable).with_name("edgenas"))
VELA = shutil.which("vela") or str(Path(sys.executable).with_name("vela"))
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
name: digits_tiny
network: stages
input_channels: 1
resolutions: [16x16]
widths: {stem: 8, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage_block: [conv3x3, dsconv3x3]
hardware: [ethos-u55-128]
task: {type: digits, val_fraction: 0.8}  # 359 training samples: a 1-epoch run learns something
train: {epochs: 1, batch_size: 16, lr: 0.01, threads: 1}
search:
  objectives: [{metric: fps, direction: max}, {metric: sram_kib, direction: min}]
  trials: 2
"""
# prune fine-tunes for 2 epochs of 23 steps with a checkpoint every 2 steps: the test kills it at the first
STAGES = """\
  - {stage: search, trials: 2, choose: {metric: sram_kib, direction: min}}
  - {stage: train, epochs: 1}
  - {stage: prune, score: l1, keep_ratio: 0.5, round_to: 4, finetune: {epochs: 2, batch_size: 16, checkpoint_every: 2}}
  - {stage: quantize, calibration_samples: 32}
  - {stage: export}
"""
PIPE = f"config: cfg.yaml\nhardware: ethos-u55-128\nout: full\nstages:\n{STAGES}"
PROFILE = "ethos-u55-128"


def _env(d: Path) -> dict[str, str]:
    return {**os.environ, "EDGENAS_CACHE": str(d / "cache.sqlite"), "EDGENAS_DATA_CACHE": str(d / "data")}


def _start(d: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([EDGENAS, "pipeline", *args], cwd=d, env=_env(d), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(check, proc: subprocess.Popen, what: str, timeout: float = 300):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = check()
        if got:
            return got
        assert proc.poll() is None, f"the pipeline ended before {what}: {proc.communicate()}"
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive_after(pid: int, seconds: float) -> bool:
    """Whether `pid` still runs `seconds` from now (a zombie waiting to be reaped counts as gone)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


def _state(out: Path) -> dict:
    return json.loads((out / "pipeline.json").read_text())


def _mtimes(out: Path, names: list[str]) -> dict[str, int]:
    return {n: (out / n).stat().st_mtime_ns for n in names}


KEPT = ["search/front.csv", "search/study.db", "train/best.pt", "train/checkpoint.pt", "train/run.json"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """`full`: one uninterrupted run. `killed`: SIGTERM in the search, then SIGKILL in the prune fine-tune,
    then run to the end (both side by side)."""
    d = tmp_path_factory.mktemp("pipeline")
    (d / "cfg.yaml").write_text(CONFIG)
    (d / "pipe.yaml").write_text(PIPE)
    full = _start(d, "pipe.yaml")
    log: dict = {}
    killed = d / "killed"
    # 1. SIGTERM while the search's child process runs
    p = _start(d, "pipe.yaml", "--out", "killed")
    _wait_for(lambda: (killed / "search" / "search.log").exists(), p, "the search stage")
    children = _wait_for(lambda: _children(p.pid), p, "the search's child process")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    log["sigterm"] = {"rc": p.returncode, "err": err,
                      "child_alive": any(_alive_after(c, 10.0) for c in children),
                      "state": _state(killed)}
    # 2. SIGKILL in the prune stage, at its first checkpoint
    p = _start(d, "pipe.yaml", "--out", "killed")
    _wait_for(lambda: (killed / "prune" / "checkpoint.pt").exists(), p, "the prune checkpoint")
    p.kill()
    out, err = p.communicate(timeout=60)
    log["sigkill"] = {"rc": p.returncode, "err": err, "state": _state(killed), "mtimes": _mtimes(killed, KEPT)}
    # 3. the same command again
    p = _start(d, "pipe.yaml", "--out", "killed")
    out, err = p.communicate(timeout=600)
    log["resume"] = {"rc": p.returncode, "out": out, "err": err, "mtimes": _mtimes(killed, KEPT)}
    out, err = full.communicate(timeout=600)
    log["full"] = {"rc": full.returncode, "out": out, "err": err}
    (d / "log.json").write_text(json.dumps(log))
    assert log["full"]["rc"] == 0, err
    return d


def _log(work: Path) -> dict:
    return json.loads((work / "log.json").read_text())


def _candidate(work: Path, genotype: str):
    from edgenas.train.run import make_candidate

    return make_candidate(str(work / "cfg.yaml"), genotype)


def _litert_ref(model: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def _top1(model: bytes, ds) -> float:
    """Percentage of samples whose argmax of the file's (dequantised) output is the label."""
    it = _litert_ref(model)
    (inp,) = it.get_input_details()
    (outp,) = it.get_output_details()
    correct = 0
    for i in range(len(ds)):
        x, label = ds[i]
        x = x.permute(1, 2, 0).numpy()[None]
        if inp["dtype"] == np.int8:
            s, z = inp["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], x)
        it.invoke()
        correct += int(np.argmax(it.get_tensor(outp["index"])[0]) == int(label))
    return 100.0 * correct / len(ds)


def _params_macs(model: bytes) -> tuple[int, int]:
    """Weights + biases and multiply-accumulates of the file's conv / depthwise / fully connected ops."""
    it = _litert_ref(model)
    t = {d["index"]: d for d in it.get_tensor_details()}
    params = macs = 0
    for op in it._get_ops_details():
        ins = [t[i]["shape"] for i in op["inputs"] if i >= 0]
        out = int(np.prod(t[op["outputs"][0]]["shape"]))
        name = op["op_name"]
        if name == "CONV_2D":
            macs += out * int(np.prod(ins[1][1:]))
        elif name == "DEPTHWISE_CONV_2D":
            macs += out * int(ins[1][1] * ins[1][2])
        elif name == "FULLY_CONNECTED":
            macs += int(np.prod(ins[1]))
        else:
            continue
        params += sum(int(np.prod(s)) for s in ins[1:])
    return params, macs


def test_every_stage_runs_once_and_the_chosen_design_is_the_fronts_best(work: Path) -> None:
    state = _state(work / "full")
    assert [(n, e["status"], e["starts"]) for n, e in state["stages"].items()] == \
        [(n, "done", 1) for n in ("search", "train", "prune", "quantize", "export")]
    with open(work / "full" / "search" / "front.csv") as f:
        rows = list(csv.DictReader(f))
    best = min(rows, key=lambda r: (float(r["sram_kib"]), int(r["trial"])))
    run = json.loads((work / "full" / "train" / "run.json").read_text())
    assert run["genotype"] == {"stage_block": best["stage_block"]}
    assert state["stages"]["search"]["outputs"]["arch_id"] == best["arch_id"] == run["identity"]["arch_id"]


def test_int8_figures_are_the_files(work: Path, tmp_path: Path) -> None:
    state = _state(work / "full")
    model = (work / "full" / "quantize" / "model_int8.tflite").read_bytes()
    assert (work / "full" / "export" / "model_int8.tflite").read_bytes() == model
    c = _candidate(work, state["stages"]["train"]["outputs"]["genotype"])
    q, e = state["stages"]["quantize"]["figures"], state["stages"]["export"]["figures"]
    assert q["metric"] == e["metric"] == pytest.approx(_top1(model, c.task.eval_data(c.resolution)), abs=1e-9)
    assert (q["params"], q["macs"]) == (e["params"], e["macs"]) == _params_macs(model)
    assert q["model_bytes"] == len(model)
    assert e["model_bytes"] == (work / "full" / "export" / "model_int8_vela.tflite").stat().st_size
    subprocess.run([VELA, str(work / "full" / "quantize" / "model_int8.tflite"), "--accelerator-config", PROFILE,
                    "--output-dir", str(tmp_path)], capture_output=True, check=True)
    with open(next(tmp_path.glob("model_int8_summary_*.csv"))) as f:
        (row,) = list(csv.DictReader(f))
    for fig in (q, e):
        assert fig["fps"] == pytest.approx(float(row["inferences_per_second"]), rel=1e-5)
        assert fig["sram_kib"] == pytest.approx(float(row["sram_memory_used"]), rel=1e-5)


def test_float_figures(work: Path) -> None:
    import torch

    from edgenas.export.ptq import to_float_tflite
    from edgenas.graph.channels import pruned_graph
    from edgenas.train.builder import GraphModule

    state = _state(work / "full")
    c = _candidate(work, state["stages"]["train"]["outputs"]["genotype"])
    val = c.task.eval_data(c.resolution)
    for name in ("train", "prune"):  # each stage's float32 file (BatchNorm folded) in LiteRT's reference kernels
        f = state["stages"][name]["figures"]
        widths = state["stages"][name]["outputs"].get("widths")
        module = GraphModule(pruned_graph(c.graph(), widths) if widths else c.graph())
        module.load_state_dict(torch.load(work / "full" / name / "best.pt", weights_only=True)["model"])
        fp32 = to_float_tflite(module.eval())
        assert f["model_bytes"] == len(fp32)
        assert (f["params"], f["macs"]) == _params_macs(fp32)
        assert f["metric"] == pytest.approx(_top1(fp32, val), abs=100 / len(val) + 1e-9)  # one sample may differ
    t, p = state["stages"]["train"]["figures"], state["stages"]["prune"]["figures"]
    assert p["params"] < t["params"] and p["macs"] < t["macs"]
    report = (work / "full" / "report.md").read_text()
    for name in ("search", "train", "prune", "quantize", "export"):
        f = state["stages"][name]["figures"]
        (line,) = [ln for ln in report.splitlines() if ln.startswith(f"| {name} | 16x16 |")]
        assert f"| {f['params']:,} | {f['macs']:,} |" in line and f"| {f['sram_kib']:.1f} |" in line


def test_sigterm_stops_the_search_and_its_child(work: Path) -> None:
    s = _log(work)["sigterm"]
    assert s["rc"] == 143, s["err"]
    assert not s["child_alive"], s["err"]
    assert [(n, e["status"]) for n, e in s["state"]["stages"].items()] == [("search", "running")], s["state"]


def test_sigkill_in_prune_resumes_there_and_keeps_what_was_done(work: Path) -> None:
    import torch

    log = _log(work)
    k = log["sigkill"]
    assert k["rc"] == -signal.SIGKILL
    assert {n: e["status"] for n, e in k["state"]["stages"].items()} == \
        {"search": "done", "train": "done", "prune": "running"}
    r = log["resume"]
    assert r["rc"] == 0, r["err"]
    assert r["mtimes"] == k["mtimes"]  # search and train files untouched
    assert "search: done before" in r["err"] and "train: done before" in r["err"]
    assert "prune: resuming the interrupted stage" in r["err"]
    state = _state(work / "killed")
    assert {n: e["starts"] for n, e in state["stages"].items()} == \
        {"search": 2, "train": 1, "prune": 2, "quantize": 1, "export": 1}
    # the resumed fine-tune ends with the uninterrupted run's weights, and so with its files
    a = torch.load(work / "killed" / "prune" / "best.pt", weights_only=True)["model"]
    b = torch.load(work / "full" / "prune" / "best.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert (work / "killed" / "export" / "model_int8_vela.tflite").read_bytes() == \
        (work / "full" / "export" / "model_int8_vela.tflite").read_bytes()


def _has_qat() -> bool:
    try:
        import edgenas.export.qat  # noqa: F401
    except ImportError:
        return False
    return True


def test_changed_settings_redo_that_stage_and_the_later_ones(work: Path, tmp_path: Path) -> None:
    """The quantize stage changes (fewer calibration samples, and QAT where edgenas has it)."""
    shutil.copy(work / "cfg.yaml", tmp_path)
    shutil.copytree(work / "full", tmp_path / "full")  # copy2: mtimes kept
    qat = ", qat: {epochs: 1}" if _has_qat() else ""
    (tmp_path / "pipe.yaml").write_text(PIPE.replace("calibration_samples: 32", f"calibration_samples: 16{qat}"))
    before = _mtimes(tmp_path / "full", [*KEPT, "prune/best.pt"])
    r = subprocess.run([EDGENAS, "pipeline", "pipe.yaml"], cwd=tmp_path, env=_env(work), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "quantize: settings changed since the last run" in r.stderr
    assert _mtimes(tmp_path / "full", [*KEPT, "prune/best.pt"]) == before
    state = _state(tmp_path / "full")
    assert {n: e["starts"] for n, e in state["stages"].items()} == \
        {"search": 1, "train": 1, "prune": 1, "quantize": 2, "export": 2}
    q = state["stages"]["quantize"]
    assert q["outputs"]["calibration_samples"] == 16
    model = (tmp_path / "full" / "quantize" / "model_int8.tflite").read_bytes()
    assert model != (work / "full" / "quantize" / "model_int8.tflite").read_bytes()
    assert (tmp_path / "full" / "export" / "model_int8.tflite").read_bytes() == model
    c = _candidate(work, state["stages"]["train"]["outputs"]["genotype"])
    assert q["figures"]["metric"] == pytest.approx(_top1(model, c.task.eval_data(c.resolution)), abs=1e-9)
    if qat:
        assert q["outputs"]["qat_epochs"] == 1 and q["outputs"]["metric_qat"] == q["figures"]["metric"]
        assert "Quantisation-aware training (1 epoch(s))" in (tmp_path / "full" / "report.md").read_text()


# ---- refusals -----------------------------------------------------------------------------------------------

def _pipe(stages: str, head: str = "config: cfg.yaml\n") -> str:
    return f"{head}stages:\n{stages}"


_TRAIN = "  - {stage: train, epochs: 1}\n"
BAD = {  # name -> (file text, text the error line must name)
    "unknown_stage": (_pipe(_TRAIN + "  - {stage: distil}\n"), "stages[1].stage"),
    "unknown_field": (_pipe(_TRAIN + "  - {stage: prune, ratio: 0.5}\n"), "stages[1].ratio"),
    "quantize_before_prune": (_pipe(_TRAIN + "  - {stage: quantize}\n  - {stage: prune}\n"), "stages[2].stage"),
    "export_without_quantize": (_pipe(_TRAIN + "  - {stage: export}\n"), "stages[1].stage"),
    "twice": (_pipe(_TRAIN + _TRAIN), "stages[1].stage"),
    "keep_ratio": (_pipe(_TRAIN + "  - {stage: prune, keep_ratio: 1.5}\n"), "stages[1].keep_ratio"),
    "train_override": (_pipe("  - {stage: train, epochs: 0}\n"), "stages[0].epochs"),
    "finetune_override": (_pipe(_TRAIN + "  - {stage: prune, finetune: {lr: -1}}\n"), "stages[1].finetune.lr"),
    "qat_epochs": (_pipe(_TRAIN + "  - {stage: quantize, qat: {epochs: 0}}\n"), "stages[1].qat.epochs"),
    "no_weights": (_pipe("  - {stage: quantize}\n"), "checkpoint"),
    "no_config": ("out: o\nstages:\n" + _TRAIN, "config"),
    "missing_config": (_pipe(_TRAIN, "config: nope.yaml\n"), "config"),
    "genotype_and_search": (_pipe("  - {stage: search}\n", "config: cfg.yaml\ngenotype: stage_block=conv3x3\n"),
                            "genotype"),
    "bad_genotype": (_pipe(_TRAIN, "config: cfg.yaml\ngenotype: stage_block=conv9x9\n"), "genotype"),
    "hardware": (_pipe(_TRAIN, "config: cfg.yaml\nhardware: no-such-npu\n"), "hardware"),
    "no_stages": ("config: cfg.yaml\nstages: []\n", "stages"),
    "search_then_prune": (_pipe("  - {stage: search}\n  - {stage: prune}\n", "config: cfg.yaml\ncheckpoint: x.pt\n"),
                          "stages"),
    "choose": (_pipe("  - {stage: search, choose: {metric: fps, direction: up}}\n"), "stages[0].choose.direction"),
    "search_hardware": (_pipe("  - {stage: search}\n", "config: cfg.yaml\nhardware: ethos-u55-256\n"), "hardware"),
    "search_section": (_pipe("  - {stage: search, strategy: no_such_strategy}\n"), "stages[0]"),
    "out_taken": (_pipe(_TRAIN, "config: cfg.yaml\nout: taken\n"), "out"),
}

_COMMANDS = """
import contextlib, io, json, sys
from edgenas.cli import main
got = {}
for name in json.loads(sys.argv[1]):
    sys.argv = ["edgenas", "pipeline", f"{name}.yaml"] + ([] if name == "out_taken" else ["--out", f"out_{name}"])
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    got[name] = [code, err.getvalue()]
print(json.dumps(got))
"""


def test_bad_pipeline_files_exit_2_naming_the_field_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    for name, (text, _) in BAD.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = subprocess.run([sys.executable, "-c", _COMMANDS, json.dumps(list(BAD))], cwd=tmp_path, env=_env(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for name, (_, field) in BAD.items():
        code, err = got[name]
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and err.startswith(f"edgenas: error: {name}.yaml: "), (name, err)
        assert f": {field}" in err, (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, no temporary file
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]


def test_without_a_genotype_the_checkpoints_network_is_taken(work: Path) -> None:
    """A pipeline from trained weights (no train stage) and no `genotype:` takes the checkpoint's network,
    as `edgenas evaluate` and `export` do, not the space's default."""
    from edgenas.export.pipeline import load_pipeline

    trained = json.loads((work / "full" / "train" / "run.json").read_text())["identity"]["genotype"]
    (work / "from_ckpt.yaml").write_text(_pipe("  - {stage: quantize}\n",
                                               "config: cfg.yaml\ncheckpoint: full/train/best.pt\n"))
    p = load_pipeline(work / "from_ckpt.yaml", out=work / "out_from_ckpt")
    assert p.genotype == trained


def test_the_example_is_valid() -> None:
    from edgenas.export.pipeline import load_pipeline

    p = load_pipeline(ROOT / "examples" / "pipeline_digits.yaml", "/nonexistent/out")
    assert [s.name for s in p.stages] == ["search", "train", "prune", "quantize", "export"]
