"""The accuracy benchmarks' tables (bench-proxies, bench-supernet): a summary (plain data, see
bench_proxies.summarise) as table rows, markdown and the one-sentence headline. The CLI and the benchmark
scripts render these; nothing here computes a statistic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgenas.train.bench_proxies import best_estimates, finite


def corr_cell(v: Any, ci: Sequence[Any] | None = None) -> str:
    """+0.27 [-0.25, +0.73]; '-' when undefined."""
    if not finite(v):
        return "-"
    text = f"{v:+.2f}"
    if ci and all(finite(c) for c in ci):
        text += f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"
    return text


def _seconds(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


TABLE_HEADER = ("estimate", "Kendall tau [95% CI]", "Spearman [95% CI]", "within-backbone tau [95% CI]",
                "top-5 overlap", "best in top 5", "wall s / genotype", "CPU s / genotype", "wall s total")


def _top_k_cells(e: Mapping[str, Any]) -> tuple[str, str]:
    t = e.get("top_k") or {}
    return tuple(f"{t[key]:.2f}" if finite(t.get(key)) else "-" for key in ("overlap", "best_in_top_k"))


def table_rows(summary: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per estimate (seed B first, then the cheap ones best first), then the reference and the
    ceiling; the columns of TABLE_HEADER."""
    rows: list[tuple[str, ...]] = []
    est = summary.get("estimates") or {}
    if not est:
        return rows
    label = {"seed_b": "seed B (2nd full training)",
             "short_training": f"short training ({est.get('short_training', {}).get('epochs', '?')} ep)"}
    for name in ["seed_b", *best_estimates(summary)]:
        e = est[name]
        w = e.get("within") or {}
        rows.append((e.get("label") or label.get(name, name), corr_cell(e["tau"], e["tau_ci"]),
                     corr_cell(e["spearman"], e["spearman_ci"]),
                     corr_cell(w.get("tau"), w.get("tau_ci")) if w else "n/a", *_top_k_cells(e),
                     _seconds(e["seconds_per_genotype"]),
                     _seconds(e.get("cpu_seconds_per_genotype")), _seconds(e["seconds_total"])))
    ref = summary["reference"]
    rows.append((f"reference: seed A ({ref['epochs']} ep)", "", "", "", "", "", _seconds(ref["seconds_per_genotype"]),
                 _seconds(ref.get("cpu_seconds_per_genotype")), _seconds(ref["seconds_total"])))
    c = summary["ceiling"]
    ci = c.get("ceiling_one_seed_ci")
    rows.append(("ceiling sqrt(r_AB) (Spearman)", "", corr_cell(c["ceiling_one_seed"], ci), "", "", "", "", "", ""))
    rows.append(("2-seed mean reliability 2r/(1+r)", "", corr_cell(c["reliability_two_seed_mean"]),
                 "", "", "", "", "", ""))
    return rows


def markdown_table(summary: Mapping[str, Any]) -> str:
    rows = table_rows(summary)
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline(summary: Mapping[str, Any]) -> str:
    """One sentence: which estimate ranks best, with its interval, beside seed B and the ceiling."""
    est = summary.get("estimates") or {}
    if not est:
        n = summary["genotypes"]
        return f"not enough finished genotypes to compare ({n['complete']} of {n['listed']} complete)"
    best = summary["ranking"][0]
    e, b, c = est[best], est["seed_b"], summary["ceiling"]
    n = summary["genotypes"]
    partial = "" if summary["status"] == "complete" else f" (partial: {n['complete']} of {n['listed']} genotypes)"
    return (f"best cheap estimate of {summary['primary']} ranking: {best}, Kendall tau "
            f"{corr_cell(e['tau'], e['tau_ci'])}, Spearman {corr_cell(e['spearman'], e['spearman_ci'])}"
            f"{_lead(summary)}; seed B vs seed A tau {corr_cell(b['tau'])}, Spearman {corr_cell(b['spearman'])}; "
            f"ceiling sqrt(r_AB) {corr_cell(c['ceiling_one_seed'])} on {n['complete']} genotypes{partial}")


def _lead(summary: Mapping[str, Any]) -> str:
    """'; tau minus the runner-up's ... ; above k of n others by the paired interval' ('' without a lead)."""
    lead = [d for d in summary.get("lead") or [] if finite(d.get("tau"))]
    if not lead:
        return ""
    first = lead[0]
    return (f"; tau minus the runner-up's ({first['b']}, paired bootstrap) {corr_cell(first['tau'], first['tau_ci'])}; "
            f"above {beyond_zero(lead)} of the {len(lead)} others beyond the paired interval")


def beyond_zero(differences: Sequence[Mapping[str, Any]]) -> int:
    """How many tau differences have their whole paired interval above 0 (better beyond the noise)."""
    return sum(1 for d in differences if finite(d["tau_ci"][0]) and d["tau_ci"][0] > 0)
