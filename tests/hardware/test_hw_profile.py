"""Hardware profiles: built-ins, defaults read from the compiler's vela.ini, clear config errors."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest
from ethosu.vela import architecture_features as af
from hw_models import DRAM_INI

from edgenas.errors import ConfigError
from edgenas.hardware import (
    DEFAULT_PROFILE,
    list_profiles,
    load_profile,
    memory_layout,
    profile_from_mapping,
    vela_cli_args,
)

VELA_INI = os.path.join(af.CONFIG_FILES_PATH, "Arm", "vela.ini")
BUILTINS = [
    "ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
    "ethos-u65-256", "ethos-u65-512", "ethos-u85-256", "generic-mcu",
]  # fmt: skip


def _ini() -> configparser.ConfigParser:
    cp = configparser.ConfigParser()
    cp.read(VELA_INI)
    return cp


def test_builtin_list() -> None:
    assert list_profiles() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_with_values_from_vela_ini(name: str) -> None:
    p = load_profile(name)
    assert p.name == name
    assert p.description and p.sram_kib > 0 and p.arena_cache_kib == p.sram_kib
    if p.evaluator == "analytic":
        assert p.accelerator_config is None
        return
    ini = _ini()
    section = "System_Config." + str(p.system_config)
    assert p.core_clock_hz == float(ini[section]["core_clock"])
    # U55 AXI ports are 8 bytes/cycle, U65/U85 16; scaled by ports used and the memory's clock scale.
    port = 8.0 if "u55" in str(p.accelerator_config) else 16.0
    sram = port * float(ini[section].get("Sram_ports_used", "1")) * float(ini[section]["Sram_clock_scale"])
    assert p.sram_bytes_per_cycle == sram
    axi1 = ini[section]["axi1_port"]
    if axi1 == "OffChipFlash":
        assert p.flash_kib and p.dram_bytes_per_cycle is None
        assert p.flash_bytes_per_cycle == port * float(ini[section]["OffChipFlash_clock_scale"])
    else:
        assert p.dram_kib and p.flash_bytes_per_cycle is None
        assert p.dram_bytes_per_cycle == port * float(ini[section]["Dram_clock_scale"])
    assert p.macs_per_cycle == int(str(p.accelerator_config).rsplit("-", 1)[1])
    assert p.host_cpu_macs_per_s and p.host_cpu_macs_per_s > 0


def test_default_profile() -> None:
    p = load_profile()
    assert DEFAULT_PROFILE == p.name == "ethos-u55-256"
    assert (p.sram_kib, p.system_config, p.memory_mode) == (2048, "Ethos_U55_High_End_Embedded", "Shared_Sram")


def test_u65_dedicated_sram_matches_its_memory_mode() -> None:
    p = load_profile("ethos-u65-256")
    assert p.memory_mode == "Dedicated_Sram_384KB" and p.arena_cache_kib == 384
    lay = memory_layout(p)
    assert (lay.weights, lay.feature_maps, lay.staging) == ("Dram", "Dram", "Sram")


def test_cli_args() -> None:
    p = load_profile("ethos-u55-256")
    assert vela_cli_args(p) == [
        "--accelerator-config", "ethos-u55-256", "--system-config", "Ethos_U55_High_End_Embedded",
        "--memory-mode", "Shared_Sram", "--arena-cache-size", "2097152", "--optimise", "Performance",
    ]  # fmt: skip
    with pytest.raises(ConfigError):
        vela_cli_args(load_profile("generic-mcu"))


def test_overrides_recompute_defaults() -> None:
    p = load_profile("ethos-u55-256", {"sram_kib": 1024, "core_clock_hz": "400e6"})
    assert p.sram_kib == p.arena_cache_kib == 1024 and p.core_clock_hz == 400e6


def _write(tmp_path: Path, text: str, name: str = "board.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BASE = "name: board\naccelerator_config: ethos-u55-128\nsystem_config: Ethos_U55_Deep_Embedded\n" \
       "memory_mode: Shared_Sram\nsram_kib: 512\nflash_kib: 1024\n"  # fmt: skip


def test_yaml_file(tmp_path: Path) -> None:
    p = load_profile(_write(tmp_path, BASE))
    assert p.core_clock_hz == 200e6 and p.flash_bytes_per_cycle == 8 * 0.0625


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert path in str(info.value)
    return info.value


def test_unknown_accelerator_lists_valid_ones(tmp_path: Path) -> None:
    e = _error(tmp_path, BASE.replace("ethos-u55-128", "ethos-u55-100"))
    assert e.field == "accelerator_config"
    for valid in ("ethos-u55-32", "ethos-u65-512", "ethos-u85-2048"):
        assert valid in str(e)


def test_unknown_system_and_mode(tmp_path: Path) -> None:
    e = _error(tmp_path, BASE.replace("Ethos_U55_Deep_Embedded", "Nope"))
    assert e.field == "system_config" and "Ethos_U65_Client_Server" in str(e)
    e = _error(tmp_path, BASE.replace("Shared_Sram", "Shared"))
    assert e.field == "memory_mode" and "Dedicated_Sram_384KB" in str(e)


def test_dedicated_sram_with_flash_on_axi1_is_explained(tmp_path: Path) -> None:
    e = _error(tmp_path, BASE.replace("Shared_Sram", "Dedicated_Sram"))
    assert e.field == "memory_mode"
    assert "arena_mem_area=OffChipFlash" in str(e) and "AXI1" in str(e) and "flash" in str(e)


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (("sram_kib: 512", "sram_kib: -5"), "sram_kib", "greater than 0"),
        (("sram_kib: 512\n", ""), "sram_kib", "missing"),
        (("flash_kib: 1024", "flash_kb: 1024"), "flash_kb", "allowed fields"),
        (("sram_kib: 512", "sram_kib: 512\narena_cache_kib: 600"), "arena_cache_kib", "exceeds"),
        (("name: board", "name: board\nevaluator: fast"), "evaluator", "'vela' or 'analytic'"),
    ],
)
def test_field_errors(tmp_path: Path, edit: tuple[str, str], field: str, words: str) -> None:
    e = _error(tmp_path, BASE.replace(*edit))
    assert e.field == field and words in str(e)


def test_unknown_profile_name_lists_builtins() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("ethos-u99")
    for name in BUILTINS:
        assert name in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_profile(str(tmp_path / "none.yaml"))
    _error(tmp_path, "name: [unclosed\n")
    _error(tmp_path, "- a list\n")


def test_analytic_profile_rules() -> None:
    with pytest.raises(ConfigError) as info:
        profile_from_mapping({"name": "x", "sram_kib": 64}, source="inline")
    assert info.value.field == "accelerator_config" and "ethos-u55-256" in str(info.value)
    with pytest.raises(ConfigError, match="core_clock_hz"):
        profile_from_mapping({"name": "x", "evaluator": "analytic", "sram_kib": 64})
    p = profile_from_mapping(
        {"name": "x", "evaluator": "analytic", "sram_kib": 64, "core_clock_hz": 1e8, "macs_per_cycle": 1,
         "sram_bytes_per_cycle": 4}
    )
    assert p.accelerator_config is None and p.flash_bytes_per_cycle is None




def test_custom_vela_ini_relative_to_yaml(tmp_path: Path) -> None:
    (tmp_path / "my.ini").write_text(DRAM_INI)
    text = BASE.replace("Ethos_U55_Deep_Embedded", "U55_With_Dram").replace("Shared_Sram", "Dedicated_Sram")
    p = load_profile(_write(tmp_path, text + "vela_config: my.ini\n"))
    assert p.vela_config == str(tmp_path / "my.ini")
    assert p.core_clock_hz == 400e6 and p.dram_bytes_per_cycle == 4.0
    assert vela_cli_args(p)[-2:] == ["--config", str(tmp_path / "my.ini")]
    assert memory_layout(p).feature_maps == "Dram"


def test_sram_only_layout_marks_weights_in_sram(tmp_path: Path) -> None:
    p = load_profile(_write(tmp_path, BASE.replace("Shared_Sram", "Sram_Only")))
    lay = memory_layout(p)
    assert lay.weights == "OnChipFlash" and lay.weights_share_sram
    assert not memory_layout(load_profile("ethos-u55-256")).weights_share_sram
