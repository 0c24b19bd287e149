"""fit_flags: the device limits the compiler does not enforce."""

from __future__ import annotations

from edgenas.hardware import Measurement, VelaEvaluator, fit_flags, load_profile, sram_demand_kib


def _m(**metrics: float) -> Measurement:
    base = {"sram_kib": 0.0, "dram_kib": 0.0, "onchip_flash_kib": 0.0, "offchip_flash_kib": 0.0}
    return Measurement("ok", metrics={**base, **metrics})


def test_shared_sram_limits() -> None:
    p = load_profile("ethos-u55-256")  # 2048 KiB SRAM, 8192 KiB flash
    assert fit_flags(_m(sram_kib=2048, offchip_flash_kib=8192), p) == {
        "over_sram": False, "over_flash": False, "over_dram": False,
    }  # fmt: skip
    assert fit_flags(_m(sram_kib=2048.5), p)["over_sram"]
    assert fit_flags(_m(offchip_flash_kib=8193), p)["over_flash"]


def test_dedicated_sram_spilling_is_legitimate() -> None:
    p = load_profile("ethos-u65-256")  # 384 KiB SRAM cache, 1 GiB DRAM
    flags = fit_flags(_m(sram_kib=380, dram_kib=50_000), p)
    assert flags == {"over_sram": False, "over_flash": False, "over_dram": False}
    assert fit_flags(_m(sram_kib=385), p)["over_sram"]
    assert fit_flags(_m(dram_kib=2_000_000), p)["over_dram"]


def test_sram_only_counts_weights_in_sram() -> None:
    p = load_profile("ethos-u55-256", {"memory_mode": "Sram_Only"})
    m = _m(sram_kib=1500, onchip_flash_kib=600)
    assert sram_demand_kib(m, p) == 2100 and fit_flags(m, p)["over_sram"]
    # The same figures in Shared_Sram: weights live in flash, SRAM fits.
    assert not fit_flags(m, load_profile("ethos-u55-256"))["over_sram"]


def test_missing_sizes_and_failures_never_flag() -> None:
    p = load_profile("ethos-u65-256", {"dram_kib": None})
    assert not any(fit_flags(_m(dram_kib=1e9, offchip_flash_kib=1e9), p).values())
    assert not any(fit_flags(Measurement.failed("x"), load_profile()).values())


def test_real_compiles_against_device_limits(oversized_model: bytes) -> None:
    """Compiles exit fine in every case; only fit_flags says which boards cannot hold the design."""
    expected = {"ethos-u55-256": True, "ethos-u85-256": True, "ethos-u65-256": False}
    for name, over in expected.items():
        p = load_profile(name)
        m = VelaEvaluator(p).evaluate_bytes(oversized_model, per_layer=False)
        assert m.ok and fit_flags(m, p)["over_sram"] is over, (name, m.metrics["sram_kib"])
        assert not fit_flags(m, p)["over_flash"] and not fit_flags(m, p)["over_dram"]
    u65 = VelaEvaluator(load_profile("ethos-u65-256")).evaluate_bytes(oversized_model, per_layer=False)
    assert u65.metrics["dram_kib"] > 1024 and u65.metrics["sram_kib"] <= 384
