"""Where each block's ops run on each built-in Ethos-U target: on the NPU, or falling back to the CPU.

An op the compiler cannot map to the NPU is left in the deployed model for the host CPU's TFLite Micro
kernels, and no cycle figure Vela reports includes it, so a candidate that looks fast may not be. Which
ops fall back depends on the op, its attributes, the tensor shape and the target, so the answer is
measured, not written down: every block of the registry and every upsampler is compiled alone
(input -> block -> output) for every built-in compiler target at several feature-map sizes, and the
compiler's verdict per IR op is read back.

`python -m edgenas.hardware.npu_support --out docs/npu_support.md` writes the table;
`--check` regenerates it and exits 1 when any NPU/CPU cell differs from the committed file.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ethosu.vela.tflite import BuiltinOperator, Model

from edgenas.errors import EdgeNasError
from edgenas.graph.blocks import _FIXED_BLOCKS, UPSAMPLERS, BlockArgs, apply_block, upsample
from edgenas.graph.ir import Graph
from edgenas.hardware.profile import HardwareProfile, list_profiles, load_profile
from edgenas.hardware.vela import VelaEvaluator, compiler_version
from edgenas.processes import WorkerDied, run_in_workers
from edgenas.tflite import graph_to_tflite

# Feature maps (NHWC input of the block). SMALL is a typical 1/4-resolution head; WIDE has the same H*W
# with 4x the channels; LARGE has H*W = 73,728 > 65,536, past the NPU's transpose limits.
SMALL = (1, 48, 64, 32)
WIDE = (1, 48, 64, 128)
LARGE = (1, 192, 384, 32)
SIZES: tuple[tuple[int, int, int, int], ...] = (SMALL, WIDE, LARGE)

EXTRA_BLOCKS = ("mbconv_e4_k5",)  # one instance of the mbconv_e<e>_k<k> pattern
HEADS = ("classifier",)  # network heads: global average pool + fully connected logits
CLASSES = 10
SEED = 0  # weight values do not change where an op runs; fixed so the models are reproducible
DEFAULT_OUT = os.path.join("docs", "npu_support.md")
COMMAND = "python -m edgenas.hardware.npu_support --out docs/npu_support.md"
_NPU_CUSTOM_OP = "CUSTOM:ethos-u"
_TABLE_START = "<!-- placement-table:start -->"
_TABLE_END = "<!-- placement-table:end -->"
_KEY_COLUMNS = ("case", "lowering", "scale", "input (NHWC)")

_OP_NAMES = {v: k for k, v in vars(BuiltinOperator.BuiltinOperator).items() if not k.startswith("_")}
# What the compiler prints for an op it leaves to the CPU: the op, its output tensor, then a reason that
# runs to the next blank line or warning.
_REASON_RE = re.compile(
    r"Warning \(supported operators\) operator: (\w+), ofm: '([^']*)'\s*\n\s*Reason: "
    r"(.*?)(?=\n\s*\n|\nWarning|\Z)",
    re.DOTALL,
)


@dataclass(frozen=True)
class SupportCase:
    """One model to compile: a block (stride 1, out = in channels, relu), an upsampler, or a network head
    (the classifier: global average pool + fully connected to 10 classes), at one input shape."""

    family: Literal["block", "upsample", "head"]
    name: str  # block name (registry) or upsampler name (UPSAMPLERS)
    shape: tuple[int, int, int, int]
    lowering: str = ""  # shuffle: the shuffle_impl; empty otherwise
    scale: int = 1  # upsampling factor; 1 for blocks

    @property
    def label(self) -> str:
        if self.family == "head":
            return f"{self.name} head"
        return self.name if self.family == "block" else f"upsample {self.name}"

    @property
    def lowering_text(self) -> str:
        if self.lowering:
            return self.lowering
        if self.name == "bilinear":
            return "half_pixel_centers=False"
        if self.name == "bilinear_hpc":
            return "half_pixel_centers=True"
        return "-"

    @property
    def scale_text(self) -> str:
        return f"x{self.scale}" if self.family == "upsample" else "-"

    @property
    def shape_text(self) -> str:
        return "x".join(str(d) for d in self.shape)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The row key of the markdown table (its first four cells)."""
        return (self.label, self.lowering_text, self.scale_text, self.shape_text)

    def build(self) -> Graph:
        g = Graph(f"npu_support_{self.name}")
        x = g.add_input("input", self.shape)
        if self.family == "block":
            args = BlockArgs(out_channels=self.shape[3], shuffle_impl=self.lowering or "split_concat")
            y = apply_block(g, self.name, x, "b", args)
        elif self.family == "head":
            y = g.add("global_avg_pool", "head.pool", [x])
            y = g.add("fully_connected", "head.fc", [y], units=CLASSES)
        else:
            y = upsample(g, x, "u", self.name, scale=self.scale)
        g.mark_output(y)
        return g


@dataclass(frozen=True)
class OpPlacement:
    """Where one IR op ran: `target` is "NPU" or "CPU"; `reason` is what the compiler printed for a CPU op."""

    name: str
    kind: str
    target: Literal["NPU", "CPU"]
    reason: str = ""


@dataclass(frozen=True)
class SupportRow:
    """The compiler's verdict for one case on one target."""

    case: SupportCase
    profile: str
    status: Literal["ok", "failed"]
    ops: tuple[OpPlacement, ...] = ()
    npu_ops: int = 0  # the compiler's counts (its own ops after lowering, not IR ops)
    cpu_ops: int = 0
    cycles_total: int = 0  # NPU cycles only: the compiler does not estimate CPU ops
    error: str = ""

    @property
    def cpu_fallback(self) -> tuple[str, ...]:
        """Names of the IR ops that run on the CPU."""
        return tuple(p.name for p in self.ops if p.target == "CPU")

    @property
    def cpu_kinds(self) -> tuple[str, ...]:
        """IR op kinds that run on the CPU, once each, in graph order."""
        return tuple(dict.fromkeys(p.kind for p in self.ops if p.target == "CPU"))

    @property
    def on_npu(self) -> bool:
        """True when the case compiled and no IR op fell back to the CPU."""
        return self.status == "ok" and not self.cpu_fallback

    @property
    def cell(self) -> str:
        if self.status != "ok":
            return "compile error"
        return "CPU: " + ", ".join(self.cpu_kinds) if self.cpu_kinds else "NPU"


# ---- cases and targets ---------------------------------------------------------------------------------


def support_cases(sizes: Sequence[tuple[int, int, int, int]] = SIZES) -> list[SupportCase]:
    """Every registry block (shuffle in both lowerings), every upsampler at x2 and x4 and the classifier
    head, at each size."""
    shapes = [tuple(s) for s in sizes]
    cases: list[SupportCase] = []
    for name in (*_FIXED_BLOCKS, *EXTRA_BLOCKS):
        lowerings = ("split_concat", "transpose") if name == "shuffle" else ("",)
        for lowering in lowerings:
            cases += [SupportCase("block", name, s, lowering) for s in shapes]  # type: ignore[arg-type]
    for scale in (2, 4):
        for name in UPSAMPLERS:
            cases += [SupportCase("upsample", name, s, scale=scale) for s in shapes]  # type: ignore[arg-type]
    for name in HEADS:
        cases += [SupportCase("head", name, s) for s in shapes]  # type: ignore[arg-type]
    return cases


def compiler_targets() -> list[str]:
    """The built-in profiles that are compiler targets (evaluator "vela"), in natural order."""
    return [p for p in list_profiles() if load_profile(p).evaluator == "vela"]


# ---- probing -------------------------------------------------------------------------------------------


def _op_name(code: object) -> str:
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # type: ignore[attr-defined]
    if builtin == BuiltinOperator.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()  # type: ignore[attr-defined]
        return f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def cpu_operators(optimised_model: bytes) -> list[tuple[str, tuple[str, ...]]]:
    """(TFLite op, output tensor names) of each operator the optimised model leaves to the CPU.

    The compiler replaces everything it maps to the NPU by `ethos-u` custom operators; any other operator
    in the optimised model is run by the host's TFLite Micro interpreter.
    """
    model = Model.Model.GetRootAs(optimised_model, 0)
    out = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            kind = _op_name(model.OperatorCodes(op.OpcodeIndex()))
            if kind == _NPU_CUSTOM_OP:
                continue
            names = tuple(
                sg.Tensors(op.Outputs(j)).Name().decode("utf-8", "replace")
                for j in range(op.OutputsLength())
                if op.Outputs(j) >= 0
            )
            out.append((kind, names))
    return out


def _reasons(log: str) -> dict[str, str]:
    """ofm tensor name -> the compiler's 'unsupported' reason (first line, then the rule it printed)."""
    return {m.group(2): m.group(3).strip() for m in _REASON_RE.finditer(log)}


def attribute(
    graph: Graph, optimised_model: bytes, cpu_ops: int, layer_cpu_names: Iterable[str], log: str = ""
) -> tuple[OpPlacement, ...]:
    """Per IR op of `graph`, whether the compiler ran it on the NPU or left it to the CPU.

    The rule, and why it is safe:
    1. The optimised (deployable) model is the ground truth. Every operator in it other than the
       `ethos-u` custom op runs on the CPU, and keeps the output tensor name it had in the input model;
       edgenas's writer names each TFLite tensor after its IR tensor, so the CPU operator's output name is
       the name of the IR op that fell back.
    2. Every other IR op runs on the NPU. Most show up in the compiler's per-layer rows under their output
       name, but not all: the compiler renames tensors it writes in place (a conv feeding a concat is
       reported under the concat's name), elides reshapes, and turns splits into strided reads. Such an op
       is never a CPU op, because a CPU op always survives as an operator of the optimised model (rule 1).
    3. The rule is cross-checked, and an inconsistency raises instead of guessing: the number of CPU
       operators must equal the compiler's own `cpu_ops` count, each one must write a tensor of the IR
       graph, and every per-layer row the compiler marks CPU must name one of their outputs.
    """
    producer = {t: op for op in graph.ops for t in op.outputs}
    cpu_list = cpu_operators(optimised_model)
    if len(cpu_list) != cpu_ops:
        raise EdgeNasError(
            f"{graph.name}: the optimised model has {len(cpu_list)} CPU operators but the compiler reports "
            f"cpu_ops={cpu_ops}; the NPU/CPU attribution rule does not hold for this compiler version"
        )
    cpu_names: set[str] = set()
    cpu_outputs: set[str] = set()
    for kind, outs in cpu_list:
        hits = {producer[t].name for t in outs if t in producer}
        if not hits:
            raise EdgeNasError(
                f"{graph.name}: CPU operator {kind} writes {list(outs)}, which no IR op produces; "
                "cannot tell which IR op fell back"
            )
        cpu_names |= hits
        cpu_outputs |= set(outs)
    unexplained = sorted(set(layer_cpu_names) - cpu_outputs)
    if unexplained:
        raise EdgeNasError(f"{graph.name}: per-layer rows mark {unexplained} as CPU but no CPU operator writes them")
    reasons = _reasons(log)
    placements = []
    for op in graph.ops:
        if op.name in cpu_names:
            why = next((reasons[t] for t in op.outputs if t in reasons), "")
            placements.append(OpPlacement(op.name, op.kind, "CPU", why))
        else:
            placements.append(OpPlacement(op.name, op.kind, "NPU"))
    return tuple(placements)


@functools.cache
def _evaluator(profile: HardwareProfile) -> VelaEvaluator:
    return VelaEvaluator(profile, check_input=False)  # edgenas's own writer made the bytes


def _resolve(profile: HardwareProfile | str) -> HardwareProfile:
    return load_profile(profile) if isinstance(profile, str) else profile


def probe(case: SupportCase, profile: HardwareProfile | str) -> SupportRow:
    """Compile `case` for `profile` and record where each of its IR ops runs (see `attribute`)."""
    prof = _resolve(profile)
    graph = case.build()
    m, model = _evaluator(prof).compile(graph_to_tflite(graph, seed=SEED), per_layer=True)
    if not m.ok or model is None:
        return SupportRow(case, prof.name, "failed", error=m.error)
    cpu_ops = int(m.metrics["cpu_ops"])
    layer_cpu = [r.name for r in m.layers if r.target == "CPU"]
    ops = attribute(graph, model, cpu_ops, layer_cpu, m.log)
    return SupportRow(
        case,
        prof.name,
        "ok",
        ops,
        npu_ops=int(m.metrics["npu_ops"]),
        cpu_ops=cpu_ops,
        cycles_total=int(m.metrics["cycles_total"]),
    )


def _probe_all(case: SupportCase, profiles: tuple[HardwareProfile, ...]) -> list[SupportRow]:
    return [probe(case, p) for p in profiles]


def support_table(
    profiles: Sequence[HardwareProfile | str] | None = None,
    cases: Sequence[SupportCase] | None = None,
    *,
    workers: int | None = None,
) -> list[SupportRow]:
    """`probe` for every case x profile, case-major. The compiler holds the GIL, so cases are spread over
    `workers` processes (default: one per CPU; 1 = in this process)."""
    profs = tuple(_resolve(p) for p in (profiles if profiles is not None else compiler_targets()))
    todo = list(cases if cases is not None else support_cases())
    n = min(workers or os.cpu_count() or 1, len(todo))
    if n <= 1:
        return [row for case in todo for row in _probe_all(case, profs)]
    # fork: workers inherit the imported compiler (spawn would re-import it, ~1 s each); a case whose
    # worker dies (the compiler crashed) is a failed row per target, and the rest go on
    chunks: dict[int, list[SupportRow]] = {}
    for i, res in run_in_workers(functools.partial(_probe_all, profiles=profs), todo, workers=n, context="fork"):
        chunks[i] = ([SupportRow(todo[i], p.name, "failed", error=res.message) for p in profs]
                     if isinstance(res, WorkerDied) else res)
    return [row for i in range(len(todo)) for row in chunks[i]]


# ---- rendering -----------------------------------------------------------------------------------------


def _targets(rows: Sequence[SupportRow]) -> list[str]:
    return list(dict.fromkeys(r.profile for r in rows))


def _grid(rows: Sequence[SupportRow]) -> dict[tuple[str, str, str, str], dict[str, SupportRow]]:
    grid: dict[tuple[str, str, str, str], dict[str, SupportRow]] = {}
    for r in rows:
        grid.setdefault(r.case.key, {})[r.profile] = r
    return grid


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _target_set(names: Sequence[str], all_targets: Sequence[str]) -> str:
    """'every target', 'every ethos-u55 and ethos-u65 target', or the names."""
    if list(names) == list(all_targets):
        return "every target"
    families: dict[str, list[str]] = {}
    for t in all_targets:
        families.setdefault(t.rsplit("-", 1)[0], []).append(t)
    parts, covered = [], set()
    full = [f for f, members in families.items() if set(members) <= set(names)]
    if full:
        parts.append("every " + _join(full) + " target")
        covered = {t for f in full for t in families[f]}
    parts += [t for t in names if t not in covered]
    return _join(parts)


def _case_text(case: SupportCase) -> str:
    extra = [x for x in (case.lowering_text, case.scale_text) if x != "-"]
    return f"`{case.label}`" + (f" ({', '.join(extra)})" if extra else "")


# Alternative lowerings compared with the one edgenas uses by default: (name, lowering, scale) pairs.
_ALTERNATIVES = (
    (("shuffle", "transpose", 1), ("shuffle", "split_concat", 1)),
    (("bilinear_hpc", "", 2), ("bilinear", "", 2)),
    (("bilinear_hpc", "", 4), ("bilinear", "", 4)),
)


def findings(rows: Sequence[SupportRow]) -> list[str]:
    """The 'what follows' sentences, computed from the rows."""
    targets = _targets(rows)
    out: list[str] = []
    failed = [r for r in rows if r.status != "ok"]
    if failed:
        out.append(
            "Compile errors: "
            + "; ".join(f"{_case_text(r.case)} at {r.case.shape_text} on {r.profile}: {r.error}" for r in failed)
            + "."
        )
    defaults = [r for r in rows if r.case.family == "block" and r.case.lowering in ("", "split_concat")]
    if defaults:
        names = list(dict.fromkeys(r.case.name for r in defaults))
        bad = [r for r in defaults if not r.on_npu]
        if not bad:
            out.append(
                f"edgenas's default lowerings stay on the NPU: all {len(names)} blocks probed "
                f"({', '.join(f'`{n}`' for n in names)}; `shuffle` lowered as split_concat) run entirely on the "
                "NPU on every target at every size."
            )
        else:
            out.append(
                "Default lowerings that do NOT stay on the NPU: "
                + "; ".join(f"{_case_text(r.case)} at {r.case.shape_text} on {r.profile} ({r.cell})" for r in bad)
                + "."
            )
    bilinear = [r for r in rows if r.case.family == "upsample" and r.case.name == "bilinear"]
    if bilinear:
        scales = _join([f"x{s}" for s in dict.fromkeys(r.case.scale for r in bilinear)])
        if all(r.on_npu for r in bilinear):
            out.append(
                f"`bilinear` upsampling (half_pixel_centers=False, the built-in flow space's choice) stays on the "
                f"NPU at {scales} on every target at every size."
            )
        else:
            bad = [r for r in bilinear if not r.on_npu]
            out.append(
                "`bilinear` upsampling (half_pixel_centers=False) does NOT always stay on the NPU: "
                + "; ".join(f"x{r.case.scale} at {r.case.shape_text} on {r.profile} ({r.cell})" for r in bad)
                + "."
            )
    # One sentence per (case, lowering, scale) with a fallback anywhere; sizes with the same verdict grouped.
    by_case: dict[tuple[str, str, str], list[SupportRow]] = {}
    for r in rows:
        by_case.setdefault(r.case.key[:3], []).append(r)
    for group in by_case.values():
        if all(r.on_npu for r in group):
            continue
        verdicts: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        for size in dict.fromkeys(r.case.shape_text for r in group):
            at = [r for r in group if r.case.shape_text == size and r.status == "ok"]
            cpu = tuple(r.profile for r in at if r.cpu_fallback)
            kinds = tuple(dict.fromkeys(k for r in at for k in r.cpu_kinds))
            verdicts.setdefault((kinds, cpu), []).append(size)
        all_sizes = len(verdicts) == 1
        parts = []
        for (kinds, cpu), sizes in verdicts.items():
            where = "at every size" if all_sizes else "at " + _join(sizes)
            if cpu:
                parts.append(f"`{'`, `'.join(kinds)}` falls back to the CPU on {_target_set(cpu, targets)} {where}")
            else:
                parts.append(f"it stays on the NPU everywhere {where}")
        out.append(f"{_case_text(group[0].case)}: " + "; ".join(parts) + ".")
    # What the NPU-resident alternatives cost next to edgenas's lowering.
    index = {(r.case.name, r.case.lowering, r.case.scale, r.case.shape_text, r.profile): r for r in rows}
    for alt, base in _ALTERNATIVES:
        ratios = []
        for (name, lowering, scale, size, target), r in index.items():
            if (name, lowering, scale) != alt or not r.on_npu:
                continue
            b = index.get((*base, size, target))
            if b is not None and b.on_npu and b.cycles_total > 0:
                ratios.append((r.cycles_total / b.cycles_total, target, size, r.case, b.case))
        if not ratios:
            continue
        lo, hi = min(ratios), max(ratios)
        on_targets = [t for t in targets if any(x[1] == t for x in ratios)]
        on = "every target" if on_targets == targets else _join(on_targets)
        if f"{lo[0]:.2f}" == f"{hi[0]:.2f}":
            cost = f"{lo[0]:.2f}x the cycles of {_case_text(hi[4])}"
        else:
            cost = (
                f"{lo[0]:.2f}-{hi[0]:.2f}x the cycles of {_case_text(hi[4])} (most on {hi[1]} at {hi[2]}, "
                f"least on {lo[1]} at {lo[2]})"
            )
        only = "" if on == "every target" else f" (only on {on})"
        out.append(f"In the cells where {_case_text(hi[3])} runs entirely on the NPU{only}, it costs {cost}.")
    return out


def _reason_lines(rows: Sequence[SupportRow]) -> list[str]:
    """Distinct (IR op kind, compiler reason) pairs with the targets that gave them; each rule text once."""
    targets = _targets(rows)
    seen: dict[tuple[str, str], list[str]] = {}
    rules: dict[tuple[str, str], str] = {}
    for r in rows:
        for p in r.ops:
            if p.target == "CPU":
                first, _, rest = (p.reason or "(no reason printed)").partition("\n")
                seen.setdefault((p.kind, first), [])
                if r.profile not in seen[(p.kind, first)]:
                    seen[(p.kind, first)].append(r.profile)
                if rest.strip():
                    rules.setdefault((p.kind, rest.rstrip()), first)
    lines = []
    shown: set[str] = set()
    for (kind, first), ts in seen.items():
        lines.append(f"- `{kind}` on {_target_set(sorted(ts, key=targets.index), targets)}: {first}")
        for (k, rule), owner in rules.items():
            if k == kind and owner == first and rule not in shown:
                shown.add(rule)
                lines += ["", "  ```text", *("  " + ln for ln in rule.splitlines()), "  ```", ""]
    return lines


def render_markdown(rows: Sequence[SupportRow]) -> str:
    """The document: intro, the placement table (the part `--check` compares), findings, reasons, cycles."""
    targets = _targets(rows)
    grid = _grid(rows)
    sizes = list(dict.fromkeys(r.case.shape_text for r in rows))
    lines = [
        "# Where ops run: NPU or CPU fallback, per block and target",
        "",
        "Each block of the registry and each upsampler is compiled alone (input -> block -> output, int8) for",
        "every built-in compiler target, and the compiler's verdict is read back per IR op: an op the NPU cannot",
        "run stays in the deployed model as a TFLite operator for the host CPU, and Vela's cycle figures leave",
        "it out. A cell says `NPU` when every IR op of the case runs on the NPU, else `CPU:` and the IR op",
        "kinds that fell back. Blocks use stride 1, out channels = in channels, relu; upsamplers keep the",
        f"channel count. Input sizes: {', '.join(sizes)} (NHWC).",
        "",
        f"Generated by `{COMMAND}` (check with `--check`); do not edit by hand.",
        f"Compiler: {compiler_version()}.",
        "",
        _TABLE_START,
        _md_row([*_KEY_COLUMNS, *targets]),
        _md_row(["---"] * (len(_KEY_COLUMNS) + len(targets))),
    ]
    for key, by_target in grid.items():
        lines.append(_md_row([*key, *(by_target[t].cell if t in by_target else "" for t in targets)]))
    lines += [_TABLE_END, "", "## What follows", ""]
    lines += [f"- {s}" for s in findings(rows)]
    reasons = _reason_lines(rows)
    if reasons:
        lines += ["", "## The compiler's reasons", ""] + reasons
    lines += [
        "",
        "## Estimated cycles",
        "",
        "Vela's total cycle estimate per case (thousands). CPU ops count as 0 here, so a CPU cell's figure",
        "is only its NPU part. Estimates, not timings (see the README's Caveats); `--check` ignores this table.",
        "",
        _md_row([*_KEY_COLUMNS, *targets]),
        _md_row(["---"] * (len(_KEY_COLUMNS) + len(targets))),
    ]
    for key, by_target in grid.items():
        cells = []
        for t in targets:
            r = by_target.get(t)
            cells.append("" if r is None or r.status != "ok" else f"{r.cycles_total / 1000:,.0f}")
        lines.append(_md_row([*key, *cells]))
    lines += [
        "",
        "## How a verdict is read",
        "",
        "Every operator of the compiled (deployable) model other than the `ethos-u` custom operator runs on",
        "the CPU; its output tensor keeps the IR tensor's name, which names the IR op. Every other IR op runs",
        "on the NPU (some are fused or elided there and have no per-layer row of their own). The count of CPU",
        "operators is checked against the compiler's `cpu_ops` (see `attribute` in",
        "`src/edgenas/hardware/npu_support.py`).",
        "",
    ]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text)


# ---- checking ------------------------------------------------------------------------------------------


def parse_cells(markdown: str) -> dict[tuple[tuple[str, ...], str], str]:
    """(row key, target) -> cell of the placement table in a document written by `render_markdown`."""
    try:
        body = markdown.split(_TABLE_START, 1)[1].split(_TABLE_END, 1)[0]
    except IndexError:
        raise EdgeNasError("no placement table (missing its start/end markers)") from None
    table = [ln.strip() for ln in body.strip().splitlines() if ln.strip().startswith("|")]
    if len(table) < 2:
        return {}

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(table[0])
    k = len(_KEY_COLUMNS)
    targets = header[k:]
    out: dict[tuple[tuple[str, ...], str], str] = {}
    for line in table[2:]:
        c = cells(line)
        key = tuple(c[:k])
        for t, v in zip(targets, c[k:]):
            out[(key, t)] = v
    return out


def diff_cells(committed: str, rows: Sequence[SupportRow]) -> list[str]:
    """Human-readable differences between a committed document's cells and freshly probed rows."""
    old = parse_cells(committed)
    new = parse_cells(render_markdown(rows))
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a != b:
            key, target = k
            where = " / ".join(key) + f" on {target}"
            out.append(f"{where}: committed {a!r}, compiler now says {b!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgenas.hardware.npu_support", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"markdown file to write or check (default {DEFAULT_OUT})")
    parser.add_argument(
        "--check", action="store_true", help="regenerate and compare the NPU/CPU cells; exit 1 on a difference"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = support_table(cases=support_cases(), workers=args.workers)
    seconds = time.perf_counter() - t0
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                committed = f.read()
        except OSError as e:
            print(f"cannot read {args.out}: {e}", file=sys.stderr)
            return 1
        try:
            diffs = diff_cells(committed, rows)
        except EdgeNasError as e:
            print(f"{args.out}: {e}", file=sys.stderr)
            return 1
        if diffs:
            n = len(diffs)
            print(f"{args.out} is out of date: {n} cell(s) differ from the compiler's verdict", file=sys.stderr)
            for d in diffs[:50]:
                print("  " + d, file=sys.stderr)
            if len(diffs) > 50:
                print(f"  ... and {len(diffs) - 50} more", file=sys.stderr)
            print(f"regenerate with: {COMMAND}", file=sys.stderr)
            return 1
        print(f"{args.out}: all {len(parse_cells(committed))} cells match ({len(rows)} compiles, {seconds:.1f} s)")
        return 0
    text = render_markdown(rows)
    folder = os.path.dirname(args.out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(rows)} compiles in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
