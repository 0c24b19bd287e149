"""Network templates: a template turns resolved parameters (choices + fixed values + widths) into a Graph.

A search space names one template and says which of its parameters are searched. Each template declares
its parameters with the values they allow, so a config is validated before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgenas.errors import GraphError
from edgenas.graph.blocks import (
    ACTIVATION_NAMES,
    SHUFFLE_IMPLS,
    UPSAMPLERS,
    BlockArgs,
    apply_block,
    block_names,
    is_block,
    upsample,
)
from edgenas.graph.ir import Graph

BACKBONES: Mapping[str, str] = {
    "shufflenet": "shuffle",
    "mbconv_e4": "mbconv_e4",
    "mbconv_e6": "mbconv_e6",
    "resnet": "resnet",
}


@dataclass(frozen=True)
class Param:
    """A template parameter: its allowed values (a tuple), or a checker for open-ended values."""

    default: Any
    allowed: tuple[Any, ...] | None = None
    check: Callable[[Any], bool] | None = None
    describe: str = ""

    def valid(self, value: Any) -> bool:
        if self.allowed is not None:
            return value in self.allowed
        return self.check(value) if self.check else True

    def allowed_text(self) -> str:
        return ", ".join(map(str, self.allowed)) if self.allowed is not None else self.describe


def _block_param(default: str | None) -> Param:
    """A block name; a None default means "inherit" (see `stage{i}_block`)."""
    return Param(default, check=lambda v: isinstance(v, str) and is_block(v), describe=", ".join(block_names()))


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _odd_kernel(v: Any) -> bool:
    return _pos_int(v) and v % 2 == 1


@dataclass(frozen=True)
class Template:
    name: str
    doc: str
    params: Mapping[str, Param]
    widths: Mapping[str, int]  # default channel widths
    total_stride: int
    build: Callable[[Mapping[str, Any], Mapping[str, int], int, tuple[int, int]], Graph]
    # Widths that count repeats rather than channels, with their largest value: a space may not ask for a
    # network whose layout alone takes minutes (65,535 encoder units are 393k ops) or whose stride no
    # resolution can divide.
    limits: Mapping[str, int] = field(default_factory=dict)


# ---- flow: the seed study's optical-flow network ---------------------------------------------------


def build_flow(p: Mapping[str, Any], w: Mapping[str, int], in_ch: int, res: tuple[int, int]) -> Graph:
    """Two stacked RGB frames -> encoder to H/4 -> heads at 1/4, 1/2, 1/1, each ending in a kxk predict
    conv with 2 output channels (the flow field). Head1/Head2 are bilinear x2 upsampling + the searched
    block; Head1 also sees the stem's H/2 features (a skip), as flow decoders do."""
    h, wd = res
    g = Graph("flow")
    act = p["activation"]

    def args(cout: int, stride: int = 1) -> BlockArgs:
        return BlockArgs(cout, stride, act, p["shuffle_impl"])

    x = g.add_input("input", (1, h, wd, in_ch))
    stem = apply_block(g, "conv3x3", x, "stem", args(w["stem"], 2))
    unit = BACKBONES[p["backbone"]]
    y = apply_block(g, unit, stem, "backbone.unit0", args(w["encoder"], 2))
    for i in range(1, w["encoder_units"]):
        y = apply_block(g, unit, y, f"backbone.unit{i}", args(w["encoder"]))
    k = p["predict_kernel"]
    f0 = apply_block(g, p["head0_block"], y, "head0.block", args(w["head0"]))
    g.mark_output(g.add("conv2d", "head0.predict", [f0], kernel=k, stride=1, out_channels=2, act="none"))
    up1 = upsample(g, f0, "head1.up", p["upsample"])
    cat1 = g.add("concat", "head1.skip", [up1, stem])
    f1 = apply_block(g, p["head1_block"], cat1, "head1.block", args(w["head1"]))
    g.mark_output(g.add("conv2d", "head1.predict", [f1], kernel=k, stride=1, out_channels=2, act="none"))
    up2 = upsample(g, f1, "head2.up", p["upsample"])
    f2 = apply_block(g, p["head2_block"], up2, "head2.block", args(w["head2"]))
    g.mark_output(g.add("conv2d", "head2.predict", [f2], kernel=k, stride=1, out_channels=2, act="none"))
    return g


FLOW = Template(
    name="flow",
    doc="Optical-flow network of the seed study: encoder to H/4, heads at 1/4, 1/2 and full resolution.",
    params={
        "backbone": Param("shufflenet", tuple(BACKBONES)),
        "head0_block": _block_param("conv3x3"),
        "head1_block": _block_param("conv3x3"),
        "head2_block": _block_param("conv3x3"),
        "upsample": Param("bilinear", UPSAMPLERS),
        "predict_kernel": Param(7, check=_odd_kernel, describe="an odd positive integer"),
        "activation": Param("relu", ACTIVATION_NAMES),
        "shuffle_impl": Param("split_concat", SHUFFLE_IMPLS),
    },
    widths={"stem": 16, "encoder": 64, "encoder_units": 3, "head0": 64, "head1": 32, "head2": 16},
    total_stride=4,
    build=build_flow,
    limits={"encoder_units": 256},
)


# ---- stages: a generic MobileNet-style feature extractor -------------------------------------------


def build_stages(p: Mapping[str, Any], w: Mapping[str, int], in_ch: int, res: tuple[int, int]) -> Graph:
    """conv3x3/2 stem, then `stages` stages each starting with a stride-2 block; stage i's block is the
    choice `stage{i}_block`. Output: the last stage's feature map, or with `classes` > 0 the logits of a
    global-average-pool + fully-connected classifier."""
    h, wd = res
    g = Graph("stages")
    act = p["activation"]
    x = g.add_input("input", (1, h, wd, in_ch))
    y = apply_block(g, "conv3x3", x, "stem", BlockArgs(w["stem"], 2, act))
    for i in range(w["stages"]):
        block = p.get(f"stage{i}_block") or p["stage_block"]
        cout = w["stem"] * (2 ** (i + 1))
        for j in range(w["units_per_stage"]):
            y = apply_block(g, block, y, f"stage{i}.unit{j}", BlockArgs(cout, 2 if j == 0 else 1, act))
    if w.get("classes", 0) > 0:  # a classifier: global average pool + fully connected logits
        y = g.add("global_avg_pool", "head.pool", [y])
        y = g.add("fully_connected", "head.fc", [y], units=w["classes"])
    g.mark_output(y)
    return g


STAGES = Template(
    name="stages",
    doc="MobileNet-style stack of stride-2 stages; stage{i}_block picks each stage's block.",
    params={
        "stage_block": _block_param("mbconv_e4"),
        **{f"stage{i}_block": _block_param(None) for i in range(6)},  # None: use stage_block
        "activation": Param("relu", ACTIVATION_NAMES),
    },
    widths={"stem": 16, "stages": 3, "units_per_stage": 2, "classes": 0},
    total_stride=16,
    build=build_stages,
    limits={"stages": 14, "units_per_stage": 256},  # 14 stages: stride 2^15, the largest below 65,535
)

TEMPLATES: Mapping[str, Template] = {t.name: t for t in (FLOW, STAGES)}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise GraphError(f"unknown network {name!r}; allowed: {', '.join(TEMPLATES)}") from None


def total_stride(template: Template, widths: Mapping[str, int]) -> int:
    """Stride of the deepest feature map; a resolution must divide by it."""
    if template.name == "stages":
        return 2 ** (widths["stages"] + 1)
    return template.total_stride
