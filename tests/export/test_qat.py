"""Quantisation-aware training (edgenas.export.qat) against independent truths.

- The int8 file written after QAT, run in LiteRT with the reference kernels, gives the int8 outputs of the
  QAT model's exact forward (the int8 network the weights were trained against), value for value.
- A case where PTQ loses a lot, built openly: a trained digits network (8x8) whose first activation tensor
  gets a 48x coarser scale than calibration gives it (as an outlier in the calibration data would). QAT with
  that fixed quantisation must beat PTQ on the int8 file in LiteRT, and beat the control that explains a
  gain by extra training alone: the float network fine-tuned with the same recipe, then quantised the same.
- BatchNorm statistics stay frozen through QAT (gamma and beta train).
- An interrupted QAT run resumes to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from edgenas.errors import ConfigError
from edgenas.export.int8_eval import int8_metrics, interpreter
from edgenas.export.int8_sim import quantize
from edgenas.export.ptq import to_int8_tflite
from edgenas.export.qat import ACT_QUANT_FILE, QATModel, int8_tflite, qat_finetune, qat_recipe, recovered_fraction
from edgenas.graph.blocks import BlockArgs, apply_block
from edgenas.graph.ir import Graph
from edgenas.train.builder import GraphModule
from edgenas.train.recipe import TrainRecipe
from edgenas.train.tasks import make_task
from edgenas.train.trainer import CHECKPOINT, Trainer, load_checkpoint

RES = (8, 8)
RECIPE = TrainRecipe(epochs=8, batch_size=32, lr=0.01, seed=3, threads=1, checkpoint_every=5)
COARSE = ("stem.conv", 48.0)  # the tensor whose scale is made coarser, and by how much


def digits_net() -> Graph:
    g = Graph("digits8")
    x = g.add_input("input", (1, *RES, 1))
    y = apply_block(g, "conv3x3", x, "stem", BlockArgs(8, 1, "relu"))
    y = apply_block(g, "dsconv3x3", y, "unit", BlockArgs(16, 2, "relu"))
    y = g.add("global_avg_pool", "pool", [y])
    g.mark_output(g.add("fully_connected", "fc", [y], units=10))
    return g


def copy_module(m: GraphModule) -> GraphModule:
    return copy.deepcopy(m, {id(m.graph): m.graph})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(task, data, trained module, calibration batch): digits at 8x8, trained 8 epochs."""
    task = make_task({"type": "digits"}, source="test", input_channels=1)
    data = task.data(RES, seed=RECIPE.seed)
    torch.manual_seed(RECIPE.seed)
    m = GraphModule(digits_net())
    Trainer(m, task, data, RECIPE, tmp_path_factory.mktemp("float"), identity={}, device=torch.device("cpu")).run()
    cal = torch.stack([data.train[i][0] for i in range(128)])
    return task, data, m.eval(), cal


def litert_int8(model: bytes, x: torch.Tensor) -> np.ndarray:
    it, resolver = interpreter(model)
    assert resolver == "BUILTIN_REF"
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    rows = []
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1].permute(0, 2, 3, 1).numpy())
        it.invoke()
        rows.append(it.get_tensor(out["index"]))
    return np.concatenate(rows)


def test_the_qat_file_in_litert_equals_the_qat_models_int8_forward(trained, tmp_path) -> None:
    task, data, m, cal = trained
    before = copy_module(m)
    r = qat_finetune(m, task, data, qat_recipe(RECIPE, 2), tmp_path / "q", calibration=[cal])
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), before.state_dict().values()))  # a copy
    # the PTQ file is what to_int8_tflite writes for the same calibration
    assert r.tflite_ptq == to_int8_tflite(m, [cal])[0]
    sim = QATModel(r.module, r.act_quant).int8_graph()
    x = torch.stack([data.val[i][0] for i in range(96)])
    xq = quantize(x, r.act_quant["input"])
    (want,) = sim(xq)
    got = litert_int8(r.tflite, xq)
    assert np.abs(got.astype(int) - want.numpy().astype(int)).max() == 0
    # QAT changed the weights, so the file differs from PTQ's; the metric is the LiteRT one
    assert r.tflite != r.tflite_ptq
    assert r.metric_qat == int8_metrics(r.tflite, ["fc"], task, data.val)[0]["top1"]


def test_batchnorm_statistics_stay_frozen_while_gamma_and_beta_train(trained, tmp_path) -> None:
    task, data, m, cal = trained
    r = qat_finetune(m, task, data, qat_recipe(RECIPE, 1), tmp_path / "q", calibration=[cal])
    old, new = m.layer("stem.conv").bn, r.module.layer("stem.conv").bn
    assert torch.equal(old.running_mean, new.running_mean) and torch.equal(old.running_var, new.running_var)
    assert int(new.num_batches_tracked) == int(old.num_batches_tracked)
    assert not torch.equal(old.weight, new.weight) and not torch.equal(old.bias, new.bias)
    model = QATModel(r.module, r.act_quant).train()
    assert model.training and model.module.training and not new.training


def test_qat_recovers_part_of_a_large_ptq_loss(trained, tmp_path) -> None:
    task, data, m, cal = trained
    _, act_quant = to_int8_tflite(m, [cal])
    tensor, k = COARSE
    s, z = act_quant[tensor]
    act_quant[tensor] = (s * k, z)
    recipe = qat_recipe(RECIPE, 3)
    r = qat_finetune(m, task, data, recipe, tmp_path / "q", act_quant=act_quant)
    # control: the same fine-tune without quantisation in the loop, quantised the same way
    control = copy_module(m)
    torch.manual_seed(recipe.seed)
    Trainer(control, task, data, recipe, tmp_path / "control", identity={}, device=torch.device("cpu")).run()
    metric_control = int8_metrics(int8_tflite(control, act_quant), ["fc"], task, data.val)[0]["top1"]
    print(f"\ndigits 8x8, {tensor} scale x{k}: float {r.metric_float:.2f}, PTQ {r.metric_ptq:.2f}, QAT "
          f"{r.metric_qat:.2f} (recovered {r.recovered:.2f}), float fine-tune + PTQ {metric_control:.2f}")
    assert r.metric_float - r.metric_ptq > 5.0  # the case is one where PTQ loses a lot
    assert r.metric_qat > r.metric_ptq + 2.0
    assert r.metric_qat > metric_control + 2.0
    assert r.recovered == pytest.approx((r.metric_qat - r.metric_ptq) / (r.metric_float - r.metric_ptq))


def test_recovered_fraction() -> None:
    assert recovered_fraction(90.0, 70.0, 80.0, higher_is_better=True) == pytest.approx(0.5)
    assert recovered_fraction(1.0, 3.0, 2.5, higher_is_better=False) == pytest.approx(0.25)  # EPE
    assert recovered_fraction(1.0, 3.0, 3.5, higher_is_better=False) == pytest.approx(-0.25)  # worse than PTQ
    assert recovered_fraction(1.0, 1.0, 0.9, higher_is_better=False) is None  # nothing lost
    assert recovered_fraction(1.0, 0.9, 0.95, higher_is_better=False) is None  # PTQ better than float
    assert recovered_fraction(0.5065, 0.50651, 0.5066, higher_is_better=False) is None  # a negligible loss


def test_an_interrupted_qat_run_resumes_to_the_same_weights(trained, tmp_path) -> None:
    task, data, m, cal = trained
    recipe = qat_recipe(RECIPE, 2)
    whole = qat_finetune(m, task, data, recipe, tmp_path / "whole", calibration=[cal])

    def stop_in_epoch_2(p) -> None:
        if (p.epoch, p.step) == (1, 7):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        qat_finetune(m, task, data, recipe, tmp_path / "cut", calibration=[cal], on_progress=stop_in_epoch_2)
    state = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 7)
    with pytest.raises(ConfigError, match="already holds a training run"):
        qat_finetune(m, task, data, recipe, tmp_path / "cut", calibration=[cal])
    # resume reads the run's own activation quantisation, whatever calibration is passed
    resumed = qat_finetune(m, task, data, recipe, tmp_path / "cut", calibration=[cal * 3], resume=True)
    assert (tmp_path / "cut" / ACT_QUANT_FILE).exists() and resumed.act_quant == whole.act_quant
    a, b = whole.module.state_dict(), resumed.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.tflite == whole.tflite and resumed.train.history == whole.train.history
