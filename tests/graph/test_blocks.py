"""Every registered block builds, keeps its contract, and the NPU-friendly channel shuffle is a real shuffle."""

from __future__ import annotations

import numpy as np
import pytest

from edgenas.graph.blocks import _FIXED_BLOCKS, UPSAMPLERS, BlockArgs, apply_block, upsample
from edgenas.graph.ir import Graph

BLOCKS = [*_FIXED_BLOCKS, "mbconv_e3_k5", "mbconv_e6_k7"]


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("stride,cin,cout", [(1, 16, 16), (2, 16, 32), (1, 24, 16)])
def test_block_output_shape(block: str, stride: int, cin: int, cout: int) -> None:
    g = Graph()
    x = g.add_input("x", (1, 12, 16, cin))
    y = apply_block(g, block, x, "b", BlockArgs(cout, stride, "relu"))
    assert g.shape(y) == (1, 12 // stride, 16 // stride, cout)
    assert all(op.name.startswith("b.") for op in g.ops)  # names follow the block path


@pytest.mark.parametrize("act", ["relu", "relu6", "hard_swish"])
def test_activations(act: str) -> None:
    g = Graph()
    x = g.add_input("x", (1, 8, 8, 8))
    apply_block(g, "dsconv3x3", x, "b", BlockArgs(8, 1, act))
    kinds = [op.kind for op in g.ops]
    if act == "hard_swish":
        assert kinds.count("hard_swish") == 2
    else:
        assert all(op.attrs.get("act") == act for op in g.ops if op.kind != "hard_swish")


def test_mbconv_residual_only_when_shapes_match() -> None:
    for stride, cout, has_add in [(1, 16, True), (2, 16, False), (1, 8, False)]:
        g = Graph()
        x = g.add_input("x", (1, 8, 8, 16))
        apply_block(g, "mbconv_e4", x, "b", BlockArgs(cout, stride))
        assert any(op.kind == "add" for op in g.ops) == has_add
        assert g.ops[0].attr("out_channels") == 64  # expansion x4


def _channel_labels(g: Graph) -> dict[str, np.ndarray]:
    """Propagate channel identities: data-movement ops move labels, compute ops create fresh ones."""
    labels: dict[str, np.ndarray] = {}
    counter = [0]

    def fresh(shape: tuple[int, ...]) -> np.ndarray:
        c = shape[-1]
        out = np.arange(counter[0], counter[0] + c).reshape((1,) * (len(shape) - 1) + (c,))
        counter[0] += c
        return np.broadcast_to(out, (1,) * (len(shape) - 1) + (c,))

    for t in g.inputs:
        labels[t] = fresh(g.shape(t))
    for op in g.ops:
        ins = [labels[t] for t in op.inputs]
        if op.kind == "split":
            offs = np.cumsum((0, *op.attr("sizes")))
            for i, t in enumerate(op.outputs):
                labels[t] = ins[0][..., offs[i]:offs[i + 1]]
        elif op.kind == "concat":
            labels[op.outputs[0]] = np.concatenate(ins, axis=-1)
        elif op.kind == "reshape":
            labels[op.outputs[0]] = ins[0].reshape((1,) * (len(op.attr("shape")) - 2) + tuple(op.attr("shape")[-2:])) \
                if len(op.attr("shape")) == 5 else ins[0].reshape(1, 1, 1, -1)
        elif op.kind == "transpose":
            labels[op.outputs[0]] = np.transpose(ins[0], op.attr("perm"))
        else:
            labels[op.outputs[0]] = fresh(g.shape(op.outputs[0]))
    return labels


@pytest.mark.parametrize("cin,cout,stride", [(16, 16, 1), (16, 32, 2), (24, 16, 1)])
def test_split_concat_shuffle_is_a_groups2_shuffle_up_to_permutation_within_halves(cin: int, cout: int,
                                                                                    stride: int) -> None:
    def build(impl: str) -> tuple[Graph, str]:
        g = Graph()
        x = g.add_input("x", (1, 8, 8, cin))
        return g, apply_block(g, "shuffle", x, "u", BlockArgs(cout, stride, "relu", impl))

    g_ref, y_ref = build("transpose")
    g_npu, y_npu = build("split_concat")
    ref = _channel_labels(g_ref)[y_ref].reshape(-1)
    npu = _channel_labels(g_npu)[y_npu].reshape(-1)
    # Both graphs create fresh labels in the same order (same compute ops), so labels are comparable.
    assert [op.kind for op in g_ref.ops if op.kind in ("conv2d", "depthwise_conv2d")] == \
        [op.kind for op in g_npu.ops if op.kind in ("conv2d", "depthwise_conv2d")]
    half = cout // 2
    assert set(ref[:half]) == set(npu[:half])
    assert set(ref[half:]) == set(npu[half:])
    assert not any(op.kind in ("transpose", "reshape") for op in g_npu.ops)


@pytest.mark.parametrize("kind", UPSAMPLERS)
def test_upsamplers_double_the_resolution_and_keep_channels(kind: str) -> None:
    g = Graph()
    x = g.add_input("x", (1, 6, 8, 16))
    y = upsample(g, x, "up", kind)
    assert g.shape(y) == (1, 12, 16, 16)
