"""Small image helpers shared by the tasks: bilinear sampling at arbitrary points (numpy) and resizing of
frames and flow fields to a requested resolution (torch)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into [0, n) (symmetric: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...), so a texture tiles
    without seams."""
    i = np.mod(i, 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray, *, mode: str = "mirror") -> np.ndarray:
    """`img` [H, W, C] sampled at float pixel coordinates (y, x) (pixel centres at integers); returns
    [*y.shape, C]. `mode`: "mirror" reflects outside the image, "zero" gives 0 outside, "clamp" repeats
    the border."""
    h, w = img.shape[:2]
    y0f, x0f = np.floor(y), np.floor(x)
    fy = (y - y0f)[..., None].astype(np.float32)
    fx = (x - x0f)[..., None].astype(np.float32)
    y0, x0 = y0f.astype(np.int64), x0f.astype(np.int64)
    y1, x1 = y0 + 1, x0 + 1
    if mode == "mirror":
        ys0, ys1, xs0, xs1 = _mirror(y0, h), _mirror(y1, h), _mirror(x0, w), _mirror(x1, w)
    else:
        ys0, ys1 = np.clip(y0, 0, h - 1), np.clip(y1, 0, h - 1)
        xs0, xs1 = np.clip(x0, 0, w - 1), np.clip(x1, 0, w - 1)
    flat = img.reshape(h * w, -1)
    r0, r1 = ys0 * w, ys1 * w
    v00, v01 = np.take(flat, r0 + xs0, axis=0), np.take(flat, r0 + xs1, axis=0)
    v10, v11 = np.take(flat, r1 + xs0, axis=0), np.take(flat, r1 + xs1, axis=0)
    if mode == "zero":  # each of the four taps counts only if it lies inside the image
        iny0, iny1 = (y0 >= 0) & (y0 < h), (y1 >= 0) & (y1 < h)
        inx0, inx1 = (x0 >= 0) & (x0 < w), (x1 >= 0) & (x1 < w)
        v00 = v00 * (iny0 & inx0)[..., None]
        v01 = v01 * (iny0 & inx1)[..., None]
        v10 = v10 * (iny1 & inx0)[..., None]
        v11 = v11 * (iny1 & inx1)[..., None]
    top = v00 + (v01 - v00) * fx
    bot = v10 + (v11 - v10) * fx
    return top + (bot - top) * fy


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Images [N, H, W, C] (any real dtype) resized to `size` (bilinear, half-pixel centres, antialiased when
    shrinking); float32 out, same value range."""
    if x.shape[1:3] == tuple(size):
        return x.astype(np.float32, copy=False)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)
    shrink = size[0] < x.shape[1] or size[1] < x.shape[2]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def resize_flow(flow: np.ndarray, valid: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A flow field [H, W, 2] (u, v in pixels) with its valid mask [H, W] resized to `size`: values averaged
    over valid pixels only (a sparse KITTI field keeps its measured vectors) and scaled by the resize
    factors, so the result is in pixels of the new grid. A new pixel is valid when any valid pixel
    contributes to it."""
    h, w = flow.shape[:2]
    if (h, w) == tuple(size):
        return flow.astype(np.float32), valid.astype(bool)
    m = valid.astype(np.float32)[..., None]
    both = np.concatenate([flow * m, m], axis=-1)[None]
    r = resize_images(both, size)[0]
    weight = r[..., 2]
    ok = weight > 1e-6
    out = np.where(ok[..., None], r[..., :2] / np.maximum(weight, 1e-6)[..., None], 0.0).astype(np.float32)
    out[..., 0] *= size[1] / w
    out[..., 1] *= size[0] / h
    return out, ok


def center_crop(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The centre `size` window of [H, W, ...] (the caller checks it fits)."""
    h, w = x.shape[:2]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return x[top : top + size[0], left : left + size[1]]
