"""Terminal rendering (rich) of one measurement: summary figures, fit verdict and the per-layer table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from edgenas.hardware.measure_file import FileMeasurement

SUMMARY = (
    ("inferences/s", "fps", "{:.2f}"),
    ("inference time ms", "inference_ms", "{:.3f}"),
    ("cycles total", "cycles_total", "{:,.0f}"),
    ("cycles NPU", "cycles_npu", "{:,.0f}"),
    ("SRAM used KiB", "sram_kib", "{:,.1f}"),
    ("off-chip flash used KiB", "offchip_flash_kib", "{:,.1f}"),
    ("DRAM used KiB", "dram_kib", "{:,.1f}"),
    ("off-chip flash access cycles", "cycles_offchip_flash_access", "{:,.0f}"),
    ("DRAM access cycles", "cycles_dram_access", "{:,.0f}"),
    ("NPU ops", "npu_ops", "{:.0f}"),
    ("CPU ops", "cpu_ops", "{:.0f}"),
    ("encoded weight bytes", "encoded_weight_bytes", "{:,.0f}"),
    ("MACs", "macs", "{:,.0f}"),
)


def render_file_measurement(console: Console, fm: FileMeasurement, *, layers: bool = True) -> None:
    m = fm.measurement
    title = f"{fm.path} on {fm.profile.name} ({m.provenance.get('compiler', '')})"
    if not m.ok:
        console.print(f"[red]{title}: compile failed[/]: {m.error}")
        return
    t = Table("figure", "value", title=title)
    for label, key, fmt in SUMMARY:
        if key in m.metrics:
            t.add_row(label, fmt.format(m.metrics[key]))
    t.add_row("device SRAM / flash KiB", f"{fm.profile.sram_kib:,} / {fm.profile.flash_kib or '-'}")
    t.add_row("over SRAM", "[red]yes[/]" if fm.flags.get("over_sram") else "no")
    t.add_row("over flash", "[red]yes[/]" if fm.flags.get("over_flash") else "no")
    if int(m.metrics.get("cpu_ops", 0)):
        t.add_row("fps complete", "[yellow]no: CPU-fallback ops are not in the compiler's FPS[/]")
    console.print(t)
    if layers and m.layers:
        lt = Table(title="per layer")
        for col in ("op", "target", "name", "cycles", "% cycles", "SRAM AC", "DRAM AC", "OffFlash AC", "MACs",
                    "util %"):
            lt.add_column(col, overflow="fold")
        total = max(1, int(m.metrics.get("cycles_total", 1)))
        for r in m.layers:
            lt.add_row(r.original_op, r.target, r.name, f"{r.cycles:,}", f"{100 * r.cycles / total:.1f}",
                       f"{r.sram_ac:,}", f"{r.dram_ac:,}", f"{r.offflash_ac:,}", f"{r.macs:,}", f"{r.util_pct:.1f}")
        console.print(lt)
