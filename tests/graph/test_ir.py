"""The IR's shapes, MACs, liveness and receptive field against independent hand/brute-force computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgenas.errors import GraphError
from edgenas.graph.ir import Graph


def test_conv_shapes_macs_params_match_formulas() -> None:
    g = Graph()
    x = g.add_input("x", (1, 15, 20, 8))
    y = g.add("conv2d", "c", [x], kernel=3, stride=2, out_channels=5, act="relu")
    assert g.shape(y) == (1, 8, 10, 5)  # SAME padding: ceil(15/2), ceil(20/2)
    st = g.layer_stats()[0]
    assert st.macs == 8 * 10 * 5 * 3 * 3 * 8
    assert st.params == 3 * 3 * 8 * 5 + 5
    assert st.weight_bytes == 3 * 3 * 8 * 5 + 4 * 5
    d = g.add("depthwise_conv2d", "d", [y], kernel=5, stride=1)
    assert g.layer_stats()[1].macs == 8 * 10 * 5 * 25
    t = g.add("transpose_conv2d", "t", [d], kernel=4, stride=2, out_channels=3)
    assert g.shape(t) == (1, 16, 20, 3)
    assert g.layer_stats()[2].macs == 8 * 10 * 5 * 16 * 3


def test_bad_graphs_raise() -> None:
    g = Graph()
    x = g.add_input("x", (1, 8, 8, 4))
    y = g.add("conv2d", "c", [x], kernel=1, out_channels=6)
    with pytest.raises(GraphError, match="add of different shapes"):
        g.add("add", "a", [x, y])
    with pytest.raises(GraphError, match="split sizes"):
        g.add_multi("split", "s", [y], sizes=(2, 2))
    with pytest.raises(GraphError, match="unknown kind"):
        g.add("conv9d", "z", [x])
    with pytest.raises(GraphError, match="non-positive"):
        g.add("conv2d", "c0", [x], kernel=1, out_channels=0)
    with pytest.raises(GraphError, match="used twice"):
        g.add("conv2d", "c", [x], kernel=1, out_channels=2)


def _brute_force_peak(g: Graph) -> int:
    """Simulate execution with reference counts: allocate outputs, then free inputs with no readers left."""
    readers = {t: 0 for t in g.tensors}
    for op in g.ops:
        for t in op.inputs:
            readers[t] += 1
    for t in g.outputs:
        readers[t] += 1  # outputs stay to the end
    live = {t: g.tensors[t].nbytes for t in g.inputs}
    peak = 0
    for op in g.ops:
        for t in op.outputs:
            live[t] = g.tensors[t].nbytes
        peak = max(peak, sum(live.values()))
        for t in op.inputs:
            readers[t] -= 1
            if readers[t] == 0:
                live.pop(t, None)
        for t in op.outputs:  # an output nobody reads dies at once
            if readers[t] == 0:
                live.pop(t, None)
    return peak


@pytest.mark.parametrize("seed", range(5))
def test_memory_plan_equals_reference_count_simulation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = Graph()
    tensors = [g.add_input("x", (1, 16, 16, 8))]
    for i in range(12):
        a = tensors[rng.integers(len(tensors))]
        kind = rng.choice(["conv", "add", "concat"])
        same = [t for t in tensors if g.shape(t) == g.shape(a) and t != a]
        if kind == "add" and same:
            tensors.append(g.add("add", f"op{i}", [a, same[0]]))
        elif kind == "concat":
            b = tensors[rng.integers(len(tensors))]
            tensors.append(g.add("concat", f"op{i}", [a, b]) if b != a else g.add("relu", f"op{i}", [a]))
        else:
            tensors.append(g.add("conv2d", f"op{i}", [a], kernel=3, out_channels=int(rng.integers(1, 16))))
    g.mark_output(tensors[-1])
    assert g.memory_plan().peak_bytes == _brute_force_peak(g)


def test_receptive_field_of_conv_stack() -> None:
    g = Graph()
    x = g.add_input("x", (1, 64, 64, 3))
    y = g.add("conv2d", "a", [x], kernel=3, stride=2, out_channels=4)  # rf 3, jump 2
    y = g.add("conv2d", "b", [y], kernel=3, stride=1, out_channels=4)  # rf 3 + 2*2 = 7
    y = g.add("conv2d", "c", [y], kernel=5, stride=1, out_channels=4)  # rf 7 + 4*2 = 15
    assert g.receptive_fields()[y] == 15


def test_shapes_of_every_op_kind() -> None:
    g = Graph()
    x = g.add_input("x", (1, 6, 10, 16))
    assert g.shape(g.add("resize_bilinear", "r", [x], scale=2, half_pixel_centers=True)) == (1, 12, 20, 16)
    assert g.shape(g.add("resize_nearest", "n", [x], scale=4)) == (1, 24, 40, 16)
    assert g.shape(g.add("depth_to_space", "d", [x], block=2)) == (1, 12, 20, 4)
    assert g.shape(g.add("max_pool2d", "m", [x], kernel=3, stride=2)) == (1, 3, 5, 16)
    parts = g.add_multi("split", "s", [x], sizes=(4, 4, 8))
    assert [g.shape(p) for p in parts] == [(1, 6, 10, 4), (1, 6, 10, 4), (1, 6, 10, 8)]
    assert g.shape(g.add("concat", "c", [parts[2], x])) == (1, 6, 10, 24)
    r = g.add("reshape", "re", [x], shape=(1, 6, 10, 2, 8))
    assert g.shape(g.add("transpose", "t", [r], perm=(0, 1, 2, 4, 3))) == (1, 6, 10, 8, 2)
    assert math.prod(g.shape(r)) == math.prod(g.shape(x))
    assert list(itertools.chain(g.inputs)) == ["x"]
