"""The pipeline's report.md: one row per stage with its figures, then how each was measured."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgenas.export.pipeline_file import Pipeline


def figure_text(f: dict[str, Any]) -> str:
    parts = [f"{f['params']:,} params" if f.get("params") is not None else None,
             f"{f['fps']:.1f} FPS" if finite(f.get("fps")) else None,
             f"SRAM {f['sram_kib']:.1f} KiB" if finite(f.get("sram_kib")) else None,
             f"{f['metric_name']} {f['metric']:.4g} ({f['metric_kind']})" if finite(f.get("metric")) else None]
    return ", ".join(x for x in parts if x)


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _cell(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def render_report(p: Pipeline, state: dict[str, Any]) -> str:
    """Markdown: one row per stage with its figures, then how each figure was measured."""
    lines = [f"# Pipeline report: {Path(p.source).name}", "",
             f"Space config `{p.config}`, hardware profile `{p.profile.name}`, output folder `{p.out}`.", ""]
    search = state["stages"].get("search", {}).get("outputs")
    if search:
        rule = search["rule"]
        lines += [f"The search's front held {search['front_size']} design(s); chosen by the rule "
                  f"\"{rule['direction']} {rule['metric']}\" (ties: the earlier trial): trial {search['trial']}, "
                  f"`{search['genotype']}` (arch_id {search['arch_id']}).", ""]
    lines += ["| stage | resolution | params | MACs | model file | size (KiB) | FPS | SRAM (KiB) | metric |",
              "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for s in p.stages:
        e = state["stages"].get(s.name)
        if not e or e.get("status") != "done":
            lines.append(f"| {s.name} | not run | | | | | | | |")
            continue
        f = e["figures"]
        metric = (f"{f['metric_name']} {f['metric']:.4g} ({f['metric_kind']})" if finite(f.get("metric")) else "-")
        size = _cell(f["model_bytes"] / 1024 if f.get("model_bytes") else None, ".1f")
        lines.append(f"| {s.name} | {f.get('resolution', '-')} | {_cell(f.get('params'), ',')} | "
                     f"{_cell(f.get('macs'), ',')} | {f.get('model_file', '-')} | {size} | {_cell(f.get('fps'), '.1f')}"
                     f" | {_cell(f.get('sram_kib'), '.1f')} | {metric} |")
    quant = (state["stages"].get("quantize") or {}).get("outputs") or {}
    if "metric_qat" in quant:
        lines += ["", f"Quantisation-aware training ({quant['qat_epochs']} epoch(s)): int8 metric "
                  f"{quant['metric_ptq']:.4g} after post-training quantisation, {quant['metric_qat']:.4g} after QAT."]
    lines += ["", "How the figures were measured:", "",
              "- params, MACs: the stage's network (the pruned one from prune on).",
              f"- FPS, SRAM: Vela (ethos-u-vela) for `{p.profile.name}`; search/train/prune compile the network "
              "written as int8 with random weights, quantize/export the stage's real int8 file.",
              "- size: the stage's model file (search: none).",
              "- metric: the task's primary metric on its validation set: the float module after train and prune, "
              "the int8 file in LiteRT (`int8_eval`, reference kernels where they have every op) after quantize "
              "and export.", "", "| stage | fingerprint | starts | seconds | outputs |", "|---|---|---:|---:|---|"]
    for s in p.stages:
        e = state["stages"].get(s.name) or {}
        outs = e.get("outputs") or {}
        files = ", ".join(f"`{v}`" for k, v in outs.items() if k in ("checkpoint", "model", "front", "summary"))
        lines.append(f"| {s.name} | {e.get('fingerprint', '-')} | {e.get('starts', 0)} | "
                     f"{_cell(e.get('seconds'), '.0f')} | {files} |")
    return "\n".join(lines) + "\n"
