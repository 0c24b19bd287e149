"""`edgenas study --train` end to end on a tiny flow space (3 trained networks, 32x48, 16 samples, 2 epochs):
a study interrupted in its second network (Ctrl-C and SIGTERM reach the trainer as KeyboardInterrupt)
keeps its folder; the same study again reuses the finished network (not retrained: files untouched),
resumes the interrupted one and trains the rest; accuracy.csv and the report (EN and ZH, the same numbers)
hold them all (the HTML in headless Chromium shows the CSV's figures); `edgenas report` on the folder
includes them; bad input is one line, exit 2."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

EDGENAS = str(Path(sys.executable).with_name("edgenas"))
EXAMPLES = Path(__file__).parents[2] / "examples"

TINY = f"""
extends: {EXAMPLES / 'seed_head_upsample.yaml'}
name: tiny_accuracy
hardware: [ethos-u55-256]
resolutions: [32x48, 64x96]
widths: {{stem: 4, encoder: 8, encoder_units: 2, head0: 8, head1: 4, head2: 4}}
choices:
  backbone: [shufflenet]
  head1_block: [conv3x3, dsconv3x3, conv5x5]
  predict_kernel: [7, 3]
report: {{key_resolution: 64x96}}
task: {{type: flow, train_samples: 16, val_samples: 8}}
train: {{resolution: 32x48, epochs: 2, batch_size: 4, threads: 1, checkpoint_every: 1}}
study:
  train:
    - head1_block: [conv3x3, dsconv3x3]
    - predict_kernel: 3
"""
CHOICES = ("backbone", "head1_block", "predict_kernel")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def console() -> Any:
    from rich.console import Console

    return Console(file=io.StringIO(), width=400, color_system=None)


def lines(c: Any) -> list[str]:
    return c.file.getvalue().splitlines()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The study stopped in its second network, then run again; what each run did."""
    import edgenas.train.run as run_mod
    from edgenas.study import run_study

    tmp = tmp_path_factory.mktemp("study_train")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp / "run"
    real = run_mod.train_candidate
    calls: list[tuple[str, bool]] = []
    interrupt = [True]  # in the first run only

    def interrupting(c: Any, out_dir: Path, *, resume: bool = False, on_progress: Any = None, **kw: Any) -> Any:
        calls.append((out_dir.name, resume))
        if len(calls) != 2 or not interrupt[0]:
            return real(c, out_dir, resume=resume, on_progress=on_progress, **kw)

        def stop(p: Any) -> None:
            if on_progress is not None:
                on_progress(p)
            if p.epoch == 1 and p.step == 2:  # mid-epoch 2: Ctrl-C as the trainer sees it
                raise KeyboardInterrupt

        return real(c, out_dir, resume=resume, on_progress=stop, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGENAS_DATA_CACHE", str(tmp / "data"))
        mp.setattr(run_mod, "train_candidate", interrupting)
        kw = {"n_jobs": 1, "cache_path": tmp / "cache.sqlite", "train": True}
        log1 = console()
        with pytest.raises(KeyboardInterrupt):
            run_study(str(cfg), out, console=log1, **kw)  # type: ignore[arg-type]
        first = {"calls": list(calls), "log": lines(log1), "folders": sorted(p.name for p in (out / "train").iterdir()),
                 "accuracy": read_csv(out / "accuracy.csv"),
                 "files": sorted(str(p.relative_to(out)) for p in (out / "train").rglob("*") if p.is_file())}
        stamps = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "train").rglob("*") if p.is_file()}
        calls.clear()
        interrupt[0] = False
        log2 = console()
        files = run_study(str(cfg), out, console=log2, **kw)  # type: ignore[arg-type]
    return {"cfg": cfg, "out": out, "first": first, "stamps": stamps,
            "second": {"calls": list(calls), "log": lines(log2)}, "files": files}


def test_interrupted_study_keeps_what_it_finished(runs: dict[str, Any]) -> None:
    first = runs["first"]
    (a, _), (b, b_resume) = first["calls"]
    assert not b_resume and first["folders"] == sorted([a, b])  # the third network never started
    files = first["files"]
    assert f"train/{a}/result.json" in files and f"train/{b}/result.json" not in files
    assert f"train/{b}/checkpoint.pt" in files  # written on the way out: what resumes
    assert [r["arch_id"] + "-s" + r["seed"] for r in first["accuracy"]] == [a]
    assert any("training 3 network(s)" in line for line in first["log"])


def test_rerun_reuses_finished_resumes_unfinished(runs: dict[str, Any]) -> None:
    (a, _), (b, _) = runs["first"]["calls"]
    second = runs["second"]["calls"]
    assert second[0] == (b, True) and len(second) == 2 and not second[1][1]  # a is not trained again
    assert any(f"{a.split('-')[0]}" in line and "finished before" in line for line in runs["second"]["log"])
    assert "trained 2 (1 resumed), 0 taken from the training store, 1 finished before" in runs["second"]["log"]
    out = runs["out"]
    for rel, stamp in runs["stamps"].items():
        if rel.parts[1] == a:  # nothing of the finished network was rewritten
            assert (out / rel).stat().st_mtime_ns == stamp, rel
    import json

    hist = json.loads((out / "train" / b / "run.json").read_text())
    assert hist["status"] == "done" and [h["epoch"] for h in hist["history"]] == [1, 2]


def test_accuracy_csv_and_report(runs: dict[str, Any]) -> None:
    out = runs["out"]
    rows = read_csv(out / "accuracy.csv")
    assert len(rows) == 3 and {r["seed"] for r in rows} == {"0"}
    for r in rows:
        assert r["train_resolution"] == "32x48" and r["deploy_resolution"] == "64x96" and r["epochs"] == "2"
        assert float(r["epe_train"]) > 0 and float(r["epe_deploy"]) > 0 and r["fl_all_train"] != ""
        assert r["train_samples"] == "16" and float(r["seconds"]) > 0
    assert {(r["head1_block"], r["predict_kernel"]) for r in rows} == {("conv3x3", "7"), ("dsconv3x3", "7"),
                                                                       ("conv3x3", "3")}
    md = (out / "report.md").read_text()
    assert "## Accuracy of the trained designs" in md and "2 epoch(s) x 16 synthetic training samples at 32x48" in md
    base = next(r for r in rows if (r["head1_block"], r["predict_kernel"]) == ("conv3x3", "7"))
    assert re.search(rf"\| \*\*shufflenet \+ conv3x3 \+ 7\*\* \| \*\*[\d,.]+\*\* \| \*\*[\d,.]+\*\* \| "
                     rf"\*\*{float(base['epe_train']):.3f}\*\* \| \*\*{float(base['epe_deploy']):.3f}\*\*", md)
    assert "seed noise unknown: no verdict" in md  # one seed each


TABLES_JS = """Array.from(document.querySelectorAll('main table'), t => ({
  caption: (document.getElementById(t.id + '-caption') || {}).textContent || '',
  cols: Array.from(t.tHead.rows[0].cells, c => c.textContent),
  rows: Array.from(t.tBodies[0].rows, r => Array.from(r.cells, c => c.textContent))}))"""


def test_html_in_chromium_shows_the_csv_figures(runs: dict[str, Any]) -> None:
    from browser import Browser, require_chromium

    require_chromium()
    out = runs["out"]
    with Browser() as b:
        b.open(out / "report.html")
        images = b.evaluate("Array.from(document.images, i => ({complete: i.complete, w: i.naturalWidth}))")
        tables = b.evaluate(TABLES_JS)
    assert len(images) == len(list(out.glob("*.png"))) and all(i["complete"] and i["w"] > 0 for i in images)
    (acc,) = [t for t in tables if t["caption"].startswith("EPE of every trained design")]
    assert acc["cols"][:4] == ["design", "seeds", "EPE 32x48", "EPE 64x96"]
    shown = {r[0]: (r[2], r[3]) for r in acc["rows"]}
    for r in read_csv(out / "accuracy.csv"):
        label = " + ".join(r[c] for c in CHOICES)
        assert shown[label] == (f"{float(r['epe_train']):.3f}", f"{float(r['epe_deploy']):.3f}"), label


class _Numbers(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._td = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._td = tag == "td"

    def handle_endtag(self, tag: str) -> None:
        self._td = self._td and tag != "td"

    def handle_data(self, data: str) -> None:
        if self._td and re.fullmatch(r"[+\-]?[\d,]+(\.\d+)?[%*x]?", data.strip()):
            self.cells.append(data.strip())


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGENAS, *args], capture_output=True, text=True, timeout=300, env=env, check=False)


def test_report_command_includes_the_accuracy_in_both_languages(runs: dict[str, Any], tmp_path: Path) -> None:
    out = runs["out"]
    r = cli("report", str(out / "results.csv"), "--out", str(tmp_path / "zh"), "--lang", "zh", "--config",
            str(runs["cfg"]))
    assert r.returncode == 0, r.stderr
    zh = (tmp_path / "zh" / "report.html").read_text()
    assert "已训练设计的精度" in zh and (tmp_path / "zh" / "accuracy.csv").exists()
    en, cn = _Numbers(), _Numbers()
    en.feed((out / "report.html").read_text())
    cn.feed(zh)
    assert en.cells == cn.cells and len(en.cells) > 60


def test_bad_input_one_line_exit_2(runs: dict[str, Any], tmp_path: Path) -> None:
    no_task = tmp_path / "no_task.yaml"
    no_task.write_text(re.sub(r"task: .*\n", "", TINY))
    bad_entry = tmp_path / "bad.yaml"
    bad_entry.write_text(TINY.replace("- predict_kernel: 3", "- predict_kernel: 9"))
    for cfg, needle in ((no_task, "task: --train needs a `task:` section"),
                        (bad_entry, "study.train[1].predict_kernel: 9 is not an option; allowed: 7, 3")):
        r = cli("study", str(cfg), "--train", "--out", str(tmp_path / "x"))
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "x").exists()
    r = cli("report", str(runs["out"] / "results.csv"), "--out", str(tmp_path / "y"), "--accuracy",
            str(tmp_path / "nope.csv"))
    assert r.returncode == 2 and "nope.csv: file not found" in r.stderr
