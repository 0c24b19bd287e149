"""Measurement JSON round trip (what the cache stores)."""

from __future__ import annotations

import json
import math

import pytest

from edgenas.hardware import METRICS, LayerRow, Measurement, VelaEvaluator, load_profile


def test_round_trip_of_a_real_measurement(small_model: bytes) -> None:
    m = VelaEvaluator(load_profile()).evaluate_bytes(small_model)
    assert set(METRICS) == set(m.metrics)
    back = Measurement.from_json(m.to_json())
    assert back == m
    assert isinstance(back.layers[0], LayerRow) and isinstance(back.metrics["cycles_total"], int)


def test_round_trip_nan_and_failure() -> None:
    m = Measurement("ok", metrics={"fps": math.nan, "cycles_total": 0}, provenance={"a": {"b": [1, 2]}})
    back = Measurement.from_json(m.to_json())
    assert math.isnan(back.metrics["fps"]) and back.provenance == {"a": {"b": [1, 2]}}
    f = Measurement.failed("Compilation failed: x", log="warning")
    assert Measurement.from_json(f.to_json()) == f


def test_other_schema_is_rejected() -> None:
    d = json.loads(Measurement("ok").to_json())
    d["schema"] = 999
    with pytest.raises(ValueError):
        Measurement.from_json(json.dumps(d))
