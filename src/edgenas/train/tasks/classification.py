"""Image classification: scikit-learn's digits, digits-hard, a user's .npz arrays or image folder.

Inputs: [C, H, W] float32, pixel values scaled from [0, 255] to [-1, 1] (uint8 data; float data are taken to
be in [0, 1]; digits' 0..16 to [0, 255] first). Every image is resized to the requested resolution
(bilinear, antialiased when shrinking; aspect ratio not kept). Target: the class index (int64). Outputs: the
last graph output is [N, classes] logits. Loss: cross-entropy. Metric: `top1`, the percentage of samples
whose largest logit is the true class (primary, higher is better).

- `digits`: the 1797 8x8 grey digits that ship inside scikit-learn, split into training and validation by a
  seeded permutation (`val_fraction`).
- `digits-hard`: each sample is one digit at a random scale (45-90% of the canvas), rotation (+-15 deg) and
  position on a canvas of the requested resolution, with clutter (random strokes and pieces of other
  digits) and noise, so that networks' accuracies spread beyond seed noise. Training and validation samples
  are drawn from disjoint digit images. Generated once per (resolution, seed, count, settings) and cached
  like the flow data.
- `npz`: arrays `x` [N, H, W] or [N, H, W, C] (uint8, or float in [0, 1]) and `y` [N] (ints from 0);
  `x_val` / `y_val` if present, else a seeded split.
- `folder`: one sub-folder per class (class index = position in the sorted folder names) of PNG / JPEG / BMP
  / GIF / TIFF / PPM images; 1 channel when every image is grey, else 3 (RGB); `val_path` (same layout) if
  given, else a seeded split.
"""

from __future__ import annotations

import importlib.util
import math
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from edgenas.errors import ConfigError
from edgenas.train.tasks._cache import cache_name, cached_arrays
from edgenas.train.tasks._image import bilinear, resize_images
from edgenas.train.tasks.base import DataProgress, Task, TaskData

DIGITS_HARD_VERSION = 2  # bump whenever the samples a seed gives change (part of the cache key)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


class ClassArrays(Dataset):
    """Images uint8 [N, H, W, C] and labels [N]; item: (float32 [C, H, W] in [-1, 1], int64 label)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i].permute(2, 0, 1).to(torch.float32) / 127.5 - 1.0, self.y[i]


def to_uint8(x: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """[N, H, W, C] in [0, 255] -> uint8 at `resolution`."""
    return np.clip(np.round(resize_images(x, resolution)), 0, 255).astype(np.uint8)


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of a seeded permutation (at least one of each)."""
    order = np.random.default_rng([seed, 0x5B117]).permutation(n)
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def top1_sums(logits: Tensor, target: Tensor) -> dict[str, tuple[float, int]]:
    with torch.no_grad():
        correct = (logits.argmax(dim=1) == target).sum().item()
    return {"top1": (100.0 * correct, int(target.numel()))}


class ClassificationTask(Task):
    """Common parts; subclasses give the arrays."""

    kind = "classification"
    primary = "top1"
    higher_is_better = True
    best_possible = 100.0
    input_channels = 1
    num_classes = 0

    def __init__(self, *, name: str, data_seed: int | None = 0, val_fraction: float = 0.2) -> None:
        self.name = name
        self.data_seed = data_seed
        self.val_fraction = val_fraction

    def _arrays(self, resolution: tuple[int, int], seed: int,
                progress: DataProgress | None) -> tuple[ClassArrays, ClassArrays, dict[str, Any]]:
        raise NotImplementedError

    def data(self, resolution: tuple[int, int], *, seed: int, progress: DataProgress | None = None) -> TaskData:
        """`data_seed` (when set) fixes the split and generated samples whatever the run's seed."""
        dseed = seed if self.data_seed is None else self.data_seed
        train, val, desc = self._arrays(resolution, dseed, progress)
        return TaskData(train, val, {"task": self.describe(), "resolution": list(resolution), "seed": dseed,
                                     "train_samples": len(train), "val_samples": len(val), **desc})

    def eval_data(self, resolution: tuple[int, int], *, source: str | None = None,
                  progress: DataProgress | None = None) -> Dataset:
        """`source`: None (the validation set), an .npz file (its `x`, `y`) or an image folder."""
        if source is None:
            seed = 0 if self.data_seed is None else self.data_seed
            return self._arrays(resolution, seed, progress)[1]
        p = Path(source)
        if p.is_dir():
            folder = ImageFolder(p)
            return folder.load(resolution, folder.files, self.input_channels, progress)
        if check_npz(p) != self.input_channels:
            raise ConfigError(f"images have {check_npz(p)} channel(s), the task's network takes "
                              f"{self.input_channels}", source=str(p))
        x, y = load_npz(p, ("x", "y"))
        return ClassArrays(to_uint8(_as_nhwc_255(x), resolution), y)

    def loss(self, outputs: tuple[Tensor, ...], target: Tensor) -> Tensor:
        return F.cross_entropy(outputs[-1], target)

    def metric_sums(self, outputs: tuple[Tensor, ...], target: Tensor) -> dict[str, tuple[float, int]]:
        return top1_sums(outputs[-1], target)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "data_seed": self.data_seed, "val_fraction": self.val_fraction,
                "classes": self.num_classes, "input_channels": self.input_channels}


# ---- digits --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images [1797, 8, 8] float32 in [0, 1], labels [1797]. Read from the CSV that
    ships inside the scikit-learn wheel (what `load_digits` reads) without importing scikit-learn, which
    takes seconds; `load_digits` itself if the file moved."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        data = np.loadtxt(path, delimiter=",", dtype=np.float32)
        images, labels = data[:, :-1].reshape(-1, 8, 8), data[:, -1]
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels = d.images, d.target
    out = (images / 16.0).astype(np.float32), labels.astype(np.int64)
    for a in out:
        a.setflags(write=False)  # cached: shared by every caller
    return out


class DigitsTask(ClassificationTask):
    num_classes = 10
    data_fixed_by_description = True  # generated from the digits scikit-learn ships

    def __init__(self, *, data_seed: int | None = 0, val_fraction: float = 0.2) -> None:
        super().__init__(name="digits", data_seed=data_seed, val_fraction=val_fraction)

    def _arrays(self, resolution, seed, progress):
        x, y = digits_arrays()
        tr, va = seeded_split(len(y), self.val_fraction, seed)
        img = to_uint8(x[..., None] * 255.0, resolution)
        return ClassArrays(img[tr], y[tr]), ClassArrays(img[va], y[va]), {"source": "sklearn.datasets.load_digits"}


def _render_digit(rng: np.random.Generator, digit: np.ndarray, h: int, w: int, yy: np.ndarray, xx: np.ndarray,
                  size: float, rot_deg: float) -> np.ndarray:
    """An 8x8 digit drawn on an [h, w] canvas: `size` pixels across, rotated, centred at a random point."""
    pad = np.pad(digit, 1)[..., None]  # zero border: edges fade out under bilinear sampling
    scale = size / 8.0
    cx = rng.uniform(0.4 * size, w - 0.4 * size) if w > 0.8 * size else w / 2
    cy = rng.uniform(0.4 * size, h - 0.4 * size) if h > 0.8 * size else h / 2
    a = math.radians(rot_deg)
    c, s = math.cos(a), math.sin(a)
    dx, dy = xx - cx, yy - cy
    u = (c * dx + s * dy) / scale + 4.5  # canvas -> padded digit coordinates (centre 4.5)
    v = (-s * dx + c * dy) / scale + 4.5
    return bilinear(pad, v, u, mode="zero")[..., 0]


def render_digits_hard(rng: np.random.Generator, digits: np.ndarray, index: int, resolution: tuple[int, int],
                       clutter: int, noise: float) -> np.ndarray:
    """One digits-hard image [H, W] float32 in [0, 1]: digit `index` of `digits` plus clutter drawn from
    the other digits of the same pool."""
    h, w = resolution
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    m = min(h, w)
    img = _render_digit(rng, digits[index], h, w, yy, xx, rng.uniform(0.45, 0.9) * m, rng.uniform(-15, 15))
    for _ in range(int(rng.integers(0, clutter + 1))):
        if rng.uniform() < 0.5:  # a stroke: a thick segment
            p0 = rng.uniform(0, 1, 2) * (w, h)
            ang = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(0.2, 0.6) * m
            p1 = p0 + length * np.array([math.cos(ang), math.sin(ang)])
            d = p1 - p0
            t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / (d @ d), 0, 1)
            dist = np.hypot(xx - p0[0] - t * d[0], yy - p0[1] - t * d[1])
            half = rng.uniform(0.5, 1.5) * m / 32
            piece = rng.uniform(0.4, 1.0) * np.clip(half - dist + 0.5, 0, 1)
        else:  # a piece of another digit: cut by a random half-plane
            other = digits[int(rng.integers(len(digits)))]
            piece = _render_digit(rng, other, h, w, yy, xx, rng.uniform(0.45, 0.9) * m, rng.uniform(-30, 30))
            ang = rng.uniform(0, 2 * math.pi)
            off = rng.uniform(-0.1, 0.3) * m
            mass = max(float(piece.sum()), 1e-6)
            cy, cx = float((piece * yy).sum()) / mass, float((piece * xx).sum()) / mass
            side = (xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang) > off
            piece = piece * side * rng.uniform(0.5, 1.0)
        img = np.maximum(img, piece)
    if noise > 0:
        img = img + rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


class DigitsHardTask(ClassificationTask):
    num_classes = 10
    data_fixed_by_description = True  # generated from the digits scikit-learn ships

    def __init__(self, *, train_samples: int = 4000, val_samples: int = 1000, data_seed: int | None = 0,
                 val_fraction: float = 0.2, clutter: int = 3, noise: float = 0.05) -> None:
        super().__init__(name="digits-hard", data_seed=data_seed, val_fraction=val_fraction)
        self.train_samples, self.val_samples = train_samples, val_samples
        self.clutter, self.noise = clutter, noise

    def _generate(self, resolution: tuple[int, int], count: int, seed: int, split: int, pool: np.ndarray,
                  images: np.ndarray, labels: np.ndarray, progress: DataProgress | None) -> dict[str, np.ndarray]:
        h, w = resolution
        x = np.empty((count, h, w, 1), dtype=np.uint8)
        y = np.empty(count, dtype=np.int64)
        digits = images[pool]
        for i in range(count):
            rng = np.random.default_rng([DIGITS_HARD_VERSION, seed, split, i])
            j = int(rng.integers(len(pool)))
            x[i, ..., 0] = np.round(render_digits_hard(rng, digits, j, resolution, self.clutter, self.noise) * 255)
            y[i] = labels[pool[j]]
            if progress is not None and ((i + 1) % max(1, count // 100) == 0 or i + 1 == count):
                progress(i + 1, count)
        return {"x": x, "y": y}

    def _arrays(self, resolution, seed, progress):
        images, labels = digits_arrays()
        pools = seeded_split(len(labels), self.val_fraction, seed)  # disjoint digit images per split
        settings = {"clutter": self.clutter, "noise": self.noise, "val_fraction": self.val_fraction}
        out, files = [], []
        for split, count in enumerate((self.train_samples, self.val_samples)):
            name = cache_name(f"digits-hard-{('train', 'val')[split]}", DIGITS_HARD_VERSION, resolution, seed,
                              count, settings)
            arr = cached_arrays(name, lambda s=split, c=count: self._generate(resolution, c, seed, s, pools[s],
                                                                               images, labels, progress))
            out.append(ClassArrays(arr["x"], arr["y"]))
            files.append(name)
        return out[0], out[1], {"source": "digits-hard", "version": DIGITS_HARD_VERSION, "cache_files": files}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train_samples": self.train_samples, "val_samples": self.val_samples,
                "clutter": self.clutter, "noise": self.noise, "version": DIGITS_HARD_VERSION}


# ---- npz -----------------------------------------------------------------------------------------------


def npz_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an .npz file, from the headers only (nothing loaded)."""
    if not path.is_file():
        raise ConfigError("file not found", source=str(path))
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                with zf.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = reader(f)
                out[member[:-4]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ConfigError(f"not a readable .npz file ({e})", source=str(path)) from None
    return out


def check_npz(path: Path) -> int:
    """Validate the layout of a classification .npz from its headers; returns its images' channels."""
    shapes = npz_shapes(path)
    for key in ("x", "y"):
        if key not in shapes:
            raise ConfigError(f"no array {key!r} (expected x [N,H,W] or [N,H,W,C] and y [N]; has: "
                              f"{', '.join(sorted(shapes)) or 'nothing'})", source=str(path))
    if ("x_val" in shapes) != ("y_val" in shapes):
        raise ConfigError("has one of x_val / y_val without the other", source=str(path))
    channels = None
    for xk, yk in (("x", "y"), ("x_val", "y_val")):
        if xk not in shapes:
            continue
        (xs, xd), (ys, yd) = shapes[xk], shapes[yk]
        if len(xs) not in (3, 4) or (len(xs) == 4 and xs[3] not in (1, 3, 4)):
            raise ConfigError(f"{xk} has shape {list(xs)}; expected [N, H, W] or [N, H, W, C] with C 1, 3 or 4",
                              source=str(path))
        if xd.kind not in "uif":
            raise ConfigError(f"{xk} has dtype {xd}; expected uint8 or float", source=str(path))
        if len(ys) != 1 or ys[0] != xs[0]:
            raise ConfigError(f"{yk} has shape {list(ys)}; expected [{xs[0]}] (one label per image of {xk})",
                              source=str(path))
        if yd.kind not in "ui":
            raise ConfigError(f"{yk} has dtype {yd}; expected integers (class indices)", source=str(path))
        c = 1 if len(xs) == 3 else min(xs[3], 3)  # alpha dropped
        if channels is not None and c != channels:
            raise ConfigError(f"x has {channels} channel(s) but x_val {c}", source=str(path))
        channels = c
    return channels or 1


def load_npz(path: Path, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = tuple(f[k] for k in keys)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"cannot read arrays ({e})", source=str(path)) from None
    for k, a in zip(keys, arrays, strict=True):
        if k.startswith("y") and a.size and a.min() < 0:
            raise ConfigError(f"{k} holds negative labels; classes are 0, 1, ...", source=str(path))
    return arrays


def _as_nhwc_255(x: np.ndarray) -> np.ndarray:
    """[N,H,W] or [N,H,W,C] uint8 / float [0,1] -> float32 [N,H,W,C'] in [0, 255], alpha dropped."""
    x = x[..., None] if x.ndim == 3 else x[..., :3]
    return x.astype(np.float32) if x.dtype.kind in "ui" else x.astype(np.float32) * 255.0


class NpzTask(ClassificationTask):
    def __init__(self, *, path: Path, data_seed: int | None = 0, val_fraction: float = 0.2) -> None:
        super().__init__(name="npz", data_seed=data_seed, val_fraction=val_fraction)
        self.path = Path(path)
        self.input_channels = check_npz(self.path)
        self._has_val = "x_val" in npz_shapes(self.path)
        labels = load_npz(self.path, ("y", "y_val") if self._has_val else ("y",))
        self.num_classes = max(int(y.max(initial=0)) for y in labels) + 1

    def _arrays(self, resolution, seed, progress):
        if self._has_val:
            x, y, xv, yv = load_npz(self.path, ("x", "y", "x_val", "y_val"))
        else:
            x, y = load_npz(self.path, ("x", "y"))
            tr, va = seeded_split(len(y), self.val_fraction, seed)
            x, y, xv, yv = x[tr], y[tr], x[va], y[va]
        train = ClassArrays(to_uint8(_as_nhwc_255(x), resolution), y)
        val = ClassArrays(to_uint8(_as_nhwc_255(xv), resolution), yv)
        return train, val, {"source": str(self.path), "split": "x_val" if self._has_val else "seeded"}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path)}


# ---- image folder --------------------------------------------------------------------------------------


class ImageFolder:
    """A folder with one sub-folder per class; class index = position in the sorted sub-folder names."""

    def __init__(self, root: Path, classes: list[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError("folder not found", source=str(self.root))
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise ConfigError("no class sub-folders (expected one sub-folder of images per class)",
                              source=str(self.root))
        self.classes = classes if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise ConfigError(f"class folder(s) {', '.join(unknown)} not among the training classes "
                              f"({', '.join(self.classes)})", source=str(self.root))
        self.files: list[tuple[Path, int]] = []
        for name in found:
            images = sorted(f for f in (self.root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ConfigError("class folder holds no images (png, jpg, bmp, gif, tif, ppm, webp)",
                                  source=str(self.root / name))
            self.files.extend((f, self.classes.index(name)) for f in images)

    def channels(self) -> int:
        """1 when every image is grey, else 3 (header reads only)."""
        from PIL import Image, UnidentifiedImageError

        for f, _ in self.files:
            try:
                with Image.open(f) as im:
                    if im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                        return 3
            except (UnidentifiedImageError, OSError) as e:
                raise ConfigError(f"cannot read image ({e})", source=str(f)) from None
        return 1

    def load(self, resolution: tuple[int, int], files: list[tuple[Path, int]], channels: int,
             progress: DataProgress | None = None) -> ClassArrays:
        from PIL import Image, UnidentifiedImageError

        h, w = resolution
        x = np.empty((len(files), h, w, channels), dtype=np.uint8)
        y = np.empty(len(files), dtype=np.int64)
        for i, (f, label) in enumerate(files):
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
            except (UnidentifiedImageError, OSError) as e:
                raise ConfigError(f"cannot read image ({e})", source=str(f)) from None
            arr = arr[..., None] if arr.ndim == 2 else arr
            x[i] = to_uint8(arr[None], resolution)[0]
            y[i] = label
            if progress is not None:
                progress(i + 1, len(files))
        return ClassArrays(x, y)


class FolderTask(ClassificationTask):
    def __init__(self, *, path: Path, val_path: Path | None = None, data_seed: int | None = 0,
                 val_fraction: float = 0.2) -> None:
        super().__init__(name="folder", data_seed=data_seed, val_fraction=val_fraction)
        self.folder = ImageFolder(path)
        self.val_folder = None if val_path is None else ImageFolder(val_path, self.folder.classes)
        self.num_classes = len(self.folder.classes)
        grey = self.folder.channels() == 1 and (self.val_folder is None or self.val_folder.channels() == 1)
        self.input_channels = 1 if grey else 3

    def _arrays(self, resolution, seed, progress):
        if self.val_folder is not None:
            tr_files, va_files = self.folder.files, self.val_folder.files
        else:
            tr, va = seeded_split(len(self.folder.files), self.val_fraction, seed)
            tr_files = [self.folder.files[i] for i in tr]
            va_files = [self.folder.files[i] for i in va]
        train = self.folder.load(resolution, tr_files, self.input_channels, progress)
        val = (self.val_folder or self.folder).load(resolution, va_files, self.input_channels, progress)
        return train, val, {"source": str(self.folder.root), "classes": self.folder.classes}

    def eval_data(self, resolution, *, source=None, progress=None):
        if source is not None and Path(source).is_dir():
            folder = ImageFolder(Path(source), self.folder.classes)
            return folder.load(resolution, folder.files, self.input_channels, progress)
        return super().eval_data(resolution, source=source, progress=progress)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.folder.root),
                "val_path": None if self.val_folder is None else str(self.val_folder.root),
                "class_names": self.folder.classes}
