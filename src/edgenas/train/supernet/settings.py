"""The `supernet:` section of a config: how the supernet is trained and its sub-networks scored.

    supernet:
      strategy: sandwich      # spos: one uniformly sampled sub-network per step; sandwich: the largest, the
                              # smallest and `random` others per step, in-place distillation from the largest;
                              # sandwich-labels: the same sub-networks, every one trained on the labels
      random: 2               # sandwich: random sub-networks per step besides the largest and the smallest
      resolutions: [32x32, 24x24]  # input resolution as a choice, sampled per step (default: train's only)
      bn_samples: 256         # training samples whose batch statistics recalibrate BatchNorm per sub-network
      bn_batch_size: 64
      split: backbone         # few-shot: one sub-supernet per option of this choice point (default: none)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgenas.sections import validate_section
from edgenas.space.config import parse_resolution

Strategy = Literal["spos", "sandwich", "sandwich-labels"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


class SupernetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = "sandwich"
    random: int = Field(2, ge=0, le=64)
    resolutions: list[str] | None = None
    bn_samples: int = Field(256, ge=1)
    bn_batch_size: int = Field(64, ge=1)
    seed: int = 0  # sub-network sampling and the BatchNorm sample set (the weights take train.seed)
    split: str | None = None  # a choice point: one sub-supernet per option, sharing no weights (fewshot.py)

    @field_validator("resolutions")
    @classmethod
    def _res(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("must list at least one HxW resolution")
        return [f"{h}x{w}" for h, w in (parse_resolution(r) for r in v)]

    def with_overrides(self, **values: Any) -> SupernetSettings:
        data = self.model_dump()
        data.update({k: v for k, v in values.items() if v is not None})
        return SupernetSettings.model_validate(data)


def parse_supernet_section(data: Mapping[str, Any] | None, source: str) -> SupernetSettings:
    return validate_section(SupernetSettings, dict(data) if data else {}, source=source, section="supernet")
