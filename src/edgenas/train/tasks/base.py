"""What a task gives the trainer: datasets at a resolution, a loss, and metrics as plain functions.

A task is declared in a config's `task:` section (`type:` picks the kind, the rest are its settings) and
made by `edgenas.train.tasks.make_task`. The model factory (the torch builder) and the task are separate
objects joined by the trainer, timm / torchvision-references style.

Conventions every task keeps:
- A sample is `(inputs, target)`: `inputs` a float32 tensor [C, H, W] (C = the space's `input_channels`),
  `target` a tensor whose meaning the task's `loss` and `metric_sums` know.
- The model's outputs are the Graph's outputs in graph order (NCHW, or [N, classes] for a classifier).
- Metrics are sums over a batch with a count, so any number of batches averages exactly:
  `metric_sums(outputs, target) -> {name: (sum, count)}`; the run's figure is sum / count.
- `primary` names the metric that early stopping, search and reports use; `higher_is_better` its sense.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

DataProgress = Callable[[int, int], None]  # (done, total) while data are generated or read


@dataclass(frozen=True)
class TaskData:
    """Train and validation data at one resolution, and what they are (recorded next to every run)."""

    train: Dataset
    val: Dataset
    description: Mapping[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One learning problem. Subclasses set the class attributes and implement the four methods."""

    name: str = ""
    kind: str = ""  # "flow" | "classification" | a plug-in's own word
    primary: str = ""  # e.g. "epe" or "top1"
    higher_is_better: bool = False
    best_possible: float | None = None  # the primary metric's bound (0 px EPE, 100 % top-1): curve fits stay inside

    @abstractmethod
    def data(self, resolution: tuple[int, int], *, seed: int, progress: DataProgress | None = None) -> TaskData:
        """Training and validation sets at `resolution` (H, W). The same seed gives the same data.
        `progress(done, total)` is called while data are generated or read (long the first time)."""

    @abstractmethod
    def eval_data(self, resolution: tuple[int, int], *, source: str | None = None,
                  progress: DataProgress | None = None) -> Dataset:
        """A dataset to measure a trained network on (`edgenas evaluate --data`): `source` names one the
        task knows (a file list, a folder), None the task's own validation set, at `resolution`."""

    @abstractmethod
    def loss(self, outputs: tuple[Tensor, ...], target: Tensor) -> Tensor:
        """Scalar training loss of a batch."""

    @abstractmethod
    def metric_sums(self, outputs: tuple[Tensor, ...], target: Tensor) -> dict[str, tuple[float, int]]:
        """{metric: (sum over the batch, count)}; must include `primary`."""

    def describe(self) -> dict[str, Any]:
        """The task's settings, written next to a run so it can be traced and re-run."""
        return {"name": self.name, "kind": self.kind, "primary": self.primary}

    @property
    def data_fixed_by_description(self) -> bool:
        """True when `describe()` fixes the data bit for bit (generated or shipped in a package), so a finished
        training can be reused by description (train/store.py). False for data read from a user's files or
        code, which can change under the same description."""
        return False


def better(task: Task, a: float, b: float) -> bool:
    """Is metric value `a` better than `b` for this task?"""
    return a > b if task.higher_is_better else a < b
