"""The `study:` section of `edgenas study --train`: entries validated with field-named errors, the plan (order,
no repeats, seeds, designs that do not fit skipped unless `over_device`), accuracy.csv written and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgenas.errors import ConfigError
from edgenas.space.space import load_space
from edgenas.train.study import parse_study_section, plan_training, read_accuracy_csv, write_accuracy_csv

SPACE = """\
extends: flow_head_upsample
name: plan_test
resolutions: [64x96]
choices:
  backbone: [shufflenet, resnet]
  head1_block: [conv3x3, dsconv3x3, shuffle]
  predict_kernel: [7, 3]
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory):
    p = tmp_path_factory.mktemp("plan") / "space.yaml"
    p.write_text(SPACE)
    return load_space(p)


def test_plan_in_order_with_seeds_and_skips(space) -> None:
    entries = parse_study_section({"train": [
        {"head1_block": ["conv3x3", "dsconv3x3", "shuffle"]},
        {"predict_kernel": 3, "seeds": [0, 1]},
        {"head1_block": "conv3x3"},  # a repeat: trained once
        {"backbone": "resnet", "head1_block": "shuffle", "over_device": True},
    ]}, space)
    fits = {g.arch_id: g["head1_block"] != "shuffle" for g in space.enumerate()}
    plan = plan_training(space, entries, default_seed=5, fits=fits)
    got = [(j.genotype["backbone"], j.genotype["head1_block"], j.genotype["predict_kernel"], j.seed) for j in plan.jobs]
    assert got == [("shufflenet", "conv3x3", 7, 5), ("shufflenet", "dsconv3x3", 7, 5), ("shufflenet", "conv3x3", 3, 0),
                   ("shufflenet", "conv3x3", 3, 1), ("resnet", "shuffle", 7, 5)]
    assert [(str(g), why) for g, why in plan.skipped] == [
        ("backbone=shufflenet,head1_block=shuffle,predict_kernel=7", "over_device")]
    assert plan.jobs[0].dirname == f"{plan.jobs[0].genotype.arch_id}-s5"
    everything = plan_training(space, (), default_seed=0, fits={**fits, plan.jobs[0].genotype.arch_id: True})
    assert len(everything.jobs) == 8 and len(everything.skipped) == 4  # no section: every design that fits
    unmeasured = plan_training(space, entries[:1], default_seed=0, fits={})
    assert not unmeasured.jobs and {why for _, why in unmeasured.skipped} == {"not_measured"}


@pytest.mark.parametrize("section,needle", [
    ({"colour": 1}, "study.colour: unknown setting; allowed keys: train"),
    ({"train": []}, "study.train: must be a non-empty list"),
    ({"train": ["conv3x3"]}, "study.train[0]: must be a mapping"),
    ({"train": [{"head": "conv3x3"}]}, ("study.train[0].head: not a choice of this space; allowed: backbone, "
                                        "head1_block, predict_kernel, seeds, over_device")),
    ({"train": [{"head1_block": ["conv3x3", "vgg"]}]}, "study.train[0].head1_block: 'vgg' is not an option"),
    ({"train": [{"predict_kernel": 3, "seeds": [0, "1"]}]}, "study.train[0].seeds: must be a list of integers"),
    ({"train": [{"backbone": "resnet", "over_device": "yes"}]}, "study.train[0].over_device: must be true or false"),
])
def test_bad_section_names_the_field(space, section: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_study_section(section, space)
    assert needle in str(e.value) and "space.yaml" in str(e.value)


def test_accuracy_csv_round_trip(tmp_path: Path) -> None:
    rows = [{"backbone": "resnet", "arch_id": "abc", "genotype": "backbone=resnet", "seed": 1, "status": "done",
             "metric": "epe", "higher_is_better": False, "epe_train": 1.23456789, "epe_deploy": 2.5,
             "fl_all_train": 3.0, "fl_all_deploy": None, "train_resolution": "48x64", "deploy_resolution": "192x256",
             "epochs": 6, "seconds": 12.5}]
    p = tmp_path / "accuracy.csv"
    write_accuracy_csv(p, ["backbone"], rows)
    (back,) = read_accuracy_csv(p)
    assert back["epe_train"] == "1.23457" and back["fl_all_deploy"] == "" and back["higher_is_better"] == "false"
    assert list(back)[:9] == ["backbone", "arch_id", "genotype", "seed", "status", "epe_train", "epe_deploy",
                              "fl_all_train", "fl_all_deploy"]
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="bad.csv: not an accuracy CSV: missing column"):
        read_accuracy_csv(tmp_path / "bad.csv")


def test_flow_accuracy_example_trains_with_the_flow_benchmarks_recipe_but_its_learning_rate() -> None:
    # examples/flow_accuracy.yaml says its recipe is the flow reference's (bench-proxies: the config's,
    # validation at the end) but for the learning rate (4e-3 where the reference moved to 1e-3), up to the
    # fields the store's key leaves out, on the same task (data, sizes, seed).
    from edgenas.train import store
    from edgenas.train.bench_proxies import make_settings
    from edgenas.train.run import load_training_config

    root = Path(__file__).resolve().parents[2]
    _, task_a, recipe_a = load_training_config(str(root / "examples" / "flow_accuracy.yaml"))
    _, task_b, _ = load_training_config(str(root / "benchmarks" / "flow_space.yaml"))
    ref = dict(make_settings(str(root / "benchmarks" / "flow_space.yaml"), preset="full").recipe)
    ref["eval_every"] = ref["epochs"]  # bench-proxies' reference units evaluate at the end (no early stopping)
    assert ref["patience"] is None
    keyed = {k: v for k, v in recipe_a.model_dump().items() if k not in store.NEUTRAL_FIELDS}
    assert (keyed.pop("lr"), ref.pop("lr")) == (0.004, 0.001)
    assert keyed == {k: v for k, v in ref.items() if k not in store.NEUTRAL_FIELDS}
    assert task_a.describe() == task_b.describe() and task_a.data_fixed_by_description
