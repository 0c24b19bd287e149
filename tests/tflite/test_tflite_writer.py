"""Every registered block and upsampler becomes a TFLite file that the interpreter runs with the IR's
output shapes and that Vela's C++ core compiles onto the NPU; the flow network does too."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgenas.errors import GraphError
from edgenas.graph.blocks import _FIXED_BLOCKS, UPSAMPLERS, BlockArgs, apply_block, upsample
from edgenas.graph.ir import Graph
from edgenas.graph.networks import BACKBONES, FLOW
from edgenas.tflite import GivenWeights, graph_to_tflite, inspect_tflite

BLOCKS = (*_FIXED_BLOCKS, "mbconv_e3_k5")
# (out_channels, stride, activation, shuffle lowering): the residual/split paths, the downsampling paths,
# a non-fusable activation, relu6 with the 5-D transpose shuffle.
VARIANTS = [(16, 1, "relu", "split_concat"), (32, 2, "relu", "split_concat"), (16, 1, "hard_swish", "split_concat"),
            (16, 1, "relu6", "transpose")]  # fmt: skip


def block_graph(block: str, cout: int, stride: int, act: str, impl: str) -> Graph:
    g = Graph("t")
    x = g.add_input("input", (1, 16, 24, 16))
    g.mark_output(apply_block(g, block, x, "blk", BlockArgs(cout, stride, act, impl)))
    return g


def upsample_graph(kind: str) -> Graph:
    g = Graph("t")
    x = g.add_input("input", (1, 16, 24, 16))
    g.mark_output(upsample(g, x, "up", kind))
    return g


def flow_graph(backbone: str, head: str, res: tuple[int, int] = (64, 96), upsampler: str = "bilinear") -> Graph:
    p = {k: v.default for k, v in FLOW.params.items()}
    p.update(backbone=backbone, head0_block=head, head1_block=head, head2_block=head, upsample=upsampler)
    return FLOW.build(p, FLOW.widths, 6, res)


def check(g: Graph, run_tflite: Callable[..., Any], vela_compile: Callable[[bytes], Any]) -> None:
    data = graph_to_tflite(g, seed=7)
    _, outs = run_tflite(data, g)
    assert [o.shape for o in outs] == [g.shape(t) for t in g.outputs]
    assert all(o.dtype == np.int8 for o in outs)
    report = vela_compile(data)
    assert report.npuOps > 0


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"c{v[0]}s{v[1]}-{v[2]}-{v[3]}")
@pytest.mark.parametrize("block", BLOCKS)
def test_block_runs_and_compiles(block: str, variant: tuple[int, int, str, str], run_tflite, vela_compile) -> None:
    check(block_graph(block, *variant), run_tflite, vela_compile)


@pytest.mark.parametrize("kind", UPSAMPLERS)
def test_upsampler_runs_and_compiles(kind: str, run_tflite, vela_compile) -> None:
    check(upsample_graph(kind), run_tflite, vela_compile)


def test_other_ops_run_and_compile(run_tflite, vela_compile) -> None:
    """Ops no block uses yet: max pool, standalone relu/relu6, transpose conv with a fused activation."""
    g = Graph("t")
    x = g.add_input("input", (1, 16, 24, 16))
    y = g.add("max_pool2d", "pool", [x], kernel=3, stride=2)
    y = g.add("relu", "relu", [y])
    y = g.add("relu6", "relu6", [y])
    g.mark_output(g.add("transpose_conv2d", "tconv", [y], kernel=4, stride=2, out_channels=8, act="relu"))
    check(g, run_tflite, vela_compile)


@pytest.mark.parametrize("head", ["conv3x3", "dsconv5x5", "mbconv_e4"])
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_flow_network_runs_and_compiles(backbone: str, head: str, run_tflite, vela_compile) -> None:
    check(flow_graph(backbone, head), run_tflite, vela_compile)


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
def test_flow_network_with_each_upsampler(upsampler: str, run_tflite, vela_compile) -> None:
    check(flow_graph("shufflenet", "conv3x3", upsampler=upsampler), run_tflite, vela_compile)


def test_flow_file_content() -> None:
    g = flow_graph("shufflenet", "conv3x3")
    info = inspect_tflite(graph_to_tflite(g, seed=0))
    assert info.version == 3
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "RESIZE_BILINEAR"} <= set(info.op_codes)
    assert [t.name for t in info.outputs] == g.outputs
    assert all(t.dtype == "INT8" for t in info.inputs + info.outputs)
    assert info.op_count == len(g.ops)


def test_names_follow_the_ir(run_tflite) -> None:
    g = block_graph("dsconv3x3", 16, 1, "relu", "split_concat")
    it, _ = run_tflite(graph_to_tflite(g, seed=0), g)
    names = {d["name"] for d in it.get_tensor_details()}
    assert {"input", "blk.dw", "blk.pw", "blk.dw.weights", "blk.dw.bias", "blk.pw.weights"} <= names


def test_same_quant_through_concat_split_resize(run_tflite) -> None:
    """Ops that move bytes keep one (scale, zero point) on inputs and outputs, as converters do."""
    g = flow_graph("shufflenet", "conv3x3")
    it, _ = run_tflite(graph_to_tflite(g, seed=0), g)
    q = {d["name"]: d["quantization"] for d in it.get_tensor_details()}
    for op in g.ops:
        if op.kind in ("concat", "split", "resize_bilinear"):
            assert len({q[t] for t in (*op.inputs, *op.outputs)}) == 1, op.name


def test_same_seed_same_bytes_other_seed_other_weights(run_tflite) -> None:
    g = block_graph("mbconv_e4", 16, 1, "relu", "split_concat")
    a, b, c = (graph_to_tflite(g, seed=s) for s in (1, 1, 2))
    assert a == b
    assert a != c
    wa = run_tflite(a, g)[0]
    wc = run_tflite(c, g)[0]
    by_name = lambda it: {d["name"]: d["index"] for d in it.get_tensor_details()}
    ia, ic = by_name(wa), by_name(wc)
    assert not np.array_equal(wa.get_tensor(ia["blk.expand.weights"]), wc.get_tensor(ic["blk.expand.weights"]))


def test_bytes_stable_across_processes() -> None:
    """Seeds come from hashlib, not hash(): another process (other hash seed) writes the same bytes."""
    code = (
        "import hashlib,sys;from edgenas.graph.networks import FLOW;from edgenas.tflite import graph_to_tflite;"
        "p={k:v.default for k,v in FLOW.params.items()};g=FLOW.build(p,FLOW.widths,6,(64,96));"
        "sys.stdout.write(hashlib.sha256(graph_to_tflite(g,seed=3)).hexdigest())"
    )
    here = hashlib.sha256(graph_to_tflite(flow_graph("shufflenet", "conv3x3"), seed=3)).hexdigest()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == here


def test_per_tensor_weights(run_tflite, vela_compile) -> None:
    g = block_graph("conv3x3", 16, 1, "relu", "split_concat")
    data = graph_to_tflite(g, seed=0, per_channel=False)
    it, _ = run_tflite(data, g)
    w = next(d for d in it.get_tensor_details() if d["name"] == "blk.conv.weights")
    assert len(w["quantization_parameters"]["scales"]) == 1
    assert vela_compile(data).npuOps > 0
    assert data != graph_to_tflite(g, seed=0, per_channel=True)


def test_given_weights_are_written(run_tflite) -> None:
    g = block_graph("conv1x1", 8, 1, "relu", "split_concat")
    w = np.arange(8 * 16, dtype=np.int64).reshape(8, 1, 1, 16) % 255 - 127
    given = GivenWeights(w.astype(np.int8), np.arange(8, dtype=np.int32), np.full(8, 0.01, np.float32))
    it, _ = run_tflite(graph_to_tflite(g, seed=0, weights={"blk.conv": given}), g)
    d = {t["name"]: t for t in it.get_tensor_details()}
    np.testing.assert_array_equal(it.get_tensor(d["blk.conv.weights"]["index"]), given.weights)
    np.testing.assert_array_equal(it.get_tensor(d["blk.conv.bias"]["index"]), given.bias)
    with pytest.raises(GraphError, match="do not fit"):
        graph_to_tflite(g, seed=0, weights={"blk.conv": given._replace(weights=given.weights[:4])})


def test_options_read_back_with_generated_reader() -> None:
    """Tables are packed by our own writer: the generated schema reader must see every field as set."""
    from ethosu.vela.tflite import (
        Conv2DOptions,
        DepthwiseConv2DOptions,
        Model,
        ResizeBilinearOptions,
        SplitVOptions,
        TransposeConvOptions,
    )

    g = Graph("t")
    x = g.add_input("input", (1, 16, 24, 16))
    y = g.add("conv2d", "c", [x], kernel=3, stride=2, out_channels=12, act="relu6")
    y = g.add("depthwise_conv2d", "d", [y], kernel=5, stride=1, act="relu")
    y = g.add("resize_bilinear", "r", [y], scale=2, half_pixel_centers=True)
    a, _ = g.add_multi("split", "s", [y], sizes=(4, 8))
    g.mark_output(g.add("transpose_conv2d", "t", [a], kernel=4, stride=2, out_channels=4, act="relu"))
    m = Model.Model.GetRootAs(graph_to_tflite(g, seed=0), 0)
    sg = m.Subgraphs(0)
    assert m.Version() == 3 and m.SubgraphsLength() == 1 and m.BuffersLength() >= 1
    assert m.Buffers(0).DataLength() == 0
    ops = [sg.Operators(i) for i in range(sg.OperatorsLength())]

    def opts(op, cls):  # type: ignore[no-untyped-def]
        o = cls()
        t = op.BuiltinOptions()
        o.Init(t.Bytes, t.Pos)
        return o

    c = opts(ops[0], Conv2DOptions.Conv2DOptions)
    assert (c.StrideW(), c.StrideH(), c.Padding(), c.FusedActivationFunction()) == (2, 2, 0, 3)
    d = opts(ops[1], DepthwiseConv2DOptions.DepthwiseConv2DOptions)
    assert (d.StrideW(), d.DepthMultiplier(), d.FusedActivationFunction()) == (1, 1, 1)
    r = opts(ops[2], ResizeBilinearOptions.ResizeBilinearOptions)
    assert (r.AlignCorners(), r.HalfPixelCenters()) == (False, True)
    assert opts(ops[3], SplitVOptions.SplitVOptions).NumSplits() == 2
    t = opts(ops[4], TransposeConvOptions.TransposeConvOptions)
    assert (t.StrideW(), t.StrideH(), t.FusedActivationFunction()) == (2, 2, 1)
    w = sg.Tensors(ops[1].Inputs(1))
    assert w.Name() == b"d.weights" and w.ShapeAsNumpy().tolist() == [1, 5, 5, 12]
    assert w.Quantization().QuantizedDimension() == 3 and w.Quantization().ScaleLength() == 12
    data = m.Buffers(w.Buffer()).DataAsNumpy()
    assert data.size == 5 * 5 * 12
    tw = sg.Tensors(ops[4].Inputs(1))
    assert tw.ShapeAsNumpy().tolist() == [4, 4, 4, 4] and tw.Quantization().QuantizedDimension() == 0
    assert sg.Tensors(ops[4].Inputs(0)).Name() == b"t.output_shape"
    for i in range(1, m.BuffersLength()):  # constant data 16-byte aligned, like the converter's
        tab = m.Buffers(i)._tab
        assert tab.Vector(tab.Offset(4)) % 16 == 0
