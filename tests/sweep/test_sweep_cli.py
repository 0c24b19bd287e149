"""`edgenas sweep` / `measure` / `hardware show` end to end, checked against the `vela` CLI itself."""

from __future__ import annotations

import csv
import json
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
EDGENAS = str(BIN / "edgenas")
VELA = str(BIN / "vela")
RES = "64x96"
REQUIRED = ("resolution", "hardware", "fps", "cycles_total", "cycles_npu", "sram_kib", "offchip_flash_kib",
            "dram_kib", "offchip_flash_access_cycles", "npu_ops", "cpu_ops", "macs", "params",
            "peak_activation_kib", "over_sram", "over_flash", "fps_complete", "status", "error", "arch_id")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([EDGENAS, *args], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"edgenas {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def read_csv(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def vela_summary(model: Path, profile: str, out: Path) -> dict[str, str]:
    args = shlex.split(run("hardware", "show", profile, "--vela-args").stdout)
    subprocess.run([VELA, str(model), *args, "--output-dir", str(out)], check=True, capture_output=True)
    (summary,) = out.glob("*_summary_*.csv")
    return read_csv(summary)[0]


def close(a: float, b: float, rel: float = 1e-4) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sweep")
    out, cache, tfl = d / "results.csv", d / "cache.sqlite", d / "tflite"
    r = run("sweep", "flow_head_upsample", "-r", RES, "-j", "2", "--cache", str(cache), "--out", str(out),
            "--save-tflite", str(tfl), "--layers", str(d / "layers.csv"))
    assert "28 compiled" in r.stderr
    return {"dir": d, "out": out, "cache": cache, "tflite": tfl, "layers": d / "layers.csv"}


def test_csv_has_one_ok_row_per_network_with_required_columns(swept: dict[str, Path]) -> None:
    rows = read_csv(swept["out"])
    assert len(rows) == 28
    assert set(REQUIRED) <= set(rows[0])
    assert {r["status"] for r in rows} == {"ok"}
    assert len({r["arch_id"] for r in rows}) == 28
    assert {(r["backbone"], r["head1_block"]) for r in rows} == {
        (b, h) for b in ("shufflenet", "mbconv_e4", "mbconv_e6", "resnet")
        for h in ("conv3x3", "dsconv3x3", "conv5x5", "conv7x7", "mbconv_e4", "mbconv_e6", "shuffle")}
    for r in rows:  # the fit verdict follows from the row's own figures and the profile's 2048 KiB
        assert (r["over_sram"] == "true") == (float(r["sram_kib"]) > 2048)
        assert r["fps_complete"] == ("true" if r["cpu_ops"] == "0" else "false")
    assert {p.name for p in swept["tflite"].iterdir()} == {f"{r['arch_id']}_{RES}.tflite" for r in rows}
    layers = read_csv(swept["layers"])
    for r in rows[:5]:  # per-layer cycles add up to the total
        mine = [int(x["cycles"]) for x in layers if x["arch_id"] == r["arch_id"]]
        assert sum(mine) == int(r["cycles_total"])


@pytest.mark.parametrize("pick", [0, 11, 27])
def test_row_equals_vela_cli_on_the_saved_file(swept: dict[str, Path], pick: int, tmp_path: Path) -> None:
    row = read_csv(swept["out"])[pick]
    model = swept["tflite"] / f"{row['arch_id']}_{RES}.tflite"
    s = vela_summary(model, "ethos-u55-256", tmp_path)
    assert close(float(row["fps"]), float(s["inferences_per_second"]))
    assert close(float(row["cycles_total"]), float(s["cycles_total"]))
    assert close(float(row["cycles_npu"]), float(s["cycles_npu"]))
    assert close(float(row["sram_kib"]), float(s["sram_memory_used"]))
    assert close(float(row["offchip_flash_kib"]), float(s["off_chip_flash_memory_used"]), rel=1e-3)
    assert close(float(row["offchip_flash_access_cycles"]), float(s["cycles_off_chip_flash_access"]))


def test_rerun_compiles_nothing_and_gives_the_same_rows(swept: dict[str, Path]) -> None:
    again = swept["dir"] / "again.csv"
    r = run("sweep", "flow_head_upsample", "-r", RES, "--cache", str(swept["cache"]), "--out", str(again))
    assert "(0 compiled, 28 from cache" in r.stderr
    assert read_csv(again) == read_csv(swept["out"])


def test_measure_own_model_equals_sweep_row(swept: dict[str, Path]) -> None:
    row = read_csv(swept["out"])[3]
    model = swept["tflite"] / f"{row['arch_id']}_{RES}.tflite"
    (res,) = json.loads(run("measure", str(model), "--json").stdout)
    assert res["status"] == "ok"
    assert close(res["metrics"]["fps"], float(row["fps"]))
    assert close(res["metrics"]["sram_kib"], float(row["sram_kib"]))
    assert sum(layer["cycles"] for layer in res["layers"]) == res["metrics"]["cycles_total"]


def test_several_profiles_answer_how_much_sram(tmp_path: Path) -> None:
    base = Path(__file__).parents[2] / "src/edgenas/hardware/profiles/ethos-u55-256.yaml"
    files = []
    for kib in (256, 4096):
        p = tmp_path / f"u55_{kib}.yaml"
        p.write_text(base.read_text().replace("name: ethos-u55-256", f"name: u55-{kib}k")
                     .replace("sram_kib: 2048", f"sram_kib: {kib}"))
        files.append(str(p))
    out = tmp_path / "sram.csv"
    run("sweep", "flow_head_upsample", "-r", "120x160", "-H", files[0], "-H", "ethos-u55-256", "-H", files[1],
        "--no-cache", "--out", str(out))
    rows = read_csv(out)
    assert len(rows) == 28 * 3
    limit = {"u55-256k": 256, "ethos-u55-256": 2048, "u55-4096k": 4096}
    for r in rows:
        assert (r["over_sram"] == "true") == (float(r["sram_kib"]) > limit[r["hardware"]])
    by = {h: [r for r in rows if r["hardware"] == h] for h in limit}
    assert all(r["over_sram"] == "true" for r in by["u55-256k"])  # no network fits in 256 KiB at 120x160
    assert any(r["over_sram"] == "false" for r in by["ethos-u55-256"])


BAD_INPUTS = {
    "unknown profile": (["sweep", "flow_head_upsample", "-H", "ethos-u99", "--out", "{out}"],
                        "unknown hardware profile 'ethos-u99'"),
    "bad resolution": (["sweep", "flow_head_upsample", "-r", "150x200", "--out", "{out}"],
                       "not divisible by the network's total stride 4"),
    "unknown space": (["sweep", "no_such_space", "--out", "{out}"], "unknown space 'no_such_space'"),
    "missing yaml": (["sweep", "nothere.yaml", "--out", "{out}"], "nothere.yaml: file not found"),
    "not tflite": (["measure", "{text}"], "not a TFLite flatbuffer"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    args, needle = BAD_INPUTS[case]
    text = tmp_path / "notes.tflite"
    text.write_text("hello")
    out = tmp_path / "out.csv"
    r = run(*[a.format(out=out, text=text) for a in args], check=False)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not out.exists()


def test_killed_sweep_resumes_without_corrupt_rows(tmp_path: Path) -> None:
    cache, out = tmp_path / "c.sqlite", tmp_path / "r.csv"
    args = ["sweep", "flow_head_upsample", "-r", "120x160", "-r", "156x208", "-j", "2", "--cache", str(cache),
            "--out", str(out)]
    p = subprocess.Popen([EDGENAS, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(cache, timeout=5) as db:
                done = db.execute("SELECT count(*) FROM measurements").fetchone()[0]
        except sqlite3.Error:
            continue
        if done >= 10:
            break
    import os

    os.killpg(p.pid, signal.SIGKILL)  # the whole process group: the CLI and its workers
    p.wait()
    assert done >= 10 and not out.exists()
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = db.execute("SELECT count(*) FROM measurements").fetchone()[0]
    assert 10 <= kept < 56
    r = run(*args)
    assert f"({56 - kept} compiled, {kept} from cache, 0 failed" in r.stderr
    assert len(read_csv(out)) == 56


def test_measure_refuses_a_float_model(tmp_path: Path) -> None:
    from ethosu.vela.tflite import BuiltinOperator, TensorType

    from edgenas.tflite._fb import Assembler

    asm = Assembler()
    x = asm.add_tensor("x", (1, 8, 8, 4), TensorType.TensorType.FLOAT32, None)
    y = asm.add_tensor("y", (1, 8, 8, 4), TensorType.TensorType.FLOAT32, None)
    asm.add_operator(BuiltinOperator.BuiltinOperator.RELU, [x], [y])
    model = tmp_path / "float.tflite"
    model.write_bytes(asm.finish([x], [y]))
    r = run("measure", str(model), check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"edgenas: error: {model}: input tensor 'x' is FLOAT32; "
                                             + r.stderr.split("FLOAT32; ", 1)[1].strip()]


def test_show_prints_the_layer_table_of_the_ir() -> None:
    from edgenas.space.space import load_space

    r = run("show", "flow_head_upsample", "-g", "backbone=resnet,head1_block=mbconv_e4", "-r", "156x208")
    space = load_space("flow_head_upsample")
    graph = space.build(space.genotype({"backbone": "resnet", "head1_block": "mbconv_e4"}), (156, 208))
    for op in graph.ops:
        assert op.name in r.stdout
    assert f"total: {graph.macs:,} MACs, {graph.params:,} params" in r.stdout.replace("\n", " ")
