"""Training strategies: the step functions the stand-alone Trainer calls (`Trainer(step_fn=...)`), each
running the step's sub-networks forward and backward (gradients accumulate in the store).

- `spos` (single-path one-shot, Guo et al.): one sub-network drawn uniformly per step, trained on the labels.
- `sandwich` (BigNAS / AttentiveNAS): the largest, the smallest and `random` uniformly drawn sub-networks per
  step. The largest learns from the labels; the others from its detached outputs (in-place distillation):
  for flow, the task's multi-scale loss against the teacher's full-resolution flow (all pixels valid); for
  classification, KL divergence to the teacher's softmax. The teacher gets no gradient from the students.
- `sandwich-labels`: the sandwich rule's sub-networks, every one trained on the labels (no distillation).
  Written for tasks whose training sits on a plateau first (flow: predicting no motion): there the
  teacher's outputs are that plateau, and distilling three students a step into them pulls the shared
  weights back onto it.

Input resolution as a choice: each sub-network of a step gets a resolution drawn from the step's generator
(the largest: the largest resolution, the smallest: the smallest); the batch, prepared at the training
resolution, is resized (inputs bilinear with antialiasing; a flow target averaged over valid pixels and
its vectors rescaled, as the task's own multi-scale targets are; class labels unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from edgenas.errors import ConfigError
from edgenas.space.genotype import Genotype
from edgenas.train.supernet.sampling import Extremes, step_rng
from edgenas.train.supernet.supernet import Supernet
from edgenas.train.tasks.base import Task

StepFn = Callable[[tuple[Tensor, ...], Tensor, int], Tensor]
DISTILL_KINDS = ("flow", "classification")


def resize_batch(task: Task, inputs: tuple[Tensor, ...], target: Tensor,
                 res: tuple[int, int]) -> tuple[tuple[Tensor, ...], Tensor]:
    """The batch at another (smaller) resolution."""
    if tuple(inputs[0].shape[-2:]) == tuple(res):
        return inputs, target
    xs = tuple(F.interpolate(x, size=res, mode="bilinear", align_corners=False, antialias=True) for x in inputs)
    if task.kind == "flow":
        from edgenas.train.tasks.flow import downsample_target

        return xs, downsample_target(target, res)
    if task.kind == "classification":
        return xs, target
    raise ConfigError(f"a task of kind {task.kind!r} cannot be trained at several resolutions; allowed kinds: "
                      "flow, classification", field="supernet.resolutions")


def distill_loss(task: Task, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """The loss of a student's outputs against the (detached) teacher's."""
    if task.kind == "flow":
        flow = teacher[-1].detach()
        pseudo = torch.cat([flow, torch.ones_like(flow[:, :1])], dim=1)  # (u, v, valid everywhere)
        return task.loss(tuple(student), pseudo)
    if task.kind == "classification":
        return F.kl_div(F.log_softmax(student[-1], dim=1), F.softmax(teacher[-1].detach(), dim=1),
                        reduction="batchmean")
    raise ConfigError(f"in-place distillation knows tasks of kind {', '.join(DISTILL_KINDS)}, not {task.kind!r}; "
                      "use strategy: spos", field="supernet.strategy")


def _pick_res(rng, resolutions: list[tuple[int, int]]) -> tuple[int, int]:
    return resolutions[0] if len(resolutions) == 1 else rng.choice(resolutions)


def spos_step(net: Supernet, task: Task, resolutions: list[tuple[int, int]], seed: int,
              on_begin: Callable[[], None]) -> StepFn:
    def step(inputs: tuple[Tensor, ...], target: Tensor, global_step: int) -> Tensor:
        rng = step_rng(seed, global_step)
        g = net.space.sample(rng)
        xs, t = resize_batch(task, inputs, target, _pick_res(rng, resolutions))
        on_begin()
        loss = task.loss(net.run(g, *xs), t)
        loss.backward()
        return loss.detach()

    return step


def sandwich_plan(net: Supernet, extremes: Extremes, n_random: int, resolutions: list[tuple[int, int]],
                  seed: int, global_step: int) -> list[tuple[Genotype, tuple[int, int]]]:
    """The step's sub-networks with their resolutions, the teacher (largest) first."""
    rng = step_rng(seed, global_step)
    by_area = sorted(resolutions, key=lambda r: (r[0] * r[1], r))
    plan = [(extremes.largest, by_area[-1]), (extremes.smallest, by_area[0])]
    plan += [(net.space.sample(rng), _pick_res(rng, resolutions)) for _ in range(n_random)]
    return plan


def sandwich_step(net: Supernet, task: Task, extremes: Extremes, n_random: int,
                  resolutions: list[tuple[int, int]], seed: int, on_begin: Callable[[], None], *,
                  distill: bool = True) -> StepFn:
    """The sandwich rule's step; `distill` False: the students learn from the labels as the teacher does."""
    if distill and task.kind not in DISTILL_KINDS:
        distill_loss(task, (), ())  # raises the ConfigError naming the field

    def step(inputs: tuple[Tensor, ...], target: Tensor, global_step: int) -> Tensor:
        plan = sandwich_plan(net, extremes, n_random, resolutions, seed, global_step)
        on_begin()
        (g0, r0), students = plan[0], plan[1:]
        xs, t = resize_batch(task, inputs, target, r0)
        teacher_out = net.run(g0, *xs)
        loss = task.loss(teacher_out, t)
        loss.backward()
        teacher = tuple(o.detach() for o in teacher_out)
        for g, r in students:
            xs_s, t_s = resize_batch(task, inputs, target, r)
            out = net.run(g, *xs_s)
            (distill_loss(task, out, teacher) if distill else task.loss(out, t_s)).backward()
        return loss.detach()

    return step
