"""Optical-flow task: the synthetic generator against an independent truth (photometric consistency where
nothing is occluded), its cache, and the loss / metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from task_helpers import assert_close

from edgenas.errors import ConfigError
from edgenas.space.space import load_space
from edgenas.train.builder import GraphModule
from edgenas.train.tasks import flow_synthetic as synth
from edgenas.train.tasks import make_task
from edgenas.train.tasks.flow import FlowTask, downsample_target, flow_metric_sums, multiscale_loss

CLEAN = synth.SynthSettings(noise=0.0, blur=0.0, brightness=0.0)


def _bilinear_np(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Plain bilinear lookup written out here (not the generator's sampler); callers keep (y, x) inside."""
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = (y - y0)[..., None], (x - x0)[..., None]
    return ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1])
            + fy * ((1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]))


def _photometric(s: synth.SynthSample, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|frame2(p + flow) - frame1(p)| per pixel, and the non-occluded mask: p + flow inside the image and
    the same layer top-most at p in frame 1 and at all four neighbours of p + flow in frame 2."""
    h, w = s.labels1.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x2, y2 = xx + flow[..., 0], yy + flow[..., 1]
    inside = (x2 >= 0) & (y2 >= 0) & (x2 < w - 1) & (y2 < h - 1)
    xs, ys = np.where(inside, x2, 0), np.where(inside, y2, 0)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    same = inside.copy()
    for dy in (0, 1):
        for dx in (0, 1):
            same &= s.labels2[y0 + dy, x0 + dx] == s.labels1
    err = np.abs(_bilinear_np(s.frame2, ys, xs) - s.frame1).mean(axis=-1)
    return err, same


def test_ground_truth_flow_reproduces_frame1_where_unoccluded():
    errs, shifted, occluded = [], [], 0
    for i in range(12):
        s = synth.render_pair(synth.sample_rng(7, 0, i), (48, 64), CLEAN)
        err, ok = _photometric(s, s.flow)
        assert ok.mean() > 0.4
        occluded += (~ok).sum()
        errs.append(err[ok])
        moved = s.flow + np.array([1.0, 0.0], dtype=np.float32)  # one pixel off
        err1, ok1 = _photometric(s, moved)
        shifted.append(err1[ok1 & ok])
    e, e1 = np.concatenate(errs), np.concatenate(shifted)
    assert occluded > 0  # layers really occlude each other
    assert e.mean() < 0.006, e.mean()  # intensities in [0, 1]
    assert np.quantile(e, 0.95) < 0.02
    assert e1.mean() > 3 * e.mean(), (e.mean(), e1.mean())


def test_frame2_is_rendered_not_warped():
    """Disoccluded pixels of frame 2 show the layer behind, which frame 1 did not show there."""
    s = synth.render_pair(synth.sample_rng(3, 0, 0), (48, 64), CLEAN)
    assert (s.labels1 != s.labels2).any()
    assert s.frame1.dtype == np.float32 and s.flow.shape == (48, 64, 2)


def test_same_scenes_at_every_resolution():
    """A seed draws the same scene at any size: flow doubles with the image, layers cover the same share."""
    for i in range(3):
        small = synth.render_pair(synth.sample_rng(0, 0, i), (24, 32), synth.SynthSettings())
        big = synth.render_pair(synth.sample_rng(0, 0, i), (48, 64), synth.SynthSettings())
        assert np.abs(big.flow).mean() == pytest.approx(2 * np.abs(small.flow).mean(), rel=0.05)
        assert (big.labels1 > 0).mean() == pytest.approx((small.labels1 > 0).mean(), abs=0.03)


def test_same_seed_same_data_and_splits_differ():
    a = synth.generate((16, 20), 3, 5, synth.SynthSettings())
    b = synth.generate((16, 20), 3, 5, synth.SynthSettings())
    c = synth.generate((16, 20), 3, 6, synth.SynthSettings())
    v = synth.generate((16, 20), 3, 5, synth.SynthSettings(), split=1)
    assert a["frames"].dtype == np.uint8 and a["flow"].dtype == np.float16
    np.testing.assert_array_equal(a["frames"], b["frames"])
    np.testing.assert_array_equal(a["flow"], b["flow"])
    assert not np.array_equal(a["frames"], c["frames"])
    assert not np.array_equal(a["frames"], v["frames"])


def test_task_data_cached_atomically(tmp_path):
    task = make_task({"type": "flow", "train_samples": 4, "val_samples": 2}, source=None, input_channels=6)
    seen = []
    d = task.data((16, 24), seed=0, progress=lambda done, total: seen.append((done, total)))
    assert (4, 4) in seen and (2, 2) in seen
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 2 and all(f.endswith(".npz") for f in files), files  # no temporary left behind
    x, t = d.train[0]
    assert x.shape == (6, 16, 24) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert t.shape == (3, 16, 24) and torch.all(t[2] == 1)
    assert len(d.train) == 4 and len(d.val) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    seen.clear()
    d2 = task.data((16, 24), seed=123, progress=lambda done, total: seen.append((done, total)))  # data_seed 0
    assert not seen and mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    assert_close(d2.train[3][0], d.train[3][0])
    assert d.description["train"]["cache_file"] in files
    json.dumps(d.description)  # written next to every run


def test_unreadable_cache_file_is_rebuilt(tmp_path):
    task = make_task({"type": "flow", "train_samples": 2, "val_samples": 1}, source=None, input_channels=6)
    first = task.data((16, 16), seed=0).train[1][0]
    for p in (tmp_path / "cache").iterdir():
        p.write_bytes(b"truncated")
    assert_close(task.data((16, 16), seed=0).train[1][0], first)


def test_data_seed_none_follows_run_seed():
    task = make_task({"type": "flow", "train_samples": 1, "val_samples": 1, "data_seed": None}, source=None,
                     input_channels=6)
    a, b = task.data((16, 16), seed=1).train[0][0], task.data((16, 16), seed=2).train[0][0]
    assert not torch.equal(a, b)


def _hand_batch() -> torch.Tensor:
    """4x4 target: u = 4, v = 0, valid everywhere but (0, 0), which holds u = 100 (must be ignored)."""
    t = torch.zeros(1, 3, 4, 4)
    t[:, 0], t[:, 2] = 4.0, 1.0
    t[0, 0, 0, 0], t[0, 2, 0, 0] = 100.0, 0.0
    return t


def test_loss_and_epe_hand_computed():
    target = _hand_batch()
    head2 = torch.zeros(1, 2, 4, 4)  # EPE 4 on each of the 15 valid pixels
    head1 = torch.zeros(1, 2, 2, 2)
    head1[:, 0] = 2.0  # the 1/2 grid's truth: u = 4 * 2/4 = 2 (the invalid pixel left out of its cell)
    head1[0, 1, 1, 1] = 3.0  # one cell off by 3 -> mean 3/4
    head0 = torch.full((1, 2, 1, 1), 4.0)
    head0[:, 1] = 0.0  # truth 4 * 1/4 = 1 -> EPE 3
    outputs = (head0, head1, head2)
    assert_close(downsample_target(target, (2, 2))[0, 0], torch.full((2, 2), 2.0))
    assert_close(downsample_target(target, (1, 1))[0, :, 0, 0], torch.tensor([1.0, 0.0, 1.0]))
    assert multiscale_loss(outputs, target).item() == pytest.approx(3.0 + 0.75 + 4.0)
    assert multiscale_loss(outputs, target, [0.5, 1.0, 2.0]).item() == pytest.approx(1.5 + 0.75 + 8.0)
    sums = flow_metric_sums(head2, target)
    assert sums["epe"] == (pytest.approx(60.0), 15)
    assert sums["fl_all"] == (pytest.approx(1500.0), 15)  # every pixel off by 4 > 3 px and > 5% of 4
    task = FlowTask()
    assert task.metric_sums(outputs, target) == sums
    assert task.loss(outputs, target).item() == pytest.approx(7.75)


def test_fl_all_needs_both_thresholds():
    target = torch.zeros(1, 3, 1, 3)
    target[0, 2] = 1.0
    target[0, 0] = torch.tensor([100.0, 10.0, 2.0])
    pred = torch.zeros(1, 2, 1, 3)
    pred[0, 0] = torch.tensor([96.5, 6.0, 2.5])  # EPE 3.5 (< 5% of 100), 4 (outlier), 0.5
    sums = flow_metric_sums(pred, target)
    assert sums["epe"] == (pytest.approx(8.0), 3)
    assert sums["fl_all"] == (pytest.approx(100.0), 3)


def test_flow_network_trains_one_step():
    """The real flow network's three heads feed the loss; gradients reach the first layer."""
    space = load_space("flow_head_upsample")
    model = GraphModule(space.build(space.parse_genotype(""), (16, 16)))
    task = make_task({"type": "flow", "train_samples": 2, "val_samples": 1}, source=None, input_channels=6)
    d = task.data((16, 16), seed=0)
    x, t = d.train[0]
    outputs = model(x[None])
    assert [o.shape[-1] for o in outputs] == [4, 8, 16]
    loss = task.loss(outputs, t[None])
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert set(task.metric_sums(outputs, t[None])) == {"epe", "fl_all"}


def test_eval_data_at_another_resolution():
    task = make_task({"type": "flow", "train_samples": 1, "val_samples": 2}, source=None, input_channels=6)
    ds = task.eval_data((24, 32))
    assert len(ds) == 2 and ds[0][0].shape == (6, 24, 32)
    assert len(task.eval_data((16, 16), source="synthetic")) == 2


@pytest.mark.parametrize(("section", "field", "words"), [
    ({"type": "flow", "train_sample": 5}, "task.train_sample", "allowed: type, train_data"),
    ({"type": "flow", "train_samples": 0}, "task.train_samples", "greater than 0"),
    ({"type": "flow", "fit": "stretch"}, "task.fit", "'resize' or 'crop'"),
    ({"type": "flow", "loss_weights": [0, 0, 0]}, "task.loss_weights", "not all zero"),
    ({"type": "flow", "layers": [4, 2]}, "task.layers", "min <= max"),
    ({"type": "flow", "val_data": "missing.txt"}, "task.val_data", "file not found"),
    ({"type": "flows"}, "task.type", "allowed: digits, digits-hard, flow, folder, npz, plugin"),
    ({"train_samples": 3}, "task.type", "allowed: digits"),
])
def test_config_errors_name_file_and_field(tmp_path, section, field, words):
    cfg = tmp_path / "space.yaml"
    with pytest.raises(ConfigError) as e:
        make_task(section, source=str(cfg), input_channels=6)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{cfg}: {field}: ") and words in msg, msg


def test_input_channels_must_be_six():
    with pytest.raises(ConfigError, match=r"input_channels: .*take 3 input channel.*'flow' gives 6"):
        make_task({"type": "flow"}, source="s.yaml", input_channels=3)
