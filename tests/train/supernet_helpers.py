"""Tiny supernet spaces for the supernet tests: flow at 16x16 (four backbones, head blocks of every family,
two predict kernels, Head1's width as a choice) and digits at 8x8 (a stages classifier)."""

from __future__ import annotations

import sys
from pathlib import Path

FLOW = """\
extends: flow_head_upsample
name: tinyflow
resolutions: [16x16]
widths: {stem: 8, encoder: 16, encoder_units: 2, head0: 16, head1: 8, head2: 8}
tied: {}
choices:
  backbone: [shufflenet, mbconv_e4, mbconv_e6, resnet]
  head1_block: [conv3x3, conv5x5, dsconv3x3, mbconv_e4, mbconv_e6, shuffle]
  head2_block: [conv3x3, dsconv3x3]
  predict_kernel: [3, 5]
  widths.head1: [8, 12]
task: {type: flow, train_samples: 24, val_samples: 8}
train: {epochs: 2, batch_size: 8, lr: 0.004, weight_decay: 0.01, threads: 1, checkpoint_every: 2}
supernet: {strategy: sandwich, random: 1, resolutions: [16x16, 8x8], bn_samples: 16, bn_batch_size: 8}
"""

DIGITS = """\
name: tinydigits
network: stages
input_channels: 1
resolutions: [8x8]
widths: {stem: 4, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage0_block: [conv3x3, dsconv3x3, mbconv_e4]
  stage1_block: [conv3x3, resnet, mbconv_e4, mbconv_e6]
  widths.units_per_stage: [1, 2]
task: {type: digits, val_fraction: 0.2}
train: {epochs: 2, batch_size: 64, lr: 0.01, threads: 1, checkpoint_every: 3}
supernet: {strategy: sandwich, random: 1, bn_samples: 64, bn_batch_size: 32}
"""


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`edgenas ARGS` in this process (as the installed command runs it: errors -> one line, exit 2):
    (exit code, stdout, stderr). In-process saves the seconds of importing torch per call."""
    import contextlib
    import io
    import os
    import signal

    from edgenas.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_argv, old_term = os.getcwd(), sys.argv, signal.getsignal(signal.SIGTERM)
    os.environ["EDGENAS_DATA_CACHE"] = str(cwd / "cache")
    code = 0
    try:
        os.chdir(cwd)
        sys.argv = ["edgenas", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv
        signal.signal(signal.SIGTERM, old_term)
    return code, out.getvalue(), err.getvalue()
