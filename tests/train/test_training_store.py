"""The training store (train/store.py): a training finished under one space, config or command is reused by
another that asks for the same network, data, recipe and seed, and what it hands back is what training would
have produced (checked against the same training run with the store off, tensor for tensor). What must not
be reused is not: another seed or recipe, data from a user's files, `--init-from`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from edgenas.cli import app
from edgenas.space.space import load_space
from edgenas.train import store
from edgenas.train.trainer import load_checkpoint

EDGENAS = str(Path(sys.executable).parent / "edgenas")
SPACE_A = """name: store_a
network: stages
input_channels: 1
resolutions: [16x16]
widths: {stem: 4, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage0_block: [conv3x3, dsconv3x3]
  stage1_block: [mbconv_e4, conv3x3]
hardware: [ethos-u55-128]
task: {type: digits-hard, train_samples: 48, val_samples: 32}
train: {epochs: 2, batch_size: 16, threads: 1, eval_every: 2}  # as bench-proxies' reference
"""
# the same networks named by another space: stage1_block fixed at A's default instead of searched, so the
# space key, the arch_id and the genotype text all differ while the network is the same
SPACE_B = SPACE_A.replace("name: store_a", "name: store_b").replace(
    "  stage1_block: [mbconv_e4, conv3x3]\n", "").replace("hardware:", "fixed: {stage1_block: mbconv_e4}\nhardware:")


def cli(args: list[str], cwd: Path, env: dict[str, str], *, with_log: bool = False) -> str:
    """stdout of a successful command; with_log: stderr (the progress log) before it."""
    r = subprocess.run([EDGENAS, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert r.returncode == 0, f"edgenas {' '.join(args)}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    return r.stderr + r.stdout if with_log else r.stdout


@pytest.fixture
def spaces(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(SPACE_A)
    (tmp_path / "b.yaml").write_text(SPACE_B)
    return tmp_path


def env_with(tmp_path: Path, store_dir: str) -> dict[str, str]:
    return {**os.environ, "EDGENAS_TRAIN_STORE": store_dir, "EDGENAS_DATA_CACHE": str(tmp_path / "cache"),
            "COLUMNS": "200"}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_the_same_network_under_another_space_is_reused_and_equals_training_it(spaces: Path) -> None:
    tmp = spaces
    a, b = load_space(str(tmp / "a.yaml")), load_space(str(tmp / "b.yaml"))
    ga, gb = a.parse_genotype("stage0_block=dsconv3x3"), b.parse_genotype("stage0_block=dsconv3x3")
    assert ga.arch_id != gb.arch_id and a.space_key != b.space_key
    assert a.build(ga, (16, 16)).structure_fingerprint() == b.build(gb, (16, 16)).structure_fingerprint()

    on = env_with(tmp, str(tmp / "store"))
    cli(["train", "a.yaml", "-g", "stage0_block=dsconv3x3", "--out", "ra", "--no-progress"], tmp, on)
    assert len(list((tmp / "store").iterdir())) == 1  # kept once finished
    said = cli(["train", "b.yaml", "-g", "stage0_block=dsconv3x3", "--out", "rb", "--no-progress"], tmp, on)
    assert "reused from the training store" in said
    run_b = json.loads((tmp / "rb" / "run.json").read_text())
    assert run_b["status"] == "done" and run_b["reused"]["identity"]["space"] == "store_a"
    assert run_b["identity"]["arch_id"] == gb.arch_id  # named as B names it

    # the independent truth: B's network trained for real, with the store off
    off = env_with(tmp, "off")
    cli(["train", "b.yaml", "-g", "stage0_block=dsconv3x3", "--out", "rb_trained", "--no-progress"], tmp, off)
    trained = json.loads((tmp / "rb_trained" / "run.json").read_text())
    assert "reused" not in trained
    got, want = weights(tmp / "rb" / "best.pt"), weights(tmp / "rb_trained" / "best.pt")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert run_b["history"] == trained["history"] and run_b["best_metric"] == trained["best_metric"]
    # the reused checkpoint is B's to use: evaluate accepts it under B and measures what training gave
    ev = json.loads(cli(["evaluate", "b.yaml", "-c", "rb/best.pt", "--json"], tmp, off))
    assert ev[trained["primary"]] == pytest.approx(trained["best_metric"], rel=1e-6)

    # another seed or another recipe is another training
    cli(["train", "b.yaml", "-g", "stage0_block=dsconv3x3", "--seed", "1", "--out", "rb_s1", "--no-progress"], tmp, on)
    cli(["train", "b.yaml", "-g", "stage0_block=dsconv3x3", "--epochs", "1", "--out", "rb_e1", "--no-progress"],
        tmp, on)
    for d in ("rb_s1", "rb_e1"):
        assert "reused" not in json.loads((tmp / d / "run.json").read_text())
    assert len(list((tmp / "store").iterdir())) == 3
    # starting from other weights is never kept nor served
    cli(["train", "b.yaml", "-g", "stage0_block=dsconv3x3", "--init-from", "rb/best.pt", "--out", "rb_init",
         "--no-progress"], tmp, on)
    assert "reused" not in json.loads((tmp / "rb_init" / "run.json").read_text())
    assert len(list((tmp / "store").iterdir())) == 3


def test_bench_proxies_and_train_share_trainings(spaces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = spaces
    monkeypatch.setenv("EDGENAS_TRAIN_STORE", str(tmp / "store"))
    monkeypatch.setenv("EDGENAS_DATA_CACHE", str(tmp / "cache"))
    (tmp / "list.txt").write_text("stage0_block=dsconv3x3\nstage0_block=conv3x3\n")
    out = tmp / "bench.json"
    args = ["bench-proxies", str(tmp / "a.yaml"), "--genotypes", str(tmp / "list.txt"), "--out", str(out),
            "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    runs = out.with_suffix(".runs")
    arch = load_space(str(tmp / "a.yaml")).parse_genotype("stage0_block=dsconv3x3").arch_id
    ref = json.loads((runs / f"{arch}-ref-s0.json").read_text())
    assert "reused" not in ref and ref["recipe"]["eval_every"] == ref["recipe"]["epochs"] == 2
    # a stand-alone training of the reference's network, recipe and seed (A's `train:` section: 2 epochs,
    # validation at the end) is the reference's training, done once
    said = cli(["train", "a.yaml", "-g", "stage0_block=dsconv3x3", "--seed", "0", "--out", "alone", "--no-progress"],
               tmp, env_with(tmp, str(tmp / "store")))
    assert "reused from the training store" in said
    alone = json.loads((tmp / "alone" / "run.json").read_text())
    assert alone["best_metric"] == ref["best_metric"] and alone["history"] == ref["history"]
    # the bench run again from scratch reuses every training it did, at the cost of the training that made it
    for p in runs.glob("*.json"):
        p.unlink()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    again = json.loads((runs / f"{arch}-ref-s0.json").read_text())
    assert again["reused"]["store_key"] and again["metric"] == ref["metric"]
    assert 0 < again["cpu_seconds"] <= ref["cpu_seconds"]  # the trainer's share of the unit that trained it


def test_key_and_what_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"epochs": 2, "seed": 0, "lr": 0.01, "checkpoint_every": 50, "threads": 1}
    key = store.training_key("s", {"t": 1}, base, threads=1, device="cpu", torch_version="2")
    assert key == store.training_key("s", {"t": 1}, {**base, "checkpoint_every": 7, "threads": None}, threads=1,
                                     device="cpu", torch_version="2")
    for changed in ({**base, "seed": 1}, {**base, "epochs": 3}, {**base, "lr": 0.02}):
        assert store.training_key("s", {"t": 1}, changed, threads=1, device="cpu", torch_version="2") != key
    assert store.training_key("s2", {"t": 1}, base, threads=1, device="cpu", torch_version="2") != key
    assert store.training_key("s", {"t": 2}, base, threads=1, device="cpu", torch_version="2") != key
    assert store.training_key("s", {"t": 1}, base, threads=2, device="cpu", torch_version="2") != key

    from edgenas.train.tasks.classification import DigitsHardTask, NpzTask

    monkeypatch.setenv("EDGENAS_TRAIN_STORE", str(tmp_path / "store"))
    hard = DigitsHardTask()
    assert store.reusable(hard, "cpu", distributed=False)
    assert not store.reusable(hard, "cuda", distributed=False)
    assert not store.reusable(hard, "cpu", distributed=True)
    assert not store.reusable(hard, "cpu", distributed=False, init_from="w.pt")
    assert not store.reusable(NpzTask.__new__(NpzTask), "cpu", distributed=False)  # a user's files
    monkeypatch.setenv("EDGENAS_TRAIN_STORE", "off")
    assert store.store_dir() is None and not store.reusable(hard, "cpu", distributed=False)

    monkeypatch.setenv("EDGENAS_TRAIN_STORE", str(tmp_path / "store"))
    best = tmp_path / "best.pt"
    torch.save({"model": {"w": torch.ones(2)}, "identity": {}}, best)
    first = {"result": {"n": 1}, "data": {"d": 1}, "params": 3, "source": {"config": "a.yaml"}}
    entry = store.put("k1", best, **first)
    assert store.lookup("k1") == entry and store.read_record(entry) == first
    torch.save({"model": {"w": torch.zeros(2)}, "identity": {}}, best)
    assert store.put("k1", best, **{**first, "result": {"n": 2}}) == entry  # a key held is kept as it was
    assert store.read_record(entry) == first
    assert torch.equal(torch.load(entry / store.BEST_FILE, weights_only=True)["model"]["w"], torch.ones(2))
    assert store.put("k2", tmp_path / "missing.pt", **first) is None and store.lookup("k2") is None
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["k1"]  # no temporary folder left


def test_study_counts_what_it_took_from_the_store(spaces: Path) -> None:
    """`study --train` under B after `train` under A: the network both name is taken from the store and said
    so (log line and summary), the other is trained."""
    tmp = spaces
    on = env_with(tmp, str(tmp / "store"))
    cli(["train", "a.yaml", "-g", "stage0_block=dsconv3x3", "--out", "ra", "--no-progress"], tmp, on)
    said = cli(["study", "b.yaml", "--train", "--out", "st", "--jobs", "1", "--no-cache"], tmp, on, with_log=True)
    assert "trained 1 (0 resumed), 1 taken from the training store, 0 finished before" in said, said[-1500:]
    b = load_space(str(tmp / "b.yaml"))
    took = tmp / "st" / "train" / f"{b.parse_genotype('stage0_block=dsconv3x3').arch_id}-s0"
    assert json.loads((took / "run.json").read_text())["reused"]["identity"]["space"] == "store_a"
    assert any("stage0_block=dsconv3x3" in line and "training store:" in line for line in said.splitlines())
