"""Many processes, one training run: torchrun's environment -> a process group, each rank's share of the
data, gradients averaged across ranks, rank 0 alone writing.

Nothing here acts unless the process was started by torchrun (`python -m torch.distributed.run`) with more
than one process: `current()` is then `SINGLE`, whose operations do nothing, and no process group is set
up. Under torchrun the process group comes from torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT): NCCL where CUDA is present (one GPU per process, by
LOCAL_RANK), gloo on the CPU.

The choices, and why:
- `batch_size` is the global batch. Step b of an epoch takes the samples one process takes
  (order[b*B:(b+1)*B] of the seeded epoch order) and rank r of W takes every W-th of them from the r-th
  (`share`): the union over ranks is the single-process batch, so the steps per epoch, the learning-rate
  schedule, the checkpoint positions and resume are those of one process. Each rank's loss is weighted by
  its part of the batch (n_r * W / n), so the gradient averaged over ranks is the gradient of the batch's
  mean loss even when the last batch does not split evenly; a rank left without a sample (a last batch
  smaller than W) runs one sample with weight 0, so that it still takes part in the all-reduce.
- Stand-alone networks: torch's DistributedDataParallel (bucketed all-reduce overlapping the backward pass).
- Supernets (a Trainer with a `step_fn`): one explicit all-reduce of the flattened gradients after the step
  function, not DDP. The step function runs sub-networks through `Supernet.run` (functional_call on views
  of the store), not through the wrapped module's forward, so DDP's reducer would never be prepared; a
  sandwich step runs several backward passes, each of which DDP would reduce; and find_unused_parameters
  walks the autograd graph every step to find the many store slots a sub-network leaves out. Every rank
  samples the same sub-networks (per-step generators seeded by (seed, step)), so the same tensors have
  gradients on every rank and the flattened buffers line up.
- BatchNorm running statistics are rank 0's (DDP's forward buffer sync is off), copied to every rank before
  each validation; checkpoints hold rank 0's state, which every rank loads on resume.
- Validation: every rank scores its share of the validation set and the metric sums are gathered and added
  in rank order, so every rank gets the same figures (early stopping decides alike) over the whole set.
- Rank 0 alone writes checkpoints, best.pt and the run records; the others wait at a barrier after each
  checkpoint. A checkpoint written on the way out of an interrupt waits for nobody: the ranks may be a
  step apart when the signal arrives, and rank 0's state is consistent on its own.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgenas.errors import ConfigError


def share(idx: Sequence[int], rank: int, world: int) -> tuple[list[int], float]:
    """Rank `rank`'s part of one global batch and the weight of its loss (n_r * W / n): every W-th sample
    from the rank-th. A rank left with nothing gets the batch's first sample with weight 0."""
    mine = list(idx[rank::world])
    if not mine:
        return list(idx[:1]), 0.0
    return mine, len(mine) * world / len(idx)


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; every operation is a no-op in a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where the collectives' tensors live (NCCL: this rank's GPU)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, idx: Sequence[int]) -> tuple[list[int], float]:
        return share(idx, self.rank, self.world) if self.active else (list(idx), 1.0)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it fills a cache), the others after it, reading what it wrote."""
        if self.is_main:
            yield
            self.barrier()
        else:
            self.barrier()
            yield

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """The module under DistributedDataParallel (its forward averages gradients across ranks)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)  # synced before validation

    def average_gradients(self, module: nn.Module, weight: float = 1.0) -> None:
        """Each gradient <- the mean over ranks of weight * gradient (tensors without a gradient skipped:
        the same ones on every rank)."""
        if self.active:
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            _flat_collective(grads, "sum", scale=weight / self.world)

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """The sum over ranks of each value."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        _flat_collective([t], "sum")
        return t.tolist()

    def broadcast_state(self, tensors: Iterable[Tensor]) -> None:
        """Rank 0's values of `tensors` (parameters, buffers) on every rank."""
        if self.active:
            _flat_collective([t.data for t in tensors], "broadcast")

    def merge_sums(self, sums: dict[str, list[float]]) -> dict[str, list[float]]:
        """{metric: [sum, count]} of every rank added up, in rank order (the same result on every rank)."""
        if not self.active:
            return sums
        import torch.distributed as td

        parts: list[dict[str, list[float]] | None] = [None] * self.world
        td.all_gather_object(parts, sums)
        total: dict[str, list[float]] = {}
        for part in parts:
            for name, (s, c) in (part or {}).items():
                acc = total.setdefault(name, [0.0, 0])
                acc[0] += s
                acc[1] += c
        return total


SINGLE = Dist()
_current: Dist | None = None


def under_torchrun() -> bool:
    """Started by torchrun (or any launcher that sets its variables) with more than one process."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0 of a torchrun run, or a process not under torchrun: the one that talks to the user. Read from
    the environment, so it costs nothing and sets nothing up."""
    return int(os.environ.get("RANK", "0")) == 0


def current() -> Dist:
    """This process's Dist: the process group is set up on the first call under torchrun."""
    global _current
    if _current is None:
        _current = _setup() if under_torchrun() else SINGLE
    return _current


def _setup() -> Dist:
    import torch.distributed as td

    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu"
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if local >= gpus:  # NCCL cannot put two ranks on one GPU
            raise ConfigError(f"process {local} of this machine has no GPU of its own ({gpus} GPU(s) here): start at "
                              "most one process per GPU (--nproc_per_node), or hide the GPUs (CUDA_VISIBLE_DEVICES=) "
                              "to train on the CPU with gloo", field="torchrun")
        torch.cuda.set_device(local)  # before NCCL starts: one GPU per process
        device = f"cuda:{local}"
    if not td.is_initialized():
        td.init_process_group("nccl" if device != "cpu" else "gloo")
        atexit.register(_teardown)
    return Dist(td.get_rank(), td.get_world_size(), local, device)


def _teardown() -> None:
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()


def _flat_collective(tensors: list[Tensor], op: str, scale: float = 1.0) -> None:
    """All-reduce (sum, then times `scale`) or broadcast from rank 0, in place: one flat tensor per dtype
    and device (one collective rather than one per tensor)."""
    import torch.distributed as td

    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for (dtype, _), ts in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        flat = torch.cat([t.reshape(-1) for t in ts])
        if op == "sum":
            if scale != 1.0 and dtype.is_floating_point:
                flat.mul_(scale)  # before the sum: sum_r (w_r / W) g_r
            td.all_reduce(flat)
        else:
            td.broadcast(flat, src=0)
        offset = 0
        with torch.no_grad():
            for t in ts:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()
