"""Channel widths as choice points (`choices: {widths.head1: [16, 24, 32]}`): the chosen width builds the
network, errors name the field, genotype text round-trips, and spaces without width choices keep the ids
they had (measurement caches and committed genotype lists are keyed by them)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml

from edgenas.errors import ConfigError
from edgenas.space.config import BUILTIN_DIR
from edgenas.space.space import load_space

SEED = BUILTIN_DIR / "flow_head_upsample.yaml"
ROOT = Path(__file__).resolve().parents[2]


def _space(tmp_path: Path, edit, name: str = "s.yaml"):
    data = yaml.safe_load(SEED.read_text())
    edit(data)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def _with_width_choices(d: dict) -> None:
    d["choices"]["widths.head1"] = [16, 24, 32]
    d["choices"]["widths.head2"] = [8, 16]


def _conv_out(graph, name: str) -> int:
    return next(op for op in graph.ops if op.name == name).attrs["out_channels"]


def test_the_chosen_width_builds_the_network(tmp_path: Path) -> None:
    s = load_space(_space(tmp_path, _with_width_choices))
    assert s.size() == 28 * 3 * 2
    g = s.genotype({"widths.head1": 24, "widths.head2": 8})
    graph = s.build(g, (120, 160))
    assert _conv_out(graph, "head1.block.conv") == 24 and _conv_out(graph, "head2.block.conv") == 8
    assert _conv_out(graph, "head0.block.conv") == 64  # not searched: the widths: value
    assert s.widths_of(g)["head1"] == 24 and "widths.head1" not in s.params(g)
    # the same network as a space that fixes those widths under widths:
    fixed = load_space(_space(tmp_path, lambda d: d["widths"].update(head1=24, head2=8), "f.yaml"))
    ref = fixed.build(fixed.genotype({}), (120, 160))
    assert [(op.name, op.kind, op.attrs) for op in graph.ops] == [(op.name, op.kind, op.attrs) for op in ref.ops]
    assert graph.macs == ref.macs


def test_genotype_text_round_trips_and_the_interface_works(tmp_path: Path) -> None:
    s = load_space(_space(tmp_path, _with_width_choices))
    g = s.parse_genotype("backbone=resnet,widths.head1=24")  # typed on a command line: strings
    assert g["widths.head1"] == 24 and "widths.head1=24" in str(g)
    assert s.parse_genotype(str(g)) == g and g.arch_id == s.parse_genotype(str(g)).arch_id
    every = list(s.enumerate())
    assert len(every) == s.size() == len({x.arch_id for x in every})
    assert {x["widths.head1"] for x in every} == {16, 24, 32}
    rng = random.Random(0)
    seen = set()
    for _ in range(60):
        x = s.sample(rng)
        assert s.contains(x)
        seen.add(x["widths.head2"])
        m = s.mutate(x, rng)
        assert s.contains(m) and sum(1 for k in x if x[k] != m[k]) == 1
    assert seen == {8, 16}
    with pytest.raises(ConfigError, match=r"genotype.widths.head1: .*allowed: 16, 24, 32"):
        s.parse_genotype("widths.head1=20")


def test_tied_width_copies_the_choice(tmp_path: Path) -> None:
    def edit(d):
        d["choices"]["widths.head1"] = [16, 32]
        d["tied"]["widths.head2"] = "widths.head1"

    s = load_space(_space(tmp_path, edit))
    graph = s.build(s.genotype({"widths.head1": 32}), (120, 160))
    assert _conv_out(graph, "head2.block.conv") == 32


def test_stride_check_covers_every_width_option(tmp_path: Path) -> None:
    """`stages` sets the stride of the stages template: 3 stages need 16, 4 stages 32."""
    text = ("name: st\nnetwork: stages\ninput_channels: 1\nresolutions: [{res}]\nwidths: {{stem: 4}}\n"
            "choices: {{widths.stages: [2, 3, 4], stage_block: [conv3x3]}}\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(text.format(res="64x64"))
    s = load_space(ok)
    assert s.stride == 32
    s.build(s.genotype({"widths.stages": 4}), (64, 64))
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.format(res="48x48"))  # 48 divides by 16 (3 stages) but not by 32 (4 stages)
    with pytest.raises(ConfigError, match=r"resolutions\[0\]: 48x48 is not divisible by the network's total "
                                          r"stride 32"):
        load_space(bad)


BAD = {
    "unknown width": (lambda d: d["choices"].update({"widths.neck": [8]}), "choices.widths.neck[0]",
                      "unknown width; allowed: stem, encoder"),
    "zero": (lambda d: d["choices"].update({"widths.head1": [16, 0]}), "choices.widths.head1[1]",
             "positive integer"),
    "not an integer": (lambda d: d["choices"].update({"widths.head1": ["wide"]}), "choices.widths.head1[0]",
                       "positive integer"),
    "bool": (lambda d: d["choices"].update({"widths.head1": [True]}), "choices.widths.head1[0]",
             "positive integer"),
    "over the limit": (lambda d: d["choices"].update({"widths.encoder_units": [2, 300]}),
                       "choices.widths.encoder_units[1]", "at most 256"),
    "over the dimension": (lambda d: d["choices"].update({"widths.head1": [70000]}), "choices.widths.head1[0]",
                           "at most 65535"),
    "fixed width": (lambda d: d["fixed"].update({"widths.head1": 16}), "fixed.widths.head1", "under widths:"),
    "tied to a block": (lambda d: d["tied"].update({"widths.head2": "head1_block"}), "tied.widths.head2",
                        "positive integer"),
    "unknown parameter": (lambda d: d["choices"].update({"colour": [1]}), "choices.colour[0]",
                          "widths.<width>"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_width_choice_is_one_clear_line(tmp_path: Path, case: str) -> None:
    edit, field, needle = BAD[case]
    p = _space(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        load_space(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p)), msg
    assert f": {field}: " in msg and needle in msg, msg


def test_ids_of_spaces_without_width_choices_are_unchanged() -> None:
    """The space key is still the documented fingerprint (sha256 of the canonical JSON of network, input
    channels, widths, fixed and tied), and two ids pinned from the code before width choices existed
    (commit c9ba99e) still come out: caches keyed by arch_id keep their entries."""
    s = load_space("flow_head_upsample")
    c = s.config
    blob = json.dumps({"network": c.network, "in": c.input_channels, "widths": s.widths, "fixed": c.fixed,
                       "tied": c.tied}, sort_keys=True, default=str)
    assert s.space_key == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert s.space_key == "990d3b145e2aa633"
    assert s.default.arch_id == "cb15da7dd7bf"


def test_searched_width_is_named_by_the_genotype_not_by_the_widths_value(tmp_path: Path) -> None:
    """The `widths:` value a choice replaces does not change the ids: the same network, the same arch_id."""
    a = load_space(_space(tmp_path, _with_width_choices, "a.yaml"))
    b = load_space(_space(tmp_path, lambda d: (_with_width_choices(d), d["widths"].update(head1=99)), "b.yaml"))
    assert a.space_key == b.space_key
    assert a.genotype({"widths.head1": 24}).arch_id == b.genotype({"widths.head1": 24}).arch_id
    assert a.genotype({"widths.head1": 24}).arch_id != a.genotype({"widths.head1": 16}).arch_id


def test_committed_genotype_lists_are_unchanged() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "genotypes" / "make_lists.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
