"""Recommendations for the device: the reduced search space, a ranking of each choice's values with the
other choices at baseline, and scenario picks, all computed from the measurements and the thresholds.

A value is dropped from the reduced space when the data says so, with the reason code, the threshold and
the measured value: it introduces an anomaly (a design has it and the same design with the baseline's
value does not), its SRAM overhead or FPS loss against the baseline is above the limit, or no design with
it fits the device at the key resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgenas.analysis.anomalies import DESIGN_KINDS, Anomalies, Anomaly, SramOverhead
from edgenas.analysis.breakdown import part_cycles
from edgenas.analysis.designs import Design, SweepIndex, fits, is_ok, num, part_of
from edgenas.analysis.settings import StudySettings

if TYPE_CHECKING:  # types only: keeps `import edgenas.analysis` free of the compiler
    from edgenas.hardware.profile import HardwareProfile

SCENARIOS: tuple[str, ...] = ("safe_baseline", "speed_priority", "accuracy_priority")
# Candidate pools for scenarios, best first: designs of the reduced space without anomaly; any design
# without anomaly; any design that fits.
POOLS: tuple[str, ...] = ("reduced_space", "no_anomaly", "fits")


@dataclass(frozen=True)
class Exclusion:
    """Why a value left the reduced space.

    reason: an anomaly kind ("fps_cliff", "offchip_bound_layer", "cpu_fallback", "compile_failed"),
    "sram_overhead", "fps_loss" or "never_fits". `measured` vs `threshold`: for fps_cliff the FPS excess
    vs cliff_tolerance; offchip_bound_layer a layer's off-chip share vs offchip_share; cpu_fallback the CPU
    op count vs 0; sram_overhead the SRAM ratio - 1 vs sram_overhead_limit; fps_loss the fraction of
    baseline FPS lost vs fps_loss_limit; never_fits the least SRAM KiB any design with the value used vs
    the device SRAM KiB. `design`/`resolution`: where it was measured (the worst case). `occurrences` of
    `contexts`: designs with this value showing it (for anomalies), or designs averaged (fps_loss).
    """

    reason: str
    threshold: float | None
    measured: float | None
    resolution: str | None
    design: Design | None
    occurrences: int
    contexts: int


@dataclass(frozen=True)
class ExcludedValue:
    value: str
    reasons: tuple[Exclusion, ...]


@dataclass(frozen=True)
class ChoiceSpace:
    """One choice point of the reduced space."""

    choice: str
    baseline_value: str
    kept: tuple[str, ...]
    excluded: tuple[ExcludedValue, ...]


@dataclass(frozen=True)
class ReducedSpace:
    hardware: str
    resolution: str
    choices: tuple[ChoiceSpace, ...]
    size_before: int
    size_after: int


@dataclass(frozen=True)
class RankEntry:
    """One value of a choice point, the other choices at baseline, at the key resolution.

    `part_cycles`: cycles of the parts this choice changes (`ChoiceRanking.parts`); `part_cycles_saved`:
    1 - part_cycles / the most expensive value's (the seed's "backbone saves 87% of cycles");
    `cycles_saved`: the same for the whole network against the slowest value.
    """

    value: str
    design: Design
    rank: int | None  # by FPS, 1 = fastest; None when it did not compile
    is_baseline: bool
    fps: float | None
    fps_change: float | None  # vs the baseline
    sram_kib: float | None
    cycles_total: float | None
    cycles_saved: float | None
    part_cycles: float | None
    part_cycles_saved: float | None
    fits: bool
    anomalies: tuple[str, ...]  # kinds of design anomalies of this design at any resolution
    kept: bool  # in the reduced space


@dataclass(frozen=True)
class ChoiceRanking:
    """The values of `choice` ranked by FPS. `parts`: the network parts whose layers differ between the
    values (from the per-layer rows: names, ops and MACs), e.g. ("backbone",) for a backbone choice."""

    choice: str
    baseline_value: str
    resolution: str
    hardware: str
    parts: tuple[str, ...]
    most_expensive: str | None  # value with the most part cycles
    slowest: str | None  # value with the most cycles in total
    entries: tuple[RankEntry, ...]


@dataclass(frozen=True)
class Scenario:
    """A pick for one priority. label: safe_baseline (lowest SRAM), speed_priority (fastest),
    accuracy_priority (largest receptive field within `threshold` FPS loss of the pool's fastest).
    `pool`: which candidates it was chosen from (see POOLS; the first non-empty one is used)."""

    label: str
    design: Design
    pool: str
    candidates: int
    fps: float
    sram_kib: float | None
    receptive_field: float | None
    fps_change: float | None  # vs the baseline
    fps_loss_vs_fastest: float
    threshold: float | None


@dataclass(frozen=True)
class Recommendation:
    hardware: str
    resolution: str
    fitting: int  # designs that fit the device at the key resolution
    reduced_space: ReducedSpace
    rankings: tuple[ChoiceRanking, ...]
    scenarios: tuple[Scenario, ...]

    def scenario(self, label: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.label == label), None)


# ---- the reduced space -----------------------------------------------------------------------------


def _evidence(a: Anomaly) -> float | None:
    if a.kind == "fps_cliff":
        return a.excess  # type: ignore[union-attr]
    if a.kind == "offchip_bound_layer":
        return max(lr.offchip_share for lr in a.layers)  # type: ignore[union-attr]
    if a.kind == "cpu_fallback":
        return float(a.cpu_ops)  # type: ignore[union-attr]
    return None


def _threshold(kind: str, s: StudySettings) -> float | None:
    return {"fps_cliff": s.cliff_tolerance, "offchip_bound_layer": s.offchip_share, "cpu_fallback": 0.0}.get(kind)


def _anomaly_exclusions(index: SweepIndex, anomalies: Anomalies, baseline: Design, choice: str, value: str,
                        settings: StudySettings) -> list[Exclusion]:
    """Anomalies a value introduces: the design has it and the same design with the baseline's value for
    this choice (measured, at the same resolution) does not."""
    base_v = baseline.value(choice)
    if value == base_v:
        return []
    present = {(a.kind, a.design, a.resolution) for a in anomalies.all}
    contexts = sum(1 for _ in index.designs_with(choice, value))
    out = []
    for kind in DESIGN_KINDS:
        hits: dict[Design, Anomaly] = {}
        for a in anomalies.all:
            if a.kind != kind or a.design.value(choice) != value:
                continue
            ref = index.with_value(a.design, choice, base_v)
            if ref is None or index.row(ref, a.resolution, a.hardware) is None:
                continue
            if (kind, ref, a.resolution) in present:
                continue
            prev = hits.get(a.design)
            if prev is None or (_evidence(a) or 0.0) > (_evidence(prev) or 0.0):
                hits[a.design] = a
        if hits:
            worst = max(hits.values(), key=lambda a: _evidence(a) or 0.0)
            out.append(Exclusion(kind, _threshold(kind, settings), _evidence(worst), worst.resolution, worst.design,
                                 len(hits), contexts))
    return out


def _fps_loss(index: SweepIndex, baseline: Design, choice: str, value: str, res: str,
              hw: str) -> tuple[float, Design | None, int] | None:
    """1 - FPS(value) / FPS(baseline value): at the baseline itself, or averaged over every context."""
    d = index.with_value(baseline, choice, value)
    rb = index.row(baseline, res, hw)
    rv = index.row(d, res, hw) if d is not None else None
    if is_ok(rb) and is_ok(rv):
        return 1.0 - (num(rv, "fps") or 0.0) / (num(rb, "fps") or 1.0), d, 1
    losses = []
    for g in index.designs_with(choice, value):
        ref = index.with_value(g, choice, baseline.value(choice))
        rg, rr = index.row(g, res, hw), index.row(ref, res, hw) if ref is not None else None
        if is_ok(rg) and is_ok(rr) and num(rr, "fps"):
            losses.append(1.0 - (num(rg, "fps") or 0.0) / (num(rr, "fps") or 1.0))
    if not losses:
        return None
    return sum(losses) / len(losses), None, len(losses)


def reduced_space(index: SweepIndex, anomalies: Anomalies, overheads: tuple[SramOverhead, ...],
                  baseline: Design, settings: StudySettings,
                  profile: HardwareProfile | None = None) -> ReducedSpace:
    """Each choice's values, kept or excluded with every reason that applies (see `Exclusion`)."""
    hw, res = str(settings.device_hardware), str(settings.key_resolution)
    over = {(o.choice, o.value): o for o in overheads}
    choices = []
    for c in index.choices:
        kept, excluded = [], []
        for v in index.values[c]:
            reasons = _anomaly_exclusions(index, anomalies, baseline, c, v, settings)
            o = over.get((c, v))
            if o is not None and o.flagged:
                reasons.append(Exclusion("sram_overhead", settings.sram_overhead_limit, o.max_ratio, o.resolution,
                                         o.design, 1, 1))
            if v != baseline.value(c):
                loss = _fps_loss(index, baseline, c, v, res, hw)
                if loss is not None and loss[0] > settings.fps_loss_limit:
                    reasons.append(Exclusion("fps_loss", settings.fps_loss_limit, loss[0], res, loss[1], loss[2],
                                             loss[2]))
            rows = [index.row(d, res, hw) for d in index.designs_with(c, v)]
            if not any(fits(r) for r in rows):
                used = [num(r, "sram_kib") for r in rows if is_ok(r)]
                used_f = [u for u in used if u is not None]
                reasons.append(Exclusion("never_fits", float(profile.sram_kib) if profile else None,
                                         min(used_f) if used_f else None, res, None, 0, len(rows)))
            if reasons:
                excluded.append(ExcludedValue(v, tuple(reasons)))
            else:
                kept.append(v)
        choices.append(ChoiceSpace(c, baseline.value(c), tuple(kept), tuple(excluded)))
    before = after = 1
    for cs in choices:
        before *= len(cs.kept) + len(cs.excluded)
        after *= len(cs.kept)
    return ReducedSpace(hw, res, tuple(choices), before, after)


# ---- rankings --------------------------------------------------------------------------------------


def _signature(layers: list[Mapping]) -> dict[str, tuple]:
    sig: dict[str, list] = {}
    for lr in layers:
        sig.setdefault(part_of(str(lr["name"])), []).append(
            (str(lr["name"]), str(lr.get("original_op") or ""), str(lr.get("nng_op") or ""), num(lr, "macs")))
    return {p: tuple(sorted(v, key=repr)) for p, v in sig.items()}


def _saved(value: float | None, most: float | None) -> float | None:
    """1 - value / most: the share of the most expensive option's cycles this one saves."""
    return 1.0 - value / most if value is not None and most else None


def choice_rankings(index: SweepIndex, anomalies: Anomalies, space_: ReducedSpace, baseline: Design,
                    settings: StudySettings) -> tuple[ChoiceRanking, ...]:
    """For each choice point: its values with the other choices at baseline, ranked by FPS at the key
    resolution, with the cycles they save in the parts they change (the seed's backbone ranking)."""
    hw, res = str(settings.device_hardware), str(settings.key_resolution)
    kept = {(cs.choice, v) for cs in space_.choices for v in cs.kept}
    base_row = index.row(baseline, res, hw)
    base_fps = num(base_row, "fps") if is_ok(base_row) else None
    out = []
    for c in index.choices:
        items = []
        for v in index.values[c]:
            d = index.with_value(baseline, c, v)
            if d is not None and index.row(d, res, hw) is not None:
                items.append((v, d, index.row(d, res, hw)))
        if not items:
            continue
        sigs = {v: _signature(index.layers(d, res, hw)) for v, d, _ in items}
        order: list[str] = []
        for v, _, _ in items:
            order += [p for p in sigs[v] if p not in order]
        parts = tuple(p for p in order if len({sigs[v].get(p) for v, _, _ in items}) > 1)
        have_layers = all(sigs[v] for v, _, _ in items)
        pc: dict[str, float | None] = {}
        for v, d, r in items:
            if have_layers and parts and is_ok(r):
                by_part = part_cycles(index.layers(d, res, hw))
                pc[v] = sum(by_part.get(p, 0.0) for p in parts)
            else:
                pc[v] = None
        known_pc = {v: x for v, x in pc.items() if x is not None}
        totals = {v: num(r, "cycles_total") for v, _, r in items if is_ok(r)}
        totals_k = {v: x for v, x in totals.items() if x is not None}
        max_pc = max(known_pc.values()) if known_pc else None
        max_tot = max(totals_k.values()) if totals_k else None
        ranked = sorted(items, key=lambda it: (not is_ok(it[2]), -(num(it[2], "fps") or 0.0)))
        entries = []
        for i, (v, d, r) in enumerate(ranked):
            ok = is_ok(r)
            fps = num(r, "fps") if ok else None
            tot = totals.get(v)
            entries.append(RankEntry(
                value=v, design=d, rank=i + 1 if ok else None, is_baseline=d == baseline, fps=fps,
                fps_change=(fps / base_fps - 1.0) if fps is not None and base_fps else None,
                sram_kib=num(r, "sram_kib") if ok else None, cycles_total=tot,
                cycles_saved=_saved(tot, max_tot),
                part_cycles=pc[v],
                part_cycles_saved=_saved(pc[v], max_pc),
                fits=fits(r), anomalies=tuple(dict.fromkeys(a.kind for a in anomalies.of_design(d))),
                kept=(c, v) in kept))
        out.append(ChoiceRanking(
            c, baseline.value(c), res, hw, parts,
            max(known_pc, key=lambda v: known_pc[v]) if known_pc else None,
            max(totals_k, key=lambda v: totals_k[v]) if totals_k else None, tuple(entries)))
    return tuple(out)


# ---- scenarios -------------------------------------------------------------------------------------


def scenarios(index: SweepIndex, anomalies: Anomalies, space_: ReducedSpace, baseline: Design,
              settings: StudySettings) -> tuple[Scenario, ...]:
    """safe_baseline, speed_priority and accuracy_priority among designs that fit the device at the key
    resolution, preferring the reduced space and designs without anomaly (see POOLS)."""
    hw, res = str(settings.device_hardware), str(settings.key_resolution)
    kept = {cs.choice: set(cs.kept) for cs in space_.choices}
    fitting = [(d, index.row(d, res, hw)) for d in index.designs]
    fitting = [(d, r) for d, r in fitting if fits(r)]
    clean = [(d, r) for d, r in fitting if not anomalies.of_design(d)]
    reduced = [(d, r) for d, r in clean if all(v in kept[c] for c, v in d.choices)]
    pool_name, pool = next(((n, p) for n, p in zip(POOLS, (reduced, clean, fitting)) if p), ("fits", []))
    if not pool:
        return ()
    base_row = index.row(baseline, res, hw)
    base_fps = num(base_row, "fps") if is_ok(base_row) else None
    fastest_fps = max(num(r, "fps") or 0.0 for _, r in pool)

    def make(label: str, d: Design, r: Mapping, threshold: float | None, n: int) -> Scenario:
        fps = num(r, "fps") or 0.0
        return Scenario(label, d, pool_name, n, fps, num(r, "sram_kib"), num(r, "receptive_field"),
                        (fps / base_fps - 1.0) if base_fps else None,
                        1.0 - fps / fastest_fps if fastest_fps else 0.0, threshold)

    out = []
    safe = min(pool, key=lambda dr: (num(dr[1], "sram_kib") or 0.0, dr[0] != baseline, -(num(dr[1], "fps") or 0.0)))
    out.append(make("safe_baseline", *safe, None, len(pool)))
    speed = max(pool, key=lambda dr: num(dr[1], "fps") or 0.0)
    out.append(make("speed_priority", *speed, None, len(pool)))
    near = [(d, r) for d, r in pool if (num(r, "fps") or 0.0) >= (1.0 - settings.accuracy_fps_loss) * fastest_fps
            and num(r, "receptive_field") is not None]
    if near:
        acc = max(near, key=lambda dr: (num(dr[1], "receptive_field") or 0.0, num(dr[1], "fps") or 0.0))
        out.append(make("accuracy_priority", *acc, settings.accuracy_fps_loss, len(near)))
    return tuple(out)


def recommend(index: SweepIndex, anomalies: Anomalies, overheads: tuple[SramOverhead, ...], baseline: Design,
              settings: StudySettings, profile: HardwareProfile | None = None) -> Recommendation:
    """Reduced space, rankings and scenarios for the device at the key resolution (settings resolved)."""
    hw, res = str(settings.device_hardware), str(settings.key_resolution)
    rs = reduced_space(index, anomalies, overheads, baseline, settings, profile)
    n_fit = sum(1 for d in index.designs if fits(index.row(d, res, hw)))
    return Recommendation(hw, res, n_fit, rs, choice_rankings(index, anomalies, rs, baseline, settings),
                          scenarios(index, anomalies, rs, baseline, settings))
