"""`edgenas supernet train | evaluate | export` as a user runs them (digits at 8x8): a run, its table, an
export that `edgenas evaluate` scores the same, and bad input as one line with exit 2 and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import supernet_helpers as h
from supernet_helpers import cli

EDGENAS = str(Path(sys.executable).with_name("edgenas"))
G1 = "stage0_block=dsconv3x3,stage1_block=resnet,widths.units_per_stage=2"
G2 = "stage0_block=mbconv_e4,stage1_block=conv3x3"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sncli")
    h.write(d, h.DIGITS.replace("epochs: 2", "epochs: 1"))
    code, _, err = cli("supernet", "train", "cfg.yaml", "--out", "sn", "--no-progress", cwd=d)
    assert code == 0, err
    return d


def test_train_evaluate_export(work: Path) -> None:
    rec = json.loads((work / "sn" / "supernet.json").read_text())
    assert rec["status"] == "done" and rec["settings"]["strategy"] == "sandwich" and rec["store"]["slots"] > 10
    code, out, err = cli("supernet", "evaluate", "sn", "-g", G1, "-g", G2, "--json", cwd=work)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [x["arch_id"] for x in rows] and len(rows) == 2
    assert all(x["recalibration_seconds"] > 0 and x["score_seconds"] > 0 and 0 <= x["top1"] <= 100 for x in rows)
    code, out, _ = cli("supernet", "evaluate", "sn", "-g", G1, cwd=work)
    assert code == 0 and "BN recal s" in out and "top1" in out
    code, _, err = cli("supernet", "export", "sn", "-g", G1, "--out", "sub.pt", cwd=work)
    assert code == 0, err
    # the stand-alone command on the exported file, as a user runs it
    r = subprocess.run([EDGENAS, "evaluate", "cfg.yaml", "--checkpoint", "sub.pt", "--json"], cwd=work,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "EDGENAS_DATA_CACHE": str(work / "cache")})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["top1"] == pytest.approx(rows[0]["top1"])  # the same network, the same figure


def test_help_texts() -> None:
    r = subprocess.run([EDGENAS, "supernet", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "train" in r.stdout and "evaluate" in r.stdout and "export" in r.stdout
    r = subprocess.run([EDGENAS, "supernet", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "sandwich" in r.stdout and "--resume" in r.stdout
    r = subprocess.run([EDGENAS, "train", "--help"], capture_output=True, text=True)
    assert "--init-from" in r.stdout


def _one_line_exit_2(r: tuple[int, str, str], *needles: str) -> None:
    code, _, err = r
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgenas: error: "), err
    assert all(n in lines[0] for n in needles), lines[0]


@pytest.mark.parametrize("edit, needles", [
    (lambda t: t.replace("strategy: sandwich", "strategy: fair"),
     ("supernet.strategy", "'spos', 'sandwich' or 'sandwich-labels'")),
    (lambda t: t.replace("random: 1", "colour: 1"), ("supernet.colour", "allowed: strategy, random")),
    (lambda t: t.replace("random: 1", "resolutions: [8x16, 16x8]"), ("supernet.resolutions", "16x8 does not fit")),
    (lambda t: t.replace("random: 1", "resolutions: [12x12]"), ("supernet.resolutions[0]", "stride 8")),
], ids=["strategy", "unknown field", "larger resolution", "stride"])
def test_bad_supernet_section(tmp_path: Path, edit, needles) -> None:
    h.write(tmp_path, edit(h.DIGITS))
    _one_line_exit_2(cli("supernet", "train", "cfg.yaml", "--out", "out", cwd=tmp_path), "cfg.yaml", *needles)
    assert not (tmp_path / "out").exists()


def test_the_installed_command_exits_2_on_one_line(work: Path, tmp_path: Path) -> None:
    r = subprocess.run([EDGENAS, "supernet", "train", "cfg.yaml", "--out", str(tmp_path / "o"), "--strategy", "fair"],
                       cwd=work, capture_output=True, text=True, timeout=300)
    _one_line_exit_2((r.returncode, r.stdout, r.stderr), "--strategy", "allowed: spos, sandwich, sandwich-labels")
    assert not (tmp_path / "o").exists()


def test_bad_command_lines(work: Path, tmp_path: Path) -> None:
    _one_line_exit_2(cli("supernet", "train", str(work / "cfg.yaml"), "--out", str(tmp_path / "o"), "--strategy",
                         "fair", cwd=work), "--strategy", "allowed: spos, sandwich, sandwich-labels")
    assert not (tmp_path / "o").exists()
    _one_line_exit_2(cli("supernet", "evaluate", "sn", "-g", "stage0_block=shuffle", cwd=work),
                     "genotype.stage0_block", "allowed: conv3x3, dsconv3x3, mbconv_e4")
    _one_line_exit_2(cli("supernet", "evaluate", "sn", "-g", "depth=3", cwd=work), "genotype.depth", "not a choice")
    _one_line_exit_2(cli("supernet", "export", "sn", "-g", "stage1_block=x", "--out", str(tmp_path / "x.pt"),
                         cwd=work), "genotype.stage1_block")
    assert not (tmp_path / "x.pt").exists()
    _one_line_exit_2(cli("supernet", "evaluate", str(tmp_path), "-g", G1, cwd=work), "not a supernet folder")
    _one_line_exit_2(cli("supernet", "train", "cfg.yaml", "--out", "sn", "--resume", "--strategy", "spos",
                         cwd=work), "another strategy")


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace("stem: 4", "stem: 8"), "another space"),
    (lambda t: t.replace("val_fraction: 0.2", "val_fraction: 0.3"), "another task"),
], ids=["space", "task"])
def test_a_checkpoint_of_another_space_or_task_is_refused(work: Path, tmp_path: Path, edit, needle) -> None:
    """The config a supernet folder names has changed since: its checkpoint no longer fits."""
    import shutil

    shutil.copytree(work / "sn", tmp_path / "sn")
    cfg = h.write(tmp_path, edit(h.DIGITS.replace("epochs: 2", "epochs: 1")), "changed.yaml")
    meta = json.loads((tmp_path / "sn" / "supernet.json").read_text())
    (tmp_path / "sn" / "supernet.json").write_text(json.dumps({**meta, "config": str(cfg)}))
    _one_line_exit_2(cli("supernet", "evaluate", str(tmp_path / "sn"), "-g", G1, cwd=work), "checkpoint.pt", needle)
    _one_line_exit_2(cli("supernet", "export", str(tmp_path / "sn"), "-g", G1, "--out", str(tmp_path / "e.pt"),
                         cwd=work), needle)
    assert not (tmp_path / "e.pt").exists()
