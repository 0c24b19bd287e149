"""The `train:` section of a config: how one candidate is trained stand-alone.

Defaults are sized for a 2-core CPU (a few minutes per small network); a GPU machine simply runs faster.
Everything here is recorded with the run, so a figure can be traced back and re-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgenas.sections import validate_section


class TrainRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    seed: int = 0
    resolution: str | None = None  # HxW; default: the space's first resolution
    patience: int | None = Field(None, ge=1)  # early stopping: epochs without a better validation metric
    eval_every: int = Field(1, ge=1)  # validation every N epochs (and at the last)
    checkpoint_every: int = Field(200, ge=1)  # steps between checkpoints inside an epoch (SIGKILL loses less)
    threads: int | None = Field(None, ge=1)  # torch CPU threads; default: torch's own choice
    grad_clip: float | None = Field(None, gt=0)

    def with_overrides(self, **values: Any) -> TrainRecipe:
        """A copy with the given fields replaced (None values are ignored), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in values.items() if v is not None})
        return TrainRecipe.model_validate(data)


def parse_train_section(data: Mapping[str, Any] | None, source: str) -> TrainRecipe:
    return validate_section(TrainRecipe, dict(data) if data else {}, source=source, section="train")
