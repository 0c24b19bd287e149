"""What the Ethos-U compiler's own configuration says about a target.

Everything here is read from the installed compiler (its vela.ini and `ArchitectureFeatures`), so the
profile defaults, the text handed to the compiler and the CLI that reproduces it cannot drift apart.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
from dataclasses import dataclass
from functools import lru_cache

from ethosu.vela import architecture_features as _af
from ethosu.vela.tensor import MemArea

DEFAULT_VELA_INI = os.path.join(_af.CONFIG_FILES_PATH, "Arm", "vela.ini")
ACCELERATORS: tuple[str, ...] = tuple(_af.Accelerator.member_list())


def ini_path(custom: str | None) -> str:
    """The vela.ini in force: a custom file or the one shipped with the compiler."""
    return custom if custom else DEFAULT_VELA_INI


def ini_text(path: str) -> str:
    """The file's text exactly as the CLI appends it to the system config (bytes decoded as UTF-8).

    Read afresh each time (8 KB, microseconds) so an edited custom ini can never hide behind a cache.
    """
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def ini_sections(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(system config names, memory mode names) defined in a vela.ini."""
    return _sections(ini_text(path))


@lru_cache(maxsize=32)
def _sections(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cp = configparser.ConfigParser()
    cp.read_string(text)
    systems = tuple(s.split(".", 1)[1] for s in cp.sections() if s.startswith("System_Config."))
    modes = tuple(s.split(".", 1)[1] for s in cp.sections() if s.startswith("Memory_Mode."))
    return systems, modes


def arch_features(path: str, accelerator: str, system: str, mode: str) -> _af.ArchitectureFeatures:
    """The compiler's own view of the target; raises the compiler's config error if the combination is invalid.

    This is also the check the CLI runs before compiling (e.g. Dedicated_Sram with flash on AXI1); the
    C++ core called directly does not run it. Cached per file content.
    """
    return _arch_features(path, ini_text(path), accelerator, system, mode)


@lru_cache(maxsize=64)
def _arch_features(path: str, text: str, accelerator: str, system: str, mode: str) -> _af.ArchitectureFeatures:
    del text  # part of the cache key only; the compiler's class reads the file itself
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Info: Changing const_mem_area ..." for Sram_Only
        return _af.ArchitectureFeatures(
            vela_config_files=[path],
            accelerator_config=accelerator,
            system_config=system,
            memory_mode=mode,
            max_blockdep=_af.ArchitectureFeatures.MAX_BLOCKDEP,
            verbose_config=False,
            arena_cache_size=None,
        )


def regor_accelerator(accelerator: str) -> str:
    """'ethos-u55-256' -> 'EthosU55', the way vela.py main() names the target for the C++ core."""
    parts = accelerator.split("-")
    return "".join(p.capitalize() for p in parts[:-1])


@dataclass(frozen=True)
class MemoryLayout:
    """Where the compiler puts each kind of data (Vela memory names: Sram, Dram, OffChipFlash, OnChipFlash)."""

    weights: str
    feature_maps: str
    staging: str
    axi0: str
    axi1: str
    weights_share_sram: bool  # Sram_Only: weights sit in the SRAM, reported as "OnChipFlash"


def memory_layout_of(arch: _af.ArchitectureFeatures) -> MemoryLayout:
    section = "Memory_Mode." + arch.memory_mode
    const_port = arch._read_config(section, "const_mem_area", "Axi1")  # before the Sram -> OnChipFlash alias
    arena_port = arch._read_config(section, "arena_mem_area", "Axi1")
    cache_port = arch._read_config(section, "cache_mem_area", "Axi1")
    share = const_port == arena_port == cache_port and arch.permanent_storage_mem_area == MemArea.OnChipFlash
    return MemoryLayout(
        weights=arch.permanent_storage_mem_area.name,
        feature_maps=arch.feature_map_storage_mem_area.name,
        staging=arch.fast_storage_mem_area.name,
        axi0=arch.axi0_port.name,
        axi1=arch.axi1_port.name,
        weights_share_sram=share,
    )


def bytes_per_cycle(arch: _af.ArchitectureFeatures, area: MemArea) -> float:
    """Design peak bandwidth of one memory in bytes per NPU cycle, as the compiler reports it."""
    return float(arch.memory_bandwidths_per_cycle[area])
