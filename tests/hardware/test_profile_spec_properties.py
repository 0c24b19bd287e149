"""Property tests: any `NAME_OR_FILE[:field=value,...]` text gives a valid profile or one ConfigError on one line
that names the spec as typed; never another exception. A few cases also through the CLI (exit 2, one line)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgenas.errors import ConfigError
from edgenas.hardware.profile import HardwareProfile, list_profiles, load_profile_spec, profile_fields

EDGENAS = str(Path(sys.executable).parent / "edgenas")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from([*list_profiles(), "ethos-u99", "", " ", "generic", "../profiles/ethos-u55-256",
                         "ethos-u55-256.yaml", "nothere.yml", "a/b"])
FIELDS = st.sampled_from([*profile_fields(), "sram", "", " sram_kib ", "Name", "sram_kib=1"])
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["-5", "0", "1", "2048", "4096", "1e400", "1_000", "0x10", ".inf", "-.inf", ".nan", "nan",
                     "1.5", "2.0", "true", "no", "null", "~", "", " ", "[1, 2]", "{a: 1}", "[", "*a", "&a 1",
                     "!!python/object:os.system", "ethos-u55-256", "Shared_Sram", "Sram_Only", "/", "/etc/hostname",
                     "ethos-u55-256:x", "2020-01-01", "'5'", "\"x\"", "a\nb", "é", "\x00"]),
)
TEXT_VALUES = st.one_of(NUMBERS, st.text(max_size=12))


def _check(spec: str) -> None:
    """The property itself: a profile, or a one-line ConfigError naming the spec."""
    try:
        p = load_profile_spec(spec)
    except ConfigError as e:
        text = str(e)
        assert len(text.splitlines()) == 1 and "\n" not in text, text
        if spec.isprintable() and spec.strip():
            assert spec in text, (spec, text)
        return
    assert isinstance(p, HardwareProfile)
    assert p.name and p.sram_kib > 0 and p.arena_cache_kib <= p.sram_kib
    for f in ("core_clock_hz", "macs_per_cycle", "sram_bytes_per_cycle"):
        v = getattr(p, f)
        assert isinstance(v, float) and math.isfinite(v) and v > 0, (f, v)
    for f in ("flash_kib", "dram_kib"):
        v = getattr(p, f)
        assert v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0), (f, v)


@SETTINGS
@given(st.text(max_size=60))
@example("ethos-u55-256:sram_kib=-5")
@example(":sram_kib=5")
@example("")
@example("ethos-u55-256:vela_config=5")
@example("ethos-u55-256:sram_kib=true")
@example("ethos-u55-256:core_clock_hz=.inf")
@example("ethos-u55-256:sram_kib=100000000000000000000")
@example("ethos-u55-256:name=")
@example("ethos-u55-256:name=yes")
@example("ethos-u55-256:a\nb=1")
def test_any_text(spec: str) -> None:
    _check(spec)


@st.composite
def structured_specs(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(FIELDS, st.sampled_from(["=", "", "=="]), TEXT_VALUES), max_size=4))
    sep = draw(st.sampled_from([",", ", ", ",,"]))
    rest = sep.join(f"{k}{eq}{v}" for k, eq, v in parts)
    return f"{draw(NAMES)}{draw(st.sampled_from([':', ':', '::', '']))}{rest}"


@SETTINGS
@given(structured_specs())
def test_structured_specs(spec: str) -> None:
    _check(spec)


@SETTINGS
@given(st.sampled_from(["sram_kib", "flash_kib", "dram_kib", "arena_cache_kib", "core_clock_hz", "macs_per_cycle",
                        "sram_bytes_per_cycle", "host_cpu_macs_per_s"]), NUMBERS)
def test_one_numeric_field(field: str, value: str) -> None:
    _check(f"ethos-u55-256:{field}={value}")


def test_a_valid_spec_still_loads() -> None:
    p = load_profile_spec("ethos-u55-256:sram_kib=1024,name=1MiB")
    assert (p.name, p.sram_kib, p.arena_cache_kib) == ("1MiB", 1024, 1024)
    assert load_profile_spec("ethos-u55-256:name=yes").name == "yes"  # string fields keep the text as typed


@pytest.mark.parametrize("spec,needle", [
    ("ethos-u55-256:sram_kib=-5", "ethos-u55-256:sram_kib=-5: sram_kib: "),
    ("ethos-u55-256:sram_kib=true", "ethos-u55-256:sram_kib=true: sram_kib: "),
    ("ethos-u55-256:sram_kib=100000000000000000000", "at most"),
    ("ethos-u55-256:core_clock_hz=.inf", "finite"),
    ("ethos-u55-256:vela_config=5", "ethos-u55-256:vela_config=5: vela_config: "),
    (":sram_kib=5", "no profile name before ':'"),
    ("", "empty hardware profile spec"),
    ("ethos-u99:sram_kib=5", "ethos-u99:sram_kib=5: unknown hardware profile 'ethos-u99'"),
])
def test_errors_name_the_spec(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_profile_spec(spec)
    assert needle in str(e.value) and "site-packages" not in str(e.value) and "/profiles/" not in str(e.value)


@pytest.mark.parametrize("spec", ["ethos-u55-256:sram_kib=-5", "ethos-u55-256:sram_kib=1e400",
                                  "ethos-u55-256:flash_kib=x,sram_kib=1"])
def test_cli_exits_2_with_one_line_naming_the_spec(spec: str, tmp_path: Path) -> None:
    r = subprocess.run([EDGENAS, "sweep", "flow_head_upsample", "-H", spec, "--out", str(tmp_path / "o.csv")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert spec in r.stderr and "/profiles/" not in r.stderr, r.stderr
    assert not (tmp_path / "o.csv").exists()
