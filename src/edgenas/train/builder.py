"""Graph (IR) -> torch.nn.Module that computes what the TFLite writer's file means, op for op.

One Graph drives the compiler, the trainer and the export, so the network that is trained is the one that
was measured. PyTorch's own layers differ from TFLite in the details that matter here, hence the few
hand-written pieces:
- SAME padding: TFLite pads `total // 2` before and the rest after (asymmetric for even kernels or
  strides); `nn.Conv2d(padding=...)` pads symmetrically. Convs pad explicitly with `F.pad`.
- Bilinear resize with `half_pixel_centers=False` (the NPU-friendly form) has no PyTorch mode: it samples
  at `out / scale`, not `(out + 0.5) / scale - 0.5` (`align_corners=False`). Both forms are implemented
  here from TFLite's reference kernel (`ComputeInterpolationValues`).
- Transposed conv: TFLite crops `(k - s) // 2` rows/cols from the top/left of the full output.
- DEPTH_TO_SPACE uses TFLite's DCR channel order (`(dy * b + dx) * C + c`), not PixelShuffle's CRD order;
  both of its lowerings (the op, the one-hot transposed conv) compute the same function.
- Reshape/transpose act on NHWC axes (as in the IR); tensors are kept NCHW otherwise, as torch convs want.

BatchNorm follows the convs that will carry it once folded: every weighted op except those whose output is
a graph output (the predict convs, the classifier) and the fixed one-hot conv of depth_to_space (which is
not a weighted op in the IR at all).

Tensors flow in NCHW (batch, channels, height, width); `forward` takes the graph's inputs in NCHW and
returns its outputs in NCHW (rank-2 outputs, e.g. class logits, as they are).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgenas.errors import GraphError
from edgenas.graph.ir import WEIGHTED_OPS, Graph, Op

__all__ = ["GraphModule", "carries_batchnorm", "depth_to_space_dcr", "resize_bilinear_tflite", "same_padding"]


def carries_batchnorm(graph: Graph, op: Op) -> bool:
    """A weighted op followed by BatchNorm in training (folded away at export)."""
    return op.kind in WEIGHTED_OPS and op.kind != "fully_connected" and op.outputs[0] not in graph.outputs


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite SAME padding of one axis: (before, after) with the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _interp_axis(in_size: int, out_size: int, half_pixel_centers: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Lower index, upper index and upper weight along one axis, as TFLite's reference kernel computes them
    (float32 scale = in / out; lower = max(floor(v), 0); upper = min(ceil(v), in - 1))."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    pos = torch.arange(out_size, dtype=torch.float32)
    v = (pos + 0.5) * scale - 0.5 if half_pixel_centers else pos * scale
    lo = torch.clamp(torch.floor(v), min=0).to(torch.long)
    hi = torch.clamp(torch.ceil(v), max=in_size - 1).to(torch.long)
    frac = v - lo.to(torch.float32)  # against the clamped lower index, as the reference kernel does
    return lo, hi, frac


@functools.lru_cache(maxsize=64)
def _interp_matrix(in_size: int, out_size: int, half_pixel_centers: bool) -> Tensor:
    """[out, in] float32: row i holds (1 - frac) at the lower index and frac at the upper one (1 where they
    coincide at the border), so a resize along one axis is a matrix product."""
    lo, hi, frac = _interp_axis(in_size, out_size, half_pixel_centers)
    m = torch.zeros(out_size, in_size, dtype=torch.float32)
    rows = torch.arange(out_size)
    m.index_put_((rows, lo), 1.0 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m


def resize_bilinear_tflite(x: Tensor, out_h: int, out_w: int, half_pixel_centers: bool) -> Tensor:
    """TFLite RESIZE_BILINEAR (align_corners=False) on an NCHW tensor, either half_pixel_centers form:
    Ry @ x @ Rx^T with the interpolation matrices of both axes. Two small matrix products instead of four
    gathers and their scatter-add backward: 4-6x faster on CPU (a flow training step spent a quarter of its
    time here), equal to the gather form within float32 rounding (about 2e-7)."""
    _, _, h, w = x.shape
    ry = _interp_matrix(h, out_h, half_pixel_centers).to(device=x.device, dtype=x.dtype)
    rx = _interp_matrix(w, out_w, half_pixel_centers).to(device=x.device, dtype=x.dtype)
    return torch.matmul(ry, torch.matmul(x, rx.T))


def depth_to_space_dcr(x: Tensor, block: int) -> Tensor:
    """TFLite DEPTH_TO_SPACE on NCHW: out[c, h*b+dy, w*b+dx] = in[(dy*b+dx)*C + c, h, w]."""
    n, cin, h, w = x.shape
    c = cin // (block * block)
    return x.view(n, block, block, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * block, w * block)


def _activation(kind: str) -> nn.Module:
    return {"none": nn.Identity(), "relu": nn.ReLU(), "relu6": nn.ReLU6()}[kind]


class _Conv(nn.Module):
    """conv2d / depthwise_conv2d with TFLite SAME padding, optional BatchNorm, fused activation."""

    def __init__(self, op: Op, cin: int, in_hw: tuple[int, int], batchnorm: bool) -> None:
        super().__init__()
        k, s = op.attr("kernel"), op.attr("stride")
        cout = cin if op.kind == "depthwise_conv2d" else op.attr("out_channels")
        groups = cin if op.kind == "depthwise_conv2d" else 1
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=0, groups=groups, bias=not batchnorm)
        ph, pw = same_padding(in_hw[0], k, s), same_padding(in_hw[1], k, s)
        self.pad = (pw[0], pw[1], ph[0], ph[1])
        self.bn = nn.BatchNorm2d(cout) if batchnorm else None
        self.act = _activation(op.attr("act"))

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.pad(x, self.pad) if any(self.pad) else x)
        if self.bn is not None:
            y = self.bn(y)
        return self.act(y)


class _TransposeConv(nn.Module):
    """TRANSPOSE_CONV with SAME padding: the full transposed output cropped by (k - s) // 2 at the top/left."""

    def __init__(self, op: Op, cin: int, out_hw: tuple[int, int], batchnorm: bool) -> None:
        super().__init__()
        k, s = op.attr("kernel"), op.attr("stride")
        cout = op.attr("out_channels")
        self.conv = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=0, bias=not batchnorm)
        self.out_hw = out_hw
        self.crop = (max(k - s, 0) // 2, max(k - s, 0) // 2)
        self.bn = nn.BatchNorm2d(cout) if batchnorm else None
        self.act = _activation(op.attr("act"))

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        (top, left), (h, w) = self.crop, self.out_hw
        y = y[:, :, top : top + h, left : left + w]
        if y.shape[2] < h or y.shape[3] < w:  # kernel smaller than stride: TFLite leaves zeros (plus bias)
            y = F.pad(y, (0, w - y.shape[3], 0, h - y.shape[2]))
        if self.bn is not None:
            y = self.bn(y)
        return self.act(y)


class _Linear(nn.Module):
    """FULLY_CONNECTED (keep_num_dims=False): the input flattened in NHWC order, as TFLite reads it."""

    def __init__(self, op: Op, in_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, op.attr("units"))
        self.act = _activation(op.attr("act"))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return self.act(self.fc(x.reshape(x.shape[0], -1)))


def _to_nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def _from_nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def _module_key(op_name: str) -> str:
    return op_name.replace(".", "__")  # ModuleDict keys may not contain dots


class GraphModule(nn.Module):
    """The network of a Graph as a torch module (trainable; BatchNorm where `carries_batchnorm`)."""

    def __init__(self, graph: Graph, *, batchnorm: bool = True) -> None:
        super().__init__()
        self.graph = graph
        self.layers = nn.ModuleDict()
        for op in graph.ops:
            module = self._make(op, batchnorm and carries_batchnorm(graph, op))
            if module is not None:
                self.layers[_module_key(op.name)] = module

    def _make(self, op: Op, bn: bool) -> nn.Module | None:
        g = self.graph
        in_shape = g.shape(op.inputs[0])
        if op.kind in ("conv2d", "depthwise_conv2d"):
            return _Conv(op, in_shape[3], (in_shape[1], in_shape[2]), bn)
        if op.kind == "transpose_conv2d":
            out = g.shape(op.outputs[0])
            return _TransposeConv(op, in_shape[3], (out[1], out[2]), bn)
        if op.kind == "fully_connected":
            n = 1
            for d in in_shape[1:]:
                n *= d
            return _Linear(op, n)
        return None

    def layer(self, op_name: str) -> nn.Module:
        """The module of a weighted op, by its IR name."""
        return self.layers[_module_key(op_name)]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.run(*inputs)[1]

    def run(self, *inputs: Tensor, keep: bool = False) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """(every tensor by IR name if `keep`, else {}; the outputs). Calibration reads the intermediates."""
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise GraphError(f"graph {g.name} takes {len(g.inputs)} input(s), got {len(inputs)}")
        env: dict[str, Tensor] = dict(zip(g.inputs, inputs))
        kept: dict[str, Tensor] = dict(env) if keep else {}
        last_use = self._last_use()
        for step, op in enumerate(g.ops):
            xs = [env[t] for t in op.inputs]
            outs = self._run_op(op, xs)
            for t, v in zip(op.outputs, outs):
                env[t] = v
                if keep:
                    kept[t] = v
            for t in op.inputs:  # free what no later op reads (memory at high resolutions)
                if last_use[t] == step and t not in g.outputs:
                    env.pop(t, None)
        return kept, tuple(env[t] for t in g.outputs)

    def _last_use(self) -> dict[str, int]:
        if not hasattr(self, "_last_use_cache"):
            last: dict[str, int] = {}
            for step, op in enumerate(self.graph.ops):
                for t in op.inputs:
                    last[t] = step
            self._last_use_cache = last
        return self._last_use_cache

    def _run_op(self, op: Op, xs: list[Tensor]) -> list[Tensor]:
        kind = op.kind
        if kind in ("conv2d", "depthwise_conv2d", "transpose_conv2d", "fully_connected"):
            return [self.layer(op.name)(xs[0])]
        if kind == "max_pool2d":
            k, s = op.attr("kernel"), op.attr("stride")
            _, _, h, w = xs[0].shape
            ph, pw = same_padding(h, k, s), same_padding(w, k, s)
            x = F.pad(xs[0], (pw[0], pw[1], ph[0], ph[1]), value=float("-inf"))  # padding never wins a max
            return [F.max_pool2d(x, k, s)]
        if kind == "add":
            return [_activation(op.attr("act"))(xs[0] + xs[1])]
        if kind == "concat":
            return [torch.cat(xs, dim=1)]
        if kind == "split":
            return list(torch.split(xs[0], list(op.attr("sizes")), dim=1))
        if kind == "resize_bilinear":
            _, oh, ow, _ = self.graph.shape(op.outputs[0])
            return [resize_bilinear_tflite(xs[0], oh, ow, bool(op.attr("half_pixel_centers")))]
        if kind == "resize_nearest":  # align_corners=False, half_pixel_centers=False: in = floor(out * in/out)
            _, oh, ow, _ = self.graph.shape(op.outputs[0])
            return [F.interpolate(xs[0], size=(oh, ow), mode="nearest")]
        if kind == "depth_to_space":
            return [depth_to_space_dcr(xs[0], op.attr("block"))]
        if kind == "hard_swish":
            return [F.hardswish(xs[0])]
        if kind == "relu":
            return [F.relu(xs[0])]
        if kind == "relu6":
            return [F.relu6(xs[0])]
        if kind == "global_avg_pool":
            return [xs[0].mean(dim=(2, 3), keepdim=True)]
        if kind == "reshape":  # the IR's batch is 1; the module's is whatever it is given
            shape = (xs[0].shape[0], *tuple(op.attr("shape"))[1:])
            return [_from_nhwc(_to_nhwc(xs[0]).reshape(shape))]
        if kind == "transpose":
            return [_from_nhwc(_to_nhwc(xs[0]).permute(tuple(op.attr("perm"))))]
        raise GraphError(f"op {op.name}: the torch builder has no rule for {kind!r}")
