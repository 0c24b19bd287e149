"""Stand-alone training of one candidate: one small loop (timm / torchvision-references style) with an
explicit seed, optimiser, schedule and checkpoint, and a resume that ends bit for bit where an
uninterrupted run ends.

What makes resume exact: the data order of epoch e is a permutation drawn from a generator seeded with
(seed, e), so it needs no saved state; the learning rate is a pure function of the step; the checkpoint
holds the model, the optimiser, torch's RNG state, the position inside the epoch and the running sums of
the epoch's loss. A checkpoint is written every `checkpoint_every` steps, at the end of every epoch and when
the run is interrupted (Ctrl-C, SIGTERM), always atomically (temp file + rename), and read with
`torch.load(weights_only=True)`.

Under torchrun the same loop runs in every process (`edgenas.train.distributed`: batch_size is the global
batch, each rank takes its share of it, gradients averaged across ranks, rank 0 alone writes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from edgenas import atomic
from edgenas.errors import ConfigError
from edgenas.processes import interrupts_deferred
from edgenas.train import distributed
from edgenas.train.curve import fit_learning_curve
from edgenas.train.recipe import TrainRecipe
from edgenas.train.tasks.base import Task, TaskData, better

CHECKPOINT = "checkpoint.pt"  # the resumable state, rewritten as the run goes
BEST = "best.pt"  # the weights with the best validation metric so far
CHECKPOINT_FORMAT = 1


@dataclass
class Progress:
    """What a progress display needs after each step and each evaluation."""

    epoch: int
    epochs: int
    step: int  # steps done in this epoch
    steps: int  # steps per epoch
    loss: float  # running mean of this epoch's loss
    metric: float | None  # last validation value of the primary metric
    done: bool = False


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    best_metric: float | None
    best_epoch: int | None
    stopped_early: bool
    curve: dict[str, Any] | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    # this process's CPU time over the whole run, earlier sessions included (the cost on a shared machine);
    # None when the run resumed a checkpoint written before it was kept
    cpu_seconds: float | None = None


def device_for_training() -> torch.device:
    """CUDA when present (under torchrun: this rank's GPU), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    d = distributed.current()
    return torch.device("cuda", d.local_rank) if d.active else torch.device("cuda")


def lr_at(recipe: TrainRecipe, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine (or constant) down to zero at the last step."""
    total = max(1, recipe.epochs * steps_per_epoch)
    warm = recipe.warmup_epochs * steps_per_epoch
    if step < warm:
        return recipe.lr * (step + 1) / warm
    if recipe.scheduler == "constant":
        return recipe.lr
    t = (step - warm) / max(1, total - warm)
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The sample order of one epoch: depends on (seed, epoch) only, so a resumed run sees the same."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_indices(order: Tensor, batch_size: int, start: int = 0):
    """(index of the batch, its sample indices) from batch `start` on; the last batch may be smaller."""
    for b in range(start, math.ceil(len(order) / batch_size)):
        yield b, order[b * batch_size : (b + 1) * batch_size].tolist()


def batches(ds: Dataset, order: Tensor, batch_size: int, start: int = 0):
    """(index of the batch, collated batch) from batch `start` on; the last batch may be smaller."""
    for b, idx in batch_indices(order, batch_size, start):
        yield b, default_collate([ds[i] for i in idx])


def _to(batch: Any, device: torch.device) -> tuple[tuple[Tensor, ...], Tensor]:
    inputs, target = batch
    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return tuple(x.to(device) for x in inputs), target.to(device)


@torch.no_grad()
def evaluate(module: nn.Module, task: Task, ds: Dataset, *, batch_size: int = 32,
             device: torch.device | None = None, dist: distributed.Dist | None = None) -> dict[str, float]:
    """Every metric of the task over a dataset (eval mode), as sum / count over all samples. `dist`: each
    rank scores its share of the samples and the sums of all ranks are added (the same figures on all)."""
    device = device or next(module.parameters()).device
    dist = dist or distributed.SINGLE
    was_training = module.training
    module.eval()
    sums: dict[str, list[float]] = {}
    order = torch.arange(len(ds))
    if dist.active:
        order = order[dist.rank :: dist.world]
    try:
        for _, batch in batches(ds, order, batch_size):
            inputs, target = _to(batch, device)
            for name, (s, c) in task.metric_sums(module(*inputs), target).items():
                acc = sums.setdefault(name, [0.0, 0])
                acc[0] += float(s)
                acc[1] += int(c)
    finally:
        module.train(was_training)
    sums = dist.merge_sums(sums)
    return {k: (s / c if c else float("nan")) for k, (s, c) in sums.items()}


def save_atomic(obj: Any, path: Path) -> None:
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by edgenas (weights only: no code runs on load); ConfigError if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError("no such checkpoint file", source=str(path)) from None
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise ConfigError(f"not an edgenas checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                          source=str(path)) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise ConfigError("not an edgenas checkpoint (no model state of a known format)", source=str(path))
    return state


def checkpoint_genotype(state: Mapping[str, Any]) -> str:
    """The genotype a checkpoint's network was trained as ('default' when it does not say)."""
    return str(state.get("identity", {}).get("genotype", "default"))


def check_identity(state: Mapping[str, Any], identity: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint of another space or network, naming what differs."""
    for key in ("space_key", "arch_id"):
        have, want = state.get("identity", {}).get(key), identity.get(key)
        if have != want:
            what = "space" if key == "space_key" else "network (genotype)"
            raise ConfigError(f"checkpoint is of another {what}: {key} {have!r}, expected {want!r} "
                              f"({state.get('identity', {}).get('genotype', '?')} vs {identity.get('genotype')})",
                              source=str(path))


def load_weights(module: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        module.load_state_dict(state["model"], strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0][:160]
        raise ConfigError(f"checkpoint weights do not fit this network: {first}", source=str(path)) from None


class Trainer:
    """Trains `module` on `task` with `recipe`, checkpointing into `out_dir`."""

    def __init__(self, module: nn.Module, task: Task, data: TaskData, recipe: TrainRecipe, out_dir: Path, *,
                 identity: Mapping[str, Any], device: torch.device | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 stop_when: Callable[[list[dict[str, float]]], str | None] | None = None,
                 step_fn: Callable[[tuple[Tensor, ...], Tensor, int], Tensor] | None = None) -> None:
        self.module = module
        self.task = task
        self.data = data
        self.recipe = recipe
        self.out_dir = Path(out_dir)
        self.identity = dict(identity)
        self.device = device or device_for_training()
        self.on_progress = on_progress
        self.stop_when = stop_when  # after each epoch: a reason to stop (a search's early stopping), or None
        self.stop_reason: str | None = None
        # (inputs, target, global step) -> the step's loss, gradients accumulated by the function itself: a
        # supernet's step runs several sub-networks (the sandwich rule); None: the module's loss on the batch
        self.step_fn = step_fn
        self.dist = distributed.current()
        self._forward: nn.Module = module  # under torchrun without a step_fn: the module under DDP
        self.module.to(self.device)
        params = [p for p in module.parameters() if p.requires_grad]
        if recipe.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                                                              weight_decay=recipe.weight_decay)
        else:
            self.opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.steps_per_epoch = max(1, math.ceil(len(data.train) / recipe.batch_size))
        # position and running state (what a checkpoint holds)
        self.epoch = 0
        self.step_in_epoch = 0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.history: list[dict[str, float]] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_early = False
        self.seconds = 0.0
        self.cpu_seconds: float | None = 0.0
        self._t0 = self._c0 = 0.0  # the clocks' readings that `seconds` / `cpu_seconds` count from

    # ---- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "identity": self.identity,
            "recipe": self.recipe.model_dump(),
            "model": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "history": self.history,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }

    def save(self, wait: bool = True) -> None:
        """Rank 0 writes; the others wait for it (unless `wait` is False: on the way out of an interrupt)."""
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_atomic(self.state(), self.out_dir / CHECKPOINT)
        if wait:
            self.dist.barrier()

    def resume(self, path: Path | None = None) -> None:
        path = path or self.out_dir / CHECKPOINT
        state = load_checkpoint(path)
        check_identity(state, self.identity, path)
        if state.get("recipe") != self.recipe.model_dump():
            changed = sorted(k for k, v in self.recipe.model_dump().items() if state.get("recipe", {}).get(k) != v)
            raise ConfigError(f"the run was started with another recipe (changed: {', '.join(changed)}); resume "
                              "with the same settings or train into another --out", source=str(path))
        load_weights(self.module, state, path)
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        for key in ("epoch", "step_in_epoch", "loss_sum", "loss_count", "history", "best", "best_epoch", "wait",
                    "stopped_early", "seconds"):
            setattr(self, key, state[key])
        self.stop_reason = state.get("stop_reason")
        self.cpu_seconds = state.get("cpu_seconds")  # absent from older checkpoints: unknown

    # ---- the loop --------------------------------------------------------------------------------
    def _report(self, done: bool = False) -> None:
        if self.on_progress is not None and self.dist.is_main:
            last = self.history[-1].get(self.task.primary) if self.history else None
            if self.loss_count:
                loss = self.loss_sum / self.loss_count
            else:  # between epochs: the last epoch's mean
                loss = self.history[-1]["train_loss"] if self.history else float("nan")
            self.on_progress(Progress(self.epoch, self.recipe.epochs, self.step_in_epoch, self.steps_per_epoch,
                                      loss, last, done))

    def run(self) -> TrainResult:
        r = self.recipe
        self._t0 = time.perf_counter() - self.seconds
        self._c0 = time.process_time() - (self.cpu_seconds or 0.0)
        if self.dist.active:  # every rank starts from rank 0's weights (DDP copies them itself)
            if self.step_fn is None:
                self._forward = self.dist.wrap(self.module, self.device)
            else:
                self.dist.broadcast_state([*self.module.parameters(), *self.module.buffers()])
        try:
            while self.epoch < r.epochs and not self.stopped_early:
                self._train_epoch()
                with interrupts_deferred():  # the epoch's end (evaluation, best.pt, checkpoint) is one unit too
                    self._end_epoch()
        except KeyboardInterrupt:  # Ctrl-C and SIGTERM (edgenas.processes): keep what is done, resumable
            self._clock()
            self.save(wait=False)
            raise
        self._report(done=True)
        return self.result()

    def _clock(self) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self.cpu_seconds is not None:
            self.cpu_seconds = time.process_time() - self._c0

    def _train_epoch(self) -> None:
        r = self.recipe
        self.module.train()
        order = epoch_order(len(self.data.train), r.seed, self.epoch)
        for b, idx in batch_indices(order, r.batch_size, start=self.step_in_epoch):
            mine, weight = self.dist.share(idx)  # one process: the whole batch, weight 1
            batch = default_collate([self.data.train[i] for i in mine])
            # One step is all or nothing: an interrupt (Ctrl-C, SIGTERM) that arrives inside waits for its end,
            # so the checkpoint written on the way out never holds the weights of a step it does not count.
            with interrupts_deferred():
                self._step(b, batch, weight)
                self._report()
                if self.step_in_epoch % r.checkpoint_every == 0 and self.step_in_epoch < self.steps_per_epoch:
                    self._clock()
                    self.save()

    def _step(self, b: int, batch: Any, weight: float = 1.0) -> None:
        r = self.recipe
        step = self.epoch * self.steps_per_epoch + b
        for group in self.opt.param_groups:
            group["lr"] = lr_at(r, step, self.steps_per_epoch)
        inputs, target = _to(batch, self.device)
        self.opt.zero_grad(set_to_none=True)
        if self.step_fn is None:
            loss = self.task.loss(self._forward(*inputs), target)
            (loss * weight if self.dist.active else loss).backward()  # DDP averages over ranks
        else:
            loss = self.step_fn(inputs, target, step)
            self.dist.average_gradients(self.module, weight)
        if r.grad_clip:
            nn.utils.clip_grad_norm_(self.module.parameters(), r.grad_clip)
        self.opt.step()
        n = len(target)
        if self.dist.active:  # the batch's loss, the same on every rank
            n = n if weight else 0
            total, count = self.dist.sum_floats([float(loss.detach()) * n, n])
            self.loss_sum += total
            self.loss_count += int(count)
        else:
            self.loss_sum += float(loss.detach()) * n
            self.loss_count += n
        self.step_in_epoch = b + 1

    def _end_epoch(self) -> None:
        r = self.recipe
        row: dict[str, float] = {"epoch": self.epoch + 1,
                                 "train_loss": self.loss_sum / self.loss_count if self.loss_count else float("nan")}
        last = self.epoch + 1 == r.epochs
        if (self.epoch + 1) % r.eval_every == 0 or last:
            self.dist.broadcast_state(self.module.buffers())  # rank 0's BatchNorm statistics on every rank
            metrics = evaluate(self.module, self.task, self.data.val, batch_size=r.batch_size, device=self.device,
                               dist=self.dist)
            row.update({f"val_{k}" if k != self.task.primary else k: v for k, v in metrics.items()})
            value = metrics[self.task.primary]
            if self.best is None or better(self.task, value, self.best):
                self.best, self.best_epoch, self.wait = value, self.epoch + 1, 0
                if self.dist.is_main:
                    self.out_dir.mkdir(parents=True, exist_ok=True)
                    save_atomic({"format": CHECKPOINT_FORMAT, "identity": self.identity,
                                 "model": self.module.state_dict(), "epoch": self.epoch + 1, "metric": value},
                                self.out_dir / BEST)
            else:
                self.wait += r.eval_every
                if r.patience is not None and self.wait >= r.patience:
                    self.stopped_early = True
        self.history.append(row)
        if self.stop_when is not None and not self.stopped_early:
            self.stop_reason = self.stop_when(self.history)
            self.stopped_early = self.stop_reason is not None
        self.epoch += 1
        self.step_in_epoch = 0
        self.loss_sum, self.loss_count = 0.0, 0
        self._clock()
        self.save()
        self._report()

    def result(self) -> TrainResult:
        points = [(h["epoch"], h[self.task.primary]) for h in self.history if self.task.primary in h]
        fit = fit_learning_curve([p[0] for p in points], [p[1] for p in points], rising=self.task.higher_is_better,
                                 best_possible=self.task.best_possible)
        return TrainResult(self.history, self.best, self.best_epoch, self.stopped_early,
                           fit.to_dict() if fit else None, self.seconds,
                           {"stop_reason": self.stop_reason} if self.stop_reason else {}, self.cpu_seconds)
