"""`edgenas supernet train` stopped by a real SIGTERM: exit 143 after writing a checkpoint, the run's record
says interrupted, and --resume ends with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import supernet_helpers as h
import torch

from edgenas.train.supernet.run import make_setup, train_supernet
from edgenas.train.trainer import CHECKPOINT, load_checkpoint

EDGENAS = str(Path(sys.executable).with_name("edgenas"))
torch.set_num_threads(1)


def test_sigterm_then_resume(tmp_path: Path) -> None:
    text = h.FLOW.replace("epochs: 2", "epochs: 30")  # 90 steps: long enough to be stopped inside
    cfg = h.write(tmp_path, text)
    proc = subprocess.Popen([EDGENAS, "supernet", "train", str(cfg), "--out", "cut", "--strategy", "spos",
                             "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / "cut" / CHECKPOINT).exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    rec = json.loads((tmp_path / "cut" / "supernet.json").read_text())
    assert rec["status"] == "interrupted"
    state = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert state["epoch"] * 3 + state["step_in_epoch"] < 90
    resumed = train_supernet(make_setup(str(cfg), strategy="spos"), tmp_path / "cut", resume=True)
    ref = train_supernet(make_setup(str(cfg), strategy="spos"), tmp_path / "ref")
    assert resumed.history == ref.history
    a, b = (load_checkpoint(tmp_path / d / CHECKPOINT)["model"] for d in ("cut", "ref"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
