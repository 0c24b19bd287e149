"""Anomalies in a sweep, each with the numbers that show it and a cause code computed from the data.

Kinds: `fps_cliff` (a smaller input slower than a larger one), `offchip_bound_layer` (layers whose cycles
are mostly off-chip access), `over_memory` (designs over the device's SRAM or flash, with the tensors the
IR holds at its peak), `sram_overhead` (a choice value costing much more SRAM than the baseline's),
`cpu_fallback` (ops the NPU does not run) and `compile_failed`. Everything is on the device profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgenas.analysis.designs import (
    Design,
    Row,
    SweepIndex,
    fits,
    is_ok,
    num,
    offchip_share_of,
    pixels,
)
from edgenas.analysis.settings import StudySettings
from edgenas.errors import EdgeNasError
from edgenas.space.config import parse_resolution

if TYPE_CHECKING:  # types only: keeps `import edgenas.analysis` free of the compiler
    from edgenas.hardware.profile import HardwareProfile
    from edgenas.space.space import SearchSpace

# ---- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShift:
    """The layer whose cycles grew most beyond pixel scaling between the two sides of a cliff."""

    name: str
    cycles: float  # at the smaller (slower) resolution
    larger_cycles: float  # at the larger resolution
    expected_cycles: float  # larger_cycles scaled down by the pixel ratio
    offflash_ac: float
    larger_offflash_ac: float
    dram_ac: float
    larger_dram_ac: float


@dataclass(frozen=True)
class FpsCliff:
    """`design` runs slower at `resolution` than at the larger `larger_resolution` (by `excess`).

    cause: "offchip_traffic" (the smaller input's off-chip share of cycles is higher by the margin),
    "sram_at_arena_limit" (its SRAM use reached the arena limit: the compiler cascaded), or "unexplained".
    """

    kind: str = field(default="fps_cliff", init=False)
    design: Design
    resolution: str
    hardware: str
    cause: str
    larger_resolution: str
    fps: float
    larger_fps: float
    excess: float  # larger_fps / fps - 1 (>= -tolerance; negative: a plateau rather than a reversal)
    tolerance: float
    expected_fps: float  # larger_fps scaled up by the pixel ratio: what the smaller input should reach
    pixel_ratio: float  # pixels of larger_resolution / pixels of resolution
    baseline_fps: float | None  # the baseline design at `resolution`
    fps_vs_baseline: float | None  # fps / baseline_fps - 1 (the seed's "-75% at 156x208")
    offchip_share: float | None
    larger_offchip_share: float | None
    offchip_margin: float
    offchip_higher: bool
    sram_kib: float | None
    larger_sram_kib: float | None
    arena_kib: float | None
    sram_at_limit: bool
    peak_activation_kib: float | None  # the IR's activation peak: a smaller input has the smaller peak
    larger_peak_activation_kib: float | None
    top_layer: LayerShift | None


@dataclass(frozen=True)
class OffchipLayer:
    """One per-layer row of the compiler whose op cycles are dominated by off-chip access."""

    name: str
    original_op: str
    nng_op: str
    target: str
    cycles: float
    network_share: float  # of the network's cycles
    offflash_ac: float
    dram_ac: float
    offchip_share: float  # max(offflash_ac, dram_ac) / cycles
    bound_by: str  # "offchip_flash" or "dram"


@dataclass(frozen=True)
class OffchipBound:
    """A fitting design whose layers (shown as the compiler's per-layer rows) wait on off-chip memory.

    cause: "offchip_flash_traffic" or "dram_traffic", whichever bounds more of those layers' cycles.
    """

    kind: str = field(default="offchip_bound_layer", init=False)
    design: Design
    resolution: str
    hardware: str
    cause: str
    layers: tuple[OffchipLayer, ...]
    network_cycles: float
    bound_cycles: float  # sum of the listed layers' cycles
    bound_share: float  # bound_cycles / network_cycles
    network_offchip_share: float | None  # the whole network's off-chip access share
    threshold: float  # offchip_share setting
    min_layer_share: float


@dataclass(frozen=True)
class LiveTensor:
    """A tensor live at the IR's activation peak, as channels x height x width int8 bytes."""

    name: str
    channels: int
    height: int
    width: int
    bytes: int
    alone_exceeds: bool | None  # this one tensor is larger than the device SRAM (None: SRAM unknown)


@dataclass(frozen=True)
class WeightLayer:
    name: str
    bytes: int


@dataclass(frozen=True)
class OverMemory:
    """A design over the device's SRAM (`memory="sram"`) or flash (`"flash"`).

    `tensors`: what the IR holds at its activation peak (largest first), rebuilt from the space; empty
    without a space. `weight_layers`: the largest weight tensors (flash overflows).
    cause: "sram_exceeded" or "flash_exceeded".
    """

    kind: str = field(default="over_memory", init=False)
    design: Design
    resolution: str
    hardware: str
    cause: str
    memory: str
    used_kib: float
    device_kib: float | None
    excess_kib: float | None  # used - device
    used_ratio: float | None  # used / device
    ir_peak_kib: float | None
    ir_peak_op: str
    ir_peak_exceeds: bool | None  # the IR's activation peak alone exceeds the device SRAM
    tensors: tuple[LiveTensor, ...]
    weight_layers: tuple[WeightLayer, ...]


@dataclass(frozen=True)
class OverheadPoint:
    resolution: str
    baseline_sram_kib: float
    sram_kib: float
    ratio: float  # sram / baseline - 1


@dataclass(frozen=True)
class SramOverhead:
    """SRAM of the baseline with `choice` set to `value`, against the baseline, at every resolution.

    `flagged` when the largest ratio exceeds the limit (only flagged ones are anomalies).
    `resolution` is where the ratio is largest.
    """

    kind: str = field(default="sram_overhead", init=False)
    design: Design
    resolution: str
    hardware: str
    cause: str
    choice: str
    value: str
    baseline_value: str
    points: tuple[OverheadPoint, ...]
    max_ratio: float
    mean_ratio: float
    limit: float
    flagged: bool


@dataclass(frozen=True)
class CpuLayer:
    name: str
    original_op: str
    cycles: float


@dataclass(frozen=True)
class CpuFallback:
    """Ops the NPU does not run: the compiler's FPS leaves their host time out. cause: "cpu_ops"."""

    kind: str = field(default="cpu_fallback", init=False)
    design: Design
    resolution: str
    hardware: str
    cause: str
    cpu_ops: int
    fps: float | None
    fps_end_to_end: float | None
    layers: tuple[CpuLayer, ...]


@dataclass(frozen=True)
class CompileFailed:
    """The compiler rejected the design; `error` is its message. cause: "compile_failed"."""

    kind: str = field(default="compile_failed", init=False)
    design: Design
    resolution: str
    hardware: str
    cause: str
    error: str


Anomaly = FpsCliff | OffchipBound | OverMemory | SramOverhead | CpuFallback | CompileFailed
ANOMALY_KINDS: tuple[str, ...] = ("fps_cliff", "offchip_bound_layer", "over_memory", "sram_overhead",
                                  "cpu_fallback", "compile_failed")
# Kinds that mark a design as unreliable. Over-memory is a fit verdict (handled by "fits"), and SRAM
# overhead belongs to a choice value, not to one design.
DESIGN_KINDS: tuple[str, ...] = ("fps_cliff", "offchip_bound_layer", "cpu_fallback", "compile_failed")


@dataclass(frozen=True)
class Anomalies:
    """Every anomaly found, by kind. A clean sweep has none (`count == 0`)."""

    hardware: str
    fps_cliffs: tuple[FpsCliff, ...]
    offchip_bound: tuple[OffchipBound, ...]
    over_memory: tuple[OverMemory, ...]
    sram_overhead: tuple[SramOverhead, ...]  # flagged ones only
    cpu_fallback: tuple[CpuFallback, ...]
    compile_failed: tuple[CompileFailed, ...]

    @property
    def all(self) -> tuple[Anomaly, ...]:
        return (*self.fps_cliffs, *self.offchip_bound, *self.over_memory, *self.sram_overhead,
                *self.cpu_fallback, *self.compile_failed)

    @property
    def count(self) -> int:
        return len(self.all)

    def of_design(self, design: Design, kinds: tuple[str, ...] = DESIGN_KINDS) -> tuple[Anomaly, ...]:
        return tuple(a for a in self.all if a.design == design and a.kind in kinds)


# ---- detection -------------------------------------------------------------------------------------


def _layer_cycles_by_name(layers: list[Row]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for lr in layers:
        d = out.setdefault(str(lr["name"]), {"cycles": 0.0, "offflash_ac": 0.0, "dram_ac": 0.0})
        for k in d:
            d[k] += num(lr, k) or 0.0
    return out


def _top_layer_shift(index: SweepIndex, design: Design, small: str, large: str, hw: str) -> LayerShift | None:
    a = _layer_cycles_by_name(index.layers(design, small, hw))
    b = _layer_cycles_by_name(index.layers(design, large, hw))
    if not a or not b:
        return None
    scale = pixels(small) / pixels(large)
    best, best_excess = None, 0.0
    for name, fa in a.items():
        fb = b.get(name)
        if fb is None:
            continue
        excess = fa["cycles"] - fb["cycles"] * scale
        if excess > best_excess:
            best, best_excess = LayerShift(name, fa["cycles"], fb["cycles"], fb["cycles"] * scale,
                                           fa["offflash_ac"], fb["offflash_ac"], fa["dram_ac"], fb["dram_ac"]), excess
    return best


def find_fps_cliffs(index: SweepIndex, hardware: str, settings: StudySettings,
                    profile: HardwareProfile | None = None, baseline: Design | None = None) -> tuple[FpsCliff, ...]:
    """For each design and each resolution, the larger resolution that runs fastest, when FPS does not fall
    to it: the larger input runs faster than, or within the tolerance of, the smaller one. (More pixels
    cost more cycles; a plateau means the smaller input is anomalously slow, as in the seed's cliff.)"""
    tol = settings.cliff_tolerance
    arena = float(profile.arena_cache_kib) if profile is not None else None
    out = []
    for d in index.designs:
        series = [(res, r) for res, r in index.rows_of(d, hardware) if is_ok(r)]
        for i, (small, rs) in enumerate(series):
            later = series[i + 1:]
            if not later:
                continue
            large, rl = max(later, key=lambda x: num(x[1], "fps") or 0.0)
            fs, fl = num(rs, "fps"), num(rl, "fps")
            if not fs or not fl or fl < fs * (1.0 - tol):
                continue
            share_s, share_l = offchip_share_of(rs), offchip_share_of(rl)
            higher = (share_s is not None and share_l is not None
                      and share_s - share_l >= settings.cliff_offchip_margin)
            sram_s = num(rs, "sram_kib")
            at_limit = bool(arena and sram_s is not None and sram_s >= settings.arena_full_share * arena)
            cause = "offchip_traffic" if higher else "sram_at_arena_limit" if at_limit else "unexplained"
            rb = index.row(baseline, small, hardware) if baseline is not None else None
            base_fps = num(rb, "fps") if is_ok(rb) else None
            out.append(FpsCliff(
                design=d, resolution=small, hardware=hardware, cause=cause, larger_resolution=large, fps=fs,
                larger_fps=fl, excess=fl / fs - 1.0, tolerance=tol, expected_fps=fl * pixels(large) / pixels(small),
                pixel_ratio=pixels(large) / pixels(small),
                baseline_fps=base_fps, fps_vs_baseline=fs / base_fps - 1.0 if base_fps else None,
                offchip_share=share_s,
                larger_offchip_share=share_l, offchip_margin=settings.cliff_offchip_margin,
                offchip_higher=higher, sram_kib=sram_s, larger_sram_kib=num(rl, "sram_kib"), arena_kib=arena,
                sram_at_limit=at_limit, peak_activation_kib=num(rs, "peak_activation_kib"),
                larger_peak_activation_kib=num(rl, "peak_activation_kib"),
                top_layer=_top_layer_shift(index, d, small, large, hardware)))
    return tuple(out)


def find_offchip_bound(index: SweepIndex, hardware: str, settings: StudySettings) -> tuple[OffchipBound, ...]:
    """Per-layer rows whose OffFlash or DRAM access cycles reach `offchip_share` of the op's cycles, in
    designs that fit (a design over the device is reported as over_memory instead)."""
    out = []
    for d in index.designs:
        for res, row in index.rows_of(d, hardware):
            if not fits(row):
                continue
            layers = index.layers(d, res, hardware)
            if not layers:
                continue
            total = num(row, "cycles_total") or sum(num(lr, "cycles") or 0.0 for lr in layers)
            if not total:
                continue
            found = []
            for lr in layers:
                cyc = num(lr, "cycles") or 0.0
                if cyc <= 0 or cyc / total < settings.min_offchip_layer_share:
                    continue
                flash, dram = num(lr, "offflash_ac") or 0.0, num(lr, "dram_ac") or 0.0
                share = max(flash, dram) / cyc
                if share >= settings.offchip_share:
                    found.append(OffchipLayer(str(lr["name"]), str(lr.get("original_op") or ""),
                                              str(lr.get("nng_op") or ""), str(lr.get("target") or ""), cyc,
                                              cyc / total, flash, dram, share,
                                              "offchip_flash" if flash >= dram else "dram"))
            if not found:
                continue
            flash_cyc = sum(f.cycles for f in found if f.bound_by == "offchip_flash")
            dram_cyc = sum(f.cycles for f in found if f.bound_by == "dram")
            bound = sum(f.cycles for f in found)
            out.append(OffchipBound(
                design=d, resolution=res, hardware=hardware,
                cause="offchip_flash_traffic" if flash_cyc >= dram_cyc else "dram_traffic", layers=tuple(found),
                network_cycles=total, bound_cycles=bound, bound_share=bound / total,
                network_offchip_share=offchip_share_of(row), threshold=settings.offchip_share,
                min_layer_share=settings.min_offchip_layer_share))
    return tuple(out)


def _ir_peak(space: SearchSpace, design: Design, resolution: str,
             sram_kib: float | None) -> tuple[float, str, tuple[LiveTensor, ...], tuple[WeightLayer, ...]] | None:
    try:
        graph = space.build(space.genotype(design.as_dict()), parse_resolution(resolution))
    except (EdgeNasError, ValueError):
        return None
    plan = graph.memory_plan()
    limit = sram_kib * 1024 if sram_kib is not None else None
    tensors = []
    for name in plan.live_at_peak:
        shape = graph.tensors[name].shape
        if len(shape) == 4:
            _, h, w, c = shape
        else:  # inside a reshape/transpose pair: report it flat
            h, w, c = 1, 1, 1
            for s in shape:
                c *= s
        nbytes = graph.tensors[name].nbytes
        tensors.append(LiveTensor(name, c, h, w, nbytes, None if limit is None else nbytes > limit))
    weights = sorted(((s.name, s.weight_bytes) for s in graph.layer_stats() if s.weight_bytes),
                     key=lambda x: -x[1])[:5]
    return plan.peak_bytes / 1024, plan.peak_op, tuple(tensors), tuple(WeightLayer(n, b) for n, b in weights)


def find_over_memory(index: SweepIndex, hardware: str, *, space: SearchSpace | None = None,
                     profile: HardwareProfile | None = None) -> tuple[OverMemory, ...]:
    """Designs the compiler placed but the device cannot hold (the rows' over_sram / over_flash flags),
    with what the IR keeps live at its activation peak when the space is given."""
    out = []
    sram_dev = float(profile.sram_kib) if profile is not None else None
    flash_dev = float(profile.flash_kib) if profile is not None and profile.flash_kib else None
    for d in index.designs:
        for res, row in index.rows_of(d, hardware):
            if not is_ok(row):
                continue
            over_sram, over_flash = row.get("over_sram") is True, row.get("over_flash") is True
            if not (over_sram or over_flash):
                continue
            ir = _ir_peak(space, d, res, sram_dev) if space is not None else None
            peak_kib = ir[0] if ir else num(row, "peak_activation_kib")
            peak_exceeds = None if peak_kib is None or sram_dev is None else peak_kib > sram_dev
            for memory, flag, used_col, dev in (("sram", over_sram, "sram_kib", sram_dev),
                                                ("flash", over_flash, "offchip_flash_kib", flash_dev)):
                if not flag:
                    continue
                used = num(row, used_col) or 0.0
                out.append(OverMemory(
                    design=d, resolution=res, hardware=hardware, cause=f"{memory}_exceeded", memory=memory,
                    used_kib=used, device_kib=dev, excess_kib=None if dev is None else used - dev,
                    used_ratio=used / dev if dev else None,
                    ir_peak_kib=peak_kib, ir_peak_op=ir[1] if ir else "", ir_peak_exceeds=peak_exceeds,
                    tensors=ir[2] if ir and memory == "sram" else (),
                    weight_layers=ir[3] if ir and memory == "flash" else ()))
    return tuple(out)


def sram_overheads(index: SweepIndex, hardware: str, baseline: Design,
                   settings: StudySettings) -> tuple[SramOverhead, ...]:
    """For every choice and every value other than the baseline's: SRAM of the baseline with that one
    value changed, as a ratio to the baseline's, at each resolution (the seed's Shuffle +66%)."""
    out = []
    for c in index.choices:
        base_v = baseline.value(c)
        for v in index.values[c]:
            if v == base_v:
                continue
            d = index.with_value(baseline, c, v)
            if d is None:
                continue
            points = []
            for res in index.resolutions:
                rb, rv = index.row(baseline, res, hardware), index.row(d, res, hardware)
                if not (is_ok(rb) and is_ok(rv)):
                    continue
                sb, sv = num(rb, "sram_kib"), num(rv, "sram_kib")
                if not sb or sv is None:
                    continue
                points.append(OverheadPoint(res, sb, sv, sv / sb - 1.0))
            if not points:
                continue
            worst = max(points, key=lambda p: p.ratio)
            out.append(SramOverhead(
                design=d, resolution=worst.resolution, hardware=hardware, cause="sram_overhead", choice=c,
                value=v, baseline_value=base_v, points=tuple(points), max_ratio=worst.ratio,
                mean_ratio=sum(p.ratio for p in points) / len(points), limit=settings.sram_overhead_limit,
                flagged=worst.ratio > settings.sram_overhead_limit))
    return tuple(out)


def find_cpu_fallbacks(index: SweepIndex, hardware: str) -> tuple[CpuFallback, ...]:
    """Rows with CPU-fallback ops, naming them from the per-layer rows whose target is the CPU."""
    out = []
    for d in index.designs:
        for res, row in index.rows_of(d, hardware):
            n = int(num(row, "cpu_ops") or 0)
            if not is_ok(row) or n <= 0:
                continue
            cpu = tuple(CpuLayer(str(lr["name"]), str(lr.get("original_op") or ""), num(lr, "cycles") or 0.0)
                        for lr in index.layers(d, res, hardware) if str(lr.get("target", "")).upper() == "CPU")
            out.append(CpuFallback(design=d, resolution=res, hardware=hardware, cause="cpu_ops", cpu_ops=n,
                                   fps=num(row, "fps"), fps_end_to_end=num(row, "fps_end_to_end"), layers=cpu))
    return tuple(out)


def find_compile_failures(index: SweepIndex, hardware: str) -> tuple[CompileFailed, ...]:
    """Rows the compiler rejected: the sweep kept going, the report must still say so."""
    return tuple(CompileFailed(design=d, resolution=res, hardware=hardware, cause="compile_failed",
                               error=str(row.get("error") or ""))
                 for d in index.designs for res, row in index.rows_of(d, hardware) if not is_ok(row))


def detect_anomalies(index: SweepIndex, settings: StudySettings, overheads: tuple[SramOverhead, ...], *,
                     baseline: Design | None = None, space: SearchSpace | None = None,
                     profiles: Mapping[str, HardwareProfile] | None = None) -> Anomalies:
    """Every anomaly on the device profile (`settings.device_hardware`, already resolved)."""
    hw = str(settings.device_hardware)
    profile = (profiles or {}).get(hw)
    return Anomalies(
        hardware=hw,
        fps_cliffs=find_fps_cliffs(index, hw, settings, profile, baseline),
        offchip_bound=find_offchip_bound(index, hw, settings),
        over_memory=find_over_memory(index, hw, space=space, profile=profile),
        sram_overhead=tuple(o for o in overheads if o.flagged),
        cpu_fallback=find_cpu_fallbacks(index, hw),
        compile_failed=find_compile_failures(index, hw),
    )
