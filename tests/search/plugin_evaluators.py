"""Test evaluators, planted through edgenas's plug-in door (`type: plugin_evaluators:fake` in a config, with
this folder on PYTHONPATH): deterministic metrics from the arch id, a log of every call,
optional delay and a file-controlled block (to kill a worker mid-trial)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgenas.search.evaluators import Cost, EvalContext, EvaluationFailed, Evaluator, MetricValue, _options
from edgenas.space.genotype import Genotype

# The `type:` of these evaluators in a config; the folder must be importable (tests add it to PYTHONPATH).
FAKE = "plugin_evaluators:fake"
HERE = os.path.dirname(os.path.abspath(__file__))


def pythonpath_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: os.environ) with this folder on PYTHONPATH, for edgenas subprocesses."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
    return env


class _FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[str] = Field(default_factory=lambda: ["score"])
    cost: Cost = "expensive"
    count_file: str | None = None  # one line per call: "<pid> <arch_id>"
    delay_s: float = 0.0
    # Blocking: once `arm_file` exists, the first call to create `hold_file` (exclusively; it writes its pid
    # there) blocks until `release_file` exists; every other call blocks while the hold file exists and the
    # release file does not. At most `max_block_s` seconds, then it goes on.
    arm_file: str | None = None
    hold_file: str | None = None
    release_file: str | None = None
    max_block_s: float = 120.0
    fail_arch_ids: list[str] = Field(default_factory=list)


class FakeEvaluator(Evaluator):
    """A stand-in for an expensive task evaluator in tests: deterministic metrics from the arch id, a log of
    every call, optional delay and a file-controlled block (to kill a worker mid-trial)."""

    type_name = "fake"

    def __init__(self, opts: _FakeOptions) -> None:
        self.opts = opts
        self.cost = opts.cost

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.opts.metrics)

    def fingerprint(self) -> str:
        return "fake:" + hashlib.sha256(json.dumps(self.opts.model_dump(), sort_keys=True).encode()).hexdigest()[:12]

    def _wait_for(self, path: str) -> None:
        deadline = time.monotonic() + self.opts.max_block_s
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)

    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        o = self.opts
        if o.count_file:
            with open(o.count_file, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {genotype.arch_id}\n")
        if o.arm_file and o.hold_file and o.release_file and os.path.exists(o.arm_file):
            try:
                fd = os.open(o.hold_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not os.path.exists(o.release_file):
                    self._wait_for(o.release_file)
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(f"{os.getpid()} {genotype.arch_id}\n")
                self._wait_for(o.release_file)
        if o.delay_s:
            time.sleep(o.delay_s)
        if genotype.arch_id in o.fail_arch_ids:
            raise EvaluationFailed(f"test failure for {genotype.arch_id}")
        base = int(genotype.arch_id[:8], 16) / 2**32
        return {m: round(base * (i + 1), 6) for i, m in enumerate(o.metrics)}


def fake(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    return FakeEvaluator(_options(_FakeOptions, opts, fld, None))
