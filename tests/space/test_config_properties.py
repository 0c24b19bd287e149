"""Property tests: any file given as a space config (any YAML document, any text or bytes, or a real config with
fields dropped, retyped or added) gives a valid SearchSpace or one ConfigError on one line naming the file;
never another exception."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgenas.errors import ConfigError
from edgenas.space.config import BUILTIN_DIR
from edgenas.space.space import SearchSpace, load_space

EDGENAS = str(Path(sys.executable).parent / "edgenas")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON-like data, plus what YAML adds (dates come from text such as 2020-01-01).
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["192x256", "0x0", "7x9", "-4x8", "shufflenet", "conv3x3", "flow", "stages",
                              "flow_head_upsample", "ethos-u55-256", "head1_block", "backbone", "relu"]))
DATA = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=12)


def _real_configs() -> dict[str, dict[str, Any]]:
    out = {}
    for p in [*BUILTIN_DIR.glob("*.yaml"), *EXAMPLES.glob("*.yaml")]:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        if "stages" not in doc:  # a pipeline file (`edgenas pipeline`) names a space config, it is not one
            out[p.name] = doc
    return out


REAL = _real_configs()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the examples (so `extends: seed_head_upsample.yaml` resolves) and the file under test,
    beside a copy of benchmarks/ (so `extends: ../benchmarks/flow_space.yaml` resolves too)."""
    root = tmp_path_factory.mktemp("configs")
    d = root / "examples"
    only_yaml = lambda _, names: [n for n in names if not n.endswith(".yaml")]
    shutil.copytree(EXAMPLES, d, ignore=only_yaml)
    shutil.copytree(EXAMPLES.parent / "benchmarks", root / "benchmarks", ignore=only_yaml)
    return d


def _check(path: Path) -> None:
    """The property: a space that can build its default network, or a one-line ConfigError naming the file."""
    try:
        space = load_space(path)
        assert isinstance(space, SearchSpace)
        assert space.size() >= 1 and space.contains(space.default)
        assert space.default.arch_id
        space.build(space.default, space.resolutions[0])
    except ConfigError as e:
        text = str(e)
        assert len(text.splitlines()) == 1 and "\n" not in text, text
        assert str(path) in text, (str(path), text)


def _write_yaml(folder: Path, doc: Any) -> Path:
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@SETTINGS
@given(DATA)
@example({"name": "x", "resolutions": ["192x256"], "widths": {"a\nb": 1}})
@example({"name": "x", "resolutions": [[True, True]]})
@example({"extends": "/"})
@example({"extends": "flow_head_upsample", "fixed": {"activation": {"a": 1}}})
def test_any_yaml_document(folder: Path, doc: Any) -> None:
    _check(_write_yaml(folder, doc))


@SETTINGS
@given(st.text(max_size=200))
@example("[" * 600)  # deeper than PyYAML can compose (it recurses per level)
@example("a: 1\n---\nb: 2\n")
@example("name: x\nresolutions: [192x256]\nextends: !!python/name:os.system\n")
def test_any_text(folder: Path, text: str) -> None:
    path = folder / "cfg.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(path)


@SETTINGS
@given(st.binary(max_size=200))
@example(b"name: \xff\xfe\n")
def test_any_bytes(folder: Path, data: bytes) -> None:
    path = folder / "cfg.yaml"
    path.write_bytes(data)
    _check(path)


@st.composite
def mutated_real_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A real config (built-in or example) with one to three edits: drop, retype or add a field or sub-field."""
    doc = dict(REAL[draw(st.sampled_from(sorted(REAL)))])
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(doc) + ["unknown_field"]))
        op = draw(st.sampled_from(["drop", "retype", "drop_sub", "retype_sub", "add_sub", "list_item"]))
        value = doc.get(key)
        if op == "drop":
            doc.pop(key, None)
        elif op == "retype" or value is None:
            doc[key] = draw(DATA)
        elif isinstance(value, dict):
            value = dict(value)
            sub = draw(st.sampled_from(sorted(map(str, value)) + ["new"]))
            if op == "drop_sub":
                value.pop(sub, None)
            else:
                value[sub if op != "add_sub" else draw(st.text(max_size=6))] = draw(DATA)
            doc[key] = value
        elif isinstance(value, list):
            value = list(value)
            if value and op == "list_item":
                value[draw(st.integers(0, len(value) - 1))] = draw(DATA)
            else:
                value.append(draw(DATA))
            doc[key] = value
        else:
            doc[key] = draw(DATA)
    return doc


@SETTINGS
@given(mutated_real_configs())
@example({**REAL["flow_head_upsample.yaml"], "choices": {"backbone": [["shufflenet"]]}})
@example({**REAL["flow_head_upsample.yaml"], "default": {"backbone": {"a": 1}}})
@example({**REAL["flow_head_upsample.yaml"], "resolutions": ["4x4"]})
@example({**REAL["flow_head_upsample.yaml"], "widths": {"stem": 10**9}})
@example({**REAL["flow_head_upsample.yaml"], "widths": {"encoder_units": 10**9}})
@example({**REAL["mobilenet_stage.yaml"], "widths": {"stages": 10**18}})
def test_mutated_real_configs(folder: Path, doc: dict[str, Any]) -> None:
    _check(_write_yaml(folder, doc))


@pytest.mark.parametrize("change,needle", [
    ({"widths": {"stem": True}}, "widths.stem: must be an integer, got true"),
    ({"input_channels": True}, "input_channels: must be an integer, got true"),
    ({"resolutions": [[True, 8]]}, "resolution must be 'HxW' or [H, W]"),
    ({"resolutions": ["4294967296x8"]}, "at most 65535 per side"),
    ({"widths": {"encoder_units": 10**9}}, "widths.encoder_units: must be at most 256"),
    ({"widths": {"head0": 70000}}, "widths.head0: must be at most 65535"),
    ({"widths": {"a\nb": 1}}, "widths.a\\nb: unknown width"),
    ({"extends": "/"}, "extends: /: not a file"),
])
def test_bad_values_fixed_by_these_properties(folder: Path, change: dict[str, Any], needle: str) -> None:
    path = _write_yaml(folder, {**REAL["flow_head_upsample.yaml"], **change})
    with pytest.raises(ConfigError) as e:
        load_space(path)
    assert str(e.value).startswith(f"{path}: ") and needle in str(e.value), str(e.value)


def test_every_real_config_loads_unchanged(folder: Path) -> None:
    for name, doc in REAL.items():
        if "space" in doc:  # a table-only search config (`space: nb201`) is not a space of networks
            continue
        space = load_space(_write_yaml(folder, doc))
        assert space.size() >= 1, name


@pytest.mark.parametrize("content", [b"name: \xff\xfe\n", b"[" * 600, b"extends: /\n",
                                     b"extends: flow_head_upsample\nwidths: {\"a\\nb\": 1}\n"])
def test_cli_exits_2_with_one_line_naming_the_file(content: bytes, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(content)
    r = subprocess.run([EDGENAS, "sweep", str(cfg), "--out", str(tmp_path / "o.csv")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(cfg) in r.stderr and not (tmp_path / "o.csv").exists(), r.stderr
