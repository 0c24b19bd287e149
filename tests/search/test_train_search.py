"""`edgenas search` with accuracy from training, end to end: the compiler first (a design over the SRAM
limit is never trained), then `train` with successive halving; each trial records its accuracy, epochs and
whether it was stopped, and the rung records are in the study."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import optuna
from search_helpers import EDGENAS

from edgenas.search.study import RECORD_ATTR

CONFIG = """\
name: digits_search
network: stages
input_channels: 1
resolutions: [16x16]
widths: {stem: 4, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage_block: [dsconv3x3, conv3x3, mbconv_e4, resnet, conv5x5]
hardware: [ethos-u55-128]
task: {type: digits}
train: {epochs: 3, batch_size: 128, lr: 0.02, threads: 1}
search:
  objectives: [{metric: top1, direction: max}, {metric: fps, direction: max}]
  constraints: [sram_kib <= device]
  evaluators: [compiler, {type: train, halving: {eta: 2, first: 1}, stop_early: false}]
  strategy: random
  trials: 4
  seed: 0
"""


def test_search_trains_candidates_with_successive_halving(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    r = subprocess.run([EDGENAS, "search", "cfg.yaml", "--storage", "study.db", "--no-progress", "--out", "front.csv"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "EDGENAS_CACHE": str(tmp_path / "cache.sqlite")})
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="digits_search", storage=f"sqlite:///{tmp_path / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    metrics = [t.user_attrs[RECORD_ATTR]["metrics"] for t in done]
    assert all(0.0 <= m["top1"] <= 100.0 and 1 <= m["train_epochs"] <= 3 for m in metrics)
    trained = [t for t in done if "train" in t.user_attrs[RECORD_ATTR]["measured"]]
    assert trained and all("rung_1" in t.user_attrs for t in trained)
    stopped = [m for m in metrics if m["train_stopped"]]
    assert all(m["train_epochs"] < 3 for m in stopped)
    assert (tmp_path / "front.csv").exists()
