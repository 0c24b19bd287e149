"""Synthetic optical flow in the spirit of FlyingChairs / AutoFlow, generated offline from textures that
ship inside installed packages (nothing is downloaded).

A sample is a stack of layers: a textured background and `layers` textured foreground shapes (ellipses and
star-shaped polygons), each placed by an affine map and moved between the frames by its own random affine
motion (translation, rotation, scale about its centre). Both frames are RENDERED from the layers (frame 2 is
never warped from frame 1), back to front with hard masks, so occlusions and disocclusions are real. The
ground-truth flow of a pixel of frame 1 is exact: the motion of the top-most layer there, `D(p) - p`.
Then a blur (same sigma in both frames), a per-frame brightness gain and Gaussian noise.

Textures: photographs shipped in scikit-image's wheel (`skimage.data`, the ones that load without a
download), with random channel order or a random two-colour tint for grey ones, and procedural ones
(smooth colour noise, stripes, soft checkers). Photos are seen through a pyramid (the level whose texels
are about one pixel), slightly blurred, so that bilinear resampling is close to exact (the
independent-truth test relies on it).

Every size and motion is a fraction of the image size and the random draws do not depend on the
resolution, so a seed gives the SAME scenes at every resolution (flow scaled with the image): a network
trained at one resolution can be evaluated on the very same validation scenes at another. Each sample
draws from its own generator seeded by (version, seed, split, index): the same seed gives the same data, in
any order, and the train and validation splits never share a sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter

from edgenas.train.tasks._image import bilinear

VERSION = 2  # bump whenever the samples a seed gives change (it is part of the cache key)

# skimage.data images bundled in the wheel (checked to load offline; the others need `pooch` and a network).
PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "camera", "brick", "grass", "gravel", "coins", "moon", "page", "text", "clock", "cell",
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthSettings:
    """What the generator draws from. Fractions are of the image width (translation) or relative."""

    layers: tuple[int, int] = (2, 5)  # foreground layers per sample, min and max
    max_translation: float = 0.08  # foreground translation, fraction of the image width
    background_translation: float = 0.03  # background translation, fraction of the image width
    max_rotation: float = 10.0  # degrees, foreground (background: a quarter)
    max_scale: float = 0.1  # relative scale change between the frames (background: half)
    noise: float = 0.02  # largest std of Gaussian noise, intensity in [0, 1]
    blur: float = 0.8  # largest Gaussian blur sigma in pixels (drawn per sample, same in both frames)
    brightness: float = 0.05  # largest relative brightness change of a frame

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class SynthSample(NamedTuple):
    frame1: np.ndarray  # [H, W, 3] float32 in [0, 1]
    frame2: np.ndarray
    flow: np.ndarray  # [H, W, 2] float32 (u, v) in pixels: where frame 1's pixel is in frame 2
    labels1: np.ndarray  # [H, W] int8: index of the top-most layer (0 = background) in frame 1
    labels2: np.ndarray  # the same in frame 2


def _halve(img: np.ndarray) -> np.ndarray:
    h2, w2 = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2, -1).mean(axis=(1, 3))


@lru_cache(maxsize=1)
def photo_textures() -> tuple[tuple[np.ndarray, ...], ...]:
    """The bundled photographs as pyramids (full size, halved, quartered, ... down to 64 px) of float32
    [H, W, C] (C = 1 or 3) in [0, 1], each level slightly blurred: a layer samples the level whose texels
    are about one pixel, so textures look alike at every resolution and bilinear resampling stays close
    to exact."""
    import skimage.data

    out = []
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
        if img.max() > 1.0:
            img = img / 255.0
        img = (img[..., None] if img.ndim == 2 else img)[..., :3]
        levels = []
        while True:
            levels.append(np.ascontiguousarray(gaussian_filter(img, sigma=(0.6, 0.6, 0)), dtype=np.float32))
            if min(img.shape[:2]) < 128:
                break
            img = _halve(img)
        out.append(tuple(levels))
    return tuple(out)


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32)


def _procedural(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A [size, size, 3] texture: smooth colour noise, stripes or a soft checker, in random colours."""
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 0:
        coarse = rng.uniform(0, 1, (int(rng.integers(6, 20)), int(rng.integers(6, 20)), 3)).astype(np.float32)
        sy = (coarse.shape[0] - 1) / (size - 1)
        sx = (coarse.shape[1] - 1) / (size - 1)
        tex = bilinear(coarse, yy * sy, xx * sx, mode="clamp")
        fine = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
        tex = 0.7 * tex + 0.3 * gaussian_filter(fine, sigma=(1.0, 1.0, 0))
        return np.clip(tex, 0, 1)
    c = _colours(rng, 2)
    angle = rng.uniform(0, math.pi)
    if kind == 1:
        freq = rng.uniform(1 / 14, 1 / 5)
        s = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)))
    else:
        freq = rng.uniform(1 / 24, 1 / 8)
        s = 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * math.pi * freq * xx) * np.sin(2 * math.pi * freq * yy))
    return (c[0] + (c[1] - c[0]) * s[..., None]).astype(np.float32)


def _texture(rng: np.random.Generator, photo_p: float, width: int) -> tuple[tuple, float]:
    """((texels [H, W, C], colour matrix [3, C], offset [3]), texels per image pixel). A sampled texel t
    becomes M t + b, so a photo's channel order or a grey photo's tint costs nothing until its pixels are
    sampled. A photo is seen at a scale where the image spans 20-70% of its width (the same look at every
    resolution), from the pyramid level whose texels are 0.7-1.4 pixels."""
    eye, zero = np.eye(3, dtype=np.float32), np.zeros(3, dtype=np.float32)
    if rng.uniform() < photo_p:
        photos = photo_textures()
        pyramid = photos[int(rng.integers(len(photos)))]
        rho = rng.uniform(0.2, 0.7) * pyramid[0].shape[1] / width  # level-0 texels per pixel
        level = int(np.clip(round(math.log2(max(rho, 1e-6))), 0, len(pyramid) - 1))
        img = pyramid[level]
        if img.shape[2] == 1:
            c = _colours(rng, 2)
            colour = ((c[1] - c[0])[:, None], c[0])
        else:
            colour = (eye[rng.permutation(3)], zero)
        return (img, *colour), rho / 2**level
    return (_procedural(rng), eye, zero), rng.uniform(0.6, 1.5)


def _affine(tx: float, ty: float, angle: float, sx: float, sy: float) -> np.ndarray:
    """3x3 matrix: scale (sx, sy), then rotate by `angle` (radians), then translate (layer -> image)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c * sx, -s * sy, tx], [s * sx, c * sy, ty], [0, 0, 1]], dtype=np.float64)


def _motion(cx: float, cy: float, dx: float, dy: float, angle: float, scale: float) -> np.ndarray:
    """Image -> image motion: rotate and scale about (cx, cy), then translate by (dx, dy)."""
    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    return _affine(cx + dx, cy + dy, angle, scale, scale) @ to_origin


def _apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    (a, b, c), (d, e, f) = m[:2].tolist()  # Python floats keep float32 arrays float32
    return a * x + b * y + c, d * x + e * y + f


class _Layer(NamedTuple):
    place: np.ndarray  # layer -> image in frame 1
    motion: np.ndarray  # image -> image, frame 1 -> frame 2
    texture: tuple[np.ndarray, np.ndarray, np.ndarray]  # (texels, colour matrix, offset): see _texture
    tex_map: np.ndarray  # layer -> texture coordinates
    shape: tuple  # ("all",) | ("ellipse",) | ("polygon", angles, radii)


def _inside(shape: tuple, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Mask of layer coordinates inside the shape (unit ellipse / polygon of radius <= 1)."""
    if shape[0] == "all":
        return np.ones(qx.shape, dtype=bool)
    if shape[0] == "ellipse":
        return qx * qx + qy * qy <= 1.0
    _, ang, rad = shape  # star-shaped polygon: vertices at sorted angles, radius `rad` each
    theta = np.mod(np.arctan2(qy, qx), 2 * math.pi)
    n = len(ang)
    i1 = np.searchsorted(ang, theta, side="right")  # vertex after theta (wraps)
    i0 = (i1 - 1) % n
    i1 = i1 % n
    ax, ay = rad[i0] * np.cos(ang[i0]), rad[i0] * np.sin(ang[i0])
    bx, by = rad[i1] * np.cos(ang[i1]), rad[i1] * np.sin(ang[i1])
    # inside the triangle (origin, a, b) <=> on the origin's side of the edge a-b
    edge = (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
    origin = (bx - ax) * (0 - ay) - (by - ay) * (0 - ax)
    return edge * origin >= 0


def _layers(rng: np.random.Generator, h: int, w: int, s: SynthSettings) -> list[_Layer]:
    out = []
    n_fg = int(rng.integers(s.layers[0], s.layers[1] + 1))
    for k in range(n_fg + 1):
        bg = k == 0
        tex, tex_scale = _texture(rng, 0.85 if bg else 0.6, w)
        tex_off = rng.uniform(0, 1, 2) * np.array(tex[0].shape[:2][::-1])
        if bg:
            cx, cy = w / 2, h / 2
            place = _affine(cx, cy, 0.0, 1.0, 1.0)
            shape: tuple = ("all",)
            trans = s.background_translation * w
            rot, scl = s.max_rotation / 4, s.max_scale / 2
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(0.12, 0.4) * min(h, w)
            aspect = rng.uniform(0.5, 1.0)
            place = _affine(cx, cy, rng.uniform(0, 2 * math.pi), r, r * aspect)
            if rng.uniform() < 0.5:
                shape = ("ellipse",)
            else:
                nv = int(rng.integers(3, 9))
                # jittered even angles: every gap stays below pi, so each sector is a triangle
                ang = np.sort(np.mod((np.arange(nv) + rng.uniform(-0.2, 0.2, nv)) * 2 * math.pi / nv
                                     + rng.uniform(0, 2 * math.pi), 2 * math.pi))
                shape = ("polygon", ang, rng.uniform(0.5, 1.0, nv))
            tex_scale = tex_scale * r  # layer coordinates are in radii, texture coordinates in texels
            trans = s.max_translation * w
            rot, scl = s.max_rotation, s.max_scale
        t_len = trans * math.sqrt(rng.uniform())
        t_dir = rng.uniform(0, 2 * math.pi)
        motion = _motion(cx, cy, t_len * math.cos(t_dir), t_len * math.sin(t_dir),
                         math.radians(rng.uniform(-rot, rot)), 1.0 + rng.uniform(-scl, scl))
        tex_map = _affine(tex_off[0], tex_off[1], rng.uniform(0, 2 * math.pi), tex_scale, tex_scale)
        out.append(_Layer(place, motion, tex, tex_map, shape))
    return out


def _window(place: np.ndarray, shape: tuple, h: int, w: int) -> tuple[slice, slice] | None:
    """Rows and columns that can hold the layer (the image of the unit disk, which holds every shape)."""
    if shape[0] == "all":
        return slice(0, h), slice(0, w)
    ex, ey = math.hypot(place[0, 0], place[0, 1]), math.hypot(place[1, 0], place[1, 1])
    c0, c1 = max(0, math.floor(place[0, 2] - ex)), min(w, math.ceil(place[0, 2] + ex) + 1)
    r0, r1 = max(0, math.floor(place[1, 2] - ey)), min(h, math.ceil(place[1, 2] + ey) + 1)
    return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None


def _render(layers: list[_Layer], frame: int, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((*xx.shape, 3), dtype=np.float32)
    labels = np.zeros(xx.shape, dtype=np.int8)
    for k, layer in enumerate(layers):
        place = layer.place if frame == 1 else layer.motion @ layer.place
        win = _window(place, layer.shape, *xx.shape)
        if win is None:
            continue
        qx, qy = _apply(np.linalg.inv(place), xx[win], yy[win])
        mask = _inside(layer.shape, qx, qy)
        if not mask.any():
            continue
        tx, ty = _apply(layer.tex_map, qx[mask], qy[mask])
        texels, colour, offset = layer.texture
        img[win][mask] = bilinear(texels, ty, tx, mode="mirror") @ colour.T + offset
        labels[win][mask] = k
    return img, labels


def render_pair(rng: np.random.Generator, resolution: tuple[int, int], settings: SynthSettings) -> SynthSample:
    """One sample at `resolution` (H, W) drawn from `rng`."""
    h, w = resolution
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    layers = _layers(rng, h, w, settings)
    f1, lab1 = _render(layers, 1, xx, yy)
    f2, lab2 = _render(layers, 2, xx, yy)
    flow = np.zeros((h, w, 2), dtype=np.float32)
    for k, layer in enumerate(layers):
        sel = lab1 == k
        if sel.any():
            x2, y2 = _apply(layer.motion, xx[sel], yy[sel])
            flow[sel, 0] = x2 - xx[sel]
            flow[sel, 1] = y2 - yy[sel]
    sigma = rng.uniform(0, settings.blur)
    frames = []
    for f in (f1, f2):
        if sigma > 0.05:
            f = gaussian_filter(f, sigma=(sigma, sigma, 0))
        if settings.brightness > 0:
            f = f * (1.0 + rng.uniform(-settings.brightness, settings.brightness))
        if settings.noise > 0:
            f = f + rng.normal(0, rng.uniform(0, settings.noise), f.shape)
        frames.append(np.clip(f, 0.0, 1.0).astype(np.float32))
    return SynthSample(frames[0], frames[1], flow, lab1, lab2)


def sample_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """The generator of one sample: independent of the others, so any subset can be made alone."""
    return np.random.default_rng([VERSION, seed, split, index])


def generate(resolution: tuple[int, int], count: int, seed: int, settings: SynthSettings, *, split: int = 0,
             progress: Progress | None = None) -> dict[str, np.ndarray]:
    """`count` samples as arrays: `frames` uint8 [N, H, W, 6] (frame 1 RGB, frame 2 RGB) and `flow` float16
    [N, H, W, 2] (u, v in pixels; float16 keeps 1/128 px below 16 px, 1/32 px below 64 px)."""
    h, w = resolution
    frames = np.empty((count, h, w, 6), dtype=np.uint8)
    flow = np.empty((count, h, w, 2), dtype=np.float16)
    step = max(1, count // 100)
    for i in range(count):
        s = render_pair(sample_rng(seed, split, i), resolution, settings)
        frames[i, ..., :3] = np.round(s.frame1 * 255)
        frames[i, ..., 3:] = np.round(s.frame2 * 255)
        flow[i] = s.flow
        if progress is not None and ((i + 1) % step == 0 or i + 1 == count):
            progress(i + 1, count)
    return {"frames": frames, "flow": flow}
