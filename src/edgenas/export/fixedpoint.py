"""TFLite's fixed-point primitives on integer torch tensors (int64 holding int32 / int16 values).

Why hand-written: no library exposes TFLite's integer requantisation to torch. torchao and
torch.ao.quantization round half to even in float (`torch.round(x * scale)`), while TFLite's reference
kernels (which TFLite Micro runs too) requantise with gemmlowp's double rounding: a saturating rounding
doubling high multiply by a Q31 multiplier, then a rounding divide by a power of two whose ties go away
from zero. The two differ on ties and near-ties, which is exactly where "numbers you can trust" fail.

Followed (tensorflow/tflite-micro, which carries the same shared code as tensorflow/lite):
- `tensorflow/lite/kernels/internal/quantization_util.cc`: QuantizeMultiplier (frexp, std::round of the
  Q31 mantissa, 2^31 -> 2^30 with shift + 1, shifts below -31 flushed to 0).
- `tensorflow/lite/kernels/internal/common.cc`: MultiplyByQuantizedMultiplier, both the default
  double-rounding form and the TFLITE_SINGLE_ROUNDING form.
- gemmlowp `fixedpoint/fixedpoint.h`: SaturatingRoundingDoublingHighMul (int32 and int16),
  RoundingDivideByPOT.
- `tensorflow/lite/kernels/internal/reference/hard_swish.h`: SaturatingLeftShift, SaturatingDoublingHighMul
  (int16, truncating); `quantization_util.h`: DownScaleInt32ToInt16Multiplier.

`rounding` selects the requantisation: "double" (TFLite's default build: what ai-edge-litert 2.3's reference
kernels and the tflite-micro wheel compute, measured in tests/export), "single" (TFLITE_SINGLE_ROUNDING
builds, written from common.cc; no such interpreter here to check it against, only that it differs from
the two that are), "half_even" (torch's `round(x * M)`, exact in integers: the negative control that shows
a check can tell the difference).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "ROUNDINGS",
    "downscale_multiplier_int16",
    "multiply_by_quantized_multiplier",
    "quantize_multiplier",
    "round_half_away",
    "rounding_divide_by_pot",
    "saturating_left_shift_int16",
    "saturating_rounding_doubling_high_mul",
    "sdhm_int16",
    "srdhm_int16",
    "trunc_div",
    "wrap",
]

ROUNDINGS = ("double", "single", "half_even")
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def round_half_away(v: float) -> int:
    """std::round / TfLiteRound: ties away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def quantize_multiplier(real: float, rounding: str = "double") -> tuple[int, int]:
    """QuantizeMultiplier: `real` = multiplier * 2^(shift - 31), multiplier a Q31 int in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if rounding == "single" and shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def wrap(x: Tensor, bits: int) -> Tensor:
    """Two's complement wrap-around of an integer tensor to `bits` (a C cast to int32_t / int16_t)."""
    half = 1 << (bits - 1)
    return torch.remainder(x + half, 1 << bits) - half


def trunc_div(x: Tensor, d: int | Tensor) -> Tensor:
    """C integer division (rounds toward zero)."""
    return torch.div(x, d, rounding_mode="trunc")


def _pow2(e: int | Tensor, like: Tensor) -> int | Tensor:
    if isinstance(e, Tensor):
        return torch.bitwise_left_shift(torch.ones_like(e), e)
    return 1 << e


def saturating_rounding_doubling_high_mul(a: Tensor, b: int | Tensor) -> Tensor:
    """gemmlowp SRDHM for int32: round-half-away (ab + nudge) / 2^31, truncating division."""
    ab = a * b
    nudge = torch.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = trunc_div(ab + nudge, 1 << 31)
    overflow = (a == _I32_MIN) & (torch.as_tensor(b) == _I32_MIN)
    return torch.where(overflow, torch.full_like(out, _I32_MAX), out)


def rounding_divide_by_pot(x: Tensor, exponent: int | Tensor) -> Tensor:
    """gemmlowp RoundingDivideByPOT: arithmetic shift right, ties away from zero."""
    mask = _pow2(exponent, x) - 1
    remainder = torch.bitwise_and(x, mask)
    threshold = torch.bitwise_right_shift(torch.as_tensor(mask), 1) + (x < 0).to(x.dtype)
    return torch.bitwise_right_shift(x, exponent) + (remainder > threshold).to(x.dtype)


def _floor_shift_half_even(num: Tensor, total: int | Tensor) -> Tensor:
    """round(num / 2^total) with ties to even, in integers."""
    q = torch.bitwise_right_shift(num, total)
    r = num - torch.bitwise_left_shift(q, total)
    half = _pow2(total - 1, num)
    up = (r > half) | ((r == half) & (torch.remainder(q, 2) == 1))
    return q + up.to(num.dtype)


def multiply_by_quantized_multiplier(x: Tensor, multiplier: int | Tensor, shift: int | Tensor,
                                     rounding: str = "double") -> Tensor:
    """MultiplyByQuantizedMultiplier(int32 x, Q31 multiplier, shift) on an int64 tensor of int32 values.
    `multiplier` / `shift` may be tensors broadcasting against `x` (per-channel requantisation)."""
    if rounding == "double":
        if isinstance(shift, Tensor):
            left = torch.clamp(shift, min=0)
            right = torch.clamp(-shift, min=0)
        else:
            left, right = max(shift, 0), max(-shift, 0)
        shifted = wrap(x * _pow2(left, x), 32)  # int32 `x * (1 << left_shift)`
        return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
    total = 31 - shift
    if rounding == "single":
        return torch.bitwise_right_shift(x * multiplier + _pow2(total - 1, x), total)
    if rounding == "half_even":
        return _floor_shift_half_even(x * multiplier, total)
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


# ---- int16 pieces of the hard-swish kernel ------------------------------------------------------------

_I16_MIN, _I16_MAX = -(2**15), 2**15 - 1


def srdhm_int16(a: Tensor, b: int) -> Tensor:
    """gemmlowp SaturatingRoundingDoublingHighMul<int16_t>."""
    ab = a * b
    nudge = torch.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    out = wrap(trunc_div(ab + nudge, 1 << 15), 16)
    overflow = (a == _I16_MIN) & (b == _I16_MIN)
    return torch.where(overflow, torch.full_like(out, _I16_MAX), out)


def sdhm_int16(a: Tensor, b: Tensor) -> Tensor:
    """hard_swish.h SaturatingDoublingHighMul: like SRDHM but truncating (no nudge)."""
    out = wrap(trunc_div(a * b, 1 << 15), 16)
    overflow = (a == _I16_MIN) & (b == _I16_MIN)
    return torch.where(overflow, torch.full_like(out, _I16_MAX), out)


def saturating_left_shift_int16(x: Tensor, amount: int) -> Tensor:
    return torch.clamp(x * (1 << amount), _I16_MIN, _I16_MAX)


def downscale_multiplier_int16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier: a Q31 multiplier rounded to Q15."""
    if m >= _I32_MAX - (1 << 15):
        return _I16_MAX
    return (m + (1 << 15)) >> 16
