"""Key results at one resolution (the seed's 192x256 table) and metric matrices over every resolution."""

from __future__ import annotations

from dataclasses import dataclass

from edgenas.analysis.designs import Design, SweepIndex, fits, is_ok, num


@dataclass(frozen=True)
class KeyRow:
    """One design at the key resolution on the device. Changes are fractions (+0.049 = 4.9% more)."""

    design: Design
    status: str
    fps: float | None
    fps_end_to_end: float | None
    sram_kib: float | None
    cycles_total: float | None
    receptive_field: float | None
    fps_change: float | None  # vs the baseline design
    sram_change: float | None
    changed: tuple[str, ...]  # choice names that differ from the baseline
    is_baseline: bool
    fits: bool
    over_sram: bool
    over_flash: bool
    cpu_ops: int
    rank: int | None  # 1 = fastest, among compiled designs
    fastest: bool
    slowest: bool


@dataclass(frozen=True)
class KeyResults:
    """Every design at the key resolution, fastest first (failed compiles last)."""

    resolution: str
    hardware: str
    baseline: Design
    baseline_fps: float | None
    baseline_sram_kib: float | None
    rows: tuple[KeyRow, ...]
    fastest: Design | None
    slowest: Design | None
    fastest_fitting: Design | None
    n_fitting: int


@dataclass(frozen=True)
class Matrix:
    """A metric for design x resolution on one profile (`values[i][j]`: designs[i] at resolutions[j];
    None where not measured or not compiled). `fits` has the same layout."""

    metric: str
    hardware: str
    resolutions: tuple[str, ...]
    designs: tuple[Design, ...]
    values: tuple[tuple[float | None, ...], ...]
    fits: tuple[tuple[bool, ...], ...]


def _change(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base - 1.0


def key_results(index: SweepIndex, resolution: str, hardware: str, baseline: Design) -> KeyResults:
    """FPS, SRAM and change vs the baseline for every design at `resolution` on `hardware`."""
    base_row = index.row(baseline, resolution, hardware)
    base_fps = num(base_row, "fps") if is_ok(base_row) else None
    base_sram = num(base_row, "sram_kib") if is_ok(base_row) else None
    measured = [(d, index.row(d, resolution, hardware)) for d in index.designs]
    measured = [(d, r) for d, r in measured if r is not None]
    ok = sorted([(d, r) for d, r in measured if is_ok(r)], key=lambda dr: -(num(dr[1], "fps") or 0.0))
    failed = [(d, r) for d, r in measured if not is_ok(r)]
    fastest = ok[0][0] if ok else None
    slowest = ok[-1][0] if ok else None
    rows = []
    for i, (d, r) in enumerate(ok + failed):
        good = i < len(ok)
        fps = num(r, "fps") if good else None
        sram = num(r, "sram_kib") if good else None
        rows.append(KeyRow(
            design=d, status=str(r.get("status") or ""), fps=fps,
            fps_end_to_end=num(r, "fps_end_to_end") if good else None, sram_kib=sram,
            cycles_total=num(r, "cycles_total") if good else None, receptive_field=num(r, "receptive_field"),
            fps_change=_change(fps, base_fps), sram_change=_change(sram, base_sram),
            changed=d.differs_from(baseline), is_baseline=d == baseline, fits=fits(r),
            over_sram=r.get("over_sram") is True, over_flash=r.get("over_flash") is True,
            cpu_ops=int(num(r, "cpu_ops") or 0), rank=i + 1 if good else None,
            fastest=good and d == fastest, slowest=good and d == slowest and len(ok) > 1))
    fitting = [d for d, r in ok if fits(r)]
    return KeyResults(resolution, hardware, baseline, base_fps, base_sram, tuple(rows), fastest,
                      slowest if len(ok) > 1 else None, fitting[0] if fitting else None, len(fitting))


def metric_matrix(index: SweepIndex, metric: str, hardware: str, designs: tuple[Design, ...]) -> Matrix:
    """`metric` (a sweep column, e.g. fps or sram_kib) for every design x resolution on `hardware`."""
    values, fit = [], []
    for d in designs:
        vs, fs = [], []
        for res in index.resolutions:
            r = index.row(d, res, hardware)
            vs.append(num(r, metric) if is_ok(r) else None)
            fs.append(fits(r))
        values.append(tuple(vs))
        fit.append(tuple(fs))
    return Matrix(metric, hardware, tuple(index.resolutions), designs, tuple(values), tuple(fit))
