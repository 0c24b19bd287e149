"""Channel groups of a Graph, and the Graph with fewer channels: the pure-IR half of structured pruning.

A channel of a conv's output can only be removed if it is removed everywhere it flows: from the conv's
filters (and its BatchNorm), from every depthwise conv and element-wise op it passes through, and from the
input weights of every op that reads it. Torch-Pruning's DepGraph (VainF/Torch-Pruning) finds these
"dependency groups" by tracing an nn.Module; here the IR already states every op's inputs and outputs, so
the same idea is a union-find over tensors: ops that pass channel i of their input to channel i of their
output (depthwise conv, add, activations, resize, pooling) tie their tensors into one group, and `add`
ties both of its inputs (a residual's channels are pruned together, same indices, or not at all). Torch-
Pruning itself is not used: it prunes nn.Modules, while here the Graph must change with the module,
because the Graph is what the TFLite writer and the compiler measure.

A group is prunable when every tensor in it was made by a conv2d / transpose_conv2d (whose
`out_channels` sets its width) or by a channel-wise op on the group, and none of its channels is fixed by
the network's interface or rearranged. Not prunable in this version (the group's `blocked` says which):
graph inputs and outputs (the predict convs' 2 channels, logits), tensors that enter or leave a concat,
split, reshape / transpose (the channel-shuffle lowering) or depth_to_space (their channel layout moves
channels between positions or sizes), and a fully_connected reading a feature map wider than 1x1 (it
flattens H, W and C together). A pruned Graph is rebuilt op by op through `Graph.add`, so its shapes come
from the IR's own shape inference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from edgenas.errors import GraphError
from edgenas.graph.ir import Graph, Op

# Ops whose output width is an attribute: the channels a group is made of.
PRODUCERS = frozenset({"conv2d", "transpose_conv2d"})
# Ops whose output channel i is (a function of) input channel i only.
CHANNELWISE = frozenset({"depthwise_conv2d", "add", "max_pool2d", "resize_bilinear", "resize_nearest",
                         "hard_swish", "relu", "relu6", "global_avg_pool"})
# Ops that read their input's channels through per-input-channel weights.
CONSUMERS = frozenset({"conv2d", "transpose_conv2d", "fully_connected"})


@dataclass(frozen=True)
class ChannelGroup:
    """Tensors that share one channel axis (pruned with the same indices), and the ops that touch it."""

    name: str  # the first producer's op name (or the first tensor's, for a group without one)
    channels: int
    tensors: tuple[str, ...]  # in graph order
    producers: tuple[str, ...]  # conv2d / transpose_conv2d ops whose output channels are the group
    channelwise: tuple[str, ...]  # depthwise convs on the group (weights and BatchNorm per channel)
    consumers: tuple[str, ...]  # weighted ops reading the group as their input channels
    blocked: str = ""  # why the group cannot be pruned; empty when it can

    @property
    def prunable(self) -> bool:
        return not self.blocked


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, t: str) -> str:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(b)] = self.find(a)


def _fc_reads_channels(graph: Graph, op: Op) -> bool:
    """A fully_connected whose input is (N, C) or (N, 1, 1, C): its input features are the channels."""
    shape = graph.shape(op.inputs[0])
    return len(shape) == 2 or (len(shape) == 4 and shape[1] == shape[2] == 1)


def channel_groups(graph: Graph) -> list[ChannelGroup]:
    """Every channel group of the graph (prunable or not), in the order their first tensor appears."""
    uf = _Union()
    order: list[str] = list(graph.inputs)
    for op in graph.ops:
        order.extend(op.outputs)
        if op.kind in CHANNELWISE:
            for t in (*op.inputs, *op.outputs):
                uf.join(op.inputs[0], t)
    blocked: dict[str, str] = {}  # root -> first reason

    def block(t: str, why: str) -> None:
        blocked.setdefault(uf.find(t), why)

    for t in graph.inputs:
        block(t, f"graph input {t}")
    for t in graph.outputs:
        block(t, f"graph output {t}")
    producers: dict[str, list[str]] = {}
    channelwise: dict[str, list[str]] = {}
    consumers: dict[str, list[str]] = {}
    for op in graph.ops:
        root_out = uf.find(op.outputs[0])
        if op.kind in PRODUCERS:
            producers.setdefault(root_out, []).append(op.name)
        elif op.kind == "depthwise_conv2d":
            channelwise.setdefault(root_out, []).append(op.name)
        elif op.kind not in CHANNELWISE:
            for t in op.outputs:
                block(t, f"made by {op.kind} {op.name}")
        if op.kind in CONSUMERS and (op.kind != "fully_connected" or _fc_reads_channels(graph, op)):
            consumers.setdefault(uf.find(op.inputs[0]), []).append(op.name)
        elif op.kind not in CHANNELWISE:
            for t in op.inputs:
                block(t, f"enters {op.kind} {op.name}")
    members: dict[str, list[str]] = {}
    for t in order:
        members.setdefault(uf.find(t), []).append(t)
    groups = []
    for root, tensors in members.items():
        if len(graph.shape(tensors[0])) not in (2, 4):
            continue  # inside a reshape/transpose pair: no channel axis
        prod = producers.get(root, [])
        groups.append(ChannelGroup(
            name=prod[0] if prod else tensors[0],
            channels=graph.shape(tensors[0])[-1],
            tensors=tuple(tensors),
            producers=tuple(prod),
            channelwise=tuple(channelwise.get(root, [])),
            consumers=tuple(consumers.get(root, [])),
            blocked=blocked.get(root, ""),
        ))
    return groups


def prunable_groups(graph: Graph) -> list[ChannelGroup]:
    return [g for g in channel_groups(graph) if g.prunable]


def rounded_width(channels: int, keep_ratio: float, round_to: int) -> int:
    """`channels * keep_ratio` rounded to the nearest multiple of `round_to` (halves up; at least one
    multiple), never more than `channels`. A group no wider than `round_to` keeps its width."""
    if not 0.0 < keep_ratio <= 1.0:
        raise GraphError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    if round_to < 1:
        raise GraphError(f"round_to must be a positive integer, got {round_to}")
    if channels <= round_to:
        return channels
    width = max(round_to, round_to * math.floor(channels * keep_ratio / round_to + 0.5))
    return min(width, channels)


def pruned_graph(graph: Graph, widths: Mapping[str, int]) -> Graph:
    """The graph with group `name` narrowed to `widths[name]` channels (the producers' `out_channels`);
    every shape is inferred again by `Graph.add`. Groups not named keep their width."""
    groups = {g.name: g for g in channel_groups(graph)}
    out_channels: dict[str, int] = {}
    for name, width in widths.items():
        group = groups.get(name)
        if group is None or not group.prunable:
            allowed = ", ".join(g.name for g in groups.values() if g.prunable) or "none"
            why = f"not prunable ({group.blocked})" if group else "no such channel group"
            raise GraphError(f"group {name!r}: {why}; prunable groups: {allowed}")
        if not (isinstance(width, int) and 1 <= width <= group.channels):
            raise GraphError(f"group {name!r}: width must be an integer in 1..{group.channels}, got {width!r}")
        out_channels.update(dict.fromkeys(group.producers, width))
    g = Graph(graph.name)
    for t in graph.inputs:
        g.add_input(t, graph.shape(t))  # type: ignore[arg-type]
    for op in graph.ops:
        attrs = dict(op.attrs)
        if op.name in out_channels:
            attrs["out_channels"] = out_channels[op.name]
        outs = g.add_multi(op.kind, op.name, op.inputs, **attrs)
        if outs != op.outputs:  # the IR names outputs from the op name, so this cannot differ
            raise GraphError(f"op {op.name}: rebuilt outputs {outs} differ from {op.outputs}")
    for t in graph.outputs:
        g.mark_output(t)
    g.meta.update(graph.meta)
    changed = {n: w for n, w in sorted(widths.items()) if w != groups[n].channels}
    if changed:
        g.meta["pruned"] = changed
    return g
