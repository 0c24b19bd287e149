"""Several bench-supernet runs on one reference, side by side with the same bootstrap resamples: which
supernet variant (strategy, learning rate, few-shot split) ranks best, and is its lead beyond the noise of
which genotypes were drawn?

  python benchmarks/compare_supernets.py runs/bench_supernet/flow-full.json \\
      runs/bench_supernet/flow-full-lr0.002.json runs/bench_supernet/flow-full-split-backbone.json \\
      [--part] [--base "supernet, SPOS (51 ep)"]

Each JSON is `edgenas bench-supernet`'s (its rows hold seed A, seed B, short training, the proxies and the
supernets' scores per genotype, oriented higher = better); --part takes each file's table on its list's part
(`--table-on`). The runs must share the reference file and list; the genotypes compared are those complete
in every file. One `fidelity` call over all of them (edgenas.analysis.fidelity: the paired bootstrap, the
same resamples for every row), so the differences against --base (default: the first file's first
supernet) get intervals. Prints markdown for benchmarks/RESULTS.md. Reads JSON only: trains nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from edgenas.analysis.fidelity import fidelity, oriented
from edgenas.train.bench_tables import corr_cell

ANCHORS = ("seed_b", "short_training", "naswot", "synflow", "macs")


def load(path: Path, part: bool) -> dict:
    s = json.loads(path.read_text(encoding="utf-8"))
    if part:
        if "part" not in s:
            sys.exit(f"{path}: no table on a part of the list (run bench-supernet with --table-on)")
        s = {**s["part"], "reference_file": s.get("reference_file")}
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--part", action="store_true", help="each file's table on its list's part (--table-on)")
    ap.add_argument("--base", help="the row the others are differenced against (default: the first supernet)")
    ap.add_argument("--resamples", type=int, default=1000)
    a = ap.parse_args()
    runs = [load(f, a.part) for f in a.files]
    first = runs[0]
    for f, r in zip(a.files, runs):
        if r.get("reference_file") != first.get("reference_file") or r.get("space_key") != first.get("space_key"):
            sys.exit(f"{f}: another reference or space than {a.files[0]}")
        if [row["arch_id"] for row in r["rows"]] != [row["arch_id"] for row in first["rows"]]:
            sys.exit(f"{f}: another genotype list than {a.files[0]}")
    labels: dict[str, tuple[int, str]] = {}  # row label -> (file index, estimate name)
    for i, r in enumerate(runs):
        for name, e in (r.get("estimates") or {}).items():
            if e.get("kind") == "supernet":
                label = e.get("label", name)
                if label in labels:  # the same label from two files (e.g. a file given twice): name the file
                    label = f"{label} [{a.files[i].name}]"
                labels[label] = (i, name)
    if not labels:
        sys.exit("no supernet rows with figures in these files")

    # complete as bench-supernet counts it (every unit of the reference done, every supernet scored it); a
    # score that is not finite is kept (null in the JSON) and ranks below every other, as in its table
    keep = [j for j in range(len(first["rows"])) if all(r["rows"][j]["complete"] for r in runs)]
    if len(keep) < 2:
        sys.exit(f"{len(keep)} genotypes complete in every file: nothing to compare")
    rows = [first["rows"][j] for j in keep]

    def score(v: float | None) -> float:
        return -math.inf if v is None else float(v)

    hib = first["higher_is_better"]
    ref = oriented([row["a"] for row in rows], hib)
    est = {"seed_b": oriented([row["b"] for row in rows], hib),
           "short_training": oriented([row["short"] for row in rows], hib)}
    for name in ANCHORS[2:]:
        est[name] = [score(row["proxies"].get(name)) for row in rows]
    for lab, (i, n) in labels.items():
        est[lab] = [score(runs[i]["rows"][j]["extra"].get(n)) for j in keep]
    base = a.base or next(iter(labels))
    if base not in est:
        sys.exit(f"--base {base!r} is not a row; rows: {', '.join(est)}")
    groups = [row.get("group") for row in rows] if first.get("group_by") else None
    stats = fidelity(ref, est, groups=groups, resamples=a.resamples, ceiling_from="seed_b",
                     differences=[(k, base) for k in est if k != base])
    diff = {d["a"]: d for d in stats["differences"]}
    out = stats["estimates"]
    print(f"{len(rows)} genotypes complete in every file ({first['space']}, {first['primary']}; files: "
          f"{', '.join(str(f) for f in a.files)}{'; their --table-on part' if a.part else ''}); "
          f"{stats['resamples']} paired bootstrap resamples.\n")
    print(f"| estimate | Kendall tau [95% CI] | Spearman [95% CI] | tau minus {base}'s [95% CI] |")
    print("|---|---|---|---|")
    order = sorted(est, key=lambda k: (k != "seed_b", -(out[k]["tau"] if out[k]["tau"] == out[k]["tau"] else -9)))
    for k in order:
        d = diff.get(k)
        print(f"| {k} | {corr_cell(out[k]['tau'], out[k]['tau_ci'])} | "
              f"{corr_cell(out[k]['spearman'], out[k]['spearman_ci'])} | "
              f"{'(base)' if k == base else corr_cell(d['tau'], d['tau_ci'])} |")
    c = out["seed_b"].get("ceiling") or {}
    print(f"\nCeiling sqrt(r_AB) (Spearman) {corr_cell(c.get('ceiling_one_seed'), c.get('ceiling_one_seed_ci'))}.")


if __name__ == "__main__":
    main()
