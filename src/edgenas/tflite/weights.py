"""Deterministic "trained-like" int8 weights for models that are only compiled, never trained.

Why not uniform random: the compiler compresses weights, and uniform int8 values encode about 17% larger
than trained ones (measured), which moves flash traffic and FPS. Trained conv weights are heavy-tailed
around zero with per-output-channel magnitudes that differ, so after per-channel quantisation most
values sit near zero and few reach +-127. This module draws that: Laplace values with a log-normal
per-channel scale and a share of near-zero weights, quantised so each channel's max |w| maps to 127.

Every op gets its own RNG stream derived from (seed, op name) with hashlib, so the weights of an op do
not depend on the process, the Python hash seed, the other ops in the graph, or the input resolution;
draws are cached (bounded by bytes) because a sweep writes the same ops at every resolution.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

# Recorded with every measurement: change it whenever the distribution below changes.
WEIGHTS_DESCRIPTION = "trained_like_v1"

_CHANNEL_SIGMA = 0.35  # log-normal spread of per-output-channel weight scales
_NEAR_ZERO_SHARE = 13 / 128  # about 10% of weights shrunk to near zero (pruned-like)
_NEAR_ZERO_FACTOR = 0.02
_BIAS_STD = 0.1  # bias in real units


@dataclass(frozen=True)
class QuantWeights:
    """int8 weights in TFLite layout, their scales (one per slice of `axis`, or one), the real-valued bias
    (one per output channel; quantised by the writer once the input scale is known)."""

    values: np.ndarray
    scales: np.ndarray
    bias: np.ndarray
    axis: int


def op_seed(seed: int, name: str) -> int:
    """A 64-bit seed for one op, stable across processes and platforms."""
    digest = hashlib.blake2b(f"{WEIGHTS_DESCRIPTION}:{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def quantize_symmetric(w: np.ndarray, axis: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantisation: max |w| of each slice of `axis` (or of the tensor) maps to 127.
    `axis` is 0 or the last axis (the TFLite weight layouts)."""
    absw = np.abs(w)
    if not per_channel:
        maxabs = absw.max(keepdims=True)
    elif axis == 0:
        maxabs = absw.reshape(w.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * (w.ndim - 1))
    elif axis == w.ndim - 1:
        maxabs = absw.reshape(-1, w.shape[-1]).max(axis=0)
    else:
        raise ValueError(f"per-channel axis must be 0 or {w.ndim - 1}, got {axis}")
    maxabs = np.maximum(maxabs, np.float32(1e-8), dtype=np.float32)
    q = np.rint(w * (np.float32(127.0) / maxabs))  # |q| <= 127 by construction
    return q.astype(np.int8), (maxabs / np.float32(127.0)).reshape(-1)


# Laplace(0, 1) = exponential magnitude times this per-byte factor: bit 0 of a random byte gives the sign,
# bits 1-7 select the near-zero share.
_NEAR_ZERO_CODES = round(_NEAR_ZERO_SHARE * 128)
_BYTE_FACTOR = np.array(
    [(-1.0 if v & 1 else 1.0) * (_NEAR_ZERO_FACTOR if v >> 1 < _NEAR_ZERO_CODES else 1.0) for v in range(256)],
    dtype=np.float32,
)


def draw_weights(
    seed: int, name: str, shape: tuple[int, ...], axis: int, fan_in: int, per_channel: bool = True
) -> QuantWeights:
    """Weights for op `name` with TFLite `shape`, output channels along `axis`, He-scaled by `fan_in`."""
    rng = np.random.default_rng(op_seed(seed, name))
    n = math.prod(shape)
    cout = shape[axis]
    w = rng.standard_exponential(n, dtype=np.float32)
    w *= _BYTE_FACTOR.take(rng.integers(0, 256, n, dtype=np.uint8))
    # Laplace(b) has std b*sqrt(2): He init std sqrt(2 / fan_in) -> b = 1 / sqrt(fan_in).
    channel = rng.lognormal(0.0, _CHANNEL_SIGMA, cout).astype(np.float32) * np.float32(1.0 / math.sqrt(fan_in))
    bshape = [1] * len(shape)
    bshape[axis] = cout
    w = w.reshape(shape)
    w *= channel.reshape(bshape)
    q, scales = quantize_symmetric(w, axis, per_channel)
    bias = rng.standard_normal(cout, dtype=np.float32) * np.float32(_BIAS_STD)
    for a in (q, scales, bias):
        a.flags.writeable = False
    return QuantWeights(q, scales, bias, axis)


# A sweep writes the same ops (same names and shapes) for many resolutions and candidates: keep recent
# draws, bounded by bytes rather than entries because one wide 7x7 conv outweighs a hundred 1x1s.
CACHE_LIMIT_BYTES = 64 << 20
_cache: OrderedDict[tuple[int, str, tuple[int, ...], int, int, bool], QuantWeights] = OrderedDict()
_cache_bytes = 0


def trained_like_weights(
    seed: int, name: str, shape: tuple[int, ...], axis: int, fan_in: int, per_channel: bool = True
) -> QuantWeights:
    """`draw_weights`, cached. The returned arrays are read-only because they are shared."""
    global _cache_bytes
    key = (seed, name, tuple(shape), axis, fan_in, per_channel)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    w = draw_weights(*key)
    _cache[key] = w
    _cache_bytes += w.values.nbytes
    while _cache_bytes > CACHE_LIMIT_BYTES and len(_cache) > 1:
        _, old = _cache.popitem(last=False)
        _cache_bytes -= old.values.nbytes
    return w


def clear_weight_cache() -> None:
    """Forget cached draws (for benchmarks of the cold path)."""
    global _cache_bytes
    _cache.clear()
    _cache_bytes = 0
