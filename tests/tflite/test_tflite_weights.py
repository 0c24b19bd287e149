"""Generated weights look trained (heavy-tailed, per-channel scales, many near-zero values), are
quantised per channel to +-127, and are a pure function of (seed, op name, shape)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgenas.tflite import weights as wmod
from edgenas.tflite.weights import (
    WEIGHTS_DESCRIPTION,
    draw_weights,
    op_seed,
    quantize_symmetric,
    trained_like_weights,
)


def test_description_is_recorded_value() -> None:
    assert WEIGHTS_DESCRIPTION == "trained_like_v1"


def test_per_channel_max_maps_to_127() -> None:
    w = trained_like_weights(0, "a", (32, 3, 3, 16), 0, 144)
    assert w.values.dtype == np.int8 and w.values.shape == (32, 3, 3, 16)
    assert (np.abs(w.values.astype(int)).reshape(32, -1).max(axis=1) == 127).all()
    assert w.scales.shape == (32,) and w.bias.shape == (32,)
    dw = trained_like_weights(0, "b", (1, 5, 5, 24), 3, 25)
    assert (np.abs(dw.values.astype(int)).reshape(-1, 24).max(axis=0) == 127).all()
    assert dw.scales.shape == (24,)


def test_trained_like_distribution() -> None:
    """Heavy tails: most values small, a few large; about a tenth at zero; channel scales differ."""
    w = trained_like_weights(0, "c", (64, 3, 3, 64), 0, 576)
    a = np.abs(w.values.astype(np.float64))
    assert 0.08 < np.mean(a == 0) < 0.3
    assert np.median(a) < 20  # uniform int8 would give ~64
    kurtosis = np.mean(w.values.astype(np.float64) ** 4) / np.mean(w.values.astype(np.float64) ** 2) ** 2
    assert kurtosis > 4.5  # Laplace-like (6 with the near-zero share); uniform is 1.8
    assert w.scales.max() / w.scales.min() > 1.5
    # He-like magnitudes: std of the real weights ~ sqrt(2 / fan_in)
    real = w.values * w.scales[:, None, None, None]
    assert 0.5 < real.std() / np.sqrt(2 / 576) < 2


def test_per_tensor_keeps_channel_differences() -> None:
    w = trained_like_weights(0, "d", (32, 1, 1, 32), 0, 32, per_channel=False)
    assert w.scales.shape == (1,)
    per_channel_max = np.abs(w.values.astype(int)).reshape(32, -1).max(axis=1)
    assert per_channel_max.max() == 127 and per_channel_max.min() < 100


def test_deterministic_and_name_dependent() -> None:
    a = draw_weights(3, "x", (8, 3, 3, 8), 0, 72)
    b = draw_weights(3, "x", (8, 3, 3, 8), 0, 72)
    c = draw_weights(3, "y", (8, 3, 3, 8), 0, 72)
    d = draw_weights(4, "x", (8, 3, 3, 8), 0, 72)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert not np.array_equal(a.values, d.values)
    assert op_seed(3, "x") == op_seed(3, "x") != op_seed(3, "y")


def test_cached_arrays_are_read_only() -> None:
    w = trained_like_weights(0, "e", (4, 1, 1, 4), 0, 4)
    with pytest.raises(ValueError):
        w.values[0, 0, 0, 0] = 1


def test_known_values() -> None:
    """Measurements are cached with WEIGHTS_DESCRIPTION; if this fails the generated weights changed
    (code or numpy stream): bump WEIGHTS_DESCRIPTION, then update the expected values."""
    w = draw_weights(0, "head2.block.dw", (1, 3, 3, 4), 3, 9)
    assert w.values[0, :, :, 0].ravel().tolist() == [-11, -127, 0, 94, -64, -2, -2, -110, -6]
    w = draw_weights(0, "head2.block.conv", (16, 3, 3, 16), 0, 144)
    digest = hashlib.sha256(w.values.tobytes() + w.scales.tobytes() + w.bias.tobytes()).hexdigest()
    assert digest[:16] == "886ab88c7eab94b9"


def test_quantize_symmetric_rejects_middle_axis() -> None:
    with pytest.raises(ValueError):
        quantize_symmetric(np.ones((2, 3, 4), np.float32), 1, True)


def test_cache_is_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    wmod.clear_weight_cache()
    monkeypatch.setattr(wmod, "CACHE_LIMIT_BYTES", 3 * 64 * 9 * 64)
    first = trained_like_weights(0, "w0", (64, 3, 3, 64), 0, 576)
    assert trained_like_weights(0, "w0", (64, 3, 3, 64), 0, 576) is first
    for i in range(1, 6):
        trained_like_weights(0, f"w{i}", (64, 3, 3, 64), 0, 576)
    assert len(wmod._cache) == 3
    assert trained_like_weights(0, "w0", (64, 3, 3, 64), 0, 576) is not first
    np.testing.assert_array_equal(trained_like_weights(0, "w0", (64, 3, 3, 64), 0, 576).values, first.values)
    wmod.clear_weight_cache()
