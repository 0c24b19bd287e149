"""The MnasNet reward: a scalarised single-objective mode over (accuracy, latency).

    reward = ACC * (LAT / TARGET) ** w_eff

`method` picks w_eff and how a latency above TARGET is treated (MnasNet, Tan et al. 2019, eq. 2):
- "soft" (default): w_eff = w on both sides of the target (w = -0.07: a model twice as slow must be
  about 5 % more accurate to score the same);
- "hard": w_eff = 0 at or below the target and -1 above it, MnasNet's hard-constraint setting;
- "penalty": the penalty method for a hard constraint (seed chapter 25.3.3, f + lambda * max(0, g)^2
  written for a maximised reward): reward = ACC * ((LAT/TARGET) ** w - penalty * max(0, LAT/TARGET - 1) ** 2),
  so every ms over the target costs quadratically, in units of the accuracy itself.

How it maps onto a study: the Optuna study is single-objective, direction "maximize", and each trial is
told the reward; any single-objective sampler (tpe, random, evolution, gp) searches it. The raw objective
values stay with the caller (the bench keeps them; `edgenas search` stores them as trial user attributes),
so the Pareto front of what was evaluated is still computed from the real objectives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgenas.errors import ConfigError

_METHODS = ("soft", "hard", "penalty")


@dataclass(frozen=True)
class MnasReward:
    target: float
    w: float = -0.07
    method: str = "soft"
    penalty: float = 1.0
    accuracy: int = 0  # index of ACC among the objective values
    latency: int = 1  # index of LAT

    def __post_init__(self) -> None:
        if not self.target > 0:
            raise ConfigError(f"mnas: target must be a positive latency, got {self.target!r}", field="target")
        if self.method not in _METHODS:
            raise ConfigError(f"mnas: unknown method {self.method!r}; allowed: {', '.join(_METHODS)}",
                              field="method")
        if self.penalty < 0:
            raise ConfigError(f"mnas: penalty must be >= 0, got {self.penalty!r}", field="penalty")

    def __call__(self, values: Sequence[float]) -> float:
        acc, lat = float(values[self.accuracy]), float(values[self.latency])
        if lat <= 0:
            raise ConfigError(f"mnas: latency must be positive, got {lat!r}", field="latency")
        ratio = lat / self.target
        if self.method == "soft":
            return acc * ratio ** self.w
        if self.method == "hard":
            return acc if ratio <= 1 else acc / ratio
        return acc * (ratio ** self.w - self.penalty * max(0.0, ratio - 1.0) ** 2)

    @classmethod
    def for_directions(cls, directions: Sequence[str], **options: object) -> MnasReward:
        """ACC = the first maximised objective, LAT = the first minimised one, unless given."""
        from edgenas.search.strategies._mo import signs

        s = list(signs(directions))
        if len(s) != 2 and ("accuracy" not in options or "latency" not in options):
            raise ConfigError(f"mnas needs two objectives (accuracy, latency), got {len(s)}; or give the "
                              "options accuracy=INDEX and latency=INDEX", field="directions")
        opts = dict(options)
        if "accuracy" not in opts:
            if -1.0 not in s:
                raise ConfigError("mnas needs a maximised (accuracy) objective", field="directions")
            opts["accuracy"] = s.index(-1.0)
        if "latency" not in opts:
            if 1.0 not in s:
                raise ConfigError("mnas needs a minimised (latency) objective", field="directions")
            opts["latency"] = s.index(1.0)
        if "target" not in opts:
            raise ConfigError("mnas needs the option target (the latency target, in the latency's unit), "
                              "e.g. mnas:target=5", field="target")
        try:
            return cls(target=float(opts.pop("target")), w=float(opts.pop("w", -0.07)),
                       method=str(opts.pop("method", "soft")), penalty=float(opts.pop("penalty", 1.0)),
                       accuracy=int(opts.pop("accuracy")), latency=int(opts.pop("latency")))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"mnas: bad option value: {e}") from None
