"""Helpers for the int8 simulator tests: quantisation that hits rounding ties, the two interpreters, and
the graph builders of tests/train/test_builder.py (loaded from their file, not copied)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgenas.export.int8_sim import Int8Graph
from edgenas.graph.ir import WEIGHTED_OPS, Graph
from edgenas.tflite.quant import QuantParams, assign_activation_quant
from edgenas.tflite.writer import GivenWeights, graph_to_tflite


def _load_test_builder() -> Any:
    path = Path(__file__).resolve().parents[1] / "train" / "test_builder.py"
    spec = importlib.util.spec_from_file_location("edgenas_tests_train_builder", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


builder_tests = _load_test_builder()


# ---- quantisation parameters -------------------------------------------------------------------------------

def random_quant(graph: Graph, rng: np.random.Generator, ties: bool) -> dict[str, QuantParams]:
    """(scale, zp) per tensor keeping the writer's same-quant classes (each class gets new params).
    `ties`: power-of-two scales, so requantisation multipliers are powers of two and accumulators that are
    odd multiples of half the step land exactly on x.5 (positive and negative)."""
    base = assign_activation_quant(graph)
    new: dict[QuantParams, QuantParams] = {}
    for qp in dict.fromkeys(base.values()):
        scale = 2.0 ** -int(rng.integers(3, 8)) if ties else float(np.float32(rng.uniform(0.005, 0.08)))
        new[qp] = (scale, int(rng.integers(-40, 41)))
    return {t: new[qp] for t, qp in base.items()}


def random_weights(graph: Graph, act_quant: dict[str, QuantParams], rng: np.random.Generator,
                   ties: bool, per_channel: bool = True) -> dict[str, GivenWeights]:
    """int8 weights in [-127, 127], odd and even int32 biases, per-channel (or one) float32 scales."""
    out: dict[str, GivenWeights] = {}
    for op in graph.ops:
        if op.kind not in WEIGHTED_OPS:
            continue
        x = graph.shape(op.inputs[0])
        if op.kind == "fully_connected":
            shape, cout = (op.attr("units"), math.prod(x[1:])), op.attr("units")
        elif op.kind == "depthwise_conv2d":
            k = op.attr("kernel")
            shape, cout = (1, k, k, x[3]), x[3]
        else:
            k = op.attr("kernel")
            shape, cout = (op.attr("out_channels"), k, k, x[3]), op.attr("out_channels")
        n = cout if per_channel else 1
        if ties:
            scales = (2.0 ** -rng.integers(6, 10, n)).astype(np.float32)
        else:
            scales = rng.uniform(0.001, 0.01, n).astype(np.float32)
        w = rng.integers(-127, 128, shape).astype(np.int8)
        bias = rng.integers(-5000, 5001, cout).astype(np.int32)
        out[op.name] = GivenWeights(w, bias, scales)
    return out


def calibrated(graph: Graph, seed: int = 0, **export: Any) -> tuple[dict[str, GivenWeights], dict[str, QuantParams]]:
    """Weights and activation quantisation of a trained-like float module, calibrated like an export
    (`export`: keyword options of `to_int8_tflite`)."""
    from edgenas.export.ptq import folded_weights, quantize_weights, to_int8_tflite
    from edgenas.train.builder import GraphModule

    torch.manual_seed(seed)
    module = builder_tests.trained_like(GraphModule(graph), seed)
    shape = graph.shape(graph.inputs[0])
    calib = torch.randn(8, shape[3], shape[1], shape[2], generator=torch.Generator().manual_seed(seed + 1))
    _, act_quant = to_int8_tflite(module, [calib], **export)
    return quantize_weights(graph, folded_weights(module), act_quant), act_quant


# ---- inputs -----------------------------------------------------------------------------------------------

def int8_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    """NHWC int8 inputs: uniform over the full range, with runs of -128 and 127 (saturation) and of the
    zero point's neighbours."""
    out = []
    for t in graph.inputs:
        x = rng.integers(-128, 128, graph.shape(t)).astype(np.int8)
        flat = x.reshape(-1)
        n = flat.size
        flat[: n // 8] = -128
        flat[n // 8: n // 4] = 127
        rng.shuffle(flat)
        out.append(x)
    return out


# ---- the interpreters ---------------------------------------------------------------------------------------

def run_litert_ref(model: bytes, graph: Graph, inputs: list[np.ndarray], resolver: str = "BUILTIN_REF"
                   ) -> list[np.ndarray]:
    """LiteRT with TFLite's reference kernels (or another `OpResolverType`); outputs in graph order (NHWC)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=getattr(OpResolverType, resolver))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    by_name = {d["name"]: d for d in it.get_output_details()}
    return [it.get_tensor(by_name[t]["index"]) for t in graph.outputs]


def run_tflm(model: bytes, graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """TensorFlow Lite Micro's interpreter on the same file; outputs in graph order (NHWC: the writer lists the
    file's outputs in graph order, and TFLM's details carry no names)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model, arena_size=8 << 20)
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    return [np.array(it.get_output(i)) for i in range(len(graph.outputs))]


def run_sim(graph: Graph, weights: dict[str, GivenWeights], act_quant: dict[str, QuantParams],
            inputs: list[np.ndarray], **kw: Any) -> list[np.ndarray]:
    """The torch int8 network on the same NHWC inputs; outputs NHWC."""
    sim = Int8Graph(graph, weights, act_quant, **kw)
    xs = [torch.from_numpy(x).permute(0, 3, 1, 2) if x.ndim == 4 else torch.from_numpy(x) for x in inputs]
    return [(y.permute(0, 2, 3, 1) if y.dim() == 4 else y).numpy() for y in sim(*xs)]


def write(graph: Graph, weights: dict[str, GivenWeights], act_quant: dict[str, QuantParams]) -> bytes:
    return graph_to_tflite(graph, seed=0, weights=weights, activation_quant=act_quant)


def with_opcode_version(model: bytes, builtin: str, new: int) -> bytes:
    """The file with the operator code of `builtin` (e.g. "DEPTH_TO_SPACE") set to version `new`."""
    import struct

    from ethosu.vela.tflite import BuiltinOperator, Model

    code = getattr(BuiltinOperator.BuiltinOperator, builtin)
    buf = bytearray(model)
    m = Model.Model.GetRootAsModel(buf, 0)
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        if max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()) == code:
            struct.pack_into("<i", buf, oc._tab.Pos + oc._tab.Offset(8), new)  # vtable slot 2: version
    return bytes(buf)


def agreement(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float, int]:
    """(exact-match fraction, within-1-LSB fraction, max |difference|) over every output value."""
    d = np.concatenate([np.abs(g.astype(np.int64) - w.astype(np.int64)).reshape(-1) for g, w in zip(got, want)])
    return float(np.mean(d == 0)), float(np.mean(d <= 1)), int(d.max()) if d.size else 0
