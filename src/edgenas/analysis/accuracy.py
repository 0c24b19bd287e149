"""Accuracy next to cost: trained results (a run folder's accuracy.csv, one row per trained network and
seed) joined with the sweep, and the questions a study asks of them, answered from the numbers only.

- Every trained design with its EPE (mean over seeds) at the training and the deployment resolution,
  beside its FPS and SRAM on the device at the deployment resolution.
- Seed noise: the largest seed-to-seed spread (max - min) of any design trained with two or more seeds.
  A difference counts only when it is larger than that; with one seed per design the noise is unknown and
  no difference is called a win or a loss.
- The EPE/FPS Pareto front (lower EPE, higher FPS) among trained designs that fit the device, at each
  resolution. The front is computed on mean EPE and ignores noise (the text says so).
- One-factor comparisons: for each choice, its trained values with every other choice at the baseline's
  value, each against the baseline's value: the EPE difference, the FPS cost and what follows from them
  (a costlier value is worth its cycles only when it is more accurate by more than the noise).

The metric is the task's primary one, named in the rows (`metric`: `epe` for optical flow, lower is better;
`higher_is_better` for e.g. top-1 accuracy). Differences are in the metric's own units, value - reference;
"better" follows the metric's direction. Pure functions: no I/O, no text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from edgenas.analysis.designs import Design, SweepIndex, fits, is_ok, num

# What follows from one value against the reference value, at one resolution.
OUTCOMES: tuple[str, ...] = (
    "costlier_better",  # slower, more accurate by more than the noise: worth its cycles (a trade-off)
    "costlier_no_gain",  # slower, not more accurate by more than the noise: not worth its cycles
    "cheaper_no_loss",  # faster (or as fast), not less accurate by more than the noise: a free saving
    "cheaper_worse",  # faster, less accurate by more than the noise: a trade-off
    "noise_unknown",  # one seed per design: the difference is reported, no verdict
    "missing",  # no EPE or no FPS for one side
)
COMPARISONS: tuple[str, ...] = ("better", "worse", "within_noise", "noise_unknown", "missing")


@dataclass(frozen=True)
class Budget:
    """How the networks were trained: every distinct value seen in the rows (normally one each)."""

    metric: str
    higher_is_better: bool
    train_resolutions: tuple[str, ...]
    deploy_resolution: str | None
    epochs: tuple[int, ...]
    train_samples: tuple[int, ...]
    val_samples: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    runs: int
    seconds: float  # training time summed over runs
    zero_train: float | None  # the metric of an all-zero output (optical flow: no motion) on the same data
    zero_deploy: float | None


@dataclass(frozen=True)
class TrainedDesign:
    """One trained design: metric means over its seeds, spreads (max - min) with two or more seeds, and its
    cost on the device at the resolution FPS is taken at. `front_*`: on the EPE/FPS Pareto front."""

    design: Design
    seeds: tuple[int, ...]
    train: float | None  # the metric at the training resolution, mean over seeds
    deploy: float | None  # at the deployment resolution
    others: tuple[tuple[str, float | None, float | None], ...]  # other metrics: (name, train, deploy)
    spread_train: float | None
    spread_deploy: float | None
    fps: float | None
    sram_kib: float | None
    fits: bool
    in_sweep: bool
    seconds: float
    front_train: bool
    front_deploy: bool


@dataclass(frozen=True)
class Noise:
    """The largest seed-to-seed spread of the metric; None when no design was trained with two seeds."""

    train: float | None
    deploy: float | None
    designs: int  # designs trained with two or more seeds
    seeds_per_design: int  # the most seeds any design has


@dataclass(frozen=True)
class Comparison:
    """The metric of one value against the reference value at one resolution. `delta` = value - reference
    (negative: the value is more accurate); `outcome` in OUTCOMES, `comparison` in COMPARISONS."""

    delta: float | None
    noise: float | None
    comparison: str
    outcome: str


@dataclass(frozen=True)
class FactorEntry:
    value: str
    trained: TrainedDesign | None  # None: the design with this value was not trained
    is_reference: bool
    fps_change: float | None  # FPS vs the reference value's design (negative: costs cycles)
    train: Comparison
    deploy: Comparison
    on_front_train: bool  # on the EPE/FPS front among this comparison's fitting designs
    on_front_deploy: bool
    recommended: bool  # in the set the question asks about (the recommendation kept it)


@dataclass(frozen=True)
class FactorComparison:
    """One choice: its trained values, every other choice at the reference design's value."""

    choice: str
    reference: str
    entries: tuple[FactorEntry, ...]  # reference first, then in the choice's order
    recommended: tuple[str, ...]  # the values the question asks about (empty: none named, or all kept)


@dataclass(frozen=True)
class AccuracyStudy:
    budget: Budget
    fps_resolution: str  # where FPS and fit are taken (the deployment resolution when swept, else the key)
    hardware: str
    designs: tuple[TrainedDesign, ...]  # most accurate first (at the training resolution)
    noise: Noise
    front_train: tuple[Design, ...]  # fastest first
    front_deploy: tuple[Design, ...]
    beat_zero_train: int  # trained designs better than the all-zero output by more than the noise (or at all,
    beat_zero_deploy: int  # when the noise is unknown): how many learned anything at this budget
    factors: tuple[FactorComparison, ...]
    unmatched: int  # trained designs that are not in the sweep
    recommended_source: str  # where FactorComparison.recommended comes from: "config" or "study"


def _distinct(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted({v for v in values if v is not None and v != ""}))


def _int(v: Any) -> int | None:
    f = num({"v": v}, "v")
    return None if f is None else int(f)


def _mean(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return fmean(vs) if vs else None


def _spread(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return max(vs) - min(vs) if len(vs) >= 2 else None


def pareto_front(points: Sequence[tuple[Design, float, float]]) -> tuple[Design, ...]:
    """Designs that no other design matches or beats on both error (lower) and FPS (higher) while beating
    them on one; fastest first. `points`: (design, error, fps), error lower-is-better."""
    front = []
    for d, e, f in points:
        dominated = any((e2 <= e and f2 >= f) and (e2 < e or f2 > f) for d2, e2, f2 in points if d2 != d)
        if not dominated:
            front.append((d, e, f))
    return tuple(d for d, _, _ in sorted(front, key=lambda p: (-p[2], p[1])))


def seed_noise(by_design: Mapping[Design, Sequence[Mapping[str, Any]]], metric: str) -> Noise:
    """The largest seed-to-seed spread of `metric` at each resolution over designs with two or more seeds."""
    multi = {d: rows for d, rows in by_design.items() if len({_int(r.get("seed")) for r in rows}) >= 2}
    out = []
    for col in (f"{metric}_train", f"{metric}_deploy"):
        spreads = [s for rows in multi.values() if (s := _spread([num(r, col) for r in rows])) is not None]
        out.append(max(spreads) if spreads else None)
    most = max((len({_int(r.get("seed")) for r in rows}) for rows in by_design.values()), default=0)
    return Noise(out[0], out[1], len(multi), most)


def compare(value_metric: float | None, ref_metric: float | None, fps_change: float | None,
            noise: float | None, *, higher_is_better: bool = False) -> Comparison:
    """What follows from a value's metric against the reference's, given its FPS change and the noise."""
    if value_metric is None or ref_metric is None:
        return Comparison(None, noise, "missing", "missing")
    delta = value_metric - ref_metric
    if noise is None:
        return Comparison(delta, None, "noise_unknown", "noise_unknown")
    gain = delta if higher_is_better else -delta  # > 0: the value is more accurate
    comparison = "better" if gain > noise else "worse" if gain < -noise else "within_noise"
    if fps_change is None:
        return Comparison(delta, noise, comparison, "missing")
    if fps_change < 0:
        outcome = "costlier_better" if comparison == "better" else "costlier_no_gain"
    else:
        outcome = "cheaper_worse" if comparison == "worse" else "cheaper_no_loss"
    return Comparison(delta, noise, comparison, outcome)


def _budget(rows: Sequence[Mapping[str, Any]], metric: str, higher_is_better: bool) -> Budget:
    deploy = _distinct(str(r.get("deploy_resolution") or "") for r in rows)
    return Budget(
        metric=metric, higher_is_better=higher_is_better,
        train_resolutions=_distinct(str(r.get("train_resolution") or "") for r in rows),
        deploy_resolution=deploy[0] if deploy else None,
        epochs=_distinct(_int(r.get("epochs")) for r in rows),
        train_samples=_distinct(_int(r.get("train_samples")) for r in rows),
        val_samples=_distinct(_int(r.get("val_samples")) for r in rows),
        batch_sizes=_distinct(_int(r.get("batch_size")) for r in rows),
        seeds=_distinct(_int(r.get("seed")) for r in rows),
        runs=len(rows),
        seconds=sum(num(r, "seconds") or 0.0 for r in rows),
        zero_train=_mean([num(r, f"zero_{metric}_train") for r in rows]),
        zero_deploy=_mean([num(r, f"zero_{metric}_deploy") for r in rows]),
    )


def _design_of(index: SweepIndex, row: Mapping[str, Any]) -> tuple[Design, bool]:
    d = index.find({c: row.get(c) for c in index.choices}) if all(c in row for c in index.choices) else None
    if d is not None:
        return d, True
    return Design(str(row.get("arch_id", "")), tuple((c, str(row.get(c))) for c in index.choices)), False


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1", "yes")


def accuracy_study(index: SweepIndex, rows: Sequence[Mapping[str, Any]], *, hardware: str, key_resolution: str,
                   baseline: Design, recommended: Mapping[str, Sequence[str]] | None = None,
                   recommended_source: str = "study") -> AccuracyStudy | None:
    """The accuracy section of a study (None without finished rows). Rows: one per trained network and seed,
    with its choices, `seed`, `metric` (the primary metric's name), `higher_is_better`, `<metric>_train` /
    `<metric>_deploy` for every metric, the budget columns. `recommended`: per choice, the values the
    question "are they worth their cycles" is about (e.g. the reduced space a recommendation kept)."""
    rows = [r for r in rows if str(r.get("status") or "done") == "done"]
    if not rows:
        return None
    metric = str(rows[0].get("metric") or "epe")
    hib = _truthy(rows[0].get("higher_is_better"))
    sign = -1.0 if hib else 1.0  # error = sign * metric: lower is better
    budget = _budget(rows, metric, hib)
    others = [c[: -len("_train")] for c in rows[0]
              if c.endswith("_train") and c != f"{metric}_train" and not c.startswith("zero_")]
    fps_res = budget.deploy_resolution if budget.deploy_resolution in index.resolutions else key_resolution
    by_design: dict[Design, list[Mapping[str, Any]]] = {}
    in_sweep: dict[Design, bool] = {}
    for r in rows:
        d, found = _design_of(index, r)
        by_design.setdefault(d, []).append(r)
        in_sweep[d] = found
    noise = seed_noise(by_design, metric)

    def cost(d: Design) -> tuple[float | None, float | None, bool]:
        row = index.row(d, fps_res, hardware) if in_sweep[d] else None
        ok = is_ok(row)
        return (num(row, "fps") if ok else None), (num(row, "sram_kib") if ok else None), fits(row)

    base: dict[Design, dict[str, Any]] = {}
    for d, rs in by_design.items():
        fps, sram, fit = cost(d)
        base[d] = {
            "design": d, "seeds": tuple(sorted({s for r in rs if (s := _int(r.get("seed"))) is not None})),
            "train": _mean([num(r, f"{metric}_train") for r in rs]),
            "deploy": _mean([num(r, f"{metric}_deploy") for r in rs]),
            "others": tuple((m, _mean([num(r, f"{m}_train") for r in rs]), _mean([num(r, f"{m}_deploy") for r in rs]))
                            for m in others),
            "spread_train": _spread([num(r, f"{metric}_train") for r in rs]),
            "spread_deploy": _spread([num(r, f"{metric}_deploy") for r in rs]),
            "fps": fps, "sram_kib": sram, "fits": fit, "in_sweep": in_sweep[d],
            "seconds": sum(num(r, "seconds") or 0.0 for r in rs)}

    def front(which: str, designs: Iterable[Design]) -> tuple[Design, ...]:
        pts = [(d, sign * base[d][which], base[d]["fps"]) for d in designs
               if base[d]["fits"] and base[d]["fps"] is not None and base[d][which] is not None]
        return pareto_front(pts)

    front_train, front_deploy = front("train", base), front("deploy", base)
    trained = {d: TrainedDesign(**b, front_train=d in front_train, front_deploy=d in front_deploy)
               for d, b in base.items()}
    order = sorted(trained.values(), key=lambda t: (t.train is None, sign * (t.train or 0.0), -(t.fps or 0.0)))
    factors = tuple(f for c in index.choices
                    if (f := _factor(index, trained, c, baseline, noise, front, (recommended or {}).get(c), hib))
                    is not None)
    beat = [sum(1 for t in trained.values() if _beats(getattr(t, w), getattr(budget, f"zero_{w}"), getattr(noise, w),
                                                      hib)) for w in ("train", "deploy")]
    return AccuracyStudy(budget, fps_res, hardware, tuple(order), noise, front_train, front_deploy, beat[0], beat[1],
                         factors, sum(1 for v in in_sweep.values() if not v), recommended_source)


def _beats(value: float | None, zero: float | None, noise: float | None, hib: bool) -> bool:
    if value is None or zero is None:
        return False
    gain = (value - zero) if hib else (zero - value)
    return gain > (noise or 0.0)


def _factor(index: SweepIndex, trained: Mapping[Design, TrainedDesign], choice: str, baseline: Design,
            noise: Noise, front: Any, recommended: Sequence[str] | None, hib: bool) -> FactorComparison | None:
    """The comparison for one choice, or None when fewer than two of its values were trained around the
    baseline (or the baseline itself was not trained)."""
    ref = baseline.value(choice)
    designs = {}
    for v in index.values[choice]:
        d = index.with_value(baseline, choice, v)
        if d is not None and d in trained:
            designs[v] = d
    if ref not in designs or len(designs) < 2:
        return None
    ref_t = trained[designs[ref]]
    on_train, on_deploy = set(front("train", designs.values())), set(front("deploy", designs.values()))
    rec = tuple(str(v) for v in recommended) if recommended else ()
    if set(index.values[choice]) <= set(rec):  # the recommendation keeps every value: nothing to ask
        rec = ()
    entries = []
    for v in [ref] + [v for v in index.values[choice] if v != ref]:
        d = designs.get(v)
        t = trained.get(d) if d is not None else None
        if t is None:
            continue
        change = (t.fps / ref_t.fps - 1.0) if t.fps is not None and ref_t.fps else None
        if v == ref:
            same = Comparison(0.0, None, "missing", "missing")
            cmp_train = cmp_deploy = same
        else:
            cmp_train = compare(t.train, ref_t.train, change, noise.train, higher_is_better=hib)
            cmp_deploy = compare(t.deploy, ref_t.deploy, change, noise.deploy, higher_is_better=hib)
        entries.append(FactorEntry(v, t, v == ref, change, cmp_train, cmp_deploy, t.design in on_train,
                                   t.design in on_deploy, v in rec))
    return FactorComparison(choice, ref, tuple(entries), rec)


def accuracy_by_design(study: AccuracyStudy | None) -> dict[Design, TrainedDesign]:
    """Lookup for the tables that add an EPE column."""
    return {} if study is None else {t.design: t for t in study.designs}
