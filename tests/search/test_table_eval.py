"""The table evaluator (a CSV of known metrics) and the NAS-Bench-201 cell space."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from edgenas.errors import ConfigError
from edgenas.search.table_eval import TableEvaluator
from edgenas.space.genotype import Genotype
from edgenas.space.nb201 import NB201, NB201_EDGES, NB201_OPS, arch_string, builtin_table_spaces, parse_arch

ROOT = Path(__file__).resolve().parents[2]
# The benchmark tables live in shared/ beside the repository (../shared), or inside it on some checkouts.
NB201_CSV = next((p / "benchmarks" / "nb201_pi5.csv" for p in (ROOT.parent / "shared", ROOT / "shared")
                  if (p / "benchmarks" / "nb201_pi5.csv").exists()), ROOT.parent / "shared/benchmarks/nb201_pi5.csv")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- table evaluator ----------------------------------------------------------------------------------------
def test_lookup_counts_distinct_found_architectures(tmp_path: Path) -> None:
    t = write(tmp_path / "t.csv", "arch,acc,lat,extra\na,90,1.5,x\nb,91,2.5,y\nc,80,0.5,z\n")
    ev = TableEvaluator(t, "arch", ["acc", "lat"])
    assert len(ev) == 3 and ev.archs() == ["a", "b", "c"] and "a" in ev
    assert ev.lookup("a") == {"acc": 90.0, "lat": 1.5}
    assert ev.lookup("a") == {"acc": 90.0, "lat": 1.5}
    assert ev.lookup("zzz") is None  # not in the table: nothing measured, nothing spent
    assert ev.peek("b") == {"acc": 91.0, "lat": 2.5}  # ground truth: free
    assert ev.lookups == 1 and ev.looked_up() == {"a"}
    ev.lookup("c")
    assert ev.lookups == 2
    assert ev.column("lat") == {"a": 1.5, "b": 2.5, "c": 0.5}
    ev.reset()
    assert ev.lookups == 0


def test_missing_columns_name_the_file_the_missing_and_the_available(tmp_path: Path) -> None:
    t = write(tmp_path / "t.csv", "arch,acc,lat\na,90,1.5\n")
    with pytest.raises(ConfigError) as e:
        TableEvaluator(t, "arch", ["acc", "energy", "sram"])
    msg = str(e.value)
    assert "\n" not in msg and str(t) in msg
    assert "energy, sram" in msg and "arch, acc, lat" in msg
    with pytest.raises(ConfigError, match="missing column.*cell"):
        TableEvaluator(t, "cell", ["acc"])


def test_duplicate_keys_identical_rows_kept_once_conflicting_rows_refused(tmp_path: Path) -> None:
    same = write(tmp_path / "same.csv", "arch,acc\na,90\nb,80\na,90\n")
    assert TableEvaluator(same, "arch", ["acc"]).archs() == ["a", "b"]
    clash = write(tmp_path / "clash.csv", "arch,acc\na,90\nb,80\na,91\n")
    with pytest.raises(ConfigError, match=r"line 4: arch 'a' repeats line 2 with other values"):
        TableEvaluator(clash, "arch", ["acc"])


@pytest.mark.parametrize("text,match", [
    ("", "empty file"),
    ("arch,acc\n", "no rows"),
    ("arch,acc\na,ninety\n", "line 2: column acc is 'ninety', not a number"),
    ("arch,acc\na,nan\n", "NaN"),
    ("arch,acc\na,1,2\n", "line 2: 3 fields"),
])
def test_bad_tables_are_one_line_errors(tmp_path: Path, text: str, match: str) -> None:
    t = write(tmp_path / "t.csv", text)
    with pytest.raises(ConfigError, match=match) as e:
        TableEvaluator(t, "arch", ["acc"])
    assert "\n" not in str(e.value) and str(t) in str(e.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the table"):
        TableEvaluator(tmp_path / "absent.csv", "arch", ["acc"])
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="not a UTF-8"):
        TableEvaluator(tmp_path / "bin.csv", "arch", ["acc"])


def test_evaluate_gives_measurements_and_genotypes_go_through_the_key(tmp_path: Path) -> None:
    g = NB201.default
    t = write(tmp_path / "t.csv", f"arch,acc\n{arch_string(g)},93.5\n")
    ev = TableEvaluator(t, "arch", ["acc"], key=arch_string)
    m = ev.evaluate(g)
    assert m.ok and m.metrics == {"acc": 93.5} and m.provenance["evaluator"] == "table"
    other = NB201.mutate(g, random.Random(0))
    bad = ev.evaluate(other)
    assert not bad.ok and "is not in" in bad.error
    with pytest.raises(ConfigError, match="without a genotype -> key"):
        TableEvaluator(t, "arch", ["acc"]).evaluate(g)


# ---- the NB201 space -------------------------------------------------------------------------------------------
def test_nb201_space_interface() -> None:
    s = builtin_table_spaces()["nb201"]
    assert s is NB201 and s.size() == 5 ** 6 == 15625
    assert list(s.choices) == list(NB201_EDGES) == ["e01", "e02", "e12", "e03", "e13", "e23"]
    assert all(list(v) == list(NB201_OPS) for v in s.choices.values())
    all_g = list(s.enumerate())
    assert len(all_g) == 15625 and len({g.arch_id for g in all_g}) == 15625
    assert all(s.contains(g) for g in all_g[:50])
    # the ResNet cell of the NAS-Bench-201 paper is the default
    assert arch_string(s.default) == "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
    rng = random.Random(3)
    for _ in range(50):
        g = s.sample(rng)
        child = s.mutate(g, rng)
        assert s.contains(child)
        assert sum(g[e] != child[e] for e in NB201_EDGES) == 1
    assert not s.contains(Genotype.of({"e01": "none"}, s.space_key))
    assert not s.contains(Genotype.of(s.default.as_dict(), "other-space"))
    with pytest.raises(ConfigError, match="table-only"):
        s.build(s.default, (32, 32))


def test_nb201_genotype_text_and_arch_string_agree() -> None:
    text = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    g = parse_arch(text)
    assert g["e01"] == "avg_pool_3x3" and g["e02"] == "nor_conv_1x1" and g["e12"] == "skip_connect"
    assert g["e03"] == "nor_conv_1x1" and g["e13"] == "skip_connect" and g["e23"] == "skip_connect"
    assert NB201.parse_genotype(text) == g == NB201.parse_genotype(str(g))
    assert NB201.genotype({"e12": "none"})["e12"] == "none"
    with pytest.raises(ConfigError, match="not an edge"):
        NB201.genotype({"e99": "none"})
    with pytest.raises(ConfigError, match="not an op"):
        NB201.genotype({"e01": "conv7x7"})


@pytest.mark.parametrize("bad", [
    "", "|none~0|", "|none~0|+|none~0|none~1|", "|none~0|+|none~0|none~1|+|none~0|none~1|",
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "none~0+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|x~0|",
])
def test_malformed_arch_strings_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="not an NB201 arch string"):
        parse_arch(bad)


@pytest.mark.skipif(not NB201_CSV.exists(), reason="shared/benchmarks/nb201_pi5.csv not present")
def test_arch_string_round_trip_for_every_row_of_the_benchmark() -> None:
    with NB201_CSV.open(newline="") as f:
        archs = [row["arch"] for row in csv.DictReader(f)]
    assert len(archs) == 15625
    genotypes = [parse_arch(a) for a in archs]
    assert [arch_string(g) for g in genotypes] == archs
    assert {g.arch_id for g in genotypes} == {g.arch_id for g in NB201.enumerate()}
