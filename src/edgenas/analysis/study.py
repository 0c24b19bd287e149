"""The whole study of a sweep in one value: `analyse(table, layers, settings) -> Study`.

Each section is computed by its own module; this joins them. The report renders a Study and computes
nothing, so every number a sentence needs is in here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgenas.analysis.accuracy import AccuracyStudy, accuracy_study
from edgenas.analysis.anomalies import Anomalies, SramOverhead, detect_anomalies, sram_overheads
from edgenas.analysis.breakdown import CycleBreakdown, cycle_breakdowns
from edgenas.analysis.designs import Design, SweepIndex, is_ok
from edgenas.analysis.keyresults import KeyResults, Matrix, key_results, metric_matrix
from edgenas.analysis.memory import MinSram, min_sram
from edgenas.analysis.recommend import Recommendation, recommend
from edgenas.analysis.settings import StudySettings, middle_resolution
from edgenas.errors import ConfigError
from edgenas.space.config import format_resolution, parse_resolution

if TYPE_CHECKING:  # types only: keeps `import edgenas.analysis` free of the compiler
    from edgenas.hardware.profile import HardwareProfile
    from edgenas.space.space import SearchSpace
    from edgenas.sweep.table import LayerTable, SweepTable


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    sram_kib: float | None
    flash_kib: float | None
    arena_kib: float | None


@dataclass(frozen=True)
class SweepSummary:
    """The search configuration section: what was swept, on what, with which compiler.

    `compiler_estimates`: some rows carry the compiler's performance estimates (vela rows), which Arm
    documents as estimates without a published error bound (the report says so)."""

    space: str
    network: str
    choices: tuple[tuple[str, tuple[str, ...]], ...]  # choice -> values measured, in space order
    fixed: tuple[tuple[str, str], ...]  # fixed parameters (from the space)
    tied: tuple[tuple[str, str], ...]  # tied parameter -> choice it copies
    resolutions: tuple[str, ...]
    hardware: tuple[ProfileInfo, ...]
    device: ProfileInfo
    compilers: tuple[str, ...]
    evaluators: tuple[str, ...]
    designs: int
    rows: int
    failed_rows: int
    layer_rows: int
    compiler_estimates: bool


@dataclass(frozen=True)
class Study:
    """Everything the report says, computed. `settings` are the resolved ones (no None left)."""

    settings: StudySettings
    summary: SweepSummary
    baseline: Design
    designs: tuple[Design, ...]  # in key-results order (fastest first)
    key_results: KeyResults
    fps: Matrix
    sram: Matrix
    anomalies: Anomalies
    sram_overheads: tuple[SramOverhead, ...]  # every value vs the baseline; flagged ones are anomalies
    breakdowns: tuple[CycleBreakdown, ...]  # at the key resolution, key-results order
    min_sram: MinSram | None  # only with several profiles in the sweep
    recommendation: Recommendation
    accuracy: AccuracyStudy | None = None  # only when trained results are given


def resolve_settings(settings: StudySettings, table: SweepTable, *, space: SearchSpace | None = None) -> StudySettings:
    """Fill key_resolution, baseline and device_hardware from the sweep (and the space's default genotype),
    and check that the sweep has them; a ConfigError names the `report.` field otherwise."""
    resolutions = table.resolutions
    hardware = table.hardware
    key = settings.key_resolution or middle_resolution(resolutions)
    try:
        key = format_resolution(parse_resolution(key))
    except ValueError as e:
        raise ConfigError(str(e), field="report.key_resolution") from None
    if key not in resolutions:
        raise ConfigError(f"resolution {key} is not in the sweep; allowed: {', '.join(resolutions)}",
                          field="report.key_resolution")
    hw = settings.device_hardware or hardware[0]
    if hw not in hardware:
        raise ConfigError(f"hardware {hw!r} is not in the sweep; allowed: {', '.join(hardware)}",
                          field="report.device_hardware")
    if settings.baseline is not None:
        base = {k: str(v) for k, v in settings.baseline.items()}
    elif space is not None:
        base = {k: str(v) for k, v in space.default.as_dict().items()}
    else:
        base = {c: str(table.rows[0][c]) for c in table.choices}
    for k in base:
        if k not in table.choices:
            raise ConfigError(f"{k!r} is not a choice of the sweep; allowed: {', '.join(table.choices)}",
                              field=f"report.baseline.{k}")
    if space is not None:  # fill unnamed choices from the space's default
        full = {k: str(v) for k, v in space.default.as_dict().items()}
        full.update(base)
        base = {c: full[c] for c in table.choices if c in full}
    for k, vs in (settings.recommended or {}).items():
        if k not in table.choices:
            raise ConfigError(f"{k!r} is not a choice of the sweep; allowed: {', '.join(table.choices)}",
                              field=f"report.recommended.{k}")
        known = {str(r.get(k)) for r in table.rows}
        for v in vs:
            if v not in known:
                raise ConfigError(f"{v!r} is not a value of {k} in the sweep; allowed: {', '.join(sorted(known))}",
                                  field=f"report.recommended.{k}")
    missing = [c for c in table.choices if c not in base]
    if missing:
        raise ConfigError(f"the baseline must give every choice; missing: {', '.join(missing)}",
                          field="report.baseline")
    index = SweepIndex(table)
    d = index.find(base)
    if d is None or not is_ok(index.row(d, key, hw)):
        text = ",".join(f"{k}={v}" for k, v in base.items())
        what = "was not measured" if d is None or index.row(d, key, hw) is None else "did not compile"
        raise ConfigError(f"baseline {text} {what} at {key} on {hw} in the sweep", field="report.baseline")
    return dataclasses.replace(settings, key_resolution=key, device_hardware=hw, baseline=base)


def _profile_info(name: str, profiles: Mapping[str, HardwareProfile]) -> ProfileInfo:
    p = profiles.get(name)
    if p is None:
        return ProfileInfo(name, None, None, None)
    return ProfileInfo(name, float(p.sram_kib), float(p.flash_kib) if p.flash_kib else None,
                       float(p.arena_cache_kib))


def _summary(index: SweepIndex, layers: LayerTable | None, space: SearchSpace | None,
             profiles: Mapping[str, HardwareProfile], device: str) -> SweepSummary:
    rows = index.table.rows

    def distinct(col: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(r[col]) for r in rows if r.get(col)))

    evaluators = distinct("evaluator")
    return SweepSummary(
        space=space.name if space is not None else "",
        network=space.config.network if space is not None else "",
        choices=tuple((c, tuple(index.values[c])) for c in index.choices),
        fixed=tuple((k, str(v)) for k, v in space.config.fixed.items()) if space is not None else (),
        tied=tuple(space.config.tied.items()) if space is not None else (),
        resolutions=tuple(index.resolutions),
        hardware=tuple(_profile_info(h, profiles) for h in index.hardware),
        device=_profile_info(device, profiles),
        compilers=distinct("compiler"), evaluators=evaluators, designs=len(index.designs), rows=len(rows),
        failed_rows=sum(1 for r in rows if r.get("status") != "ok"),
        layer_rows=len(layers.rows) if layers is not None else 0,
        compiler_estimates="vela" in evaluators)


def analyse(table: SweepTable, layers: LayerTable | None, settings: StudySettings | None = None, *,
            space: SearchSpace | None = None, profiles: Mapping[str, HardwareProfile] | None = None,
            accuracy: Sequence[Mapping[str, Any]] | None = None) -> Study:
    """The study of one sweep. `space` lets the analysis rebuild networks (tensors that do not fit, IR op
    counts, the space's own lowerings); `profiles` (by the sweep's hardware names) gives device sizes;
    `accuracy`: trained results (rows of a run folder's accuracy.csv), which add the accuracy section."""
    profiles = dict(profiles or {})
    s = resolve_settings(settings or StudySettings(), table, space=space)
    hw, res = str(s.device_hardware), str(s.key_resolution)
    order: Mapping[str, Any] | None = space.choices if space is not None else None
    index = SweepIndex(table, layers, order)
    baseline = index.find(s.baseline or {})
    assert baseline is not None  # checked by resolve_settings
    kr = key_results(index, res, hw, baseline)
    ranked = tuple(r.design for r in kr.rows)
    designs = ranked + tuple(d for d in index.designs if d not in ranked)
    overheads = sram_overheads(index, hw, baseline, s)
    anomalies = detect_anomalies(index, s, overheads, baseline=baseline, space=space, profiles=profiles)
    rec = recommend(index, anomalies, overheads, baseline, s, profiles.get(hw))
    asked = s.recommended if s.recommended is not None else {c.choice: c.kept for c in rec.reduced_space.choices}
    acc = accuracy_study(index, accuracy, hardware=hw, key_resolution=res, baseline=baseline, recommended=asked,
                         recommended_source="study" if s.recommended is None else "config") if accuracy else None
    return Study(
        settings=s,
        summary=_summary(index, layers, space, profiles, hw),
        baseline=baseline,
        designs=designs,
        key_results=kr,
        fps=metric_matrix(index, "fps", hw, designs),
        sram=metric_matrix(index, "sram_kib", hw, designs),
        anomalies=anomalies,
        sram_overheads=overheads,
        breakdowns=cycle_breakdowns(index, ranked, res, hw, dominant_share=s.dominant_op_share, space=space),
        min_sram=min_sram(index, profiles),
        recommendation=rec,
        accuracy=acc,
    )
