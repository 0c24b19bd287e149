"""Settings from a config's `report:` section: defaults, one-line errors, and filling from the sweep."""

from __future__ import annotations

import pytest
from analysis_tables import CHOICES, HW, RESOLUTIONS, grid

from edgenas.analysis import SETTING_KEYS, StudySettings, resolve_settings, settings_from_mapping
from edgenas.errors import ConfigError

BB = {"r0": {}, "r1": {"fps": 0.8}}
BLK = {"mbconv_e3_k3": {}, "mbconv_e6_k7": {"fps": 0.7}}


def test_defaults_and_caller_defaults() -> None:
    s = settings_from_mapping({}, baseline={"backbone": "r0"}, device_hardware="x")
    assert s == StudySettings(baseline={"backbone": "r0"}, device_hardware="x")
    assert (s.offchip_share, s.min_offchip_layer_share, s.cliff_tolerance) == (0.5, 0.05, 0.02)
    assert (s.sram_overhead_limit, s.fps_loss_limit, s.accuracy_fps_loss) == (0.3, 0.4, 0.3)
    assert settings_from_mapping(None) == StudySettings()


def test_section_overrides_and_normalises() -> None:
    s = settings_from_mapping({"key_resolution": [192, 256], "baseline": {"kernel": 3}, "fps_loss_limit": 0.25},
                              key_resolution="120x160", baseline={"kernel": 5})
    assert s.key_resolution == "192x256"
    assert s.baseline == {"kernel": "3"}
    assert s.fps_loss_limit == 0.25 and isinstance(s.fps_loss_limit, float)


def test_unknown_key_names_field_and_allowed_keys() -> None:
    with pytest.raises(ConfigError) as e:
        settings_from_mapping({"offchip_shar": 0.5}, source="study.yaml")
    msg = str(e.value)
    assert "study.yaml: report.offchip_shar: unknown setting" in msg
    assert all(k in msg for k in SETTING_KEYS)
    assert e.value.field == "report.offchip_shar"


@pytest.mark.parametrize("key,value", [("offchip_share", 0.0), ("offchip_share", 1.5), ("fps_loss_limit", -0.1),
                                       ("accuracy_fps_loss", 2), ("cliff_tolerance", -1), ("sram_overhead_limit", "x"),
                                       ("dominant_op_share", True), ("key_resolution", "192-256"),
                                       ("baseline", {"a": [1, 2]}), ("baseline", "conv3x3"),
                                       ("device_hardware", "")])
def test_out_of_range_is_a_config_error(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as e:
        settings_from_mapping({key: value})
    assert e.value.field is not None and e.value.field.startswith(f"report.{key}")


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="report: must be a mapping"):
        settings_from_mapping([1, 2])  # type: ignore[arg-type]


def test_resolve_fills_from_the_sweep() -> None:
    t, _ = grid(BB, BLK)
    s = resolve_settings(StudySettings(), t)
    assert s.key_resolution == RESOLUTIONS[1]  # the middle one
    assert s.device_hardware == HW
    assert s.baseline == {"backbone": "r0", "stage0_block": "mbconv_e3_k3"}  # the first row's genotype
    assert list(s.baseline) == list(CHOICES)


@pytest.mark.parametrize("settings,field", [
    (StudySettings(key_resolution="192x256"), "report.key_resolution"),
    (StudySettings(device_hardware="nope"), "report.device_hardware"),
    (StudySettings(baseline={"backbone": "r9", "stage0_block": "mbconv_e3_k3"}), "report.baseline"),
    (StudySettings(baseline={"colour": "red"}), "report.baseline.colour"),
    (StudySettings(baseline={"backbone": "r1"}), "report.baseline"),  # incomplete without a space
])
def test_resolve_rejects_what_the_sweep_lacks(settings: StudySettings, field: str) -> None:
    t, _ = grid(BB, BLK)
    with pytest.raises(ConfigError) as e:
        resolve_settings(settings, t)
    assert e.value.field == field


def test_resolve_rejects_a_baseline_that_did_not_compile() -> None:
    from analysis_tables import row, table

    t, _ = grid(BB, BLK)
    base = {"backbone": "r0", "stage0_block": "mbconv_e3_k3"}
    failed = row(base, RESOLUTIONS[1], fps=1, sram=1, status="failed")
    rows = [failed if r["arch_id"] == failed["arch_id"] and r["resolution"] == RESOLUTIONS[1] else r for r in t.rows]
    with pytest.raises(ConfigError, match="did not compile at 128x160 on npu-2m"):
        resolve_settings(StudySettings(), table(rows, t.choices))
