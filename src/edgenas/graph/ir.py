"""The network IR: NHWC int8 tensors and ops in topological order.

One Graph drives every back end (TFLite writer, analytic model, torch builder), so shapes are inferred
here once, when an op is added, and nothing downstream re-derives them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from edgenas.errors import GraphError

ACTIVATIONS = ("none", "relu", "relu6")

# Op kinds the IR knows, with the attributes each one takes (all required unless defaulted in `_DEFAULTS`).
OP_ATTRS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "conv2d": ("kernel", "stride", "out_channels", "act"),
        "depthwise_conv2d": ("kernel", "stride", "act"),
        "transpose_conv2d": ("kernel", "stride", "out_channels", "act"),
        "max_pool2d": ("kernel", "stride"),
        "add": ("act",),
        "concat": (),
        "split": ("sizes",),
        "resize_bilinear": ("scale", "half_pixel_centers"),
        "resize_nearest": ("scale",),
        "depth_to_space": ("block", "lowering"),
        "hard_swish": (),
        "relu": (),
        "relu6": (),
        "reshape": ("shape",),
        "transpose": ("perm",),
        "global_avg_pool": (),
        "fully_connected": ("units", "act"),
    }
)
_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "conv2d": {"stride": 1, "act": "none"},
        "depthwise_conv2d": {"stride": 1, "act": "none"},
        "transpose_conv2d": {"act": "none"},
        "add": {"act": "none"},
        "resize_bilinear": {"half_pixel_centers": False},
        "depth_to_space": {"lowering": "transpose_conv"},
        "fully_connected": {"act": "none"},
    }
)
# Ops that carry weights (int8 weights + int32 bias per output channel).
WEIGHTED_OPS = frozenset({"conv2d", "depthwise_conv2d", "transpose_conv2d", "fully_connected"})
# How DEPTH_TO_SPACE is deployed: the TFLite op itself (the CPU runs it on Ethos-U), or a stride-b
# transposed conv with fixed one-hot weights, which computes the same rearrangement on the NPU.
D2S_LOWERINGS = ("transpose_conv", "op")


@dataclass(frozen=True)
class Tensor:
    """An activation tensor. Rank 4 (NHWC) except inside a reshape/transpose pair."""

    name: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """int8 bytes."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class Op:
    """One operator. `name` is the block path (`head2.block.dw`), also the name of its first output."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def attr(self, key: str) -> Any:
        return self.attrs[key]


@dataclass(frozen=True)
class LayerStats:
    """Per-op figures derived from the IR."""

    name: str
    kind: str
    out_shape: tuple[int, ...]
    macs: int
    params: int
    weight_bytes: int


@dataclass(frozen=True)
class MemoryPlan:
    """Peak activation memory of a static plan where each tensor lives from its producer to its last use."""

    peak_bytes: int
    peak_step: int
    peak_op: str
    live_at_peak: tuple[str, ...]


class Graph:
    """A network: input tensors, ops in topological order, output tensors. Built with `add`."""

    def __init__(self, name: str = "network") -> None:
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}

    # ---- construction -------------------------------------------------------------------------
    def add_input(self, name: str, shape: tuple[int, int, int, int]) -> str:
        if any(d <= 0 for d in shape):
            raise GraphError(f"input {name}: every dimension must be positive, got {shape}")
        self._new_tensor(name, tuple(shape))
        self.inputs.append(name)
        return name

    def add(self, kind: str, name: str, inputs: Iterable[str], **attrs: Any) -> str:
        """Append an op and return its (first) output tensor name. `split` returns the first of several."""
        outs = self.add_multi(kind, name, inputs, **attrs)
        return outs[0]

    def add_multi(self, kind: str, name: str, inputs: Iterable[str], **attrs: Any) -> tuple[str, ...]:
        if kind not in OP_ATTRS:
            raise GraphError(f"op {name}: unknown kind {kind!r}; known: {', '.join(OP_ATTRS)}")
        full = dict(_DEFAULTS.get(kind, {}))
        full.update(attrs)
        missing = [a for a in OP_ATTRS[kind] if a not in full]
        extra = [a for a in full if a not in OP_ATTRS[kind]]
        if missing or extra:
            raise GraphError(f"op {name} ({kind}): missing attrs {missing}, unexpected attrs {extra}")
        if kind == "depth_to_space" and full["lowering"] not in D2S_LOWERINGS:
            raise GraphError(f"op {name}: lowering must be one of {D2S_LOWERINGS}, got {full['lowering']!r}")
        if "act" in full and full["act"] not in ACTIVATIONS:
            raise GraphError(f"op {name}: act must be one of {ACTIVATIONS}, got {full['act']!r}")
        ins = tuple(inputs)
        for t in ins:
            if t not in self.tensors:
                raise GraphError(f"op {name}: input tensor {t!r} does not exist")
        shapes = [self.tensors[t].shape for t in ins]
        out_shapes = infer_shapes(kind, name, shapes, full)
        if len(out_shapes) == 1:
            out_names: tuple[str, ...] = (name,)
        else:
            out_names = tuple(f"{name}:{i}" for i in range(len(out_shapes)))
        for n, s in zip(out_names, out_shapes):
            self._new_tensor(n, s)
        self.ops.append(Op(name, kind, ins, out_names, MappingProxyType(full)))
        return out_names

    def mark_output(self, tensor: str) -> None:
        if tensor not in self.tensors:
            raise GraphError(f"output {tensor!r} does not exist")
        self.outputs.append(tensor)

    def _new_tensor(self, name: str, shape: tuple[int, ...]) -> None:
        if name in self.tensors:
            raise GraphError(f"tensor name {name!r} used twice")
        if any(d <= 0 for d in shape):
            raise GraphError(f"tensor {name}: shape {shape} has a non-positive dimension")
        self.tensors[name] = Tensor(name, shape)

    # ---- queries -------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of everything a back end can read from the graph: its name, inputs and their shapes, every
        op (name, kind, inputs, outputs, attributes), outputs and meta. Equal fingerprints, equal networks;
        what is derived (tensor shapes) follows from these."""
        text = repr((self.name, *self._structure(), sorted((k, repr(v)) for k, v in self.meta.items())))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def structure_fingerprint(self) -> str:
        """sha256 of the network alone: inputs and their shapes, every op, outputs; not the graph's name or
        meta, which name it after the space and genotype that produced it. Two spaces that build the same
        network (the seed's networks in examples/flow_accuracy.yaml and in the flow benchmark's space, say)
        give it the same structure fingerprint, and the torch builder the same module."""
        return hashlib.sha256(repr(self._structure()).encode("utf-8")).hexdigest()

    def _structure(self) -> tuple[Any, ...]:
        """Inputs with their shapes, every op (name, kind, inputs, outputs, attributes), outputs."""
        return ([(t, self.tensors[t].shape) for t in self.inputs],
                [(op.name, op.kind, op.inputs, op.outputs, sorted(op.attrs.items())) for op in self.ops],
                self.outputs)

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.tensors[tensor].shape

    def producer(self) -> dict[str, Op]:
        return {o: op for op in self.ops for o in op.outputs}

    def layer_stats(self) -> list[LayerStats]:
        return [
            LayerStats(
                op.name,
                op.kind,
                self.tensors[op.outputs[0]].shape,
                op_macs(op, [self.shape(t) for t in op.inputs], self.shape(op.outputs[0])),
                op_params(op, [self.shape(t) for t in op.inputs], self.shape(op.outputs[0])),
                op_weight_bytes(op, [self.shape(t) for t in op.inputs], self.shape(op.outputs[0])),
            )
            for op in self.ops
        ]

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.layer_stats())

    @property
    def params(self) -> int:
        return sum(s.params for s in self.layer_stats())

    @property
    def weight_bytes(self) -> int:
        return sum(s.weight_bytes for s in self.layer_stats())

    def live_sets(self) -> list[list[str]]:
        """Tensors live while op i runs: its inputs, its outputs and every tensor produced earlier that a
        later op (or the graph output) still reads. A static plan with no in-place reuse."""
        last_use: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                last_use[t] = i
        end = len(self.ops)
        for t in self.outputs:
            last_use[t] = end
        born: dict[str, int] = {t: -1 for t in self.inputs}
        for i, op in enumerate(self.ops):
            for t in op.outputs:
                born[t] = i
        return [[t for t, b in born.items() if b <= i and last_use.get(t, b) >= i] for i in range(len(self.ops))]

    def live_bytes_per_op(self) -> list[int]:
        return [sum(self.tensors[t].nbytes for t in live) for live in self.live_sets()]

    def memory_plan(self) -> MemoryPlan:
        """Peak of live activation bytes over the ops, and which tensors are live then (largest first)."""
        best = MemoryPlan(0, -1, "", ())
        for i, live in enumerate(self.live_sets()):
            total = sum(self.tensors[t].nbytes for t in live)
            if total > best.peak_bytes:
                op = self.ops[i]
                best = MemoryPlan(total, i, op.name, tuple(sorted(live, key=lambda t: -self.tensors[t].nbytes)))
        return best

    def receptive_fields(self) -> dict[str, int]:
        """Receptive field (input pixels, one axis) of every tensor, along the widest path."""
        rf: dict[str, float] = {t: 1.0 for t in self.inputs}
        jump: dict[str, float] = {t: 1.0 for t in self.inputs}
        for op in self.ops:
            r_in = max(rf[t] for t in op.inputs)
            j_in = max(jump[t] for t in op.inputs)
            if op.kind in ("conv2d", "depthwise_conv2d", "max_pool2d"):
                k, s = op.attr("kernel"), op.attr("stride")
                r, j = r_in + (k - 1) * j_in, j_in * s
            elif op.kind == "transpose_conv2d":
                k, s = op.attr("kernel"), op.attr("stride")
                j = j_in / s
                r = r_in + (k - 1) * j
            elif op.kind in ("resize_bilinear", "resize_nearest"):
                j = j_in / op.attr("scale")
                r = r_in + (j_in if op.kind == "resize_bilinear" else 0.0)
            elif op.kind == "depth_to_space":
                r, j = r_in, j_in / op.attr("block")
            elif op.kind == "global_avg_pool":  # every pixel of its input
                r, j = r_in + (max(self.shape(op.inputs[0])[1:3]) - 1) * j_in, j_in
            else:
                r, j = r_in, j_in
            for t in op.outputs:
                rf[t], jump[t] = r, j
        return {t: math.ceil(v) for t, v in rf.items()}

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.ops)} ops, inputs={self.inputs}, outputs={self.outputs})"


# ---- shape inference and costs (pure functions over shapes) ----------------------------------------


def _same(n: int, stride: int) -> int:
    return -(-n // stride)


def infer_shapes(kind: str, name: str, shapes: list[tuple[int, ...]], a: Mapping[str, Any]) -> list[tuple[int, ...]]:
    def need(n: int) -> None:
        if len(shapes) != n:
            raise GraphError(f"op {name} ({kind}) takes {n} input(s), got {len(shapes)}")

    if kind in ("conv2d", "depthwise_conv2d", "max_pool2d"):
        need(1)
        n, h, w, c = shapes[0]
        s = a["stride"]
        if a["kernel"] <= 0 or s <= 0:
            raise GraphError(f"op {name}: kernel and stride must be positive")
        cout = a["out_channels"] if kind == "conv2d" else c
        return [(n, _same(h, s), _same(w, s), cout)]
    if kind == "transpose_conv2d":
        need(1)
        n, h, w, _ = shapes[0]
        s = a["stride"]
        return [(n, h * s, w * s, a["out_channels"])]
    if kind == "add":
        need(2)
        if shapes[0] != shapes[1]:
            raise GraphError(f"op {name}: add of different shapes {shapes[0]} and {shapes[1]}")
        return [shapes[0]]
    if kind == "concat":
        if len(shapes) < 2:
            raise GraphError(f"op {name}: concat needs at least 2 inputs")
        base = shapes[0][:3]
        if any(s[:3] != base for s in shapes):
            raise GraphError(f"op {name}: concat inputs differ outside the channel axis: {shapes}")
        return [(*base, sum(s[3] for s in shapes))]
    if kind == "split":
        need(1)
        sizes = tuple(a["sizes"])
        if sum(sizes) != shapes[0][3] or any(s <= 0 for s in sizes):
            raise GraphError(f"op {name}: split sizes {sizes} do not add up to {shapes[0][3]} channels")
        return [(*shapes[0][:3], s) for s in sizes]
    if kind in ("resize_bilinear", "resize_nearest"):
        need(1)
        n, h, w, c = shapes[0]
        return [(n, h * a["scale"], w * a["scale"], c)]
    if kind == "depth_to_space":
        need(1)
        n, h, w, c = shapes[0]
        b = a["block"]
        if c % (b * b):
            raise GraphError(f"op {name}: depth_to_space needs channels divisible by {b * b}, got {c}")
        return [(n, h * b, w * b, c // (b * b))]
    if kind in ("hard_swish", "relu", "relu6"):
        need(1)
        return [shapes[0]]
    if kind == "reshape":
        need(1)
        shape = tuple(a["shape"])
        if math.prod(shape) != math.prod(shapes[0]):
            raise GraphError(f"op {name}: reshape {shapes[0]} -> {shape} changes the element count")
        return [shape]
    if kind == "global_avg_pool":
        need(1)
        if len(shapes[0]) != 4:
            raise GraphError(f"op {name}: global_avg_pool needs an NHWC input, got {shapes[0]}")
        n, _, _, c = shapes[0]
        return [(n, 1, 1, c)]
    if kind == "fully_connected":
        need(1)
        if a["units"] <= 0:
            raise GraphError(f"op {name}: units must be positive")
        # TFLite flattens every axis but the batch (keep_num_dims=False): (N, ...) -> (N, units)
        return [(shapes[0][0], a["units"])]
    if kind == "transpose":
        need(1)
        perm = tuple(a["perm"])
        if sorted(perm) != list(range(len(shapes[0]))):
            raise GraphError(f"op {name}: bad permutation {perm} for rank {len(shapes[0])}")
        return [tuple(shapes[0][p] for p in perm)]
    raise GraphError(f"op {name}: no shape rule for {kind}")


def op_macs(op: Op, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> int:
    if op.kind == "conv2d":
        k = op.attr("kernel")
        return math.prod(out_shape) * k * k * in_shapes[0][3]
    if op.kind == "depthwise_conv2d":
        k = op.attr("kernel")
        return math.prod(out_shape) * k * k
    if op.kind == "transpose_conv2d":
        k = op.attr("kernel")
        return math.prod(in_shapes[0]) * k * k * op.attr("out_channels")
    if op.kind == "depth_to_space" and op.attr("lowering") == "transpose_conv":
        b = op.attr("block")
        return math.prod(in_shapes[0]) * b * b * out_shape[3]
    if op.kind == "fully_connected":
        return math.prod(in_shapes[0]) * op.attr("units")
    return 0


def op_params(op: Op, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> int:
    if op.kind not in WEIGHTED_OPS:
        return 0
    if op.kind == "fully_connected":
        return (math.prod(in_shapes[0][1:]) + 1) * op.attr("units")
    k = op.attr("kernel")
    cout = out_shape[3]
    cin = 1 if op.kind == "depthwise_conv2d" else in_shapes[0][3]
    return k * k * cin * cout + cout


def op_weight_bytes(op: Op, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> int:
    """int8 weights plus int32 bias, as stored in the TFLite file (fixed, untrained ones included)."""
    if op.kind == "depth_to_space" and op.attr("lowering") == "transpose_conv":
        b = op.attr("block")
        return b * b * in_shapes[0][3] * out_shape[3] + 4 * out_shape[3]
    p = op_params(op, in_shapes, out_shape)
    cout = out_shape[-1]
    return 0 if p == 0 else (p - cout) + 4 * cout
