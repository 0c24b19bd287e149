"""The torch module of a Graph computes what the TFLite file of that Graph means.

Independent truth: the TFLite interpreter running the writer's float32 file (same ops, same options, the
module's BatchNorm-folded weights) must equal the module to 1e-4; the int8 file (min/max calibration, per
channel weights) must agree with the module within 2 LSB on 99% of outputs. Parametrised over every
registered block and upsampler, so a new one is tested for free; negative controls show the check fails
when the module gets TFLite's semantics wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgenas.export.ptq import to_float_tflite, to_int8_tflite
from edgenas.graph.blocks import _FIXED_BLOCKS, ACTIVATION_NAMES, UPSAMPLERS, BlockArgs, apply_block, upsample
from edgenas.graph.ir import Graph
from edgenas.space.space import load_space
from edgenas.train import builder
from edgenas.train.builder import GraphModule, carries_batchnorm

BLOCKS = [*_FIXED_BLOCKS, "mbconv_e3_k5"]


def run_tflite(model: bytes, inputs_nchw: list[torch.Tensor]) -> list[np.ndarray]:
    """Outputs of the file in the interpreter (no XNNPACK delegate), int8 inputs quantised with the file's
    own input parameters; outputs as stored (int8 or float32), NHWC."""
    it = Interpreter(model_content=model,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs_nchw):
        v = x.permute(0, 2, 3, 1).numpy() if x.dim() == 4 else x.numpy()
        if d["dtype"] == np.int8:
            s, z = d["quantization"]
            v = np.clip(np.round(v / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(d["index"], v)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def output_quant(model: bytes) -> list[tuple[float, int]]:
    it = Interpreter(model_content=model)
    return [d["quantization"] for d in it.get_output_details()]


def nhwc(t: torch.Tensor) -> np.ndarray:
    return (t.permute(0, 2, 3, 1) if t.dim() == 4 else t).detach().numpy()


def trained_like(module: GraphModule, seed: int) -> GraphModule:
    """BatchNorm statistics and affine parameters away from identity, so folding is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
    return module.eval()


def block_graph(block: str, stride: int, act: str) -> Graph:
    g = Graph("block")
    x = g.add_input("input", (1, 12, 16, 16))
    g.mark_output(apply_block(g, block, x, "b", BlockArgs(16, stride, act)))
    return g


def upsample_graph(kind: str) -> Graph:
    g = Graph("up")
    x = g.add_input("input", (1, 6, 8, 8))
    g.mark_output(upsample(g, x, "up", kind))
    return g


def check_float(graph: Graph, seed: int = 0) -> float:
    torch.manual_seed(seed)
    module = trained_like(GraphModule(graph), seed)
    shape = graph.shape(graph.inputs[0])
    x = torch.randn(1, shape[3], shape[1], shape[2], generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        want = [nhwc(t) for t in module(x)]
    got = run_tflite(to_float_tflite(module), [x])
    return max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))


def int8_agreement(graph: Graph, seed: int = 0) -> float:
    """Share of output values of the int8 file within 2 LSB of the module's output (quantised with the
    file's output parameters). Calibrated on 8 samples, checked on one of them."""
    torch.manual_seed(seed)
    module = trained_like(GraphModule(graph), seed)
    shape = graph.shape(graph.inputs[0])
    calib = torch.randn(8, shape[3], shape[1], shape[2], generator=torch.Generator().manual_seed(seed + 1))
    model, _ = to_int8_tflite(module, [calib])
    x = calib[:1]
    with torch.no_grad():
        want = [nhwc(t) for t in module(x)]
    got = run_tflite(model, [x])
    within = total = 0
    for g, w, (s, z) in zip(got, want, output_quant(model)):
        ref = np.clip(np.round(w / s) + z, -128, 127)
        d = np.abs(g.astype(np.int64) - ref)
        within += int(np.sum(d <= 2))
        total += d.size
    return within / total


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_block_float_equals_float_tflite(block: str, stride: int) -> None:
    assert check_float(block_graph(block, stride, "relu")) < 1e-4


@pytest.mark.parametrize("act", ACTIVATION_NAMES)
def test_activations_float_equal_float_tflite(act: str) -> None:
    assert check_float(block_graph("mbconv_e4", 1, act)) < 1e-4


@pytest.mark.parametrize("kind", UPSAMPLERS)
def test_every_upsampler_float_equals_float_tflite(kind: str) -> None:
    assert check_float(upsample_graph(kind)) < 1e-4


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_int8_within_2_lsb(block: str) -> None:
    assert int8_agreement(block_graph(block, 2, "relu")) >= 0.99


@pytest.mark.parametrize("kind", UPSAMPLERS)
def test_every_upsampler_int8_within_2_lsb(kind: str) -> None:
    assert int8_agreement(upsample_graph(kind)) >= 0.99


def test_shuffle_transpose_lowering_and_hard_swish() -> None:
    g = Graph("shuffle_t")
    x = g.add_input("input", (1, 8, 8, 16))
    g.mark_output(apply_block(g, "shuffle", x, "b", BlockArgs(16, 1, "hard_swish", "transpose")))
    assert check_float(g) < 1e-4
    assert int8_agreement(g) >= 0.99


def test_whole_flow_network_float_and_int8() -> None:
    space = load_space("flow_head_upsample")
    g = space.build(space.parse_genotype("backbone=mbconv_e4,head1_block=dsconv3x3"), (32, 48))
    assert check_float(g) < 1e-4
    assert int8_agreement(g) >= 0.99


def test_classifier_head_float_and_int8(tmp_path) -> None:
    cfg = tmp_path / "cls.yaml"
    cfg.write_text("network: stages\nname: cls\ninput_channels: 1\nresolutions: [32x32]\n"
                   "widths: {stem: 8, stages: 2, units_per_stage: 1, classes: 10}\n"
                   "choices: {stage_block: [dsconv3x3, mbconv_e4]}\n")
    space = load_space(str(cfg))
    g = space.build(space.parse_genotype(""), (32, 32))
    assert g.shape(g.outputs[0]) == (1, 10)
    assert check_float(g) < 1e-4
    assert int8_agreement(g) >= 0.99


def test_batchnorm_only_where_it_will_be_folded(tmp_path) -> None:
    cfg = tmp_path / "d2s.yaml"
    cfg.write_text("extends: flow_head_upsample\nname: d2s\nfixed: {upsample: depth_to_space}\n")
    space = load_space(str(cfg))
    g = space.build(space.parse_genotype("head1_block=dsconv3x3"), (32, 48))
    assert any(op.kind == "depth_to_space" for op in g.ops)
    module = GraphModule(g)
    for op in g.ops:
        if op.kind in ("conv2d", "depthwise_conv2d", "transpose_conv2d"):
            has_bn = module.layer(op.name).bn is not None
            assert has_bn == carries_batchnorm(g, op)
            assert has_bn == (not op.name.endswith(".predict")), op.name


# ---- negative controls: the same checks fail when the module gets TFLite's semantics wrong -----------

def test_negative_control_half_pixel_centers_flipped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builder.resize_bilinear_tflite
    monkeypatch.setattr(builder, "resize_bilinear_tflite", lambda x, h, w, hpc: real(x, h, w, not hpc))
    for kind in ("bilinear", "bilinear_hpc"):
        assert check_float(upsample_graph(kind)) > 1e-2
        assert int8_agreement(upsample_graph(kind)) < 0.99


def test_negative_control_symmetric_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "same_padding", lambda size, k, s: ((k - 1) // 2, (k - 1) // 2))
    assert check_float(block_graph("conv3x3", 2, "relu")) > 1e-2
    assert int8_agreement(block_graph("conv3x3", 2, "relu")) < 0.99


def test_negative_control_pixel_shuffle_channel_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "depth_to_space_dcr", lambda x, b: torch.nn.functional.pixel_shuffle(x, b))
    assert check_float(upsample_graph("depth_to_space_op")) > 1e-2
