"""The layer table of a Graph (what `edgenas show` prints): pure data, rendering is the caller's."""

from __future__ import annotations

from typing import Any

from edgenas.graph.ir import Graph

LAYER_TABLE_COLUMNS = ("op", "kind", "inputs", "output shape", "MACs", "params", "weight B", "RF", "live KiB")


def layer_table(graph: Graph) -> list[dict[str, Any]]:
    """One row per op, with the receptive field of its output and the live activation bytes while it runs."""
    rf = graph.receptive_fields()
    live = graph.live_bytes_per_op()
    rows = []
    for op, s, lb in zip(graph.ops, graph.layer_stats(), live):
        rows.append({
            "op": op.name,
            "kind": op.kind,
            "inputs": ", ".join(op.inputs),
            "output shape": "x".join(map(str, s.out_shape)),
            "MACs": s.macs,
            "params": s.params,
            "weight B": s.weight_bytes,
            "RF": rf[op.outputs[0]],
            "live KiB": round(lb / 1024, 1),
        })
    return rows
