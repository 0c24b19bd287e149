"""Few-shot (split) supernets: each part is exactly the one-shot supernet of the space with the split choice
pinned (trained separately from a config that pins it), genotypes are scored by their option's part, an
interrupted split run resumes to the same stores, and bad input is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import supernet_helpers as h
import torch

from edgenas.errors import ConfigError
from edgenas.train.supernet.evaluate import evaluate_subnets
from edgenas.train.supernet.run import load_supernet, make_setup, train_supernet
from edgenas.train.trainer import CHECKPOINT, load_checkpoint

torch.set_num_threads(1)

# 3 options of stage0_block, 3 epochs: each part trains 1 epoch
DIGITS = h.DIGITS.replace("epochs: 2", "epochs: 3")
PARTS = ["stage0_block=conv3x3", "stage0_block=dsconv3x3", "stage0_block=mbconv_e4"]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(folder / CHECKPOINT)["model"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fewshot")
    cfg = h.write(tmp, DIGITS)
    train_supernet(make_setup(str(cfg), strategy="spos", split="stage0_block"), tmp / "split")
    return tmp, tmp / "split"


def test_each_part_is_the_one_shot_supernet_of_the_pinned_space(split_run) -> None:
    tmp, split = split_run
    assert sorted(p.name for p in split.iterdir() if p.is_dir()) == PARTS
    # independent truth: a one-shot supernet trained from a config that lists only this option, for the
    # part's share of the epochs (ceil(3 / 3) = 1)
    pinned = DIGITS.replace("stage0_block: [conv3x3, dsconv3x3, mbconv_e4]", "stage0_block: [dsconv3x3]")
    cfg = h.write(tmp, pinned.replace("epochs: 3", "epochs: 1"), "pinned.yaml")
    train_supernet(make_setup(str(cfg), strategy="spos"), tmp / "pinned")
    assert same(weights(tmp / "pinned"), weights(split / "stage0_block=dsconv3x3"))
    # and the parts share nothing: another part's store has other shapes or other values
    assert not same(weights(split / "stage0_block=conv3x3"), weights(split / "stage0_block=dsconv3x3"))


def test_a_genotype_is_scored_by_its_options_part(split_run) -> None:
    _, split = split_run
    loaded = load_supernet(split)
    gs = ["stage0_block=dsconv3x3,stage1_block=resnet", "stage0_block=mbconv_e4,stage1_block=conv3x3"]
    whole = evaluate_subnets(loaded, gs)
    for text, row in zip(gs, whole):
        part = load_supernet(split / text.split(",")[0])  # the part folder, loaded on its own
        assert evaluate_subnets(part, [text])[0].metrics == row.metrics
    # a network whose option the split run holds as another part is served by that part, not this one
    with pytest.raises(ConfigError, match="stage0_block: .dsconv3x3. is not an option; allowed: conv3x3"):
        evaluate_subnets(load_supernet(split / PARTS[0]), [gs[0]])


def test_interrupted_split_run_resumes_to_the_same_stores(split_run, tmp_path) -> None:
    _, split = split_run
    cfg = h.write(tmp_path, DIGITS)
    seen = []

    def stop(p):
        seen.append(p)
        if len(seen) == 3 + 2:  # inside the second part (each part: 1 epoch of 3 steps here)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(make_setup(str(cfg), strategy="spos", split="stage0_block"), tmp_path / "cut",
                       on_progress=stop)
    assert load_supernet(split).meta["status"] == "done"
    with pytest.raises(ConfigError, match="not trained to the end"):
        load_supernet(tmp_path / "cut")
    with pytest.raises(ConfigError, match="already holds"):
        train_supernet(make_setup(str(cfg), strategy="spos", split="stage0_block"), tmp_path / "cut")
    res = train_supernet(make_setup(str(cfg), strategy="spos", split="stage0_block"), tmp_path / "cut", resume=True)
    for part in PARTS:
        assert same(weights(split / part), weights(tmp_path / "cut" / part)), part
    assert set(res.extra["parts"]) == set(PARTS)
    assert load_supernet(tmp_path / "cut").meta["identity"] == load_supernet(split).meta["identity"]


def test_bad_split_input(split_run, tmp_path) -> None:
    _, split = split_run
    cfg = h.write(tmp_path, DIGITS)
    for split_by, needle in (("depth", "not a choice with two or more options; allowed: stage0_block, "),
                             ("widths.stem", "not a choice")):
        with pytest.raises(ConfigError, match=needle) as e:
            make_setup(str(cfg), split=split_by)
        assert "\n" not in str(e.value) and "--split" in str(e.value)
    one = h.write(tmp_path, DIGITS.replace("supernet: {", "supernet: {split: nope, "), "one.yaml")
    with pytest.raises(ConfigError, match="supernet.split"):
        make_setup(str(one))
    # a split run resumed as one supernet, or split by another choice, is refused before any work
    with pytest.raises(ConfigError, match="split by stage0_block; pass --split stage0_block"):
        train_supernet(make_setup(str(cfg), strategy="spos"), split, resume=True)
    with pytest.raises(ConfigError, match="split by stage0_block, not by stage1_block"):
        train_supernet(make_setup(str(cfg), strategy="spos", split="stage1_block"), split, resume=True)


def test_cli_trains_evaluates_and_exports_a_split_supernet(tmp_path) -> None:
    cfg = h.write(tmp_path, DIGITS.replace("epochs: 3", "epochs: 1"))
    code, out, err = h.cli("supernet", "train", str(cfg), "--out", "sn", "--strategy", "spos", "--split",
                           "stage0_block", "--no-progress", cwd=tmp_path)
    assert code == 0, err
    assert "split by stage0_block" in out and "part 3/3: stage0_block=mbconv_e4" in err
    code, out, err = h.cli("supernet", "evaluate", "sn", "-g", "stage0_block=mbconv_e4", "--json", cwd=tmp_path)
    assert code == 0 and '"top1"' in out, err
    code, _, err = h.cli("supernet", "export", "sn", "-g", "stage0_block=mbconv_e4", "--out", "x.pt", cwd=tmp_path)
    assert code == 0, err
    exported = load_checkpoint(tmp_path / "x.pt")
    part = load_checkpoint(tmp_path / "sn" / "stage0_block=mbconv_e4" / CHECKPOINT)
    # the provenance is the part that served the genotype: its checkpoint and store, under the split's folder
    src = exported["supernet"]
    assert src["store"] == part["identity"]["store"] and src["part"] == "stage0_block=mbconv_e4"
    part_file = tmp_path / "sn" / "stage0_block=mbconv_e4" / CHECKPOINT
    assert (tmp_path / src["checkpoint"]).resolve() == part_file.resolve()
    assert (tmp_path / src["split"]).resolve() == (tmp_path / "sn").resolve()
    code, _, err = h.cli("supernet", "train", str(cfg), "--out", "sn2", "--split", "depth", cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "--split" in err and not (tmp_path / "sn2").exists()


def test_parts_of_other_settings_are_refused(split_run, tmp_path) -> None:
    """Resuming a finished split with other settings, part folders without the split's record, and a part
    retrained after the split ended: each one line, before any training."""
    import json
    import shutil

    _, split = split_run
    cfg = h.write(tmp_path, DIGITS)
    copy = tmp_path / "copy"
    shutil.copytree(split, copy)
    for kwargs, needle in ((dict(strategy="spos", lr=0.5), "train.lr differ"),
                           (dict(strategy="spos", epochs=6), "train.epochs differ"),
                           (dict(strategy="sandwich"), "strategy")):
        with pytest.raises(ConfigError, match=needle) as e:
            train_supernet(make_setup(str(cfg), split="stage0_block", **kwargs), copy, resume=True)
        assert "\n" not in str(e.value) and "stage0_block=conv3x3" in str(e.value)
    (copy / "supernet.json").unlink()
    with pytest.raises(ConfigError, match="holds a part folder"):
        train_supernet(make_setup(str(cfg), strategy="spos", split="stage0_block"), copy)
    # a part whose record changed after the split run ended (retrained, or copied in from another run)
    shutil.copy(split / "supernet.json", copy / "supernet.json")
    part = copy / PARTS[1] / "supernet.json"
    part.write_text(json.dumps({**json.loads(part.read_text()), "updated": 0.0}))
    with pytest.raises(ConfigError, match=f"part {PARTS[1]} is not the one this split run trained"):
        load_supernet(copy)
