"""Structured (channel) pruning of a trained GraphModule, to widths the NPU likes, with fine-tuning.

The channel groups come from `edgenas.graph.channels` (which channels must go together, and which cannot go
at all); this module scores channels, picks the ones to keep, and builds the pruned network: a Graph like
any other (the writer, Vela and the torch builder take it as they take any Graph) and its GraphModule with
the kept weights copied from the trained one. Before fine-tuning the pruned module computes exactly what the
original computes with the removed channels zeroed.

Scores per channel of a group, summed over the group's member ops (its producers and the depthwise convs on
it), as Torch-Pruning's group importance aggregates over a dependency group:
- "l1": the L1 norm of the channel's filter (conv weight[c], transposed conv weight[:, c], depthwise
  weight[c]);
- "bn": |gamma| of the BatchNorm after each member (network slimming);
- "taylor": first-order Taylor, sum over the filter's elements of |w * dL/dw| with the gradient summed over a
  few batches of the task's loss (the module in eval mode, so BatchNorm statistics are not touched).
Torch-Pruning is not used directly: it prunes nn.Modules, while the Graph must change with the module (see
`edgenas.graph.channels`).

Widths are rounded to a multiple `round_to`. Its default, 8, is measured (benchmarks/bench_prune_widths.py,
Vela 5.2.0): on ethos-u55-256 and -128 a conv's cycles stay flat for output widths 8k+1..8k+8 and rise by
a step after each multiple of 8 (U55-256, conv3x3 32->C at 32x32: 24,708 cycles at C=16, 33,624 at 17,
34,132 at 24, 43,348 at 25); a width just below a multiple of 8 costs more than the multiple itself (C=7:
17,828 cycles, C=8: 11,796); as an input width, multiples of 8 are local minima on U55-256 and U65-256
(conv1x1 C->32 at 96x128 on U65-256: 436,693 cycles at C=8, 541,555 at 9, 449,832 at 16). A depthwise
middle's SRAM steps every 16 channels (dsconv 16->C->16 at 32x32: 32.6 KiB at C=8..16, 64.9 KiB at 17), so
16 is the choice where SRAM binds. On whole flow networks at 120x160 (U55-256), keeping 30% of every group
cost 0.412 of the unpruned cycles rounded to 8 against 0.559 unrounded (resnet/dsconv3x3, 67.6 vs 72.0
MMAC) and 0.358 against 0.399 (mbconv_e4); rounding to 16 kept more MACs and cost more cycles at 30% and
50%, fewer at 70% (where it also cut SRAM from 1426 to 828 KiB on resnet/dsconv3x3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from edgenas.errors import ConfigError
from edgenas.graph.channels import ChannelGroup, channel_groups, pruned_graph, rounded_width
from edgenas.graph.ir import WEIGHTED_OPS, Graph
from edgenas.train.builder import GraphModule
from edgenas.train.recipe import TrainRecipe
from edgenas.train.run import check_run_dir
from edgenas.train.tasks.base import Task, TaskData
from edgenas.train.trainer import BEST, Progress, Trainer, TrainResult, batches, evaluate, load_checkpoint

__all__ = [
    "DEFAULT_ROUND_TO",
    "METHODS",
    "PruneResult",
    "channel_scores",
    "keep_indices",
    "plan_widths",
    "prune_and_finetune",
    "prune_module",
]

DEFAULT_ROUND_TO = 8  # measured: see the module docstring
METHODS = ("l1", "bn", "taylor")


# ---- scores -----------------------------------------------------------------------------------------------

def _members(group: ChannelGroup) -> tuple[str, ...]:
    return (*group.producers, *group.channelwise)


def _filters(layer: nn.Module, w: Tensor) -> Tensor:
    """(channels, elements of one filter) of a member's weight: out channels first."""
    if isinstance(layer.conv, nn.ConvTranspose2d):  # weight (in, out, k, k)
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1)


def _bn_scores(module: GraphModule, group: ChannelGroup) -> Tensor:
    total = torch.zeros(group.channels)
    for name in _members(group):
        bn = module.layer(name).bn
        if bn is None:
            raise ConfigError(f"BatchNorm scores need BatchNorm, and {name} has none; use l1 or taylor",
                              field="method")
        total += bn.weight.detach().abs().cpu()
    return total


def _taylor_grads(module: GraphModule, groups: Sequence[ChannelGroup], task: Task,
                  data: Iterable[Any]) -> dict[str, Tensor]:
    """dL/dw of every member's weight, summed over the batches (eval mode: no BatchNorm update)."""
    names = sorted({n for g in groups for n in _members(g)})
    weights = [module.layer(n).conv.weight for n in names]
    sums = [torch.zeros_like(w) for w in weights]
    device = weights[0].device
    was_training = module.training
    module.eval()
    try:
        seen = 0
        for inputs, target in data:
            inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            loss = task.loss(module(*(x.to(device) for x in inputs)), target.to(device))
            for s, g in zip(sums, torch.autograd.grad(loss, weights)):
                s += g
            seen += 1
    finally:
        module.train(was_training)
    if not seen:
        raise ConfigError("Taylor scores need at least one batch of data", field="method")
    return dict(zip(names, sums))


def channel_scores(module: GraphModule, method: str = "l1", *, groups: Sequence[ChannelGroup] | None = None,
                   task: Task | None = None, data: Iterable[Any] | None = None) -> dict[str, np.ndarray]:
    """{group name: importance of each channel} for the prunable groups (or `groups`). Taylor needs the
    task and an iterable of (inputs, target) batches."""
    if method not in METHODS:
        raise ConfigError(f"unknown importance {method!r}; allowed: {', '.join(METHODS)}", field="method")
    groups = [g for g in channel_groups(module.graph) if g.prunable] if groups is None else list(groups)
    if not groups:
        return {}
    grads: dict[str, Tensor] = {}
    if method == "taylor":
        if task is None or data is None:
            raise ConfigError("Taylor scores need the task and a few batches of its data", field="method")
        grads = _taylor_grads(module, groups, task, data)
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for g in groups:
            if method == "bn":
                out[g.name] = _bn_scores(module, g).numpy().astype(np.float64)
                continue
            total = torch.zeros(g.channels, dtype=torch.float64)
            for name in _members(g):
                layer = module.layer(name)
                w = layer.conv.weight
                term = w if method == "l1" else w * grads[name]
                total += _filters(layer, term).abs().sum(dim=1).double().cpu()
            out[g.name] = total.numpy()
    return out


# ---- which channels, how many -----------------------------------------------------------------------------

def plan_widths(graph: Graph, keep_ratio: float, round_to: int = DEFAULT_ROUND_TO, *,
                only: Iterable[str] | None = None) -> dict[str, int]:
    """Width of every prunable group (or of the groups named in `only`) after keeping `keep_ratio` of its
    channels, rounded to a multiple of `round_to`."""
    names = None if only is None else set(only)
    return {g.name: rounded_width(g.channels, keep_ratio, round_to)
            for g in channel_groups(graph) if g.prunable and (names is None or g.name in names)}


def keep_indices(scores: Mapping[str, np.ndarray], widths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """The `widths[g]` highest-scoring channels of each group, in channel order (ties: the lower index)."""
    keep = {}
    for name, width in widths.items():
        order = np.argsort(-np.asarray(scores[name]), kind="stable")[:width]
        keep[name] = tuple(int(i) for i in np.sort(order))
    return keep


# ---- the pruned module ------------------------------------------------------------------------------------

def _take(t: Tensor, dim: int, idx: Tensor | None) -> Tensor:
    return t if idx is None else t.index_select(dim, idx.to(t.device))


def _copy_layer(old: nn.Module, new: nn.Module, out_idx: Tensor | None, in_idx: Tensor | None) -> None:
    if hasattr(old, "fc"):  # fully_connected on a 1x1 feature map: its inputs are the channels
        new.fc.weight.copy_(_take(old.fc.weight, 1, in_idx))
        new.fc.bias.copy_(old.fc.bias)
        return
    w = old.conv.weight
    if isinstance(old.conv, nn.ConvTranspose2d):  # (in, out, k, k)
        w = _take(_take(w, 0, in_idx), 1, out_idx)
    elif old.conv.groups > 1:  # depthwise (C, 1, k, k): one channel axis
        w = _take(w, 0, out_idx)
    else:
        w = _take(_take(w, 0, out_idx), 1, in_idx)
    new.conv.weight.copy_(w)
    if old.conv.bias is not None:
        new.conv.bias.copy_(_take(old.conv.bias, 0, out_idx))
    if old.bn is not None:
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(new.bn, key).copy_(_take(getattr(old.bn, key), 0, out_idx))
        new.bn.num_batches_tracked.copy_(old.bn.num_batches_tracked)


def prune_module(module: GraphModule, keep: Mapping[str, Sequence[int]]) -> GraphModule:
    """A GraphModule of the pruned Graph (group g keeps channels `keep[g]`, in that order) with the kept
    weights copied from `module`; same device, dtype and train/eval mode."""
    graph = pruned_graph(module.graph, {name: len(idx) for name, idx in keep.items()})  # checks the groups
    groups = {g.name: g for g in channel_groups(module.graph)}
    for name, idx in keep.items():
        if len(set(idx)) != len(idx) or not all(0 <= i < groups[name].channels for i in idx):
            raise ConfigError(f"group {name!r}: channel indices must be distinct and in 0..{groups[name].channels - 1}",
                              field="keep")
    by_tensor: dict[str, Tensor] = {}
    for name, idx in keep.items():
        if len(idx) < groups[name].channels or list(idx) != sorted(idx):
            by_tensor.update(dict.fromkeys(groups[name].tensors, torch.tensor(list(idx), dtype=torch.long)))
    has_bn = any(getattr(m, "bn", None) is not None for m in module.layers.values())
    ref = next(module.parameters())
    new = GraphModule(graph, batchnorm=has_bn).to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for op in module.graph.ops:
            if op.kind not in WEIGHTED_OPS:
                continue
            out_idx = by_tensor.get(op.outputs[0])
            in_idx = by_tensor.get(op.inputs[0])
            _copy_layer(module.layer(op.name), new.layer(op.name), out_idx, in_idx)
    return new.train(module.training)


# ---- prune, then fine-tune --------------------------------------------------------------------------------

@dataclass
class PruneResult:
    graph: Graph  # the pruned network (measure it like any other)
    module: GraphModule  # fine-tuned, with the weights of the best validation epoch
    widths: dict[str, int]  # group -> width
    keep: dict[str, tuple[int, ...]]  # group -> kept channel indices of the original
    method: str
    metric_before: float  # the task's primary metric right after pruning (no fine-tuning)
    metric: float  # after fine-tuning (best validation epoch)
    train: TrainResult | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)


def prune_and_finetune(module: GraphModule, task: Task, data: TaskData, recipe: TrainRecipe, out_dir: Path, *,
                       method: str = "l1", keep_ratio: float = 0.5, round_to: int = DEFAULT_ROUND_TO,
                       widths: Mapping[str, int] | None = None, taylor_batches: int = 4,
                       identity: Mapping[str, Any] | None = None, resume: bool = False,
                       on_progress: Callable[[Progress], None] | None = None) -> PruneResult:
    """Score the channels of a trained module, keep the best `keep_ratio` of every prunable group (or the
    given `widths`), rounded to `round_to`, and fine-tune the pruned module with the trainer for
    `recipe.epochs` on the task's data; checkpoints go to `out_dir`, which must not hold a training run yet
    (ConfigError) unless `resume`: then the fine-tune continues from its last checkpoint there (scoring and
    pruning are deterministic, so they are simply redone). Returns the pruned Graph and module (weights of
    the best validation epoch) and the metric before and after fine-tuning.
    """
    plan = dict(widths) if widths is not None else plan_widths(module.graph, keep_ratio, round_to)
    pruned_graph(module.graph, plan)  # refuses an unknown or blocked group, a width out of range: before any work
    check_run_dir(Path(out_dir), resume=resume)  # a finished or running fine-tune there is not overwritten
    data_iter = None
    if method == "taylor":
        order = torch.arange(len(data.train))
        data_iter = (b for i, (_, b) in zip(range(taylor_batches), batches(data.train, order, recipe.batch_size)))
    scores = channel_scores(module, method, groups=[g for g in channel_groups(module.graph) if g.name in plan],
                            task=task, data=data_iter)
    keep = keep_indices(scores, plan)
    pruned = prune_module(module, keep)
    before = evaluate(pruned, task, data.val, batch_size=recipe.batch_size)[task.primary]
    torch.manual_seed(recipe.seed)
    ident = {**dict(identity or {}), "pruned": plan, "graph": pruned.graph.fingerprint()[:16]}
    trainer = Trainer(pruned, task, data, recipe, Path(out_dir), identity=ident, on_progress=on_progress)
    if resume:
        trainer.resume()
    result = trainer.run()
    best = Path(out_dir) / BEST
    if best.exists():
        pruned.load_state_dict(load_checkpoint(best)["model"])
    metric = evaluate(pruned, task, data.val, batch_size=recipe.batch_size)[task.primary]
    return PruneResult(pruned.graph, pruned, plan, keep, method, before, metric, result, scores)
