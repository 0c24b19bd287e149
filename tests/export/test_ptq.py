"""Post-training quantisation (export/ptq.py) against independent truths.

- Ranges: torchao's own observers, run in the test on the same tensors, give the (scale, zero point) the
  file carries for tensors alone in their class; torchao's PerChannelMinMaxObserver gives max|w|/127.
- Same-quant classes and concat modes: read back from the file with the LiteRT interpreter's tensor and op
  details, not from our act_quant map.
- Numerics: the LiteRT interpreter with the reference kernels (BUILTIN_REF) runs the file; its output
  matches the float module within a bound computed from the file's scales and the float weights.
- TensorFlow Lite Micro gives the same int8 outputs as LiteRT; Vela (the compiler) accepts the per-input
  file and keeps every op on the NPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgenas.errors import ConfigError
from edgenas.export.ptq import OBSERVERS, folded_weights, make_observer, to_int8_tflite, weight_scales
from edgenas.graph.blocks import BlockArgs, apply_block
from edgenas.graph.ir import Graph
from edgenas.hardware.profile import load_profile
from edgenas.hardware.vela import VelaEvaluator
from edgenas.space.space import load_space
from edgenas.train.builder import GraphModule

SAME_QUANT_TFLITE = {"CONCATENATION", "SPLIT", "SPLIT_V", "RESHAPE", "TRANSPOSE", "MAX_POOL_2D",
                     "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "MEAN"}


def interpreter(model: bytes) -> Interpreter:
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def run_file(model: bytes, x_nchw: torch.Tensor) -> dict[str, np.ndarray]:
    """Every output of the file, dequantised with its own parameters, by tensor name (NHWC)."""
    it = interpreter(model)
    (d,) = it.get_input_details()
    s, z = d["quantization"]
    it.set_tensor(d["index"], np.clip(np.round(x_nchw.permute(0, 2, 3, 1).numpy() / s) + z, -128, 127).astype(np.int8))
    it.invoke()
    out = {}
    for o in it.get_output_details():
        s, z = o["quantization"]
        out[o["name"]] = (it.get_tensor(o["index"]).astype(np.float64) - z) * s
    return out


def assert_tflm_equals_litert(model: bytes, x_nchw: torch.Tensor) -> None:
    """TensorFlow Lite Micro (the microcontroller runtime) gives the int8 outputs LiteRT's reference kernels
    give, requantising concat inputs included."""
    from tflite_micro.python.tflite_micro import runtime

    it = interpreter(model)
    (d,) = it.get_input_details()
    s, z = d["quantization"]
    q = np.clip(np.round(x_nchw.permute(0, 2, 3, 1).numpy() / s) + z, -128, 127).astype(np.int8)
    it.set_tensor(d["index"], q)
    it.invoke()
    micro = runtime.Interpreter.from_bytes(model, arena_size=8 << 20)
    micro.set_input(q, 0)
    micro.invoke()
    for i, o in enumerate(it.get_output_details()):
        np.testing.assert_array_equal(np.array(micro.get_output(i)), it.get_tensor(o["index"]))


def file_ops(model: bytes) -> tuple[list[dict], dict[int, dict]]:
    it = interpreter(model)
    return it._get_ops_details(), {t["index"]: t for t in it.get_tensor_details()}


def quant_of(t: dict) -> tuple[float, int]:
    s, z = t["quantization"]
    return float(s), int(z)


def seeded_module(graph: Graph, seed: int = 0) -> GraphModule:
    torch.manual_seed(seed)
    return GraphModule(graph).eval()


def two_branch_concat() -> Graph:
    """input -> conv a and conv b (both relu; b's range narrow once `narrow_b`) -> concat: output."""
    g = Graph("cat")
    x = g.add_input("input", (1, 8, 8, 4))
    a = g.add("conv2d", "a", [x], kernel=3, stride=1, out_channels=6, act="relu")
    b = g.add("conv2d", "b", [x], kernel=1, stride=1, out_channels=2, act="relu")
    g.mark_output(g.add("concat", "cat", [a, b]))
    return g


def narrow_b(module: GraphModule) -> GraphModule:
    with torch.no_grad():
        module.layer("b").conv.weight.mul_(0.05)  # b's range a small part of a's: the params must differ
    return module


def calib(graph: Graph, n: int = 4, seed: int = 1) -> list[torch.Tensor]:
    _, h, w, c = graph.shape(graph.inputs[0])
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    return [x[: n // 2], x[n // 2:]]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_ranges_are_torchaos(observer: str) -> None:
    """A tensor alone in its class carries exactly the (scale, zero point) torchao's observer computes on
    the same tensors. (The histogram observer's L2 search never widens the min/max range; for 8 bits it
    clipped almost nothing even on heavy-tailed data, so the files are nearly the same.)"""
    g = Graph("chain")
    x = g.add_input("input", (1, 8, 8, 3))
    y = g.add("conv2d", "c1", [x], kernel=3, stride=1, out_channels=8, act="relu")
    g.mark_output(g.add("conv2d", "c2", [y], kernel=1, stride=1, out_channels=4, act="none"))
    module = seeded_module(g)
    batches = calib(g)
    batches[1][0, 0, 0, 0] = 40.0  # one outlier
    model, act_quant = to_int8_tflite(module, batches, observer=observer)
    _, tensors = file_ops(model)
    in_file = {t["name"]: quant_of(t) for t in tensors.values()}
    with torch.no_grad():
        kept = [module.run(b, keep=True)[0] for b in batches]
    from torchao.quantization.pt2e import observer as tao

    cls = {"minmax": tao.MinMaxObserver, "moving_average": tao.MovingAverageMinMaxObserver,
           "histogram": tao.HistogramObserver}[observer]
    for name in ("input", y, g.outputs[0]):
        ref = cls(dtype=torch.qint8, qscheme=torch.per_tensor_affine, quant_min=-128, quant_max=127)
        for k in kept:
            ref(k[name])
        s, z = ref.calculate_qparams()
        want = (float(np.float32(s.item())), int(z.item()))
        assert in_file[name][1] == want[1], (name, in_file[name], want)
        assert in_file[name][0] == pytest.approx(want[0], rel=1e-6), (name, in_file[name], want)
        assert act_quant[name][1] == want[1]
    if observer == "histogram":
        _, mm = to_int8_tflite(module, batches, observer="minmax")
        assert act_quant["input"][0] <= mm["input"][0] * (1 + 1e-6)


def test_weight_scales_equal_max_abs_over_127() -> None:
    """torchao's symmetric per-channel observer gives the converter's max|w| / 127 (so it replaced the
    hand-written formula), except that an all-zero channel gets float32 eps instead of ~0."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3, 3, 5)).astype(np.float32)
    w[3] = 0.0
    for axis in (0, 3):
        got = weight_scales(w, axis)
        reduce = tuple(i for i in range(4) if i != axis)
        want = (np.max(np.abs(w), axis=reduce) / np.float32(127.0)).astype(np.float32)
        nonzero = want > 0
        np.testing.assert_array_equal(got[nonzero], want[nonzero])
        assert np.all(got[~nonzero] == np.finfo(np.float32).eps)


def shuffle_graph() -> Graph:
    """Shuffle units (split, concat, reshape/transpose), max pool, resize: every shared-scale op kind."""
    g = Graph("shared")
    x = g.add_input("input", (1, 8, 8, 8))
    y = apply_block(g, "shuffle", x, "s1", BlockArgs(8, 1, "relu", "transpose"))
    y = apply_block(g, "shuffle", y, "s2", BlockArgs(8, 1, "relu"))
    y = g.add("max_pool2d", "pool", [y], kernel=2, stride=2)
    y = g.add("conv2d", "c", [y], kernel=1, stride=1, out_channels=8, act="none")
    g.mark_output(g.add("resize_bilinear", "up", [y], half_pixel_centers=False, scale=2))
    return g


@pytest.mark.parametrize("concat", ["shared", "per_input"])
def test_shared_scale_ops_keep_their_params_in_the_file(concat: str) -> None:
    """Read back from the file: every shared-scale op (concat only in shared mode) has its inputs' params
    on its output; in per_input mode every CONCATENATION input equals the output too, because differing
    ones are fed through a QUANTIZE whose output has the concat's params. Inputs and outputs are int8."""
    g = shuffle_graph()
    model, _ = to_int8_tflite(seeded_module(g), calib(g), concat=concat)
    ops, tensors = file_ops(model)
    seen = set()
    for op in ops:
        if op["op_name"] not in SAME_QUANT_TFLITE:
            continue
        seen.add(op["op_name"])
        data = [i for i in op["inputs"] if tensors[i]["dtype"] == np.int8]
        for o in op["outputs"]:
            for i in data:
                assert quant_of(tensors[i]) == quant_of(tensors[o]), (op["op_name"], tensors[i]["name"])
    assert {"CONCATENATION", "SPLIT", "RESHAPE", "TRANSPOSE", "MAX_POOL_2D", "RESIZE_BILINEAR"} <= seen
    it = interpreter(model)
    assert [d["dtype"] for d in it.get_input_details() + it.get_output_details()] == [np.int8, np.int8]
    quantize_ops = [op for op in ops if op["op_name"] == "QUANTIZE"]
    assert (len(quantize_ops) > 0) == (concat == "per_input")


def test_per_input_requantizes_exactly_where_params_differ() -> None:
    """concat(a: [0, wide]; b: [0, narrow]): min/max gives the output a's range, so a goes in as it is and only
    b is requantised. Decided from the file's own tensor params."""
    g = two_branch_concat()
    model, act_quant = to_int8_tflite(narrow_b(seeded_module(g)), calib(g), concat="per_input")
    ops, tensors = file_ops(model)
    by_name = {t["name"]: t for t in tensors.values()}
    out_q = quant_of(by_name["cat"])
    differ = [t for t in ("a", "b") if quant_of(by_name[t]) != out_q]
    assert differ == ["b"]
    (cat,) = [op for op in ops if op["op_name"] == "CONCATENATION"]
    quantize = [op for op in ops if op["op_name"] == "QUANTIZE"]
    assert len(quantize) == len(differ)
    producers = {o: op for op in quantize for o in op["outputs"]}
    fed = []
    for i in cat["inputs"]:
        if i in producers:  # a requantised input: the QUANTIZE reads the IR tensor, writes the concat's params
            (src,) = producers[i]["inputs"]
            fed.append(tensors[src]["name"])
            assert quant_of(tensors[i]) == out_q
        else:
            fed.append(tensors[i]["name"])
            assert quant_of(tensors[i]) == out_q
    assert fed == ["a", "b"]
    assert act_quant["b"] == quant_of(by_name["b"]) != act_quant["cat"]  # the map holds b's own params


@pytest.mark.parametrize("concat", ["shared", "per_input"])
def test_litert_output_matches_float_within_scale_bound(concat: str) -> None:
    """|int8 file - float module| per output value <= one output LSB (requantise and producer rounding, half
    an LSB each, the producer's scale never wider than the concat's) + the error the input and weight
    quantisation can carry through the conv (0.5 s_x sum|w| + 0.5 s_w sum|x| per channel) + the bias rounding
    (0.5 s_x s_w), + 1e-6 for the kernels' fixed-point multipliers."""
    g = two_branch_concat()
    module = narrow_b(seeded_module(g))
    batches = calib(g)
    model, aq = to_int8_tflite(module, batches, concat=concat)
    x = batches[0][:1]
    with torch.no_grad():
        want = module(x)[0].permute(0, 2, 3, 1).numpy()
    got = run_file(model, x)["cat"]
    fw = folded_weights(module)
    s_x, s_out = aq["input"][0], aq["cat"][0]
    x_abs_max = float(x.abs().max()) + s_x
    bounds = []
    for name in ("a", "b"):
        w = fw[name].weights  # (cout, k, k, cin)
        s_w = weight_scales(w, 0)
        sum_w = np.abs(w).reshape(w.shape[0], -1).sum(1)
        fan_in = w[0].size
        bias_rounding = 0.5 * s_x * s_w
        bounds.append(s_out + 0.5 * s_x * sum_w + 0.5 * s_w * fan_in * x_abs_max + bias_rounding + 1e-6)
    bound = np.concatenate(bounds)
    err = np.abs(got - want).reshape(-1, bound.size).max(0)
    assert np.all(err <= bound), (err, bound)
    assert err.max() > 0.1 * s_out  # it is a quantised file, not the float one


@pytest.mark.parametrize("concat", ["shared", "per_input"])
def test_flow_network_runs_and_stays_on_the_npu(concat: str) -> None:
    """The seed's flow network (ShuffleNet backbone): both files run in LiteRT (reference kernels), agree
    with the float module within 3 output LSB on >= 99% of values (measured: 2.9 / 2.6 LSB at most), give
    the same int8 outputs in TensorFlow Lite Micro, and compile with every op on the NPU."""
    space = load_space("examples/flow_accuracy.yaml")
    g = space.build(space.default, (32, 32))
    module = seeded_module(g)
    batches = calib(g, n=4)
    model, aq = to_int8_tflite(module, batches, concat=concat)
    x = batches[0][:1]
    with torch.no_grad():
        want = module(x)[-1].permute(0, 2, 3, 1).numpy()
    got = run_file(model, x)[g.outputs[-1]]
    s = aq[g.outputs[-1]][0]
    assert np.mean(np.abs(got - want) <= 3 * s) >= 0.99  # ~20 layers of rounding; a wrong scale is far off
    assert_tflm_equals_litert(model, x)
    n_quantize = sum(op["op_name"] == "QUANTIZE" for op in file_ops(model)[0])
    assert (n_quantize > 0) == (concat == "per_input")
    m = VelaEvaluator(load_profile("ethos-u55-256")).evaluate_bytes(model, per_layer=True)
    assert m.status == "ok", m
    assert m.metrics["cpu_ops"] == 0
    assert all(row.target == "NPU" for row in m.layers)


def test_bad_options_name_the_field() -> None:
    g = two_branch_concat()
    with pytest.raises(ConfigError, match="observer"):
        to_int8_tflite(seeded_module(g), calib(g), observer="percentile")
    with pytest.raises(ConfigError, match="concat"):
        to_int8_tflite(seeded_module(g), calib(g), concat="rescale")
    with pytest.raises(ConfigError, match="observer"):
        make_observer("mse")
