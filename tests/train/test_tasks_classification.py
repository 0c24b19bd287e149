"""Classification tasks (digits, digits-hard, a user's .npz or image folder), the plug-in door, and the
config errors of the task section."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from task_helpers import assert_close

from edgenas.errors import ConfigError
from edgenas.train.tasks import Task, make_task
from edgenas.train.tasks.classification import digits_arrays, render_digits_hard, seeded_split


def test_digits_resized_and_split():
    task = make_task({"type": "digits"}, source=None, input_channels=1)
    d = task.data((16, 16), seed=0)
    assert len(d.train) + len(d.val) == 1797 and len(d.val) == 359
    x, y = d.train[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1
    assert task.num_classes == 10 and task.primary == "top1" and task.higher_is_better
    images, labels = digits_arrays()
    tr, va = seeded_split(1797, 0.2, 0)
    assert not set(tr) & set(va)
    assert int(d.val[5][1]) == labels[va[5]]
    # bilinear x2 with half-pixel centres, written as a matrix: out = A img A^T (edges clamped)
    a = np.zeros((16, 8))
    for o in range(16):
        pos = min(max((o + 0.5) / 2 - 0.5, 0), 7)
        i0 = min(int(np.floor(pos)), 6)
        a[o, i0], a[o, i0 + 1] = 1 - (pos - i0), pos - i0
    expected = torch.from_numpy(a @ images[va[5]] @ a.T).float() * 2 - 1
    assert_close(d.val[5][0][0], expected, atol=1 / 127.5, rtol=0)  # uint8 rounding
    again = make_task({"type": "digits"}, source=None, input_channels=1).data((16, 16), seed=9)
    assert torch.equal(again.val[5][0], d.val[5][0])  # data_seed 0 fixes the split


def test_digits_hard_cached_reproducible_and_disjoint(tmp_path):
    task = make_task({"type": "digits-hard", "train_samples": 30, "val_samples": 10}, source=None,
                     input_channels=1)
    d = task.data((32, 32), seed=0)
    assert len(d.train) == 30 and len(d.val) == 10 and d.train[0][0].shape == (1, 32, 32)
    json.dumps(d.description)  # written next to every run
    assert len(list((tmp_path / "cache").glob("digits-hard-*.npz"))) == 2
    d2 = make_task({"type": "digits-hard", "train_samples": 30, "val_samples": 10}, source=None,
                   input_channels=1).data((32, 32), seed=5)
    assert all(torch.equal(d.train[i][0], d2.train[i][0]) for i in range(30))
    labels = {int(d.train[i][1]) for i in range(30)}
    assert len(labels) >= 6


def test_digits_hard_digit_is_there():
    """Without clutter and noise the image is the digit alone: bright pixels, zero elsewhere, and the
    clutter version adds ink."""
    images, _ = digits_arrays()
    clean = render_digits_hard(np.random.default_rng(0), images[:50], 3, (32, 32), clutter=0, noise=0.0)
    assert clean.max() > 0.8 and (clean > 0.05).mean() < 0.6 and (clean == 0).mean() > 0.3
    busy = [render_digits_hard(np.random.default_rng(i), images[:50], 3, (32, 32), clutter=6, noise=0.0)
            for i in range(10)]
    assert np.mean([(b > 0.05).mean() for b in busy]) > (clean > 0.05).mean()


def test_loss_and_top1_hand_computed():
    task = make_task({"type": "digits"}, source=None, input_channels=1)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 2, 1])
    expected = -(np.log(np.exp(2) / (np.exp(2) + 2)) + np.log(1 / (np.e + 2)) + np.log(1 / 3)) / 3
    assert task.loss((logits,), target).item() == pytest.approx(expected, rel=1e-6)
    assert task.metric_sums((logits,), target) == {"top1": (pytest.approx(100.0), 3)}  # ties: argmax -> 0


def test_npz_task(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 12, 10, 3)).astype(np.uint8)
    y = np.arange(20) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    task = make_task({"type": "npz", "path": "d.npz", "val_fraction": 0.25}, source=str(tmp_path / "space.yaml"),
                     input_channels=3)
    d = task.data((12, 10), seed=0)
    assert len(d.train) == 15 and len(d.val) == 5 and task.num_classes == 4
    tr, _ = seeded_split(20, 0.25, 0)
    assert_close(d.train[0][0], torch.from_numpy(x[tr[0]]).permute(2, 0, 1).float() / 127.5 - 1)
    # float data in [0, 1], explicit validation arrays, grey images
    np.savez(tmp_path / "f.npz", x=rng.uniform(0, 1, (6, 8, 8)).astype(np.float32), y=np.zeros(6, np.int64),
             x_val=np.ones((2, 8, 8), np.float32), y_val=np.array([0, 1]))
    t2 = make_task({"type": "npz", "path": str(tmp_path / "f.npz")}, source=None, input_channels=1)
    d2 = t2.data((4, 4), seed=0)
    assert len(d2.train) == 6 and len(d2.val) == 2 and t2.num_classes == 2
    assert torch.all(d2.val[0][0] == 1.0)
    ev = t2.eval_data((4, 4), source=str(tmp_path / "f.npz"))
    assert len(ev) == 6


@pytest.mark.parametrize(("arrays", "words"), [
    ({"x": np.zeros((3, 4, 4), np.uint8)}, "no array 'y'"),
    ({"x": np.zeros((3, 4), np.uint8), "y": np.zeros(3, int)}, "x has shape [3, 4]"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(2, int)}, "y has shape [2]; expected [3]"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(3)}, "expected integers"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(3, int), "x_val": np.zeros((1, 4, 4))}, "x_val / y_val"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": -np.ones(3, int)}, "negative labels"),
])
def test_npz_errors(tmp_path, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConfigError) as e:
        make_task({"type": "npz", "path": "bad.npz"}, source=str(tmp_path / "s.yaml"), input_channels=1)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 's.yaml'}: task.path: {tmp_path / 'bad.npz'}: ") and words in msg, msg


def test_npz_channels_checked(tmp_path):
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 8, 8, 3), np.uint8), y=np.zeros(4, int))
    with pytest.raises(ConfigError, match=r"s\.yaml: input_channels: .*take 1 input channel.*'npz' gives 3"):
        make_task({"type": "npz", "path": "rgb.npz"}, source=str(tmp_path / "s.yaml"), input_channels=1)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ConfigError, match=r"task\.path: .*junk\.npz: not a readable \.npz file"):
        make_task({"type": "npz", "path": "junk.npz"}, source=str(tmp_path / "s.yaml"), input_channels=1)


def _image_folder(root, classes, mode="RGB", n=3, size=(10, 12)):
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            Image.fromarray(np.full(shape, 40 * k + i, np.uint8), mode).save(root / name / f"{i}.png")


def test_folder_task(tmp_path):
    _image_folder(tmp_path / "train", ["cat", "ant", "bee"], n=4)
    _image_folder(tmp_path / "val", ["bee", "ant"], n=1)
    task = make_task({"type": "folder", "path": "train", "val_path": "val"}, source=str(tmp_path / "s.yaml"),
                     input_channels=3)
    assert task.num_classes == 3 and task.folder.classes == ["ant", "bee", "cat"]
    d = task.data((5, 6), seed=0)
    assert len(d.train) == 12 and len(d.val) == 2
    x, y = d.train[0]  # ant/0.png: value 40 * 1 + 0 in every channel
    assert int(y) == 0 and x.shape == (3, 5, 6)
    assert_close(x, torch.full((3, 5, 6), 40 / 127.5 - 1))
    assert [int(d.val[i][1]) for i in range(2)] == [0, 1]
    _image_folder(tmp_path / "grey", ["a", "b"], mode="L")
    g = make_task({"type": "folder", "path": str(tmp_path / "grey"), "val_fraction": 0.5}, source=None,
                  input_channels=1)
    gd = g.data((4, 4), seed=0)
    assert len(gd.train) == 3 and len(gd.val) == 3 and gd.train[0][0].shape == (1, 4, 4)


def test_folder_errors(tmp_path):
    src = str(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"task\.path: .*nothere: folder not found"):
        make_task({"type": "folder", "path": "nothere"}, source=src, input_channels=3)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"task\.path: .*empty/a: class folder holds no images"):
        make_task({"type": "folder", "path": "empty"}, source=src, input_channels=3)
    _image_folder(tmp_path / "tr", ["a", "b"])
    _image_folder(tmp_path / "va", ["a", "z"])
    with pytest.raises(ConfigError, match=r"task\.val_path: .*va: class folder\(s\) z not among"):
        make_task({"type": "folder", "path": "tr", "val_path": "va"}, source=src, input_channels=3)
    with pytest.raises(ConfigError, match=r"input_channels: .*take 1 input channel.*'folder' gives 3"):
        make_task({"type": "folder", "path": "tr"}, source=src, input_channels=1)
    (tmp_path / "tr" / "a" / "broken.png").write_text("no image")
    with pytest.raises(ConfigError, match=r"broken\.png: cannot read image"):
        make_task({"type": "folder", "path": "tr"}, source=src, input_channels=3).data((4, 4), seed=0)


PLUGIN = '''
import torch
from edgenas.train.tasks import Task, TaskData

class Const(Task):
    name, kind, primary, higher_is_better = "const", "regression", "mse", False
    input_channels = 2

    def __init__(self, value, source):
        self.value, self.source = value, source

    def data(self, resolution, *, seed):
        ds = torch.utils.data.TensorDataset(torch.zeros(4, 2, *resolution), torch.full((4,), self.value))
        return TaskData(ds, ds, {"value": self.value})

    def eval_data(self, resolution, *, source=None):
        return self.data(resolution, seed=0).val

    def loss(self, outputs, target):
        return ((outputs[-1] - target) ** 2).mean()

    def metric_sums(self, outputs, target):
        return {"mse": (float(((outputs[-1] - target) ** 2).sum()), len(target))}

def make(settings, *, source=None):
    return Const(float(settings.get("value", 1.0)), source)

def not_a_task(settings):
    return {"loss": None}

def complains(settings):
    from edgenas.errors import ConfigError
    raise ConfigError("must be positive", field="value")
'''


def test_plugin_task(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_tasks.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_plugin_tasks", raising=False)
    src = str(tmp_path / "s.yaml")
    task = make_task({"type": "plugin", "entry": "my_plugin_tasks:make", "value": 3}, source=src, input_channels=2)
    assert isinstance(task, Task) and task.value == 3.0 and task.source == src
    assert task.data((2, 2), seed=0).description == {"value": 3.0}
    with pytest.raises(ConfigError, match=r"s\.yaml: task\.entry: my_plugin_tasks:not_a_task returned dict, not"):
        make_task({"type": "plugin", "entry": "my_plugin_tasks:not_a_task"}, source=src, input_channels=2)
    with pytest.raises(ConfigError, match=r"s\.yaml: task\.value: must be positive"):
        make_task({"type": "plugin", "entry": "my_plugin_tasks:complains"}, source=src, input_channels=2)
    with pytest.raises(ConfigError, match=r"task\.entry: plug-in module 'my_plugin_tasks' has no 'nope'"):
        make_task({"type": "plugin", "entry": "my_plugin_tasks:nope"}, source=src, input_channels=2)
    with pytest.raises(ConfigError, match=r"task\.entry: cannot import plug-in module 'no_such_module_xyz'"):
        make_task({"type": "plugin", "entry": "no_such_module_xyz:make"}, source=src, input_channels=2)
    with pytest.raises(ConfigError, match=r"task\.entry: must look like 'module:function'"):
        make_task({"type": "plugin", "entry": "my_plugin_tasks"}, source=src, input_channels=2)
    with pytest.raises(ConfigError, match=r"input_channels: .*take 3 input channel.*'plugin' gives 2"):
        make_task({"type": "plugin", "entry": "my_plugin_tasks:make"}, source=src, input_channels=3)


@pytest.mark.parametrize(("section", "field", "words"), [
    ({}, "task", "no `task:` section"),
    ({"type": "digits", "val_fraction": 1.5}, "task.val_fraction", "less than 1"),
    ({"type": "digits", "classes": 10}, "task.classes", "allowed: type, val_fraction, data_seed"),
    ({"type": "digits-hard", "clutter": -1}, "task.clutter", "greater than or equal to 0"),
    ({"type": "npz"}, "task.path", "required field is missing"),
    ({"type": 3}, "task.type", "unknown task type 3; allowed: digits, digits-hard, flow, folder, npz, plugin"),
])
def test_section_errors(section, field, words):
    with pytest.raises(ConfigError) as e:
        make_task(section, source="cfg.yaml", input_channels=1)
    msg = str(e.value)
    assert msg.startswith(f"cfg.yaml: {field}: ") and words in msg and "\n" not in msg, msg


def test_task_registered_by_an_installed_package(tmp_path, monkeypatch):
    """A package's entry point in the `edgenas.tasks` group names a task type (a real .dist-info on the path)."""
    (tmp_path / "my_plugin_tasks.py").write_text(PLUGIN)
    info = tmp_path / "my_plugin_tasks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edgenas.tasks]\nconst = my_plugin_tasks:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_plugin_tasks", raising=False)
    task = make_task({"type": "const", "value": 2}, source="s.yaml", input_channels=2)
    assert task.value == 2.0
    with pytest.raises(ConfigError, match=r"task\.type: unknown task type 'consts'; allowed: const, digits"):
        make_task({"type": "consts"}, source="s.yaml", input_channels=2)
