"""Quantisation-aware training (QAT): fine-tune a trained network against the int8 network it will become.

Steps: calibrate the activation ranges as post-training quantisation does (`export.ptq`), then train the
float weights through `FakeQuantGraph` with the stand-alone `Trainer` (seed, checkpoints, resume, best
epoch): its forward is the exact int8 network of the current weights (TFLite reference-kernel arithmetic),
its backward a straight-through estimator into the float weights. The result's int8 file is the QAT'd
module written with the PTQ activation quantisation, so the simulator the weights were trained against and
the file agree value for value (tests/export/test_qat.py checks LiteRT against it).

Decisions:
- BatchNorm statistics are frozen (BatchNorm layers stay in eval mode during QAT; gamma and beta still
  train). The exact int8 forward folds BatchNorm with its running statistics, so only with frozen statistics
  is the float path that carries the gradient the function that is quantised. This is the common practice
  for fine-tuning: PyTorch's QAT recipe (torchvision `references/classification/train_quantization.py`,
  `torch.ao.nn.intrinsic.qat.freeze_bn_stats`) freezes BatchNorm statistics after a few epochs and
  Krishnamoorthi 2018 ("Quantizing deep convolutional networks for efficient inference", arXiv 1806.08342,
  section on BatchNorm folding) switches to the long-term averages once training has settled. We start from
  a trained network whose statistics have settled already, so they are frozen from the first step.
- Activation ranges are PTQ's, fixed (torchvision's recipe also stops updating observers after a few
  epochs). `FakeQuantGraph` has no gradient for a scale, and fixed ranges mean the exported file uses the very
  (scale, zero point) the weights were trained against; the weights adapt to the ranges instead.
- The learning rate is the training recipe's times `QAT_LR_FACTOR` (0.1), without warm-up: a fine-tune
  that must not undo the trained weights (nnabla's QATConfig recommends 0.1 or 0.01 of the float rate).
- QAT runs on the CPU: the integer network (`Int8Graph`) computes in float64 on CPU tensors.
- The best epoch is chosen by the validation metric of the int8 simulator (the trainer evaluates the
  module in eval mode, which is the exact int8 forward); metric_ptq and metric_qat are measured on the int8
  files in LiteRT (`int8_eval`).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from edgenas import atomic
from edgenas.errors import ConfigError
from edgenas.export.int8_eval import int8_metrics
from edgenas.export.int8_sim import FakeQuantGraph
from edgenas.export.ptq import calibrate_ranges, folded_weights, quantize_weights
from edgenas.tflite.quant import CONCAT_MODES, QuantParams, assign_activation_quant
from edgenas.tflite.writer import graph_to_tflite
from edgenas.train.builder import GraphModule
from edgenas.train.recipe import TrainRecipe
from edgenas.train.run import check_run_dir
from edgenas.train.tasks.base import Task, TaskData
from edgenas.train.trainer import BEST, Progress, Trainer, TrainResult, evaluate, load_checkpoint

__all__ = ["ACT_QUANT_FILE", "NEGLIGIBLE_LOSS", "QAT_LR_FACTOR", "QATModel", "QATResult", "int8_tflite",
           "qat_finetune", "qat_recipe", "recovered_fraction"]

QAT_LR_FACTOR = 0.1
ACT_QUANT_FILE = "act_quant.json"  # the fixed activation quantisation of a QAT run, read again on resume


class QATModel(FakeQuantGraph):
    """`FakeQuantGraph` whose BatchNorm layers never leave eval mode (frozen statistics, see the docstring)."""

    def train(self, mode: bool = True) -> QATModel:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


@dataclass
class QATResult:
    module: GraphModule  # the QAT'd float module (weights of the best validation epoch)
    act_quant: dict[str, QuantParams]  # PTQ's calibration, used by both files
    tflite: bytes  # the int8 file of `module` with `act_quant`
    tflite_ptq: bytes  # the int8 file of the module before QAT (what `to_int8_tflite` writes)
    metric: str  # the task's primary metric
    metric_float: float  # float module before QAT
    metric_ptq: float  # LiteRT on tflite_ptq
    metric_qat: float  # LiteRT on tflite
    metrics_ptq: dict[str, float]
    metrics_qat: dict[str, float]
    resolver: str  # LiteRT's op resolver that measured the int8 metrics
    train: TrainResult
    higher_is_better: bool = True

    @property
    def recovered(self) -> float | None:
        return recovered_fraction(self.metric_float, self.metric_ptq, self.metric_qat,
                                  higher_is_better=self.higher_is_better)


NEGLIGIBLE_LOSS = 1e-3  # a PTQ loss below this fraction of the float metric has no recovered fraction


def recovered_fraction(metric_float: float, metric_ptq: float, metric_qat: float, *,
                       higher_is_better: bool) -> float | None:
    """The part of PTQ's loss that QAT won back: (qat - ptq) / (float - ptq); 1 = the float metric again, < 0 =
    worse than PTQ, the same for lower- and higher-is-better metrics. None when PTQ lost nothing worth a ratio:
    PTQ as good as float or better, or worse by less than NEGLIGIBLE_LOSS of the float metric (the ratio of two
    tiny differences would be noise: measured 66x on a flow network whose PTQ EPE was 1e-5 off)."""
    if not all(math.isfinite(v) for v in (metric_float, metric_ptq, metric_qat)):
        return None
    lost = metric_float - metric_ptq if higher_is_better else metric_ptq - metric_float
    if lost <= NEGLIGIBLE_LOSS * abs(metric_float):
        return None
    return (metric_qat - metric_ptq) / (metric_float - metric_ptq)


def qat_recipe(recipe: TrainRecipe, epochs: int) -> TrainRecipe:
    """The fine-tuning recipe: `epochs` epochs at QAT_LR_FACTOR x the training rate, no warm-up."""
    return recipe.with_overrides(epochs=epochs, lr=recipe.lr * QAT_LR_FACTOR, warmup_epochs=0)


def int8_tflite(module: GraphModule, act_quant: Mapping[str, QuantParams]) -> bytes:
    """The int8 file of the module's folded weights with a given activation quantisation (what
    `to_int8_tflite` writes after calibrating, and what `FakeQuantGraph` simulates)."""
    graph = module.graph
    given = quantize_weights(graph, folded_weights(module), act_quant)
    return graph_to_tflite(graph, seed=0, weights=given, activation_quant=dict(act_quant))


def _write_act_quant(path: Path, act_quant: Mapping[str, QuantParams]) -> None:
    atomic.write_text(path, json.dumps({t: [float(s), int(z)] for t, (s, z) in act_quant.items()}, indent=1))


def _read_act_quant(path: Path) -> dict[str, QuantParams]:
    try:
        data = json.loads(path.read_text())
        return {str(t): (float(s), int(z)) for t, (s, z) in data.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"cannot read the QAT run's activation quantisation ({type(e).__name__}); start a new "
                          "run in another folder", source=str(path)) from None


def qat_finetune(module: GraphModule, task: Task, data: TaskData, recipe: TrainRecipe, out_dir: Path, *,
                 calibration: Iterable[Tensor | tuple[Tensor, ...]] | None = None, observer: str = "minmax",
                 concat: str = "shared", act_quant: Mapping[str, QuantParams] | None = None,
                 eval_set: Dataset | None = None,
                 identity: Mapping[str, Any] | None = None, resume: bool = False,
                 on_progress: Callable[[Progress], None] | None = None) -> QATResult:
    """Fine-tune a trained module with quantisation-aware training for `recipe.epochs` epochs (pass
    `qat_recipe(training_recipe, epochs)` for the default rate) and measure the int8 metric before and after.

    `calibration`: batches for PTQ's activation ranges (`observer`, `concat` as in `to_int8_tflite`), or
    `act_quant`: a given activation quantisation (e.g. the one `to_int8_tflite` returned); on `resume` the
    interrupted run's is read back from `out_dir` instead. `out_dir` receives the trainer's
    checkpoint.pt and best.pt (weights of the QAT model, keys prefixed `module.`) and act_quant.json; like a
    training run it must not hold one yet unless `resume`. Metrics are measured on `eval_set` (default: the
    task data's validation set). The given module is not changed (QAT trains a copy). `on_progress`: the
    trainer's, after every step and evaluation."""
    if concat not in CONCAT_MODES:
        raise ConfigError(f"unknown concat mode {concat!r}; allowed: {', '.join(CONCAT_MODES)}", field="concat")
    out_dir = Path(out_dir)
    check_run_dir(out_dir, resume=resume)
    if not resume and (calibration is None) == (act_quant is None):
        raise ValueError("qat_finetune needs exactly one of calibration= and act_quant=")
    graph = module.graph
    cpu = torch.device("cpu")
    module = copy.deepcopy(module, {id(graph): graph}).to(cpu).eval()  # a CPU copy sharing the (immutable) Graph
    if resume:
        act_quant = _read_act_quant(out_dir / ACT_QUANT_FILE)
    else:
        if act_quant is None:
            ranges = calibrate_ranges(module, calibration or (), observer=observer)
            act_quant = assign_activation_quant(graph, ranges=ranges, concat=concat)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_act_quant(out_dir / ACT_QUANT_FILE, act_quant)
    eval_set = data.val if eval_set is None else eval_set
    metric_float = evaluate(module, task, eval_set, batch_size=recipe.batch_size, device=cpu)[task.primary]
    tflite_ptq = int8_tflite(module, act_quant)
    metrics_ptq, _ = int8_metrics(tflite_ptq, list(graph.outputs), task, eval_set)

    model = QATModel(copy.deepcopy(module, {id(graph): graph}), act_quant)
    torch.manual_seed(recipe.seed)
    ident = {**dict(identity or {}), "qat": {"observer": observer, "concat": concat}}
    trainer = Trainer(model, task, data, recipe, out_dir, identity=ident, device=cpu, on_progress=on_progress)
    if resume:
        trainer.resume()
    result = trainer.run()
    if (out_dir / BEST).exists():
        model.load_state_dict(load_checkpoint(out_dir / BEST)["model"])
    qat_module = model.module.eval()
    tflite = int8_tflite(qat_module, act_quant)
    metrics_qat, resolver = int8_metrics(tflite, list(graph.outputs), task, eval_set)
    return QATResult(qat_module, act_quant, tflite, tflite_ptq, task.primary, metric_float,
                     metrics_ptq[task.primary], metrics_qat[task.primary], metrics_ptq, metrics_qat, resolver, result,
                     task.higher_is_better)
