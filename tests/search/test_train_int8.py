"""The `train` evaluator's `int8: true`: the int8 metric of the trained candidate, measured on its int8 file.

Truth, in-process: the same candidate trained here with the Trainer, its best epoch's weights quantised with
`to_int8_tflite` on 200 training samples picked here, the file run in LiteRT's reference kernels and its top-1
counted here. Then a tiny `edgenas search` that takes `top1_int8` as an objective, and the option's refusals.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from search_helpers import EDGENAS, trials_of

from edgenas.errors import ConfigError
from edgenas.hardware.profile import load_profile
from edgenas.search.evaluators import EvalContext, build_stages
from edgenas.search.study import RECORD_ATTR
from edgenas.space.space import load_space

CONFIG = """\
name: digits_int8
network: stages
input_channels: 1
resolutions: [8x8]
widths: {stem: 4, stages: 2, units_per_stage: 1, classes: 10}
choices:
  stage_block: [dsconv3x3, conv3x3]
hardware: [ethos-u55-128]
task: {type: digits}
train: {epochs: 2, batch_size: 64, lr: 0.02, threads: 1}
search:
  objectives: [{metric: top1_int8, direction: max}, {metric: fps, direction: max}]
  evaluators: [compiler, {type: train, int8: true, stop_early: false, epochs: 1}]
  strategy: random
  trials: 2
  seed: 0
"""


@pytest.fixture
def ctx(tmp_path: Path) -> EvalContext:
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    space = load_space(str(tmp_path / "cfg.yaml"))
    return EvalContext(space, space.resolutions[0], load_profile("ethos-u55-128"))


def litert_top1(model: bytes, ds) -> float:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    (s, z) = inp["quantization"]
    correct = 0
    for i in range(len(ds)):
        x, y = ds[i]
        it.set_tensor(inp["index"], np.clip(np.round(x.permute(1, 2, 0).numpy()[None] / s) + z, -128, 127)
                      .astype(np.int8))
        it.invoke()
        correct += int(np.argmax(it.get_tensor(out["index"])[0]) == int(y))
    return 100.0 * correct / len(ds)


def test_int8_metric_is_the_best_epochs_ptq_file_in_litert(ctx: EvalContext, tmp_path: Path) -> None:
    from edgenas.export.ptq import to_int8_tflite
    from edgenas.train.builder import GraphModule
    from edgenas.train.trainer import Trainer

    (stage,) = build_stages([{"type": "train", "int8": True, "stop_early": False}], ctx)
    ev = stage.evaluator
    assert stage.metrics == ("top1", "top1_int8", "train_epochs", "train_seconds", "train_stopped")
    g = ctx.space.default
    got = ev.evaluate(g)

    data = ev.task.data(ctx.resolution, seed=ev.recipe.seed)
    torch.manual_seed(ev.recipe.seed)
    m = GraphModule(ctx.space.build(g, ctx.resolution))
    res = Trainer(m, ev.task, data, ev.recipe, tmp_path / "t", identity={}, device=torch.device("cpu")).run()
    m.load_state_dict(torch.load(tmp_path / "t" / "best.pt", weights_only=True)["model"])
    pick = np.random.default_rng(0).permutation(len(data.train))[:200]
    model, _ = to_int8_tflite(m.eval(), [torch.stack([data.train[int(i)][0] for i in pick])])
    assert got["top1"] == res.best_metric
    assert got["top1_int8"] == pytest.approx(litert_top1(model, data.val), abs=1e-9)
    assert ev.fingerprint() != build_stages([{"type": "train"}], ctx)[0].evaluator.fingerprint()


@pytest.mark.parametrize(("opts", "fld", "text"), [
    ({"int8": "maybe"}, "int8", "boolean"),
    ({"calibration_samples": 50}, "calibration_samples", "int8: true"),
    ({"int8": True, "calibration_samples": 0}, "calibration_samples", "greater than or equal to 1"),
])
def test_bad_int8_options_name_the_field(ctx: EvalContext, opts: dict, fld: str, text: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_stages(["compiler", {"type": "train", **opts}], ctx, source="cfg.yaml")
    msg = str(e.value)
    assert msg.startswith(f"cfg.yaml: search.evaluators[1].{fld}: ") and text in msg and "\n" not in msg


def test_search_with_the_int8_metric_as_objective(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text(CONFIG.replace("trials: 2", "trials: 1"))
    r = subprocess.run([EDGENAS, "search", "cfg.yaml", "--storage", "study.db", "--no-progress", "--out", "front.csv"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "EDGENAS_CACHE": str(tmp_path / "cache.sqlite")})
    assert r.returncode == 0, r.stderr
    trials = [t for t in trials_of(tmp_path / "study.db", "digits_int8") if t["state"] == "COMPLETE"]
    (t,) = trials
    metrics = t["attrs"][RECORD_ATTR]["metrics"]
    assert 0.0 <= metrics["top1_int8"] <= 100.0 and metrics["train_epochs"] == 1
    assert "train" in t["attrs"][RECORD_ATTR]["measured"]
    header = (tmp_path / "front.csv").read_text().splitlines()[0].split(",")
    assert "top1_int8" in header and "top1" in header
