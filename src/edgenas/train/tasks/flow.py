"""Optical flow: two RGB frames in, a flow field out, scored by endpoint error.

Inputs: frame 1 RGB then frame 2 RGB stacked as 6 channels, scaled from [0, 255] to [-1, 1] (the int8
input range the TFLite writer assumes, `tflite.quant.INPUT_RANGE`). Target: [3, H, W] = (u, v, valid),
u and v in pixels of the input resolution, valid 1.0 where the ground truth is known (everywhere for the
synthetic data; KITTI is sparse).

Heads and loss. The network's outputs are its flow heads in graph order (the flow template: 1/4, 1/2 and
full resolution). Each head predicts flow in pixels OF ITS OWN GRID: its ground truth is the full-resolution
field averaged over valid pixels in each cell (adaptive average pooling of u*valid, v*valid and valid) and
scaled by the head's size over the input's (so at 1/4 resolution a 4-pixel motion is 1). The loss is
sum_k w_k * mean EPE_k over the head's valid cells, with equal weights by default (`loss_weights`): in
full-resolution pixels that weighs the heads 1/4, 1/2, 1, so the deployed full-resolution output dominates
and the coarse heads add deep supervision. (FlowNet / PWC-Net weights such as 0.32/0.08/0.02 multiply SUMS
over pixels; on means they would make the coarsest head dominate.)

Metrics on the last output only (full resolution, the same grid and units as the target): `epe`, the mean
endpoint error over valid pixels (pixel-weighted over the whole set, as Sintel and KITTI count), primary,
lower is better; `fl_all`, KITTI's outlier rate: the percentage of valid pixels whose EPE exceeds both 3 px
and 5% of the ground-truth magnitude.

Data. `train_data` / `val_data`: `synthetic` (flow_synthetic, generated once at the requested resolution and
cached) or a list file of `frame1 frame2 flow` lines (flow_formats; Middlebury .flo or KITTI PNG). Files are
brought to the requested resolution by `fit`: `resize` (default: frames resized with antialiasing, flow
averaged over valid pixels and its values scaled by the resize factors) or `crop` (the centre window at
native scale, flow values unchanged; the files must be at least that large). File data are read once, at
`data()`, into memory at the requested resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from edgenas.errors import ConfigError
from edgenas.train.tasks import flow_synthetic as synth
from edgenas.train.tasks._cache import cache_name, cached_arrays
from edgenas.train.tasks._image import center_crop, resize_flow, resize_images
from edgenas.train.tasks.base import DataProgress, Task, TaskData
from edgenas.train.tasks.flow_formats import read_pair, read_pair_list

SPLIT_TRAIN, SPLIT_VAL = 0, 1


def frames_to_input(frames: Tensor) -> Tensor:
    """uint8 [..., H, W, 6] -> float32 [..., 6, H, W] in [-1, 1]."""
    return frames.movedim(-1, -3).to(torch.float32) / 127.5 - 1.0


class FlowArrays(Dataset):
    """Samples held in memory: frames uint8 [N, H, W, 6], flow [N, H, W, 2], valid [N, H, W] or None (all
    valid). Item: (inputs [6, H, W] float32 in [-1, 1], target [3, H, W] = (u, v, valid))."""

    def __init__(self, frames: np.ndarray, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.frames = torch.from_numpy(np.ascontiguousarray(frames))
        self.flow = torch.from_numpy(np.ascontiguousarray(flow))
        self.valid = None if valid is None else torch.from_numpy(np.ascontiguousarray(valid, dtype=np.bool_))

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        uv = self.flow[i].to(torch.float32).permute(2, 0, 1)
        valid = torch.ones_like(uv[:1]) if self.valid is None else self.valid[i][None].to(torch.float32)
        return frames_to_input(self.frames[i]), torch.cat([uv, valid], dim=0)


def synthetic_set(resolution: tuple[int, int], count: int, seed: int, settings: synth.SynthSettings, split: int,
                  progress: DataProgress | None = None) -> tuple[FlowArrays, str]:
    """A cached synthetic set and its cache file name."""
    kind = "flow-synth-train" if split == SPLIT_TRAIN else "flow-synth-val"
    name = cache_name(kind, synth.VERSION, resolution, seed, count, settings.as_dict())
    arrays = cached_arrays(name, lambda: synth.generate(resolution, count, seed, settings, split=split,
                                                        progress=progress))
    return FlowArrays(arrays["frames"], arrays["flow"]), name


def file_set(list_path: str | Path, resolution: tuple[int, int], fit: str,
             progress: DataProgress | None = None) -> FlowArrays:
    """The samples of a `frame1 frame2 flow` list file at `resolution` (see the module docstring)."""
    pairs = read_pair_list(list_path)
    h, w = resolution
    frames = np.empty((len(pairs), h, w, 6), dtype=np.uint8)
    flows = np.empty((len(pairs), h, w, 2), dtype=np.float32)
    valids = np.empty((len(pairs), h, w), dtype=bool)
    for i, pair in enumerate(pairs):
        f1, f2, fl = read_pair(pair)
        both = np.concatenate([f1, f2], axis=-1)
        if fit == "crop":
            if f1.shape[0] < h or f1.shape[1] < w:
                raise ConfigError(f"frames are {f1.shape[1]}x{f1.shape[0]} (width x height), smaller than the "
                                  f"{w}x{h} crop (use fit: resize)", source=str(pair.frame1))
            frames[i] = center_crop(both, resolution)
            flows[i] = center_crop(fl.flow, resolution)
            valids[i] = center_crop(fl.valid, resolution)
        else:
            frames[i] = np.clip(np.round(resize_images(both[None], resolution)[0]), 0, 255)
            flows[i], valids[i] = resize_flow(fl.flow, fl.valid, resolution)
        if progress is not None:
            progress(i + 1, len(pairs))
    return FlowArrays(frames, flows, valids)


def downsample_target(target: Tensor, size: tuple[int, int]) -> Tensor:
    """[N, 3, H, W] (u, v, valid) -> the same at `size`, u and v averaged over valid pixels and expressed in
    pixels of the new grid; a cell is valid when any of its pixels is."""
    h, w = target.shape[-2:]
    if (h, w) == tuple(size):
        return target
    valid = target[:, 2:3]
    pooled = F.adaptive_avg_pool2d(torch.cat([target[:, :2] * valid, valid], dim=1), size)
    weight = pooled[:, 2:3]
    uv = pooled[:, :2] / weight.clamp_min(1e-12)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=uv.dtype, device=uv.device).view(1, 2, 1, 1)
    return torch.cat([uv * scale, (weight > 0).to(uv.dtype)], dim=1)


def endpoint_error(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel EPE [N, H, W] of pred [N, 2, H, W] against target [N, 3, H, W]."""
    return torch.linalg.vector_norm(pred - target[:, :2], dim=1)


def multiscale_loss(outputs: Sequence[Tensor], target: Tensor, weights: Sequence[float] | None = None) -> Tensor:
    """sum_k w_k * (mean EPE of head k over its valid cells, in its own pixels); equal weights by default."""
    if weights is not None and len(weights) != len(outputs):
        raise ValueError(f"{len(weights)} loss weights for {len(outputs)} network outputs")
    total = target.new_zeros(())
    for k, out in enumerate(outputs):
        t = downsample_target(target, tuple(out.shape[-2:]))
        valid = t[:, 2]
        epe = endpoint_error(out, t)
        mean = (epe * valid).sum() / valid.sum().clamp_min(1.0)
        total = total + (1.0 if weights is None else weights[k]) * mean
    return total


def flow_metric_sums(pred: Tensor, target: Tensor) -> dict[str, tuple[float, int]]:
    """{'epe': (sum of EPE over valid pixels, count), 'fl_all': (100 * outliers, count)} at full resolution."""
    if pred.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"the last output is {tuple(pred.shape[-2:])}, the target {tuple(target.shape[-2:])}: "
                         "EPE is measured at full resolution")
    with torch.no_grad():
        valid = target[:, 2] > 0
        epe = endpoint_error(pred.float(), target.float())[valid]
        mag = torch.linalg.vector_norm(target[:, :2].float(), dim=1)[valid]
        outliers = ((epe > 3.0) & (epe > 0.05 * mag)).sum().item()
        n = int(valid.sum().item())
        return {"epe": (float(epe.sum().item()), n), "fl_all": (100.0 * outliers, n)}


class FlowTask(Task):
    """Optical flow on synthetic data or a user's files (see the module docstring)."""

    kind = "flow"
    primary = "epe"
    higher_is_better = False
    best_possible = 0.0
    input_channels = 6

    def __init__(self, *, name: str = "flow", train_data: str = "synthetic", val_data: str = "synthetic",
                 train_samples: int = 2000, val_samples: int = 200, data_seed: int | None = 0, fit: str = "resize",
                 loss_weights: Sequence[float] | None = None,
                 synthetic: synth.SynthSettings | None = None) -> None:
        self.name = name
        self.train_data, self.val_data = train_data, val_data
        self.train_samples, self.val_samples = train_samples, val_samples
        self.data_seed = data_seed
        self.fit = fit
        self.loss_weights = None if loss_weights is None else tuple(loss_weights)
        self.synthetic = synthetic or synth.SynthSettings()

    def _set(self, which: str, resolution: tuple[int, int], seed: int,
             progress: DataProgress | None) -> tuple[Dataset, dict[str, Any]]:
        spec = self.train_data if which == "train" else self.val_data
        if spec == "synthetic":
            count = self.train_samples if which == "train" else self.val_samples
            split = SPLIT_TRAIN if which == "train" else SPLIT_VAL
            ds, name = synthetic_set(resolution, count, seed, self.synthetic, split, progress)
            return ds, {"source": "synthetic", "generator_version": synth.VERSION, "seed": seed,
                        "samples": count, "cache_file": name}
        ds = file_set(spec, resolution, self.fit, progress)
        return ds, {"source": str(spec), "fit": self.fit, "samples": len(ds)}

    def data(self, resolution: tuple[int, int], *, seed: int, progress: DataProgress | None = None) -> TaskData:
        """Training and validation sets. `data_seed` (when set) fixes the synthetic data whatever the run's
        seed; `progress(done, total)` is called while a set is generated or read."""
        dseed = seed if self.data_seed is None else self.data_seed
        train, dtrain = self._set("train", resolution, dseed, progress)
        val, dval = self._set("val", resolution, dseed, progress)
        desc = {"task": self.describe(), "resolution": list(resolution), "train": dtrain, "val": dval}
        return TaskData(train, val, desc)

    def eval_data(self, resolution: tuple[int, int], *, source: str | None = None,
                  progress: DataProgress | None = None) -> Dataset:
        """`source`: None (the task's validation set), 'synthetic' (the synthetic validation set) or a list
        file of `frame1 frame2 flow` lines."""
        seed = 0 if self.data_seed is None else self.data_seed
        if source is None:
            return self._set("val", resolution, seed, progress)[0]
        if source == "synthetic":
            return synthetic_set(resolution, self.val_samples, seed, self.synthetic, SPLIT_VAL, progress)[0]
        return file_set(source, resolution, self.fit, progress)

    def loss(self, outputs: tuple[Tensor, ...], target: Tensor) -> Tensor:
        return multiscale_loss(outputs, target, self.loss_weights)

    def metric_sums(self, outputs: tuple[Tensor, ...], target: Tensor) -> dict[str, tuple[float, int]]:
        return flow_metric_sums(outputs[-1], target)

    @property
    def data_fixed_by_description(self) -> bool:
        return self.train_data == "synthetic" and self.val_data == "synthetic"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train_data": self.train_data, "val_data": self.val_data,
                "train_samples": self.train_samples, "val_samples": self.val_samples, "data_seed": self.data_seed,
                "fit": self.fit, "loss_weights": None if self.loss_weights is None else list(self.loss_weights),
                "synthetic": {**asdict(self.synthetic), "version": synth.VERSION}}
