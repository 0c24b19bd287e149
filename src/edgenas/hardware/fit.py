"""Does a measured design fit the device? The compiler does not answer this itself.

In Shared_Sram and Sram_Only modes the arena limit is only a target: the compiler reports whatever SRAM
the schedule needs (tens of MiB if need be) and exits successfully. In Dedicated_Sram modes the SRAM is
a cache with a hard cap and spilling to DRAM is the intended behaviour, so only DRAM can overflow.
"""

from __future__ import annotations

from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile, memory_layout


def sram_demand_kib(measurement: Measurement, profile: HardwareProfile) -> float:
    """SRAM the design occupies on the device: the reported peak, plus weights when they share the SRAM."""
    m = measurement.metrics
    sram = float(m.get("sram_kib", 0.0))
    if memory_layout(profile).weights_share_sram:
        sram += float(m.get("onchip_flash_kib", 0.0))
    return sram


def fit_flags(measurement: Measurement, profile: HardwareProfile) -> dict[str, bool]:
    """{"over_sram", "over_flash", "over_dram"}: True where the design exceeds the device's memory.

    A failed measurement carries no usage, so every flag is False; check `measurement.ok` first.
    A size the profile does not give (flash_kib/dram_kib None) is never exceeded.
    """
    flags = {"over_sram": False, "over_flash": False, "over_dram": False}
    if not measurement.ok:
        return flags
    m = measurement.metrics
    flags["over_sram"] = sram_demand_kib(measurement, profile) > profile.sram_kib
    if profile.flash_kib is not None:
        flags["over_flash"] = float(m.get("offchip_flash_kib", 0.0)) > profile.flash_kib
    if profile.dram_kib is not None:
        flags["over_dram"] = float(m.get("dram_kib", 0.0)) > profile.dram_kib
    return flags
