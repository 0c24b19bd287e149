"""Hand-made sweep and per-layer rows for the analysis tests: every figure is planted, so the right answer
is known. Rows carry every sweep column (as `edgenas sweep` writes them) with plausible defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgenas.hardware.profile import HardwareProfile
from edgenas.sweep.driver import LAYER_COLUMNS
from edgenas.sweep.rows import sweep_columns
from edgenas.sweep.table import LayerTable, SweepTable, rows_as_table

CLOCK = 500e6
HW = "npu-2m"


def profile(name: str = HW, sram_kib: int = 2048, flash_kib: int | None = 8192,
            arena_kib: int | None = None) -> HardwareProfile:
    """A profile built in memory (no file): only the sizes matter to the analysis."""
    return HardwareProfile(name=name, description="test", evaluator="vela", accelerator_config="ethos-u55-256",
                           system_config="Ethos_U55_High_End_Embedded", memory_mode="Shared_Sram",
                           sram_kib=sram_kib, flash_kib=flash_kib, dram_kib=None,
                           arena_cache_kib=arena_kib or sram_kib, core_clock_hz=CLOCK, macs_per_cycle=256.0,
                           sram_bytes_per_cycle=8.0, flash_bytes_per_cycle=1.0, dram_bytes_per_cycle=None)


def arch_id(choices: Mapping[str, Any]) -> str:
    return "-".join(str(v) for v in choices.values())


def row(choices: Mapping[str, Any], resolution: str, *, fps: float, sram: float, hw: str = HW,
        offchip: float = 0.0, dram: float = 0.0, cpu_ops: int = 0, over_sram: bool = False,
        over_flash: bool = False, status: str = "ok", rf: int = 50, peak_kib: float | None = None,
        flash_kib: float = 100.0) -> dict[str, Any]:
    cols = sweep_columns(list(choices))
    r: dict[str, Any] = {c: None for c in cols}
    r.update(choices)
    cycles = CLOCK / fps
    r.update(resolution=resolution, hardware=hw, status=status, error="" if status == "ok" else "compiler said no",
             arch_id=arch_id(choices), evaluator="vela", compiler="ethos-u-vela 5.2.0", weights="test")
    if status != "ok":
        return r
    r.update(fps=fps, inference_ms=1000.0 / fps, cycles_total=cycles, cycles_npu=cycles, sram_kib=sram,
             offchip_flash_kib=flash_kib, dram_kib=0.0, offchip_flash_access_cycles=offchip,
             dram_access_cycles=dram, sram_access_cycles=cycles / 2, npu_ops=10, cpu_ops=cpu_ops,
             encoded_weight_bytes=1000, macs=1_000_000, params=1000, weight_bytes=1200,
             peak_activation_kib=peak_kib if peak_kib is not None else sram * 0.8, receptive_field=rf,
             over_sram=over_sram, over_flash=over_flash, fps_complete=cpu_ops == 0,
             fps_end_to_end=fps if cpu_ops == 0 else fps * 0.5)
    return r


def layer(r: Mapping[str, Any], name: str, op: str, cycles: float, *, offflash: float = 0.0, dram: float = 0.0,
          target: str = "NPU", nng_op: str | None = None, macs: int = 0) -> dict[str, Any]:
    d: dict[str, Any] = {c: None for c in LAYER_COLUMNS}
    d.update(arch_id=r["arch_id"], resolution=r["resolution"], hardware=r["hardware"], original_op=op,
             nng_op=nng_op or op, target=target, name=name, cycles=cycles, npu_cycles=cycles, sram_ac=cycles / 2,
             dram_ac=dram, onflash_ac=0.0, offflash_ac=offflash, macs=macs, util_pct=50.0, staging_usage=0)
    return d


def layers_for(r: Mapping[str, Any], parts: Mapping[str, float], *, op: str = "Conv2D",
               macs: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """One Conv2D layer per part (`part.block.conv`) with the given shares of the row's cycles."""
    total = r["cycles_total"]
    return [layer(r, f"{p}.block.conv", op, total * share, macs=(macs or {}).get(p, 1000))
            for p, share in parts.items()]


def table(rows: Iterable[Mapping[str, Any]], choices: Iterable[str]) -> SweepTable:
    return rows_as_table(rows, choices)


def layer_table(rows: Iterable[Mapping[str, Any]]) -> LayerTable:
    return LayerTable(tuple(rows))


# ---- a small grid: backbone x stage0_block x three resolutions, clean unless something is planted ----------

RESOLUTIONS = ("96x128", "128x160", "160x224")  # increasing pixels; the key resolution is the middle one
PARTS = {"stem": 0.1, "backbone": 0.4, "head": 0.5}
CHOICES = ("backbone", "stage0_block")


def set_fps(r: dict[str, Any], layers: list[dict[str, Any]], fps: float) -> None:
    """Change a row's FPS and scale its layers' cycles with it (they keep adding up to cycles_total)."""
    k = (CLOCK / fps) / r["cycles_total"]
    r.update(fps=fps, inference_ms=1000.0 / fps, cycles_total=CLOCK / fps, cycles_npu=CLOCK / fps,
             fps_end_to_end=fps)
    for lr in layers:
        for c in ("cycles", "npu_cycles", "sram_ac", "offflash_ac", "dram_ac"):
            lr[c] *= k


def grid(backbones: Mapping[str, Mapping[str, float]], blocks: Mapping[str, Mapping[str, float]], *,
         plant: Any = None, hw: str = HW) -> tuple[SweepTable, LayerTable]:
    """Every backbone x block at RESOLUTIONS. Specs give factors: fps, sram, rf (added). FPS falls with
    the input, SRAM grows, every row fits a 2 MiB device, no off-chip-bound layer, no CPU op.
    `plant(row, layers)` may change anything (row and its layer rows) before the table is made."""
    rows, layers = [], []
    for bi, (bb, bs) in enumerate(backbones.items()):
        for ki, (blk, ks) in enumerate(blocks.items()):
            for i, res in enumerate(RESOLUTIONS):
                r = row({"backbone": bb, "stage0_block": blk}, res, hw=hw,
                        fps=200.0 * bs.get("fps", 1.0) * ks.get("fps", 1.0) / (1 + i),
                        sram=(600.0 + 300.0 * i) * bs.get("sram", 1.0) * ks.get("sram", 1.0),
                        rf=int(bs.get("rf", 30) + ks.get("rf", 20)), offchip=1000.0)
                lrs = layers_for(r, PARTS, macs={"stem": 10, "backbone": 100 + bi, "head": 200 + ki})
                if plant is not None:
                    plant(r, lrs)
                rows.append(r)
                layers += lrs
    return table(rows, CHOICES), layer_table(layers)
