"""Where the cycles go: shares by network part and by op type, the op types that dominate a network,
and a cheaper variant of them when the sweep measured one or the space offers one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgenas.analysis.designs import Design, Row, SweepIndex, fits, is_ok, num, part_of
from edgenas.errors import EdgeNasError
from edgenas.space.config import parse_resolution

if TYPE_CHECKING:  # types only: keeps `import edgenas.analysis` free of the compiler
    from edgenas.space.space import SearchSpace

# The compiler's operator names (per-layer `original_op`) -> IR op kinds, to count how many NPU ops one
# IR op became.
VELA_TO_IR: Mapping[str, str] = {
    "Conv2D": "conv2d", "DepthwiseConv2D": "depthwise_conv2d", "TransposeConv": "transpose_conv2d",
    "TransposeConv2D": "transpose_conv2d", "MaxPool": "max_pool2d", "MaxPool2D": "max_pool2d", "Add": "add",
    "Concat": "concat", "Concatenation": "concat", "Split": "split", "SplitV": "split",
    "ResizeBilinear": "resize_bilinear", "ResizeNearestNeighbor": "resize_nearest",
    "DepthToSpace": "depth_to_space", "HardSwish": "hard_swish", "Relu": "relu", "Relu6": "relu6",
    "Reshape": "reshape", "Transpose": "transpose",
}
# Lowerings of the IR where one parameter value costs more than another computing the same function
# (facts about the compiler, see shared/VELA_FACTS.md): op type -> (parameter, costly value, cheaper value).
CHEAPER_LOWERINGS: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "ResizeBilinear": (("upsample", "bilinear_hpc", "bilinear"),),
    "DepthToSpace": (("upsample", "depth_to_space_op", "depth_to_space"),),
    "Transpose": (("shuffle_impl", "transpose", "split_concat"),),
    "Reshape": (("shuffle_impl", "transpose", "split_concat"),),
}


@dataclass(frozen=True)
class Share:
    """Cycles of one network part or op type and their share of the network's layer cycles."""

    name: str
    cycles: float
    share: float


@dataclass(frozen=True)
class CheaperVariant:
    """A cheaper way to get what a dominating op does.

    code "choice_in_sweep": the sweep measured `design`, this design with choice `parameter` set to
    `alternative`, and it spends fewer cycles on the op and in total. code "space_lowering": the space
    fixes `parameter` to a lowering the compiler runs slower than `alternative` (not measured: numbers None).
    """

    code: str
    parameter: str
    current: str
    alternative: str
    design: Design | None
    op_cycles: float
    alternative_op_cycles: float | None
    total_cycles: float
    alternative_total_cycles: float | None
    saving: float | None  # 1 - alternative_total / total
    alternative_fits: bool | None


@dataclass(frozen=True)
class DominantOp:
    """An op type taking more than `threshold` of the network's cycles.

    `npu_ops`: the compiler's per-layer rows (with cycles) of this type; `ir_ops`: IR ops of this type
    (with the space), so `npu_ops > ir_ops` means each was lowered to several NPU ops (`nng_ops` lists them).
    """

    op_type: str
    cycles: float
    share: float
    threshold: float
    npu_ops: int
    nng_ops: tuple[str, ...]
    ir_ops: int | None
    parts: tuple[Share, ...]  # where these cycles are, share of the op type's cycles
    cheaper: tuple[CheaperVariant, ...]


@dataclass(frozen=True)
class CycleBreakdown:
    """One design at one resolution: cycles by part (network order) and by op type (largest first).
    Shares are of `layer_cycles` (the per-layer rows' sum, equal to the compiler's total) and sum to 1."""

    design: Design
    resolution: str
    hardware: str
    network_cycles: float | None  # the sweep row's cycles_total
    layer_cycles: float
    parts: tuple[Share, ...]
    op_types: tuple[Share, ...]
    dominant: tuple[DominantOp, ...]


def _shares(cycles: Mapping[str, float], total: float, *, sort: bool) -> tuple[Share, ...]:
    items = list(cycles.items())
    if sort:
        items.sort(key=lambda kv: -kv[1])
    return tuple(Share(k, v, v / total if total else 0.0) for k, v in items)


def _sum_by(layers: list[Row], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for lr in layers:
        k = part_of(str(lr["name"])) if key == "part" else str(lr.get(key) or "")
        out[k] = out.get(k, 0.0) + (num(lr, "cycles") or 0.0)
    return out


def part_cycles(layers: list[Row]) -> dict[str, float]:
    """Cycles per network part, in network order."""
    return _sum_by(layers, "part")


def op_type_cycles(layers: list[Row]) -> dict[str, float]:
    """Cycles per op type (the compiler's `original_op`: the TFLite op before lowering)."""
    return _sum_by(layers, "original_op")


def _ir_op_count(space: SearchSpace, design: Design, resolution: str, op_type: str) -> int | None:
    kind = VELA_TO_IR.get(op_type)
    if kind is None:
        return None
    try:
        graph = space.build(space.genotype(design.as_dict()), parse_resolution(resolution))
    except (EdgeNasError, ValueError):
        return None
    return sum(1 for op in graph.ops if op.kind == kind)


def _measured_variants(index: SweepIndex, design: Design, resolution: str, hardware: str, op_type: str,
                       op_cyc: float, total: float) -> list[CheaperVariant]:
    found = []
    for c in index.choices:
        for v in index.values[c]:
            if v == design.value(c):
                continue
            alt = index.with_value(design, c, v)
            row = index.row(alt, resolution, hardware) if alt is not None else None
            if alt is None or not is_ok(row):
                continue
            layers = index.layers(alt, resolution, hardware)
            if not layers:
                continue
            alt_op = op_type_cycles(layers).get(op_type, 0.0)
            alt_total = sum(num(lr, "cycles") or 0.0 for lr in layers)
            if alt_op < op_cyc and alt_total < total:
                found.append(CheaperVariant("choice_in_sweep", c, design.value(c), v, alt, op_cyc, alt_op, total,
                                            alt_total, 1.0 - alt_total / total, fits(row)))
    found.sort(key=lambda cv: (not cv.alternative_fits, cv.alternative_total_cycles))
    return found[:1]


def _lowering_variants(space: SearchSpace, design: Design, op_type: str, op_cyc: float,
                       total: float) -> list[CheaperVariant]:
    out = []
    try:
        params = space.params(space.genotype(design.as_dict()))
    except EdgeNasError:
        return out
    for param, costly, cheaper in CHEAPER_LOWERINGS.get(op_type, ()):
        spec = space.template.params.get(param)
        if params.get(param) == costly and spec is not None and spec.valid(cheaper):
            out.append(CheaperVariant("space_lowering", param, costly, cheaper, None, op_cyc, None, total, None,
                                      None, None))
    return out


def cycle_breakdown(index: SweepIndex, design: Design, resolution: str, hardware: str, *,
                    dominant_share: float, space: SearchSpace | None = None) -> CycleBreakdown | None:
    """Shares of cycles by part and op type; None without per-layer rows for this design."""
    layers = index.layers(design, resolution, hardware)
    row = index.row(design, resolution, hardware)
    if not layers or not is_ok(row):
        return None
    total = sum(num(lr, "cycles") or 0.0 for lr in layers)
    if total <= 0:
        return None
    ops = op_type_cycles(layers)
    dominant = []
    for op_type, cyc in sorted(ops.items(), key=lambda kv: -kv[1]):
        if cyc / total <= dominant_share:
            continue
        rows = [lr for lr in layers if str(lr.get("original_op") or "") == op_type]
        npu = [lr for lr in rows if (num(lr, "cycles") or 0.0) > 0]
        cheaper = _measured_variants(index, design, resolution, hardware, op_type, cyc, total)
        ir_ops = None
        if space is not None:
            cheaper += _lowering_variants(space, design, op_type, cyc, total)
            ir_ops = _ir_op_count(space, design, resolution, op_type)
        dominant.append(DominantOp(
            op_type=op_type, cycles=cyc, share=cyc / total, threshold=dominant_share, npu_ops=len(npu),
            nng_ops=tuple(dict.fromkeys(str(lr.get("nng_op") or "") for lr in npu)), ir_ops=ir_ops,
            parts=_shares({k: v for k, v in part_cycles(rows).items() if v > 0}, cyc, sort=True),
            cheaper=tuple(cheaper)))
    return CycleBreakdown(design, resolution, hardware, num(row, "cycles_total"), total,
                          _shares(part_cycles(layers), total, sort=False), _shares(ops, total, sort=True),
                          tuple(dominant))


def cycle_breakdowns(index: SweepIndex, designs: tuple[Design, ...], resolution: str, hardware: str, *,
                     dominant_share: float, space: SearchSpace | None = None) -> tuple[CycleBreakdown, ...]:
    """Breakdowns of `designs` (those without per-layer rows are left out)."""
    out = []
    for d in designs:
        b = cycle_breakdown(index, d, resolution, hardware, dominant_share=dominant_share, space=space)
        if b is not None:
            out.append(b)
    return tuple(out)
