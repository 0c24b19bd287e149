"""Search spaces from YAML: the built-in seed space, the interface, and one-line errors for bad input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from edgenas.errors import ConfigError
from edgenas.space.config import BUILTIN_DIR
from edgenas.space.space import load_space

SEED = BUILTIN_DIR / "flow_head_upsample.yaml"


def test_seed_space_has_28_networks_at_6_resolutions() -> None:
    s = load_space("flow_head_upsample")
    assert s.size() == 28
    genotypes = list(s.enumerate())
    assert len(genotypes) == 28 and len({g.arch_id for g in genotypes}) == 28
    assert [f"{h}x{w}" for h, w in s.resolutions] == ["120x160", "156x208", "192x256", "264x352", "300x400",
                                                      "384x512"]
    assert str(s.default) == "backbone=shufflenet,head1_block=conv3x3"


def test_tied_head_uses_the_same_block() -> None:
    s = load_space("flow_head_upsample")
    g = s.genotype({"head1_block": "conv7x7"})
    graph = s.build(g, (120, 160))
    kernels = {op.name: op.attrs.get("kernel") for op in graph.ops}
    assert kernels["head1.block.conv"] == 7 and kernels["head2.block.conv"] == 7
    assert kernels["head0.block.conv"] == 3  # fixed


def test_untied_heads(tmp_path: Path) -> None:
    data = yaml.safe_load(SEED.read_text())
    del data["tied"]
    data["choices"]["head2_block"] = ["conv3x3", "dsconv3x3"]
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    s = load_space(p)
    assert s.size() == 28 * 2


def test_interface_sample_mutate_contains_are_seeded() -> None:
    s = load_space("flow_head_upsample")
    a = [s.sample(random.Random(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    g = s.default
    for seed in range(20):
        m = s.mutate(g, random.Random(seed))
        assert s.contains(m)
        assert sum(1 for k in g if g[k] != m[k]) == 1
    other = load_space("flow_head_upsample").genotype({})
    assert other.arch_id == g.arch_id


def test_arch_id_changes_with_widths(tmp_path: Path) -> None:
    data = yaml.safe_load(SEED.read_text())
    data["widths"]["head2"] = 24
    p = tmp_path / "w.yaml"
    p.write_text(yaml.safe_dump(data))
    assert load_space(p).default.arch_id != load_space(SEED).default.arch_id


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(SEED.read_text())
    mutate(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


BAD = {
    "unknown block": (lambda d: d["choices"]["head1_block"].append("conv9x9"), "choices.head1_block[7]",
                      "allowed: conv1x1, conv3x3"),
    "unknown option": (lambda d: d["fixed"].update(upsample="cubic"), "fixed.upsample",
                       "allowed: bilinear, bilinear_hpc, nearest, transposed_conv, depth_to_space"),
    "resolution stride": (lambda d: d.update(resolutions=["120x160", "150x200"]), "resolutions[1]",
                          "not divisible by the network's total stride 4"),
    "zero channels": (lambda d: d["widths"].update(head2=0), "widths.head2", "positive integer"),
    "negative channels": (lambda d: d.update(input_channels=-3), "input_channels", "greater than 0"),
    "unknown field": (lambda d: d.update(colour="red"), "colour", "unknown field; allowed: name"),
    "unknown width": (lambda d: d["widths"].update(neck=3), "widths.neck", "allowed: stem, encoder"),
    "bad resolution text": (lambda d: d.update(resolutions=["big"]), "resolutions", "HxW"),
    "unknown network": (lambda d: d.update(network="unet"), "network", "allowed: flow, stages"),
    "default not an option": (lambda d: d["default"].update(backbone="vgg"), "default.backbone",
                              "allowed: shufflenet"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_one_clear_line(tmp_path: Path, case: str) -> None:
    mutate, field, allowed = BAD[case]
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as e:
        load_space(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(p)), msg
    assert field in msg and allowed in msg, msg


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nchoices: [a, b\nresolutions: 1\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: malformed YAML at line \d+"):
        load_space(p)


def test_extends_merges_mappings_and_replaces_the_rest(tmp_path: Path) -> None:
    p = tmp_path / "study.yaml"
    p.write_text("extends: flow_head_upsample\nname: mine\nwidths: {head2: 24}\nresolutions: [120x160]\n"
                 "report: {key_resolution: 120x160}\n")
    s = load_space(p)
    base = load_space("flow_head_upsample")
    assert s.name == "mine" and s.resolutions == [(120, 160)]
    assert s.widths == {**base.widths, "head2": 24}
    assert s.config.fixed == base.config.fixed and s.config.tied == base.config.tied
    assert s.config.report == {"key_resolution": "120x160"}
    assert s.size() == base.size() and s.default.arch_id != base.default.arch_id  # widths differ


def test_extends_a_file_relative_to_the_extending_one(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(SEED.read_text())
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\n")
    assert load_space(tmp_path / "child.yaml").default.arch_id == load_space(SEED).default.arch_id


@pytest.mark.parametrize("text,needle", [
    ("extends: nothing_like_it\nname: x\n", "extends: unknown space 'nothing_like_it'"),
    ("extends: loop.yaml\nname: x\n", "extends itself"),
    ("extends: [a]\nname: x\n", "must name a built-in space or a YAML file"),
])
def test_bad_extends(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "loop.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_space(p)
