"""Accuracy evaluators for `edgenas search`: `proxy` (a training-free score on one batch, seconds) and
`train` (stand-alone training at a budget, minutes), both on the config's `task:`.

`train` stops a candidate early in two ways. Multi-objective (Optuna's pruners work only on single-objective
studies, its issue 3450): the hardware objectives are known before training starts (the compiler runs
first), so after each evaluation the learning curve is extrapolated (`train.curve`) and training stops when
even its optimistic end (the fitted asymptote, moved 2 RMSE towards better, and never worse than the best
value seen) could not put the candidate on the current Pareto front at its known FPS and SRAM. Single
objective: Optuna's pruner of the study (its default, the median pruner) decides from the reported values.
Successive halving (`halving: {eta: 3, first: 1}`), over the study's proposals as they come (asynchronous,
as in ASHA, so it works with any number of workers): at each rung (first, first * eta, ... epochs) a candidate
records its value in its trial and goes on only if it ranks among the best 1/eta of the candidates that
reached that rung, by non-domination front over the objectives (its accuracy there, its known hardware).
A stopped candidate reports the best value it reached, with `train_stopped` = 1.

`int8: true` (option of `train`): after training, the weights of the best epoch are post-training quantised
(`export.ptq`, BatchNorm folded, activation ranges calibrated on `calibration_samples` training samples,
default 200, as `edgenas export` does) and the int8 file is scored on the validation set in LiteRT with the
reference kernels (`export.int8_eval`); it is reported as `<metric>_int8` (e.g. `top1_int8`, `epe_int8`) next
to the float `<metric>`, so a search can take the int8 metric as its objective. A network the writer cannot
quantise fails as a candidate (its message kept), not the search.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgenas.errors import ConfigError
from edgenas.search.evaluators import (
    Cost,
    EvalContext,
    EvaluationFailed,
    Evaluator,
    Hints,
    MetricValue,
    _needs_network,
    _options,
    register_evaluator,
)
from edgenas.space.genotype import Genotype


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """a is at least as good as b everywhere and better somewhere."""
    better = False
    for x, y, d in zip(a, b, directions):
        if (x < y) if d == "max" else (x > y):
            return False
        if x != y:
            better = True
    return better


def cannot_reach_front(metric: str, optimistic: float, hints: Hints) -> bool:
    """Would the candidate, with `metric` at its optimistic value and every other objective at its known
    value, be dominated by a point of the current front? False when an objective is not known yet."""
    vector = candidate_vector(metric, optimistic, hints.known, hints)
    if vector is None:
        return False
    directions = [d for _, d in hints.objectives]
    return any(dominates(p, vector, directions) for p in hints.front())


def candidate_vector(metric: str, value: float, known: Mapping[str, Any], hints: Hints) -> list[float] | None:
    """The candidate's objective vector with `metric` at `value` and the others from `known`; None when an
    objective is not known."""
    vector = []
    for name, _ in hints.objectives:
        if name == hints.prefix + metric:
            vector.append(float(value))
        elif name in known and isinstance(known[name], (int, float)):
            vector.append(float(known[name]))
        else:
            return None
    return vector


def survives_rung(metric: str, value: float, hints: Hints, peers: list[dict[str, float]], eta: int) -> bool:
    """Successive halving at one rung: does the candidate rank within the best ceil(n / eta) of the n
    candidates that reached this rung (itself included)? Ranked by non-domination front over the objectives
    (its accuracy at the rung, its known hardware figures), so a slow design is not kept for its accuracy
    alone. With fewer than eta candidates there is nothing to halve: it goes on."""
    from edgenas.search.pareto import nondominated_sort

    mine = candidate_vector(metric, value, hints.known, hints)
    others = [candidate_vector(metric, p["value"], p, hints) for p in peers]
    others = [o for o in others if o is not None]
    if mine is None or len(others) + 1 < eta:
        return True
    ranks = nondominated_sort([mine, *others], [d for _, d in hints.objectives])
    keep = math.ceil((len(others) + 1) / eta)
    better = sum(1 for r in ranks[1:] if r < ranks[0])  # candidates on strictly better fronts
    return better < keep


def rungs(first: int, eta: int, epochs: int) -> list[int]:
    """The budgets (epochs) at which successive halving compares candidates: first * eta^k below epochs."""
    out, e = [], first
    while e < epochs:
        out.append(e)
        e *= eta
    return out


def stop_rule(primary: str, rising: bool, hints: Hints, *, stop_early: bool = True, min_epochs: int = 3,
              halving: tuple[int, list[int]] | None = None,
              best_possible: float | None = None) -> Callable[[list[dict[str, float]]], str | None]:
    """The trainer's `stop_when`: after each epoch, a reason to stop the candidate, or None. `halving`:
    (eta, rung epochs) for successive halving against the study's other candidates; `best_possible`: the
    metric's bound (the task's), which the extrapolation may not pass."""
    from edgenas.train.curve import fit_learning_curve

    def stop_when(history: list[dict[str, float]]) -> str | None:
        points = [(h["epoch"], h[primary]) for h in history if primary in h]
        if not points:
            return None
        epoch, value = int(points[-1][0]), float(points[-1][1])
        if hints.should_prune is not None and hints.should_prune(epoch, value):
            return "pruned by the study's pruner"
        if halving is not None and epoch in halving[1] and hints.rung_peers is not None:
            peers = hints.rung_peers(epoch)
            if hints.record_rung is not None:
                hints.record_rung(epoch, value)
            if not survives_rung(primary, value, hints, peers, halving[0]):
                return f"successive halving at epoch {epoch}: not in the best 1/{halving[0]} of its rung"
        if not stop_early or len(points) < min_epochs:
            return None
        fit = fit_learning_curve([p[0] for p in points], [p[1] for p in points], rising=rising,
                                 best_possible=best_possible)
        if fit is None:
            return None
        seen = max(p[1] for p in points) if rising else min(p[1] for p in points)
        optimistic = fit.a + 2 * fit.rmse if rising else fit.a - 2 * fit.rmse
        optimistic = max(optimistic, seen) if rising else min(optimistic, seen)
        if cannot_reach_front(primary, optimistic, hints):
            return f"cannot reach the front (optimistic {primary} {optimistic:.4g})"
        return None

    return stop_when


class _TaskEvaluator(Evaluator):
    """Shared: the task of the config, made on first use (data is generated or loaded once)."""

    def __init__(self, ctx: EvalContext, fld: str) -> None:
        _needs_network(ctx, "train", fld)
        from edgenas.train.recipe import parse_train_section
        from edgenas.train.tasks import make_task

        self.ctx = ctx
        cfg = ctx.space.config  # type: ignore[union-attr]
        self.task = make_task(cfg.task, source=ctx.space.source, input_channels=cfg.input_channels)
        self.recipe = parse_train_section(cfg.train, ctx.space.source)

    def _graph(self, genotype: Genotype) -> Any:
        try:
            return self.ctx.space.build(genotype, self.ctx.resolution)  # type: ignore[arg-type]
        except ConfigError as e:
            raise EvaluationFailed(f"cannot build the network: {e.message}") from None


class _ProxyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    proxy: str = "synflow"
    batch_size: int = Field(64, ge=2)
    seed: int = 0


class ProxyEvaluator(_TaskEvaluator):
    type_name = "proxy"
    cost: Cost = "cheap"

    def __init__(self, ctx: EvalContext, opts: _ProxyOptions, fld: str) -> None:
        from edgenas.train.proxies import BASELINES, PROXIES

        if opts.proxy not in PROXIES and opts.proxy not in BASELINES:
            raise ConfigError(f"unknown proxy {opts.proxy!r}; allowed: {', '.join((*PROXIES, *BASELINES))}",
                              field=f"{fld}.proxy")
        super().__init__(ctx, fld)
        self.opts = opts
        self._batch: tuple[Any, Any] | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.opts.proxy,)

    def fingerprint(self) -> str:
        return f"proxy:{self.opts.proxy}:{self.opts.batch_size}:{self.opts.seed}:{sorted(self.task.describe().items())}"

    def _one_batch(self) -> tuple[Any, Any]:
        if self._batch is None:
            import torch

            ds = self.task.data(self.ctx.resolution, seed=self.opts.seed).train  # type: ignore[arg-type]
            g = torch.Generator().manual_seed(self.opts.seed)
            idx = torch.randperm(len(ds), generator=g)[: self.opts.batch_size].tolist()
            samples = [ds[i] for i in idx]
            self._batch = (torch.stack([s[0] for s in samples]), torch.stack([torch.as_tensor(s[1]) for s in samples]))
        return self._batch

    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        import torch

        from edgenas.train.builder import GraphModule
        from edgenas.train.proxies import proxy_scores

        x, y = self._one_batch()
        torch.manual_seed(self.opts.seed)
        module = GraphModule(self._graph(genotype))
        value, _ = proxy_scores(module, x, y, self.task.loss, names=(self.opts.proxy,))[self.opts.proxy]
        if not math.isfinite(value):
            raise EvaluationFailed(f"{self.opts.proxy} is not finite ({value})")
        return {self.opts.proxy: value}


class _Halving(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eta: int = Field(3, ge=2)  # keep the best 1/eta at each rung
    first: int = Field(1, ge=1)  # the first rung's epochs; then first * eta, first * eta^2, ... below epochs


class _TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(None, ge=1)  # default: the config's train.epochs
    seed: int | None = None
    stop_early: bool = True  # stop candidates that cannot reach the front (see the module docstring)
    min_epochs: int = Field(3, ge=1)  # evaluations before the learning curve may stop a candidate
    halving: _Halving | None = None  # successive halving across the study's candidates (see the docstring)
    int8: bool = False  # also report the PTQ int8 metric measured in LiteRT (see the docstring)
    calibration_samples: int | None = Field(None, ge=1)  # with int8: training samples to calibrate on (200)


class TrainEvaluator(_TaskEvaluator):
    type_name = "train"
    cost: Cost = "expensive"

    def __init__(self, ctx: EvalContext, opts: _TrainOptions, fld: str) -> None:
        if opts.calibration_samples is not None and not opts.int8:
            raise ConfigError("calibrates the int8 metric: only with `int8: true`", field=f"{fld}.calibration_samples")
        if opts.int8:
            from importlib.util import find_spec

            missing = [m for m in ("ai_edge_litert", "torchao") if find_spec(m) is None]
            if missing:
                raise ConfigError(f"the int8 metric needs ai-edge-litert and torchao ({', '.join(missing)} not "
                                  "installed)", field=f"{fld}.int8")
        super().__init__(ctx, fld)
        self.opts = opts
        self.recipe = self.recipe.with_overrides(epochs=opts.epochs, seed=opts.seed)
        self._data: Any = None

    @property
    def metrics(self) -> tuple[str, ...]:
        int8 = (f"{self.task.primary}_int8",) if self.opts.int8 else ()
        return (self.task.primary, *int8, "train_epochs", "train_seconds", "train_stopped")

    def fingerprint(self) -> str:
        int8 = f":int8:{self.opts.calibration_samples or 200}" if self.opts.int8 else ""
        return f"train:{sorted(self.recipe.model_dump().items())}:{sorted(self.task.describe().items())}:" \
               f"{self.opts.stop_early}:{self.opts.min_epochs}:{self.opts.halving}{int8}"

    def _int8_metric(self, module: Any, best: Path) -> float:
        """The primary metric of the PTQ int8 file of the best epoch's weights, in LiteRT (docstring)."""
        from edgenas.errors import EdgeNasError
        from edgenas.export.int8_eval import int8_metrics
        from edgenas.export.ptq import calibration_batches, to_int8_tflite
        from edgenas.train.trainer import load_checkpoint

        if best.exists():
            module.load_state_dict(load_checkpoint(best)["model"])
        module.eval()
        train = self._data.train
        n = min(self.opts.calibration_samples or 200, len(train))
        try:
            model, _ = to_int8_tflite(module, calibration_batches(train, n))
            values, _ = int8_metrics(model, list(module.graph.outputs), self.task, self._data.val)
        except EdgeNasError as e:
            raise EvaluationFailed(f"cannot quantise the network to int8: {e}") from None
        value = values[self.task.primary]
        if not math.isfinite(value):
            raise EvaluationFailed(f"the int8 model gave no finite {self.task.primary}")
        return float(value)

    def evaluate(self, genotype: Genotype) -> dict[str, MetricValue]:
        return self.evaluate_with(genotype, Hints())

    def evaluate_with(self, genotype: Genotype, hints: Hints) -> dict[str, MetricValue]:
        import torch

        from edgenas.train.builder import GraphModule
        from edgenas.train.trainer import BEST, Trainer

        graph = self._graph(genotype)
        if self._data is None:
            self._data = self.task.data(self.ctx.resolution, seed=self.recipe.seed)  # type: ignore[arg-type]
        torch.manual_seed(self.recipe.seed)
        module = GraphModule(graph)
        identity = {"space_key": self.ctx.space.space_key, "arch_id": genotype.arch_id, "genotype": str(genotype)}
        with tempfile.TemporaryDirectory(prefix="edgenas-train-") as tmp:
            halving = None
            if self.opts.halving is not None:
                h = self.opts.halving
                halving = (h.eta, rungs(h.first, h.eta, self.recipe.epochs))
            rule = stop_rule(self.task.primary, self.task.higher_is_better, hints, stop_early=self.opts.stop_early,
                             min_epochs=self.opts.min_epochs, halving=halving,
                             best_possible=self.task.best_possible)
            trainer = Trainer(module, self.task, self._data, self.recipe, Path(tmp), identity=identity,
                              stop_when=rule)
            result = trainer.run()
            if result.best_metric is None or not math.isfinite(result.best_metric):
                raise EvaluationFailed(f"training gave no finite {self.task.primary}")
            int8 = {f"{self.task.primary}_int8": self._int8_metric(module.cpu(), Path(tmp) / BEST)} \
                if self.opts.int8 else {}
        return {self.task.primary: float(result.best_metric), **int8, "train_epochs": len(result.history),
                "train_seconds": round(result.seconds, 3), "train_stopped": int(result.stopped_early)}


def _proxy_factory(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    return ProxyEvaluator(ctx, _options(_ProxyOptions, opts, fld, None), fld)


def _train_factory(ctx: EvalContext, opts: dict[str, Any], fld: str) -> Evaluator:
    return TrainEvaluator(ctx, _options(_TrainOptions, opts, fld, None), fld)


register_evaluator("proxy", _proxy_factory)
register_evaluator("train", _train_factory)
