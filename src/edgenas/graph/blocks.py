"""Block library: each block appends ops to a Graph and returns its output tensor.

Blocks are looked up by a compact name (`conv3x3`, `dsconv5x5`, `mbconv_e4`, `mbconv_e6_k5`, `shuffle`,
`resnet`), timm-style, so a search space names them in YAML and tests run over everything registered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from edgenas.errors import GraphError
from edgenas.graph.ir import Graph

ACTIVATION_NAMES = ("relu", "relu6", "hard_swish")
SHUFFLE_IMPLS = ("split_concat", "transpose")


@dataclass(frozen=True)
class BlockArgs:
    """What every block gets besides its input: output channels, stride, activation, lowering choices."""

    out_channels: int
    stride: int = 1
    act: str = "relu"
    shuffle_impl: str = "split_concat"


def _conv(g: Graph, x: str, name: str, cout: int, k: int, stride: int, act: str | None) -> str:
    """conv kxk with a fused relu/relu6, or a separate HARD_SWISH op (TFLite cannot fuse it)."""
    fused = act if act in ("relu", "relu6") else "none"
    y = g.add("conv2d", name, [x], kernel=k, stride=stride, out_channels=cout, act=fused)
    return g.add("hard_swish", f"{name}.hswish", [y]) if act == "hard_swish" else y


def _dw(g: Graph, x: str, name: str, k: int, stride: int, act: str | None) -> str:
    fused = act if act in ("relu", "relu6") else "none"
    y = g.add("depthwise_conv2d", name, [x], kernel=k, stride=stride, act=fused)
    return g.add("hard_swish", f"{name}.hswish", [y]) if act == "hard_swish" else y


def conv_block(k: int) -> Callable[[Graph, str, str, BlockArgs], str]:
    def build(g: Graph, x: str, name: str, a: BlockArgs) -> str:
        return _conv(g, x, f"{name}.conv", a.out_channels, k, a.stride, a.act)

    return build


def dsconv_block(k: int) -> Callable[[Graph, str, str, BlockArgs], str]:
    """Depthwise kxk + pointwise 1x1 (MobileNetV1 style)."""

    def build(g: Graph, x: str, name: str, a: BlockArgs) -> str:
        y = _dw(g, x, f"{name}.dw", k, a.stride, a.act)
        return _conv(g, y, f"{name}.pw", a.out_channels, 1, 1, a.act)

    return build


def mbconv_block(expand: int, k: int) -> Callable[[Graph, str, str, BlockArgs], str]:
    """Inverted residual: 1x1 expand, depthwise kxk, linear 1x1 project, residual when shapes match."""

    def build(g: Graph, x: str, name: str, a: BlockArgs) -> str:
        cin = g.shape(x)[3]
        y = _conv(g, x, f"{name}.expand", cin * expand, 1, 1, a.act)
        y = _dw(g, y, f"{name}.dw", k, a.stride, a.act)
        y = _conv(g, y, f"{name}.project", a.out_channels, 1, 1, None)
        if a.stride == 1 and cin == a.out_channels:
            y = g.add("add", f"{name}.add", [x, y])
        return y

    return build


def resnet_block(g: Graph, x: str, name: str, a: BlockArgs) -> str:
    """ResNet basic block: conv3x3, conv3x3, shortcut (identity or strided 1x1), add + activation."""
    cin = g.shape(x)[3]
    y = _conv(g, x, f"{name}.conv1", a.out_channels, 3, a.stride, a.act)
    y = _conv(g, y, f"{name}.conv2", a.out_channels, 3, 1, None)
    short = x
    if a.stride != 1 or cin != a.out_channels:
        short = _conv(g, x, f"{name}.short", a.out_channels, 1, a.stride, None)
    fused = a.act if a.act in ("relu", "relu6") else "none"
    y = g.add("add", f"{name}.add", [short, y], act=fused)
    return g.add("hard_swish", f"{name}.hswish", [y]) if a.act == "hard_swish" else y


def shuffle_block(g: Graph, x: str, name: str, a: BlockArgs) -> str:
    """ShuffleNetV2 unit.

    With stride 1 and equal widths the input is split in half, one half passes through and the other
    goes through 1x1 -> dw3x3 -> 1x1; otherwise (downsampling or a width change) both branches see the
    whole input. The two halves are then concatenated and channel-shuffled (groups=2).

    `split_concat` lowering (default) keeps everything on the NPU: a groups=2 shuffle only has to put half
    of each branch into each half of the output, so each branch output is split in two and the four
    pieces are concatenated as [a0, b0, a1, b1]. That is the shuffled tensor up to a fixed permutation
    inside each half, which the next layer's weights absorb (the function class is the same).
    `transpose` lowering is the textbook RESHAPE -> 5-D TRANSPOSE -> RESHAPE, kept to show where it falls
    back to the CPU.
    """
    cin = g.shape(x)[3]
    cout = a.out_channels
    if cout % 2 or cout < 4:
        raise GraphError(f"{name}: shuffle needs an even number of output channels >= 4, got {cout}")
    half = cout // 2
    if a.stride == 1 and cin == cout:
        if cin % 4 == 0 and a.shuffle_impl == "split_concat":
            # Split the input so the pass-through half already comes as two quarters.
            q = cin // 4
            p0, p1, main = g.add_multi("split", f"{name}.split", [x], sizes=(q, q, half))
            passthrough = (p0, p1)
        else:
            keep, main = g.add_multi("split", f"{name}.split", [x], sizes=(half, half))
            passthrough = (keep,)
        branch_in = main
        left = None
    else:
        left = _dw(g, x, f"{name}.left.dw", 3, a.stride, None)
        left = _conv(g, left, f"{name}.left.pw", half, 1, 1, a.act)
        branch_in = x
        passthrough = ()
    y = _conv(g, branch_in, f"{name}.pw1", half, 1, 1, a.act)
    y = _dw(g, y, f"{name}.dw", 3, a.stride, None)
    right = _conv(g, y, f"{name}.pw2", half, 1, 1, a.act)
    left_parts: tuple[str, ...] = passthrough if left is None else (left,)
    if a.shuffle_impl == "transpose":
        left_t = left_parts[0] if len(left_parts) == 1 else g.add("concat", f"{name}.left.cat", list(left_parts))
        cat = g.add("concat", f"{name}.concat", [left_t, right])
        n, h, w, c = g.shape(cat)
        r = g.add("reshape", f"{name}.shuffle.r1", [cat], shape=(n, h, w, 2, c // 2))
        t = g.add("transpose", f"{name}.shuffle.t", [r], perm=(0, 1, 2, 4, 3))
        return g.add("reshape", f"{name}.shuffle.r2", [t], shape=(n, h, w, c))
    if a.shuffle_impl != "split_concat":
        raise GraphError(f"{name}: shuffle_impl must be one of {SHUFFLE_IMPLS}, got {a.shuffle_impl!r}")
    if half % 2:
        # Odd halves cannot be split evenly; a plain concat is still a valid (unshuffled) unit only if
        # nothing downstream relies on mixing, so refuse rather than build something different.
        raise GraphError(f"{name}: split_concat shuffle needs out_channels divisible by 4, got {cout}")
    if len(left_parts) == 1:
        l0, l1 = g.add_multi("split", f"{name}.left.split", [left_parts[0]], sizes=(half // 2, half // 2))
    else:
        l0, l1 = left_parts
    r0, r1 = g.add_multi("split", f"{name}.right.split", [right], sizes=(half // 2, half // 2))
    return g.add("concat", f"{name}.concat", [l0, r0, l1, r1])


# ---- upsampling (x2 by default): bilinear in both half_pixel_centers forms, nearest, transposed conv,
# depth_to_space ---------------------------------------------------------------------------------------


def upsample(g: Graph, x: str, name: str, kind: str, scale: int = 2) -> str:
    c = g.shape(x)[3]
    if kind == "bilinear":
        return g.add("resize_bilinear", f"{name}.resize", [x], scale=scale, half_pixel_centers=False)
    if kind == "bilinear_hpc":
        return g.add("resize_bilinear", f"{name}.resize", [x], scale=scale, half_pixel_centers=True)
    if kind == "nearest":
        return g.add("resize_nearest", f"{name}.resize", [x], scale=scale)
    if kind == "transposed_conv":
        return g.add("transpose_conv2d", f"{name}.tconv", [x], kernel=2 * scale, stride=scale, out_channels=c)
    if kind in ("depth_to_space", "depth_to_space_op"):
        # Widen with a 1x1 conv so the channel count survives the rearrangement. `depth_to_space` is
        # lowered to an NPU transposed conv; `depth_to_space_op` keeps the TFLite op (CPU on Ethos-U).
        y = g.add("conv2d", f"{name}.expand", [x], kernel=1, stride=1, out_channels=c * scale * scale)
        lowering = "transpose_conv" if kind == "depth_to_space" else "op"
        return g.add("depth_to_space", f"{name}.d2s", [y], block=scale, lowering=lowering)
    raise GraphError(f"{name}: unknown upsampling {kind!r}; allowed: {', '.join(UPSAMPLERS)}")


UPSAMPLERS = ("bilinear", "bilinear_hpc", "nearest", "transposed_conv", "depth_to_space", "depth_to_space_op")

# ---- registry ----------------------------------------------------------------------------------------

BlockFn = Callable[[Graph, str, str, BlockArgs], str]

_FIXED_BLOCKS: dict[str, BlockFn] = {
    "conv1x1": conv_block(1),
    "conv3x3": conv_block(3),
    "conv5x5": conv_block(5),
    "conv7x7": conv_block(7),
    "dsconv3x3": dsconv_block(3),
    "dsconv5x5": dsconv_block(5),
    "dsconv7x7": dsconv_block(7),
    "mbconv_e4": mbconv_block(4, 3),
    "mbconv_e6": mbconv_block(6, 3),
    "shuffle": shuffle_block,
    "resnet": resnet_block,
}
_MBCONV_RE = re.compile(r"^mbconv_e([1-9])_k([357])$")


def block_names() -> tuple[str, ...]:
    """Names a space may use. `mbconv_e{1..9}_k{3,5,7}` is accepted too (listed once as a pattern)."""
    return (*_FIXED_BLOCKS, "mbconv_e<1-9>_k<3|5|7>")


def is_block(name: str) -> bool:
    return name in _FIXED_BLOCKS or bool(_MBCONV_RE.match(name))


def get_block(name: str) -> BlockFn:
    if name in _FIXED_BLOCKS:
        return _FIXED_BLOCKS[name]
    m = _MBCONV_RE.match(name)
    if m:
        return mbconv_block(int(m.group(1)), int(m.group(2)))
    raise GraphError(f"unknown block {name!r}; allowed: {', '.join(block_names())}")


def apply_block(g: Graph, block: str, x: str, name: str, args: BlockArgs) -> str:
    return get_block(block)(g, x, name, args)
