"""One CSV row per network x resolution x profile: the compiler's figures, the IR's, and the fit verdict."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgenas import atomic
from edgenas.graph import ir as ir_module
from edgenas.graph.ir import Graph
from edgenas.hardware.fit import fit_flags
from edgenas.hardware.measurement import Measurement
from edgenas.hardware.profile import HardwareProfile
from edgenas.space.config import format_resolution
from edgenas.space.genotype import Genotype
from edgenas.space.space import SearchSpace

# CSV column -> Measurement metric, in column order.
METRIC_COLUMNS = {
    "fps": "fps",
    "inference_ms": "inference_ms",
    "cycles_total": "cycles_total",
    "cycles_npu": "cycles_npu",
    "sram_kib": "sram_kib",
    "offchip_flash_kib": "offchip_flash_kib",
    "dram_kib": "dram_kib",
    "offchip_flash_access_cycles": "cycles_offchip_flash_access",
    "dram_access_cycles": "cycles_dram_access",
    "sram_access_cycles": "cycles_sram_access",
    "npu_ops": "npu_ops",
    "cpu_ops": "cpu_ops",
    "encoded_weight_bytes": "encoded_weight_bytes",
}
IR_COLUMNS = ("macs", "params", "weight_bytes", "peak_activation_kib", "receptive_field")
VERDICT_COLUMNS = ("over_sram", "over_flash", "fps_complete", "fps_end_to_end", "status", "error")
TAIL_COLUMNS = ("arch_id", "evaluator", "compiler", "weights")


def sweep_columns(choice_names: Sequence[str]) -> list[str]:
    return [*choice_names, "resolution", "hardware", *METRIC_COLUMNS, *IR_COLUMNS, *VERDICT_COLUMNS, *TAIL_COLUMNS]


@functools.lru_cache(maxsize=1)
def ir_figures_version() -> str:
    """The source of the code computing `ir_figures` (this module and the IR's), so memoised figures are
    recomputed whenever that code changes."""
    h = hashlib.sha256(b"edgenas-ir-figures\0")
    for module in (ir_module, sys.modules[__name__]):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()


def ir_figures(graph: Graph) -> dict[str, Any]:
    plan = graph.memory_plan()
    rf = graph.receptive_fields()
    return {
        "macs": graph.macs,
        "params": graph.params,
        "weight_bytes": graph.weight_bytes,
        "peak_activation_kib": round(plan.peak_bytes / 1024, 3),
        "receptive_field": max(rf[o] for o in graph.outputs),
    }


def cpu_part_seconds(graph: Graph, m: Measurement, profile: HardwareProfile) -> float | None:
    """Analytic time of the CPU-fallback ops on the host: MACs (or one op per output element for data
    movement) at the profile's host MAC rate. None when the profile gives no host rate."""
    rate = profile.host_cpu_macs_per_s
    if not rate:
        return None
    stats = {s.name: s for s in graph.layer_stats()}
    work = 0
    for row in m.layers:
        if row.target != "CPU":
            continue
        s = stats.get(row.name.split(":")[0])
        if s is None:
            continue
        elems = 1
        for d in s.out_shape:
            elems *= d
        work += max(s.macs, elems)
    return work / rate


def measurement_row(space: SearchSpace, g: Genotype, res: tuple[int, int], graph: Graph,
                    profile: HardwareProfile, m: Measurement, weights: str = "",
                    ir: dict[str, Any] | None = None) -> dict[str, Any]:
    """`ir`: the graph's `ir_figures`, when the caller has them already (one network, several profiles)."""
    row: dict[str, Any] = dict(g.as_dict())
    row["resolution"] = format_resolution(res)
    row["hardware"] = profile.name
    for col, metric in METRIC_COLUMNS.items():
        row[col] = m.metrics.get(metric, "")
    row.update(ir if ir is not None else ir_figures(graph))
    ok = m.status == "ok"
    flags = fit_flags(m, profile) if ok else {"over_sram": "", "over_flash": ""}
    row.update(flags)
    cpu_ops = int(m.metrics.get("cpu_ops", 0) or 0) if ok else 0
    row["fps_complete"] = (cpu_ops == 0) if ok else ""
    e2e: float | str = ""
    if ok:
        if cpu_ops == 0:
            e2e = m.metrics["fps"]
        else:
            cpu_s = cpu_part_seconds(graph, m, profile)
            if cpu_s is not None and m.metrics.get("fps"):
                e2e = 1.0 / (1.0 / m.metrics["fps"] + cpu_s)
    row["fps_end_to_end"] = e2e
    row["status"] = m.status
    row["error"] = m.error
    row["arch_id"] = g.arch_id
    row["evaluator"] = m.provenance.get("evaluator", "")
    row["compiler"] = m.provenance.get("compiler", "")
    row["weights"] = weights
    return row


def write_csv_atomic(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write to a temporary file beside the target and rename, so a failure leaves nothing half-written."""
    path = Path(path)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(v) for k, v in r.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
