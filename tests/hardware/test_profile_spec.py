"""`NAME:field=value,...` profile specs: one profile with changed fields, named after the spec."""

from __future__ import annotations

import pytest

from edgenas.errors import ConfigError
from edgenas.hardware.profile import load_profile, load_profile_spec


def test_spec_changes_fields_and_names_the_profile() -> None:
    p = load_profile_spec("ethos-u55-256:sram_kib=1024")
    base = load_profile("ethos-u55-256")
    assert p.name == "ethos-u55-256:sram_kib=1024"
    assert p.sram_kib == 1024 and p.arena_cache_kib == 1024  # the arena follows the SRAM unless given
    assert (p.accelerator_config, p.system_config, p.memory_mode) == (
        base.accelerator_config, base.system_config, base.memory_mode)
    q = load_profile_spec("ethos-u55-256:sram_kib=4096,arena_cache_kib=2048,name=big")
    assert (q.name, q.sram_kib, q.arena_cache_kib) == ("big", 4096, 2048)
    assert load_profile_spec("ethos-u55-256") == base


@pytest.mark.parametrize("spec,needle", [
    ("ethos-u55-256:sram=3", "unknown profile field 'sram'; allowed: name"),
    ("ethos-u55-256:sram_kib", "expected FIELD=VALUE"),
    ("ethos-u55-256:sram_kib=-5", "sram_kib"),
    ("ethos-u55-256:arena_cache_kib=9999", "exceeds sram_kib"),
])
def test_bad_specs(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_profile_spec(spec)
